"""Pairwise interaction modes (Shapley interaction index SII, or Shapley-Taylor STII of order 2) from the same
lesion chains as the first-order modes, which come out as well (chains.py's accumulator, by composition).

For a pair (i, j) and an ordering, let j be the one of the two lesioned later, at step t, and C_{t-1}, C_t the
chain coalitions just before and after it (i is already lesioned in both). With S = C_t,

    delta_ij(S) = v(S + i + j) - v(S + i) - v(S + j) + v(S)
                = v(C_{t-1} + i) - v(C_t + i) - v(C_{t-1}) + v(C_t),

so each pair adds two coalitions per ordering, each one unit away from a chain coalition (the MLP's rank-1
game and batching still apply). Under a uniform ordering, S is the set of players lesioned after both, a
uniform subset of its size s, which has probability 2 (n - 1 - s) / (n (n - 1)): exactly the Shapley-Taylor
weight of order 2 (STII: delta as it is), and n / (2 (n - 1 - s)) times the Shapley interaction weight (SII:
delta reweighted). Both are unbiased; the SE comes from the spread over orderings (over sampler groups).
"""
import numpy as np

from ..orderings import SAMPLERS
from ..running_stats import RunningModes
from .base import Estimator, chain_coalitions, intact_and_empty
from .chains import ChainContributions, grouped_update
from .walking import OrderingStream, first_unit_cost, refuses_orderings, resolve_sampler, walk_orderings

INDICES = ("SII", "STII")


def all_pairs(n_players: int) -> np.ndarray:
    i, j = np.triu_indices(n_players, 1)
    return np.stack([i, j], 1)


def check_pairs(pairs, n_players: int) -> np.ndarray:
    """An int array (P, 2) of distinct pairs with i < j, every index a player; ValueError otherwise."""
    if pairs is None:
        return all_pairs(n_players)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be a non-empty (P, 2) array of player indices, got shape {pairs.shape}")
    if pairs.min() < 0 or pairs.max() >= n_players:
        raise ValueError(f"pair indices must lie in 0..{n_players - 1}, got {pairs.min()}..{pairs.max()}")
    if (pairs[:, 0] == pairs[:, 1]).any():
        raise ValueError("a pair needs two different players")
    pairs = np.sort(pairs, 1)
    if len(np.unique(pairs, axis=0)) != len(pairs):
        raise ValueError("pairs must be distinct")
    return pairs.astype(np.int64)


