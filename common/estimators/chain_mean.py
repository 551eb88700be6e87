"""First-order Shapley modes from lesion chains (msapy's lazy walk, many coalitions per call).

For each ordering, start from the intact network and lesion the players one by one; the drop in value at each
step is that player's marginal contribution. One sample is the mean contribution over a sampler group (one
ordering for iid, an ordering and its reverse for antithetic); a per-player running mean and variance
(Welford) of the samples gives the modes and their standard errors in O(n x output size) memory.
"""
import numpy as np

from ..running_stats import RunningModes
from .base import Estimator, chain_coalitions


class ChainMeanModes(Estimator):
    name = "chain"
    about = "the mean marginal contribution along each ordering's lesion chain (msapy's estimator)"

    def __init__(self, n_players, intact, group=1, dtype=np.float64):
        super().__init__(n_players, intact, group, dtype)
        self.rows_per_ordering = n_players
        self.stats = RunningModes(n_players, self.intact.shape, dtype)
        self.pending = np.zeros_like(self.stats.mean) if self.group > 1 else None  # sums inside a group

    def plan(self, orderings, first):
        self.orderings, self.first, self.row = orderings, first, 0
        self.previous = self.intact
        return chain_coalitions(orderings)

    def fold(self, values):
        rows = np.arange(self.row, self.row + len(values))
        self.row += len(values)
        which, step = np.divmod(rows, self.n)
        self._fold_chain(which, step, values)

    def _fold_chain(self, which, step, values):
        """Fold consecutive chain rows (of ordering `which`, lesion `step`) in as marginal contributions."""
        before = np.concatenate([self.previous[None], values[:-1]])
        before[step == 0] = self.intact
        contributions = before - values
        self.previous = values[-1]
        for j in np.unique(which):  # one segment per ordering: each player appears at most once in it
            seg = which == j
            self._update(self.stats, self.pending, self.orderings[j, step[seg]], contributions[seg], j)

    def _update(self, stats, pending, index, samples, j):
        """Fold ordering j's samples into `stats`: as they are, or as the mean over j's sampler group."""
        position = (self.first + j) % self.group
        if self.group == 1:
            stats.update(index, samples)
        elif position == 0:
            pending[index] = samples
        elif position < self.group - 1:
            pending[index] += samples
        else:
            stats.update(index, (pending[index] + samples) / self.group)

    def state(self):
        return dict(count=self.stats.count, mean=self.stats.mean, m2=self.stats.m2)

    def load_state(self, arrays):
        self.stats.load(arrays["count"], arrays["mean"], arrays["m2"])

    def merge(self, other):
        self.stats.merge(other.stats)

    def max_se(self, relative=False):
        se = self.stats.max_standard_error()
        if not relative or not np.isfinite(se):
            return se
        scale = self.stats.value_range()
        return se / scale if scale > 0 else float("inf")

    def finish(self):
        dof = int(self.stats.count.min()) - 1  # samples (orderings, or sampler groups) less one
        se = self.stats.standard_error(consume=True)
        return dict(modes=self.stats.mean, se=se, se_dof=dof)
