"""The lesion chains that chain-kernel and the surrogate estimator share, and the sums both read from them.

A chain of an ordering visits one coalition of every size, uniform among those of its size: exactly the samples
that KernelSHAP with uniform sizes (leverage-score sampling, Musco & Witter 2024) asks for. The 2n + 1 coalitions
of size 0, 1 and n - 1 are evaluated once, up front (the `prologue`), so a chain costs n - 3 evaluations; the
border is filled in from those values. Per sampler group, `ChainWalk` sums each unit's chain contributions (the
chain mean) and the Shapley-kernel regression sums (b and its gram matrix), and hands the complete group to its
owner. The regression is constrained to sum to v(N) - v(empty) (`constrained_fit`).
"""
from dataclasses import dataclass

import numpy as np

from ..moments import Moments
from .base import chain_coalitions

MIN_PLAYERS = 4  # below this every coalition is in the prologue: enumerate instead (common.exact)
STATE_VERSION = 2  # the moments of the estimates in one array (common.moments); version 1 named them apart


def unfit(n_players: int, group: int, name: str = "chain-kernel") -> str | None:
    """Why an estimator on these chains (`name`) cannot run on n players in sampler groups of `group` orderings;
    None where it can."""
    if n_players < MIN_PLAYERS:
        return (f"the {name} estimator needs at least {MIN_PLAYERS} players, got {n_players}: use "
                "estimator='chain' or 'kadd'")
    # Each group's own regression gives the weight and the error bars, so a group must hold many more coalitions
    # than there are players: with antithetic pairs of 200-unit chains, each pair's regression leaned on the
    # size-1 and n-1 coalitions (the same in every pair), its spread understated the pooled regression's, and the
    # estimate came out 4.5x worse than the chain mean's (measured on a 200-unit MLP).
    if group < n_players:
        return (f"the {name} estimator needs sampler groups of at least as many orderings as players "
                f"(orthogonal, latin, latin-antithetic), got groups of {group} for {n_players} players")
    return None


def chain_rows(orderings: np.ndarray) -> np.ndarray:
    """The chains' coalitions without their first step and last two (in the prologue): n - 3 an ordering."""
    k, n = orderings.shape
    return chain_coalitions(orderings).reshape(k, n, n)[:, 1:n - 2].reshape(-1, n)


def prologue(n_players: int) -> np.ndarray:
    """The (2n, n) coalitions evaluated once, before the walk: each unit alone, then each unit lesioned alone. With
    the fully lesioned network's value appended, their values are the estimators' `border`."""
    one = np.eye(n_players, dtype=bool)
    return np.concatenate([one, ~one])


def constrained_fit(a: np.ndarray, b: np.ndarray, total: np.ndarray) -> np.ndarray:
    """argmin beta'a beta - 2 beta'b subject to sum(beta) = total, for every column of b (n, D); total (D,)."""
    solved = np.linalg.solve(a, np.concatenate([b, np.ones((len(a), 1))], 1))
    fit, ones = solved[:, :-1], solved[:, -1]
    return fit - ones[:, None] * ((fit.sum(0) - total) / ones.sum())[None]


@dataclass
class Group:
    """A complete sampler group: its first ordering, the chain-mean sums p, the regression sums b and gram (each
    divided by the group's size), and the orderings and chains it kept (the first `keep` of them)."""
    first: int
    p: np.ndarray
    b: np.ndarray
    gram: np.ndarray
    orders: np.ndarray = None
    chains: np.ndarray = None


