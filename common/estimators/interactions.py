"""Pairwise interaction modes (Shapley interaction index SII, or Shapley-Taylor STII of order 2) from the same
lesion chains as the first-order modes, which come out as well.

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

from ..running_stats import RunningModes
from .base import chain_coalitions
from .chain_mean import ChainMeanModes

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


class InteractionModes(ChainMeanModes):
    name = "interactions"

    def __init__(self, n_players, intact, group=1, dtype=np.float64, pairs=None, index="SII"):
        super().__init__(n_players, intact, group, dtype)
        if index not in INDICES:
            raise ValueError(f"unknown interaction index {index!r}; choose one of {INDICES}")
        self.pairs, self.index = check_pairs(pairs, n_players), index
        self.rows_per_ordering = n_players + 2 * len(self.pairs)
        self.pair_stats = RunningModes(len(self.pairs), self.intact.shape, dtype)
        self.pair_pending = np.zeros_like(self.pair_stats.mean) if self.group > 1 else None

    def config(self):
        return dict(super().config(), index=self.index, pairs=self.pairs.tolist())

    def plan(self, orderings, first):
        k, n = orderings.shape
        p = len(self.pairs)
        chain = chain_coalitions(orderings).reshape(k, n, n)
        rank = np.empty_like(orderings)
        np.put_along_axis(rank, orderings, np.arange(n)[None, :], axis=1)
        ri, rj = rank[:, self.pairs[:, 0]], rank[:, self.pairs[:, 1]]
        step = np.maximum(ri, rj)  # (k, P): when the later of the pair is lesioned
        other = np.where(ri < rj, self.pairs[:, 0][None], self.pairs[:, 1][None])  # the one lesioned before
        rows = self.rows_per_ordering
        # row layout of an ordering: for t = 0..n-1, the extras of the pairs whose later member goes at step t,
        # two each (C_{t-1} + i, then C_t + i: one unit apart), then the chain row C_t
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
        # |S| = n - 1 - step; SII reweights by n / (2 (n - 1 - |S|)) = n / (2 step), step >= 1
        self.weight = np.ones((k, p)) if self.index == "STII" else n / (2.0 * step)
        self.orderings, self.first, self.row = orderings, first, 0
        # what fold needs, by global row of the block: kind and owner
        self.kind = np.zeros(k * rows, np.int8)  # 0 chain, 1 extra C_{t-1}+i, 2 extra C_t+i
        self.kind[(chain_pos + rows * np.arange(k)[:, None]).ravel()] = 0
        self.kind[(extra_pos + rows * np.arange(k)[:, None]).ravel()] = 1
        self.kind[(extra_pos + 1 + rows * np.arange(k)[:, None]).ravel()] = 2
        self.owner = np.zeros(k * rows, np.int64)  # chain rows: step t; extras: pair index
        self.owner[(chain_pos + rows * np.arange(k)[:, None]).ravel()] = np.tile(np.arange(n), k)
        self.owner[(extra_pos + rows * np.arange(k)[:, None]).ravel()] = np.tile(np.arange(p), k)
        self.owner[(extra_pos + 1 + rows * np.arange(k)[:, None]).ravel()] = np.tile(np.arange(p), k)
        self.previous = self.last_chain = self.intact
        self.waiting = {}  # extras whose chain row C_t has not arrived: pair -> (v(C_{t-1} + i), v(C_{t-1}))
        self.pair_samples = np.zeros((len(self.pairs), *self.intact.shape), self.dtype)
        return coalitions.reshape(k * rows, n)

    def fold(self, values):
        rows = np.arange(self.row, self.row + len(values))
        self.row += len(values)
        chain_rows = self.kind[rows] == 0
        if chain_rows.any():  # first-order modes from the chain rows alone, as ChainMeanModes folds them
            chain = rows[chain_rows]
            self._fold_chain(chain // self.rows_per_ordering, self.owner[chain], values[chain_rows])
        k_rows = self.rows_per_ordering
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
                    self._fold_pairs(j)
            if kind == 0:
                self.last_chain = value

    def _fold_pairs(self, j):
        self._update(self.pair_stats, self.pair_pending, np.arange(len(self.pairs)), self.pair_samples, j)

    def state(self):
        return dict(super().state(), pair_count=self.pair_stats.count, pair_mean=self.pair_stats.mean,
                    pair_m2=self.pair_stats.m2)

    def load_state(self, arrays):
        super().load_state(arrays)
        self.pair_stats.load(arrays["pair_count"], arrays["pair_mean"], arrays["pair_m2"])

    def merge(self, other):
        super().merge(other)
        self.pair_stats.merge(other.pair_stats)

    def max_se(self, relative=False):
        se = max(super().max_se(False), self.pair_stats.max_standard_error())
        if not relative or not np.isfinite(se):
            return se
        scale = max(self.stats.value_range(), self.pair_stats.value_range())
        return se / scale if scale > 0 else float("inf")

    def finish(self):
        out = super().finish()
        out.update(pair_modes=self.pair_stats.mean, pair_se=self.pair_stats.standard_error(consume=True),
                   pairs=self.pairs)
        return out