class PairInteractions(Estimator):
    name = "pairs"
    about = "pairwise interaction modes (SII or STII) and the chain mean, from the same lesion chains"
    settings = dict(pairs=None, index="SII", sampler="auto")
    walks_orderings = True

    @classmethod
    def checked_settings(cls, **given):
        settings = super().checked_settings(**given)
        if settings["index"] not in INDICES:
            raise ValueError(f"unknown interaction index {settings['index']!r}; choose one of {INDICES}")
        return settings

    @classmethod
    def refuses(cls, problem, pairs=None, index="SII", sampler="auto"):
        return refuses_orderings(cls.name, problem, sampler)

    @classmethod
    def minimum_evaluations(cls, problem, pairs=None, index="SII", sampler="auto"):
        name = resolve_sampler(problem, sampler)
        n = problem.n_players
        orderings = OrderingStream(name, n, problem.seed).get(0, SAMPLERS[name].group(n))
        pairs = check_pairs(pairs, n)
        return first_unit_cost(orderings, lambda chunk: pair_rows(chunk, pairs)[0])

    @classmethod
    def state_bytes(cls, problem, pairs=None, index="SII", sampler="auto"):
        p = len(check_pairs(pairs, problem.n_players))
        return 3 * (problem.n_players + p) * problem.output_size * np.dtype(problem.dtype).itemsize

    def __init__(self, problem, *, pairs=None, index="SII", sampler="auto"):
        super().__init__(problem)
        if index not in INDICES:
            raise ValueError(f"unknown interaction index {index!r}; choose one of {INDICES}")
        self.pairs, self.index = check_pairs(pairs, self.n), index
        self.rows_per_ordering = self.n + 2 * len(self.pairs)
        walk_orderings(self, sampler, self.rows_per_ordering)
        self.chains = ChainContributions(self.n, self.output_shape, self.group, self.dtype)
        self.pair_stats = RunningModes(len(self.pairs), self.output_shape, self.dtype)
        self.pair_pending = np.zeros_like(self.pair_stats.mean) if self.group > 1 else None

    def config(self):
        return dict(super().config(), sampler=self.sampler, index=self.index, pairs=self.pairs.tolist())

    def run(self, runner):
        self.chains.intact = runner.evaluate(intact_and_empty(self.n))[0]
        runner.walk(self)
        out = self.chains.finish()
        out.update(pair_modes=self.pair_stats.mean, pair_se=self.pair_stats.standard_error(consume=True),
                   pairs=self.pairs)
        return out

    def plan(self, first, stop):
        orderings = self.orderings.get(first * self.group, stop * self.group)
        coalitions, layout = pair_rows(orderings, self.pairs)
        step, self.kind, self.owner = layout
        n = self.n
        # |S| = n - 1 - step; SII reweights by n / (2 (n - 1 - |S|)) = n / (2 step), step >= 1
        self.weight = np.ones(step.shape) if self.index == "STII" else n / (2.0 * step)
        self.chains.start(orderings, first * self.group)
        self.row = 0
        self.last_chain = self.chains.intact
        self.waiting = {}  # extras whose chain row C_t has not arrived: pair -> (v(C_{t-1} + i), v(C_{t-1}))
        self.pair_samples = np.zeros((len(self.pairs), *self.output_shape), self.dtype)
        return coalitions

    def fold(self, values):
        rows = np.arange(self.row, self.row + len(values))
        self.row += len(values)
        chain_rows = self.kind[rows] == 0
        k_rows = self.rows_per_ordering
        if chain_rows.any():  # first-order modes from the chain rows alone, as the chain mean folds them
            chain = rows[chain_rows]
            self.chains.fold(chain // k_rows, self.owner[chain], values[chain_rows])
        for r, value in zip(rows, values):  # extras: few per chain row; resolved when C_t arrives
            kind, owner, j = self.kind[r], self.owner[r], r // k_rows
            if kind == 1:  # C_{t-1} + i: C_{t-1} is the last chain row (t >= 1: the other was lesioned before)
                self.waiting[owner] = [value, self.last_chain]
            elif kind == 2:
                self.waiting[owner].append(value)
            else:
                done = [q for q, w in self.waiting.items() if len(w) == 3]
                for q in done:
                    plus_i_before, before, plus_i_after = self.waiting.pop(q)
                    delta = plus_i_before - plus_i_after - before + value
                    self.pair_samples[q] = self.weight[j, q] * delta
                if owner == self.n - 1:  # the ordering is complete: every pair has its sample
                    grouped_update(self.pair_stats, self.pair_pending, np.arange(len(self.pairs)), self.pair_samples,
                                   (self.chains.first + j) % self.group, self.group)
            if kind == 0:
                self.last_chain = value

    def state(self):
        return dict(self.chains.state(), pair_count=self.pair_stats.count, pair_mean=self.pair_stats.mean,
                    pair_m2=self.pair_stats.m2)

    def load_state(self, arrays):
        self.chains.load_state(arrays)
        self.pair_stats.load(arrays["pair_count"], arrays["pair_mean"], arrays["pair_m2"])

    def merge(self, other):
        self.chains.stats.merge(other.chains.stats)
        self.pair_stats.merge(other.pair_stats)

    def max_se(self, relative=False):
        se = max(self.chains.stats.max_standard_error(), self.pair_stats.max_standard_error())
        if not relative or not np.isfinite(se):
            return se
        scale = max(self.chains.stats.value_range(), self.pair_stats.value_range())
        return se / scale if scale > 0 else float("inf")


def pair_rows(orderings: np.ndarray, pairs: np.ndarray):
    """The coalitions of a block of orderings, and their layout (step (k, P), kind and owner of each row).

    Row layout of an ordering: for t = 0..n-1, the extras of the pairs whose later member goes at step t, two each
    (C_{t-1} + i, then C_t + i: one unit apart), then the chain row C_t. kind: 0 chain, 1 extra C_{t-1} + i, 2 extra
    C_t + i; owner: step t for chain rows, the pair's index for extras."""
    k, n = orderings.shape
    p = len(pairs)
    rows = n + 2 * p
    chain = chain_coalitions(orderings).reshape(k, n, n)
    rank = np.empty_like(orderings)
    np.put_along_axis(rank, orderings, np.arange(n)[None, :], axis=1)
    ri, rj = rank[:, pairs[:, 0]], rank[:, pairs[:, 1]]
    step = np.maximum(ri, rj)  # (k, P): when the later of the pair is lesioned
    other = np.where(ri < rj, pairs[:, 0][None], pairs[:, 1][None])  # the one lesioned before
    by_step = np.argsort(step, axis=1, kind="stable")
    sorted_step = np.take_along_axis(step, by_step, 1)
    before = np.stack([np.searchsorted(s, np.arange(n + 1), side="left") for s in sorted_step])  # (k, n+1)
    chain_pos = np.arange(n)[None] + 2 * before[:, 1:]        # (k, n): where C_t goes
    slot = np.empty_like(by_step)
    np.put_along_axis(slot, by_step, np.arange(p)[None].repeat(k, 0), 1)  # pair q's place among extras
    extra_pos = step + 2 * slot                               # (k, P): where C_{t-1} + i goes
    coalitions = np.zeros((k, rows, n), bool)
    j_index = np.arange(k)[:, None]
    coalitions[j_index, chain_pos] = chain
    prev_chain = np.where((step > 0)[..., None], chain[j_index, np.maximum(step - 1, 0)], True)
    with_i = prev_chain.copy()
    with_i[j_index, np.arange(p)[None], other] = True
    coalitions[j_index, extra_pos] = with_i
    with_i = chain[j_index, step].copy()
    with_i[j_index, np.arange(p)[None], other] = True
    coalitions[j_index, extra_pos + 1] = with_i
    base = rows * np.arange(k)[:, None]
    kind = np.zeros(k * rows, np.int8)
    kind[(extra_pos + base).ravel()] = 1
    kind[(extra_pos + 1 + base).ravel()] = 2
    owner = np.zeros(k * rows, np.int64)
    owner[(chain_pos + base).ravel()] = np.tile(np.arange(n), k)
    owner[(extra_pos + base).ravel()] = np.tile(np.arange(p), k)
    owner[(extra_pos + 1 + base).ravel()] = np.tile(np.arange(p), k)
    return coalitions.reshape(k * rows, n), (step, kind, owner)