class ChainWalk:
    """plan and fold for chains of n - 3 evaluated coalitions; calls `on_group(Group)` as each group completes.

    border: the values of prologue(n) and of no unit intact, (2n + 1, *output). keep: how many of a group's
    chains (n values each, the border filled in) travel with it, for an owner that fits a model to them."""

    def __init__(self, n_players: int, intact, group: int, border, on_group, keep: int = 0):
        n = n_players
        self.n, self.group, self.on_group, self.keep = n, group, on_group, keep
        self.intact = np.asarray(intact)
        d = self.intact.size
        if border is None or np.shape(border) != (2 * n + 1, *self.intact.shape):
            raise ValueError(f"border: the values of prologue({n}) and of no unit intact, shape "
                             f"{(2 * n + 1, *self.intact.shape)}")
        self.border = np.asarray(border, np.float64).reshape(2 * n + 1, d)
        self.alone, self.without, self.empty = self.border[:n], self.border[n:2 * n], self.border[2 * n]
        self.total = self.intact.reshape(d).astype(np.float64) - self.empty
        # Shapley kernel over sizes, per coalition: 1/(s (n - s)) for a sampled one (each chain holds one per
        # size), 1/(n (n - 1)) for each of the n coalitions of size 1 and n - 1 (all of them, so each counts 1/n)
        sizes = n - 1 - np.arange(1, n - 2)              # sizes at chain steps 1 .. n - 3
        self.weight = 1.0 / (sizes * (n - sizes))
        cumulative = np.concatenate([[0.0], np.cumsum(self.weight)])
        ranks = np.arange(n)
        self.rank_gram = cumulative[np.clip(np.minimum.outer(ranks, ranks) - 1, 0, n - 3)]  # w over shared rows
        z = prologue(n).astype(np.float64)
        self.border_gram = z.T @ z / (n * (n - 1))
        self.border_b = z.T @ (self.border[:2 * n] - self.empty) / (n * (n - 1))
        self.chain = np.empty((n, d))            # the values of the ordering being folded, step by step
        self.group_sum = np.zeros((n, d))        # the group's chain contributions so far
        self.group_b = np.zeros((n, d))          # and its regression sums
        self.group_gram = np.zeros((n, n))
        self.kept = np.zeros((keep, n, d))       # the group's first chains

    rows_per_ordering = property(lambda self: self.n - 3)

    def plan(self, orderings, first):
        self.orderings, self.first, self.row = orderings, first, 0
        return chain_rows(orderings)

    def fold(self, values):
        values = np.asarray(values).reshape(len(values), -1)
        rows = self.rows_per_ordering
        done = 0
        while done < len(values):
            which, step = divmod(self.row, rows)
            take = min(len(values) - done, rows - step)
            self.chain[1 + step:1 + step + take] = values[done:done + take]
            done += take
            self.row += take
            if step + take == rows:
                self._finish_ordering(which)

    def _finish_ordering(self, j):
        n, order = self.n, self.orderings[j]
        chain = self.chain
        chain[0], chain[n - 2], chain[n - 1] = self.without[order[0]], self.alone[order[n - 1]], self.empty
        position = (self.first + j) % self.group
        if position < self.keep:
            self.kept[position] = chain
        self.add_chain(order, chain, self.intact.reshape(1, -1), self.empty, self.group_sum, self.group_b)
        self.group_gram[np.ix_(order, order)] += self.rank_gram
        if position == self.group - 1:
            g, first = self.group, self.first + j + 1 - self.group
            at = first - self.first
            group = Group(first, self.group_sum / g, self.group_b / g, self.group_gram / g,
                          self.orderings[at:at + g].copy(), self.kept.copy())
            for buffer in (self.group_sum, self.group_b, self.group_gram):
                buffer[...] = 0
            self.on_group(group)

    def add_chain(self, order, chain, intact, empty, sums, b):
        """Add one ordering's chain (its n values, step t lesioning order[t]; `intact` (1, D) before it) to the
        chain-mean sums and the regression sums b: of the game's chains, or of a surrogate's."""
        n = self.n
        before = np.concatenate([intact, chain[:-1]])
        sums[order] += before - chain                  # step t lesions order[t]
        # regression sums: the unit ranked r is intact in chain steps 1 .. r - 1
        weighted = np.cumsum(self.weight[:, None] * (chain[1:n - 2] - empty), 0)
        b[order[2:]] += weighted[np.minimum(np.arange(1, n - 1), n - 3) - 1]

    def regression(self, b, gram, total=None):
        """The constrained Shapley-kernel regression from a group's (or the pooled) sums, the border added."""
        return constrained_fit(gram + self.border_gram, b + self.border_b, self.total if total is None else total)


class KernelEstimate:
    """The chain mean and the KernelSHAP regression of the same chains, group by group, and their weighted average
    (chain_kernel.py says why): the moments of the two estimates over groups, and the pooled regression sums."""

    def __init__(self, walk: ChainWalk):
        n, d = walk.n, walk.intact.size
        self.walk = walk
        self.moments = Moments(2, n, (d,))  # per group: the chain mean p and the group's own regression k
        self.b_sum, self.gram_sum = np.zeros((n, d)), np.zeros((n, n))  # the pooled regression's sums

    def add(self, group: Group):
        """Fold one group's chain mean and own regression into the moments, its regression sums into the pooled."""
        self.moments.add(np.stack([group.p, self.walk.regression(group.b, group.gram)]))
        self.b_sum += group.b
        self.gram_sum += group.gram

    @property
    def groups(self) -> int:
        return int(self.moments.count[0])

    def state(self):
        m = self.moments
        return dict(est_count=m.count, est_mean=m.mean, est_m2=m.m2, b_sum=self.b_sum, gram_sum=self.gram_sum)

    def load_state(self, arrays):
        self.moments.load(arrays["est_count"], arrays["est_mean"], arrays["est_m2"])
        self.b_sum[...], self.gram_sum[...] = arrays["b_sum"], arrays["gram_sum"]

    def merge(self, other: "KernelEstimate"):
        self.moments.merge(other.moments)
        self.b_sum += other.b_sum
        self.gram_sum += other.gram_sum

    def weight_of_regression(self) -> float:
        """The weight a of the regression in (1 - a) chain mean + a regression that minimises the summed variance
        over every mode element, from the groups' spread; 1/2 until there are two groups or when neither varies.
        One number for all elements, so that it is estimated from all of them."""
        if self.groups < 2:
            return 0.5
        (var_p, cov), (_, var_k) = self.moments.covariance_sums()
        spread = var_p + var_k - 2 * cov
        return 0.5 if spread <= 1e-300 else float(np.clip((var_p - cov) / spread, 0.0, 1.0))

    def max_se(self, relative=False):
        if self.groups < 2:
            return float("inf")
        a = self.weight_of_regression()
        se = self.moments.max_standard_error((1 - a, a))
        if not relative:
            return se
        scale = self.moments.value_range((1 - a, a))
        return se / scale if scale > 0 else float("inf")

    def finish(self, shape: tuple, dtype) -> dict:
        m = self.groups
        if m == 0:
            raise ValueError("no sampler group was walked: nothing to estimate")
        a = self.weight_of_regression()
        pooled = self.walk.regression(self.b_sum / m, self.gram_sum / m)  # its bias shrinks as groups are added
        modes = ((1 - a) * self.moments.mean[0] + a * pooled).reshape(shape).astype(dtype)
        se = self.moments.standard_error_array((1 - a, a)).reshape(shape)
        return dict(modes=modes, se=se.astype(dtype), weight_of_regression=a, se_dof=m - 1)
