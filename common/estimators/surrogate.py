"""chain-kernel with a learned control variate: a small network fitted to the lesion game stands in for it.

The chain mean and the KernelSHAP regression (chain_walk.py) are linear in the game's values, so for any cheap
surrogate game g whose Shapley modes phi_g are known

    estimate(v) = phi_g + estimate(v - g)

is as unbiased as estimate(v), and its variance is that of the residual game v - g. A first-order surrogate
removes nothing (its marginal contributions never vary); what does is one that follows the game's saturation and
interactions: the network of surrogate_fit.py. On a 32-unit MLP's digit accuracies that took the error at equal
evaluations from 1/1.73 of iid orderings' (chain-kernel) to 1/2.27 (benchmarks/bench_estimators.py).

Three parts: the chains and their sums (`ChainWalk`, shared with chain-kernel), the fitter (surrogate_fit.py),
and the control-variate step (`control_variate`), each testable alone. Cross-fitting keeps the estimate
unbiased: the groups come in pairs, and each group's residual uses the surrogate fitted on the other group of its
pair (same game values, other orderings). Each group then gives four estimates, the chain mean and the
regression with and without the control variate (scaled by a coefficient from the group's own chain
contributions), and the weights of the four that minimise the summed variance come from the groups' spread, as
chain-kernel's weight does: a surrogate that only adds variance (a nearly additive game) is dropped. A group left
without a partner (an odd number of groups in a run or a Ray shard) enters plain.

Memory: O(n x output). The group waiting for its partner and the group being walked keep the chains of their first
orderings (all of them up to 64 players; about MAX_FIT_ROWS coalitions beyond), for the fit and the coefficient,
on top of the moments of four estimates: 28 arrays of the modes' size. 2.6 MiB for Mixtral's 256 experts x 9
scores. `estimator="auto"` takes it for outputs of up to 1024 elements, on games slow enough to pay for its fits.
"""
from dataclasses import dataclass

import numpy as np

from ..moments import Moments
from .base import Estimator, chain_coalitions, intact_and_empty
from .chain_kernel import chains_minimum, refuses_chains
from .chain_walk import STATE_VERSION, ChainWalk, Group, constrained_fit, prologue
from .surrogate_fit import MAX_FIT_ROWS, SURROGATE_SEED, fit_surrogate, surrogate_shapley
from .walking import group_of, walk_orderings

RECOMMENDED_MAX_OUTPUT = 1024  # auto takes it for outputs of up to this many elements (scores, accuracies)
SECONDS_PER_GROUP = 1.0  # its fits' cost, by rule, for auto


