"""Shapley modes from two estimators on the same lesion chains: the permutation mean and a KernelSHAP regression.

The chains (chain_walk.py) hold, per sampler group, each unit's mean contribution (the chain mean) and the
Shapley-kernel regression sums. The regression estimates the modes from the values' levels, the chain mean from
their differences; their errors are only weakly correlated (0.1-0.3 on the benchmark's games), so a weighted
average beats both. The weight minimises the variance summed over every mode element, estimated from the spread
across sampler groups (about 1/2 on 12-unit games, 1/4 on a 32-unit MLP, where the regression alone is no better
than iid).

The modes: the pooled chain mean and the pooled regression (consistent: its bias shrinks with the number of
orderings), weighted. Their error bars: the spread, across sampler groups, of the same weighted average computed
group by group (each group's own regression), whose variance equals the pooled estimator's up to terms that
shrink with the group's size. State: ten O(n x output) float64 arrays and two n x n matrices.
"""
import numpy as np

from ..moments import Moments
from .chain_walk import ChainWalk, Group, OnChainWalk, unfit

class ChainKernelModes(OnChainWalk):
    name = "chain-kernel"
    about = ("the chain mean averaged with a KernelSHAP regression on the same chains, which skip the coalitions of "
             "size 0, 1 and n-1 (evaluated once): n-3 evaluations an ordering; needs sampler groups of at least n "
             "orderings (orthogonal, latin, latin-antithetic)")

    def __init__(self, n_players, intact, group=1, dtype=np.float64, border=None):
        why = unfit(n_players, group, self.name)
        if why:
            raise ValueError(why)
        super().__init__(n_players, intact, group, dtype)
        self.walk = ChainWalk(n_players, self.intact, self.group, border, self.fold_group)
        self.rows_per_ordering = self.walk.rows_per_ordering
        d = self.intact.size
        self.moments = Moments(2, n_players, (d,))  # per group: the chain mean p and the group's own regression k
        self.b_sum, self.gram_sum = np.zeros((n_players, d)), np.zeros((n_players, n_players))  # pooled regression

    def fold_group(self, group: Group):
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
        for name in ("b_sum", "gram_sum"):
            getattr(self, name)[...] = arrays[name]

    def merge(self, other):
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

    def pooled_regression(self):
        """The regression on every group's chains at once (its bias shrinks as groups are added)."""
        return self.walk.regression(self.b_sum / self.groups, self.gram_sum / self.groups)

    def finish(self):
        shape = (self.n, *self.intact.shape)
        m = self.groups
        if m == 0:
            raise ValueError("no sampler group was walked: nothing to estimate")
        a = self.weight_of_regression()
        modes = ((1 - a) * self.moments.mean[0] + a * self.pooled_regression()).reshape(shape).astype(self.dtype)
        se = self.moments.standard_error_array((1 - a, a)).reshape(shape)
        return dict(modes=modes, se=se.astype(self.dtype), weight_of_regression=a, se_dof=m - 1)

    @staticmethod
    def state_bytes(n_players: int, output_size: int, itemsize: int = 8) -> int:
        """About how much memory the estimator's arrays take (ChainMeanModes': 2 or 3 x n x output x itemsize)."""
        return n_players * output_size * (10 * 8 + itemsize) + 3 * n_players * n_players * 8
