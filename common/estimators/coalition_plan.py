"""A run's plan of distinct coalitions, stratified by size: what the regression estimator (kadd.py) evaluates.

Each stratum gets the budget's share of the Shapley kernel's weight (paired plans of PAIRED_SQRT_FROM players or
more: of its square root, which spends more on the middle sizes). A stratum whose share buys all its coalitions
is enumerated (its values then carry no sampling error), and the rest of the budget is shared anew
among the others, which are drawn uniformly without replacement. A stratum is one size (unpaired), or a size and
its complement's (paired: every draw comes with its complement, as paired KernelSHAP's do).

Each row's regression weight is the Shapley kernel over its sampling probability, so that the weights of a size
sum to the kernel's mass of that size. The rows of a stratum are laid out unit by unit in slots: slot 0 holds the
draws (m rows), slot 1 their complements (m more, paired only), which is how the estimator's variance pairs
them.
"""
import math
from dataclasses import dataclass
from itertools import chain, combinations

import numpy as np


# paired plans of this many players or more share the budget by the square root of the kernel's weight: 2.5-8.4%
# lower error than by the weight itself at n/2 and n orderings' worth on MLPs of 20, 32 and 60 units (20 seeds),
# but 9% higher on a 12-unit one at n/2 (docs/estimator_history.md)
PAIRED_SQRT_FROM = 16


@dataclass
class CoalitionPlan:
    coalitions: np.ndarray   # (C, n) bool, distinct, sizes 1 .. n-1
    weight: np.ndarray       # (C,) regression weights
    stratum: np.ndarray      # (C,) the stratum of each row (its smallest size)
    units: np.ndarray        # (strata,) units drawn per stratum (a unit: a coalition, or a pair)
    population: np.ndarray   # (strata,) units in each stratum (float64: C(n, s) passes int64 from 67 players)
    paired: bool

    @property
    def slots(self) -> int:
        return 2 if self.paired else 1

    def sampled(self):
        """(stratum, its row indices in slot order, units drawn, population) of every stratum drawn partly."""
        for t in np.flatnonzero((self.units > 0) & (self.units < self.population)):
            yield t, np.flatnonzero(self.stratum == t), int(self.units[t]), float(self.population[t])


BEYOND = 10 ** 300  # what a stratum too large for float64 counts as


def stratified_coalitions(n_players: int, budget: int, seed: int, paired: bool = False) -> CoalitionPlan:
    """At most `budget` distinct coalitions of n players (neither empty nor full), drawn from the seed."""
    n = n_players
    rng = np.random.default_rng([seed, n, budget, int(paired), 2023])
    low = np.arange(1, n // 2 + 1) if paired else np.arange(1, n)  # each stratum's smallest size
    middle = 2 * low == n
    # float64: exact up to 2^53, and past int64 from 67 players on; a count that large is never reached by a budget,
    # so counts past float64's range (C(1987, 993)) are kept as 1e300
    population = np.array([float(min(math.comb(n, s) // (2 if paired and 2 * s == n else 1), BEYOND)) for s in low])
    rows_of = np.full(len(low), 2 if paired else 1)  # rows a unit costs
    inverse_kernel = low * (n - low) if not paired or n < PAIRED_SQRT_FROM else np.sqrt(low * (n - low))
    mass = np.where(paired & ~middle, 2.0, 1.0) / inverse_kernel  # the stratum's sizes' kernel mass (or root)
    units = np.zeros(len(low), dtype=np.int64)
    open_, left = np.ones(len(low), bool), budget
    while open_.any() and left > 0:
        share = left * mass * open_ / mass[open_].sum() / rows_of  # in units
        full = open_ & (share >= population)
        if not full.any():  # whole units, then the largest remainders while the budget lasts
            units[open_] = np.floor(share[open_]).astype(np.int64)
            spare = left - int((units * rows_of)[open_].sum())
            for t in np.argsort(-(share - np.floor(share)) * open_):
                if open_[t] and rows_of[t] <= spare and units[t] < population[t]:
                    units[t] += 1
                    spare -= rows_of[t]
            break
        units[full] = population[full]
        left -= int((population * rows_of)[full].sum())
        open_ &= ~full
    rows, weight, stratum = [], [], []
    for t, s in enumerate(low):
        m = int(units[t])
        if m == 0:
            continue
        draws = _draws(n, s, m, rng, complement_distinct=paired and 2 * s == n, every=m == population[t])
        block = np.concatenate([draws, ~draws]) if paired else draws
        of_size = 2 * m if paired and 2 * s == n else m  # rows drawn of each of the stratum's sizes
        sizes = block.sum(1)
        rows.append(block)
        weight.append(1.0 / (sizes * (n - sizes) * of_size))
        stratum.append(np.full(len(block), t))
    return CoalitionPlan(np.concatenate(rows) if rows else np.zeros((0, n), bool),
                         np.concatenate(weight) if rows else np.zeros(0),
                         np.concatenate(stratum) if rows else np.zeros(0, np.int64), units, population, paired)


def _draws(n: int, s: int, m: int, rng, complement_distinct: bool, every: bool) -> np.ndarray:
    """m distinct coalitions of size s, uniform without replacement; complement_distinct: none is another's
    complement either (pairs of size n/2). every: all of them (one of each complementary pair if so)."""
    if every:
        count = math.comb(n, s)
        members = np.fromiter(chain.from_iterable(combinations(range(n), s)), np.int64, count * s).reshape(count, s)
        out = np.zeros((count, n), bool)
        np.put_along_axis(out, members, True, axis=1)
        return out[out[:, 0]] if complement_distinct else out
    found = np.zeros((0, n), bool)
    while len(found) < m:  # draw in bulk, keep the first of each new coalition, in the order drawn
        draw = np.zeros((2 * (m - len(found)) + 8, n), bool)
        np.put_along_axis(draw, rng.random(draw.shape).argsort(1)[:, :s], True, axis=1)
        pool = np.concatenate([found, draw])
        key = np.where(pool[:, :1], pool, ~pool) if complement_distinct else pool  # a pair's key: its member with 0
        _, first = np.unique(np.packbits(key, axis=1), axis=0, return_index=True)
        found = pool[np.sort(first)][:m]
    return found
