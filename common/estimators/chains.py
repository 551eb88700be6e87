"""Marginal contributions along lesion chains, folded into a running mean and variance per player: what the chain
mean (chain_mean.py) is, and the first-order part of the pair interactions (pair_interactions.py).

A chain starts at the intact network and lesions the players one by one in an ordering's order; the drop in value
at each step is that player's marginal contribution. One sample is the mean contribution over a sampler group (one
ordering for iid, an ordering and its reverse for antithetic); Welford's running mean and variance of the samples
keep O(n x output) memory for any number of orderings.
"""
import numpy as np

from ..running_stats import RunningModes


def grouped_update(stats: RunningModes, pending, index, samples, position: int, group: int) -> None:
    """Fold one ordering's samples (ordering number `position` in its sampler group) into `stats`: as they are, or,
    for groups of several orderings, as the group's mean once its last ordering is in (`pending` holds the sums)."""
    if group == 1:
        stats.update(index, samples)
    elif position == 0:
        pending[index] = samples
    elif position < group - 1:
        pending[index] += samples
    else:
        stats.update(index, (pending[index] + samples) / group)


class ChainContributions:
    def __init__(self, n_players: int, output_shape: tuple, group: int, dtype):
        self.n, self.group = n_players, group
        self.stats = RunningModes(n_players, output_shape, dtype)
        self.pending = np.zeros_like(self.stats.mean) if group > 1 else None  # sums inside a group
        self.intact = None

    def start(self, orderings: np.ndarray, first: int) -> None:
        """A block of orderings whose first is ordering number `first` of the run."""
        self.orderings, self.first, self.previous = orderings, first, self.intact

    def fold(self, which: np.ndarray, step: np.ndarray, values: np.ndarray) -> None:
        """Fold consecutive chain rows (of the block's ordering `which`, lesion `step`) in as contributions."""
        before = np.concatenate([self.previous[None], values[:-1]])
        before[step == 0] = self.intact
        contributions = before - values
        self.previous = values[-1]
        for j in np.unique(which):  # one segment per ordering: each player appears at most once in it
            seg = which == j
            grouped_update(self.stats, self.pending, self.orderings[j, step[seg]], contributions[seg],
                           (self.first + j) % self.group, self.group)

    def state(self, prefix: str = "") -> dict:
        return {f"{prefix}count": self.stats.count, f"{prefix}mean": self.stats.mean, f"{prefix}m2": self.stats.m2}

    def load_state(self, arrays: dict, prefix: str = "") -> None:
        self.stats.load(arrays[f"{prefix}count"], arrays[f"{prefix}mean"], arrays[f"{prefix}m2"])

    def max_se(self, relative: bool = False) -> float:
        se = self.stats.max_standard_error()
        if not relative or not np.isfinite(se):
            return se
        scale = self.stats.value_range()
        return se / scale if scale > 0 else float("inf")

    def finish(self) -> dict:
        dof = int(self.stats.count.min()) - 1  # samples (orderings, or sampler groups) less one
        se = self.stats.standard_error(consume=True)
        return dict(modes=self.stats.mean, se=se, se_dof=dof)