def kept_orderings(n_players: int, group: int) -> int:
    """How many of a group's orderings keep their chains: all of them up to MAX_FIT_ROWS coalitions."""
    return min(group, max(2, MAX_FIT_ROWS // n_players))


def centred_steps(chains, intact, orders):
    """Each unit's chain contributions (k, n units, D) minus its mean over the k orderings."""
    before = np.concatenate([np.broadcast_to(intact[None], (len(chains), 1, chains.shape[2])), chains[:, :-1]], 1)
    steps = np.empty_like(chains)
    np.put_along_axis(steps, orders[:, :, None], before - chains, axis=1)
    return steps - steps.mean(0)


@dataclass
class ControlVariate:
    """A group's estimates with the control variate: the chain mean p and the group's own regression k of the
    residual game plus phi_g, the regression sums b of the same, and the offsets that make the pooled regression
    consistent across groups with other surrogates (or none); beta: the coefficient the surrogate was scaled by."""
    p: np.ndarray
    k: np.ndarray
    b: np.ndarray
    offset_b: np.ndarray
    offset_total: np.ndarray
    beta: float


def control_variate(walk: ChainWalk, group: Group, surrogate, phi: np.ndarray) -> ControlVariate:
    """The residual game v - beta g on the group's orderings (g evaluated on the same chains, no game evaluations)
    plus beta phi_g. beta in [0, 1]: how the game's chain contributions follow the surrogate's (least squares about
    each unit's mean over the group's kept chains); 1 where the surrogate fits, less where it adds variance."""
    n, d = walk.n, walk.intact.size
    orders = group.orders
    border_mask = np.concatenate([prologue(n), np.zeros((1, n), bool)])
    chains = surrogate(chain_coalitions(orders)).reshape(len(orders), n, d)
    border, intact = surrogate(border_mask), surrogate(np.ones((1, n), bool))
    kept = len(group.chains)
    game_steps = centred_steps(group.chains, walk.intact.reshape(1, d), orders[:kept])
    surrogate_steps = centred_steps(chains[:kept], intact, orders[:kept])
    beta = float(np.clip(np.sum(game_steps * surrogate_steps) / max(np.sum(surrogate_steps ** 2), 1e-300), 0, 1))
    chains, border, intact, phi = beta * chains, beta * border, beta * intact, beta * phi
    empty = border[2 * n]
    sums, b = np.zeros((n, d)), np.zeros((n, d))
    for order, chain in zip(orders, chains):
        walk.add_chain(order, chain, intact, empty, sums, b)
    # the residual game v - g: its chain mean and regression sums are v's minus g's (all linear in the values)
    k = len(orders)
    p, b = group.p - sums / k, group.b - b / k
    z = border_mask[:2 * n].astype(np.float64)
    border_b = walk.border_b - z.T @ (border[:2 * n] - empty) / (n * (n - 1))
    total = walk.total - (intact[0] - empty)
    own = constrained_fit(group.gram + walk.border_gram, b + border_b, total)
    # The pooled regression needs sums of one game: the residual's plus phi_g's exact sums (fit(A, A phi,
    # sum(phi)) = phi), so that groups with other surrogates, or none, pool consistently.
    return ControlVariate(p + phi, own + phi, b + group.gram @ phi, border_b + walk.border_gram @ phi - walk.border_b,
                          total + phi.sum(0) - walk.total, beta)


class Surrogate(Estimator):
    name = "surrogate"
    about = ("chain-kernel with a small network fitted to the game as a control variate (cross-fitted, no extra "
             "game evaluations)")
    # per group: the chain mean and the regression of the game (chain-kernel's two), and the same two with the
    # control variate
    ESTIMATES = ("chain", "regression", "chain+surrogate", "regression+surrogate")
    SUMS = ("b_sum", "b_cv", "gram_sum", "cv_b", "cv_total", "beta_sum", "pending", "pending_first",
            "pending_orders", "pending_chains", "pending_p", "pending_b", "pending_gram")

    settings = dict(sampler="auto")
    walks_orderings = True
    shard_multiple = 2  # the cross-fitted pairs of groups: a shard holds whole pairs, so Ray pairs as a local run

    @classmethod
    def refuses(cls, problem, sampler="auto"):
        return refuses_chains(cls.name, problem, sampler)

    @classmethod
    def minimum_evaluations(cls, problem, sampler="auto"):
        return chains_minimum(problem, sampler)

    @classmethod
    def recommended(cls, problem, sampler="auto"):
        return problem.output_size <= RECOMMENDED_MAX_OUTPUT

    @classmethod
    def state_bytes(cls, problem, sampler="auto"):
        """About how much memory the estimator's arrays take: 28 float64 arrays of the modes' size (the four
        estimates' moments, the sums), two groups' kept chains (at most MAX_FIT_ROWS x output each), the border and
        three n x n matrices."""
        n, d = problem.n_players, problem.output_size
        kept = kept_orderings(n, group_of(problem, sampler))
        return 8 * (n * d * (28 + 2 * kept) + (2 * n + 1) * d + 3 * n * n)

    @classmethod
    def fit_seconds(cls, problem, sampler="auto"):
        """About a second a sampler group (0.7-6 s measured at 10-200 units): its fit and its phi_g."""
        group = group_of(problem, sampler)
        units = problem.budget.orderings_worth(problem.n_players) / group
        return SECONDS_PER_GROUP * units

    def __init__(self, problem, *, sampler="auto"):
        super().__init__(problem)
        walk_orderings(self, sampler, self.n - 3)
        n, d = self.n, self.problem.output_size
        self.keep = kept_orderings(n, self.group)
        self.moments = Moments(len(self.ESTIMATES), n, (d,))
        # pooled regression sums, of the game and with the control variate, and the latter's offsets
        self.b_sum, self.b_cv, self.gram_sum = np.zeros((n, d)), np.zeros((n, d)), np.zeros((n, n))
        self.cv_b, self.cv_total = np.zeros((n, d)), np.zeros(d)
        self.beta_sum = np.zeros(())  # the control variate's coefficients, summed over groups (for the record)
        # the group waiting for its partner
        self.pending, self.pending_first = np.zeros((), np.int64), np.zeros((), np.int64)
        self.pending_orders = np.zeros((self.group, n), np.int64)
        self.pending_chains = np.zeros((self.keep, n, d))
        self.pending_p, self.pending_b, self.pending_gram = np.zeros((n, d)), np.zeros((n, d)), np.zeros((n, n))

    def config(self):
        return dict(super().config(), sampler=self.sampler, state_version=STATE_VERSION)

    def run(self, runner):
        self.intact = runner.evaluate(intact_and_empty(self.n))[0]
        border = runner.evaluate(np.concatenate([prologue(self.n), intact_and_empty(self.n)[1:]]))
        self.walk = ChainWalk(self.n, self.intact, self.group, border, self._group_done, keep=self.keep)
        runner.walk(self)
        return self.finish()

    def plan(self, first, stop):
        return self.walk.plan(self.orderings.get(first * self.group, stop * self.group), first * self.group)

    def fold(self, values):
        self.walk.fold(values)

    @property
    def groups(self) -> int:
        return int(self.moments.count[0])

    # ---------------------------------------------------------------- pairs of groups, cross-fitted
    def _group_done(self, group: Group):
        if int(self.pending):
            self._fold_pair(self._take_pending(), group)
        else:
            self._keep_pending(group)

    def _keep_pending(self, group: Group):
        self.pending[...] = 1
        self.pending_first[...] = group.first
        self.pending_orders[...], self.pending_chains[...] = group.orders, group.chains
        self.pending_p[...], self.pending_b[...], self.pending_gram[...] = group.p, group.b, group.gram

    def _take_pending(self) -> Group:
        self.pending[...] = 0
        return Group(int(self.pending_first), self.pending_p.copy(), self.pending_b.copy(), self.pending_gram.copy(),
                     self.pending_orders.copy(), self.pending_chains.copy())

    def _fit(self, group: Group):
        """The surrogate fitted to a group's kept chains and the border, and its phi_g."""
        n, d = self.n, self.intact.size
        masks = np.concatenate([chain_coalitions(group.orders[:len(group.chains)]), prologue(n),
                                np.zeros((1, n), bool), np.ones((1, n), bool)])
        values = np.concatenate([group.chains.reshape(-1, d), self.walk.border, self.intact.reshape(1, d)])
        seed = SURROGATE_SEED + group.first // self.group
        surrogate = fit_surrogate(masks, values, seed)
        return surrogate, surrogate_shapley(surrogate, n, seed)

    def _fold_pair(self, a: Group, b: Group):
        """Each group's residual against the surrogate fitted on the other, plus that surrogate's phi_g."""
        fitted = [self._fit(a), self._fit(b)]
        for group, (surrogate, phi) in ((a, fitted[1]), (b, fitted[0])):
            self._fold(group, control_variate(self.walk, group, surrogate, phi))

    def _fold(self, group: Group, cv: ControlVariate | None):
        """Fold one group's four estimates into the moments, and its regression sums into the pooled ones; without a
        control variate (a group left without a partner) it enters plain."""
        k = self.walk.regression(group.b, group.gram)
        if cv is None:
            cv = ControlVariate(group.p, k, group.b, 0, 0, 0.0)
        self.moments.add(np.stack([group.p, k, cv.p, cv.k]))
        self.b_sum += group.b
        self.b_cv += cv.b
        self.gram_sum += group.gram
        self.cv_b += cv.offset_b
        self.cv_total += cv.offset_total
        self.beta_sum += cv.beta

    # ---------------------------------------------------------------- state, merge, estimates
    def state(self):
        m = self.moments
        return dict(est_count=m.count, est_mean=m.mean, est_m2=m.m2, **{name: getattr(self, name) for name in self.SUMS})

    def load_state(self, arrays):
        self.moments.load(arrays["est_count"], arrays["est_mean"], arrays["est_m2"])
        for name in self.SUMS:
            getattr(self, name)[...] = arrays[name]

    def merge(self, other):
        """The moments merge, the sums add; two groups still waiting for a partner become a pair."""
        self.moments.merge(other.moments)
        for name in ("b_sum", "b_cv", "gram_sum", "cv_b", "cv_total", "beta_sum"):
            getattr(self, name)[...] += getattr(other, name)
        if int(other.pending):
            if int(self.pending):
                self._fold_pair(self._take_pending(), other._take_pending())
            else:
                self._keep_pending(other._take_pending())

    def weights(self) -> np.ndarray:
        """Non-negative weights of the four estimates, summing to 1, that minimise the summed variance over every
        mode element, from the groups' spread; (0, 0, 1/2, 1/2) until there are two groups."""
        j = len(self.ESTIMATES)
        if self.groups < 2:
            return np.array([0, 0, 0.5, 0.5])
        cov = self.moments.covariance_sums()
        best, best_var = np.array([0, 0, 0.5, 0.5]), np.inf
        for support in range(1, 2 ** j):  # the best non-negative solution lies on some support
            keep = [i for i in range(j) if support >> i & 1]
            try:
                w = np.linalg.solve(cov[np.ix_(keep, keep)], np.ones(len(keep)))
            except np.linalg.LinAlgError:
                continue
            if w.sum() <= 0 or (w < 0).any():
                continue
            full = np.zeros(j)
            full[keep] = w / w.sum()
            var = full @ cov @ full
            if var < best_var - 1e-300:
                best, best_var = full, var
        return best

    def max_se(self, relative=False):
        if self.groups < 2:
            return float("inf")
        w = self.weights()
        se = self.moments.max_standard_error(w)
        if not relative:
            return se
        scale = self.moments.value_range(w)
        return se / scale if scale > 0 else float("inf")

    def finish(self):
        if int(self.pending):  # no partner: the group enters plain, its control variate zero
            self._fold(self._take_pending(), None)
        shape = (self.n, *self.intact.shape)
        m = self.groups
        if m == 0:
            raise ValueError("no sampler group was walked: nothing to estimate")
        w = self.weights()
        pooled = self.walk.regression(self.b_sum / m, self.gram_sum / m)
        pooled_cv = self.walk.regression((self.b_cv + self.cv_b) / m, self.gram_sum / m,
                                         total=self.walk.total + self.cv_total / m)
        mean = self.moments.mean
        modes = w[0] * mean[0] + w[1] * pooled + w[2] * mean[2] + w[3] * pooled_cv
        se = self.moments.standard_error_array(w).reshape(shape)
        return dict(modes=modes.reshape(shape).astype(self.dtype), se=se.astype(self.dtype),
                    weight_of_regression=float(w[1] + w[3]), weight_of_surrogate=float(w[2] + w[3]),
                    surrogate_coefficient=float(self.beta_sum) / m, se_dof=m - 1)
