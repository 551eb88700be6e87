"""Shapley modes from a Shapley-kernel regression on distinct coalitions: kADD-SHAP (Pelegrina et al. 2023) where
the budget allows, paired KernelSHAP below.

The game is fitted by least squares, with the Shapley kernel's weights, by the best game of order two:
v(S) ~ v(empty) + sum_{i in S} m_i + sum_{i < j in S} m_ij, constrained to be exact on the intact network. Its
Shapley values, m_i + 1/2 sum_j m_ij, are the modes: on a game of order two they are its own (tested), and
with a sample they keep what the pairs of units explain, which the chains leave as noise. One design matrix serves
every output element: one solve, many right-hand sides. The pairs' coefficients take the ridge penalty whose fit
best predicts held-out coalitions: none on a game of order two, more where higher orders leave noise in few
coalitions per coefficient (docs/estimators.md). Below ORDER_2_ROWS_PER_PARAMETER coalitions per coefficient, or
above MAX_ORDER_2_PARAMETERS coefficients, the order-1 game (KernelSHAP, n coefficients) is fitted instead, on
complementary pairs (with pairs, the order-2 terms would cancel out of the Shapley values anyway).

The coalitions (coalition_plan.py) are drawn once for the whole run from the seed, distinct and stratified by
size, as many as the budget buys beside the intact and empty ones (a budget that buys every coalition gets the
exact values instead: common/estimators/exact.py); the order-2 fit takes them unpaired (20% more accurate than
pairs at 4n orderings' worth). The walk's units are n consecutive coalitions of the plan, so a resumed run or a
Ray shard evaluates exactly the same coalitions.

Error bars: the design-based variance of the fit, linearised (each unit of the sample's residual through the
fit's influence, the residual scaled up by its leverage: HC3), within each stratum and with the
finite-population correction; enumerated strata add none, strata with one draw are pooled. Their degrees of
freedom (Satterthwaite's, the 10th percentile over elements) are recorded, and `result.margin` widens the
interval where they are few. The state is every value evaluated, (coalitions, output) floats: `auto` takes it only
where that and the normal matrix fit. The fit needs the whole plan, so the estimator cannot stop at a target SE.
"""
import math

import numpy as np

from .base import Estimator, intact_and_empty
from .coalition_plan import stratified_coalitions

MIN_PLAYERS = 3
# the order-2 game is fitted where the plan holds this many coalitions per coefficient, and up to this many
# coefficients (about 90 units: its normal matrix and inverse); else the first-order regression on complementary
# pairs (paired KernelSHAP), down to 2 orderings' worth (docs/estimators.md)
ORDER_2_ROWS_PER_PARAMETER = 2.5
MAX_ORDER_2_PARAMETERS = 4096
# the pairs' ridge penalties tried, in units of their mean diagonal of the normal matrix x coefficients / coalitions
# (a prior that fades as the plan grows; the benchmark's real networks take 0.03-0.3), and the rows whose
# leave-one-out error picks one
RIDGE_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
LOO_ROWS = 2048
CHUNK = 4096  # rows of the design matrix built at a time
# auto takes it from min(n/2, RECOMMENDED_ORDERINGS_PER_ROOT_N sqrt(n)) orderings' worth (its first-order fit
# overtook antithetic orderings at 4, 6, 9 and 11 on MLPs of 12, 20, 32 and 60 units), where its fit costs under a
# tenth of the evaluations at about this much per coalition and squared coefficient (2-9e-10 s measured on one
# CPU core at 20-64 units)
RECOMMENDED_ORDERINGS_PER_ROOT_N = 1.6
SECONDS_PER_ROW_PARAMETER2 = 1e-9


def planned_rows(problem) -> int:
    """The coalitions of its plan: the budget less the intact and empty ones, fewer than all the others (a budget
    that buys every coalition gets the exact values instead)."""
    return max(min(problem.evaluations - 2, 2 ** min(problem.n_players, 62) - 3), 0)


def parameters(n_players: int, order: int = 2) -> int:
    """Coefficients of the game of that order: one per unit, and for order 2 one per pair."""
    return n_players + (n_players * (n_players - 1) // 2 if order == 2 else 0)


class KAdd(Estimator):
    name = "kadd"
    about = ("a Shapley-kernel regression of order 2 (kADD-SHAP; order 1 on complementary pairs for small budgets) "
             "on distinct coalitions stratified by size, its own plan for the whole budget; state (coalitions x "
             "output); cannot stop at a target SE")
    stops_early = False
    distinct_plan = True

    @classmethod
    def refuses(cls, problem):
        n = problem.n_players
        if n < MIN_PLAYERS:
            return f"the {cls.name} estimator needs at least {MIN_PLAYERS} players, got {n}: use estimator='chain'"
        return None

    @classmethod
    def minimum_evaluations(cls, problem):
        return 2 * problem.n_players + 2  # two orderings' worth: complementary pairs to fit n coefficients

    @classmethod
    def recommended(cls, problem):
        """From min(n/2, RECOMMENDED_ORDERINGS_PER_ROOT_N sqrt n) orderings' worth, up to MAX_ORDER_2_PARAMETERS
        coefficients of the order-2 game."""
        n = problem.n_players
        enough = min(n / 2, RECOMMENDED_ORDERINGS_PER_ROOT_N * math.sqrt(n))
        return problem.budget.orderings_worth(n) >= enough and parameters(n, 2) <= MAX_ORDER_2_PARAMETERS

    @classmethod
    def state_bytes(cls, problem):
        """Every value, and the normal matrix with its inverse."""
        n, rows = problem.n_players, planned_rows(problem)
        p = parameters(n, cls.order_for(n, rows))
        return rows * (problem.output_size * 8 + n + 24) + p * (3 * p + 2 * problem.output_size) * 8

    @classmethod
    def fit_seconds(cls, problem):
        n, rows = problem.n_players, planned_rows(problem)
        return SECONDS_PER_ROW_PARAMETER2 * rows * parameters(n, cls.order_for(n, rows)) ** 2

    @staticmethod
    def order_for(n_players: int, rows: int) -> int:
        """2 where the plan holds ORDER_2_ROWS_PER_PARAMETER coalitions per coefficient of the order-2 game and it
        has at most MAX_ORDER_2_PARAMETERS, else 1."""
        p = parameters(n_players, 2)
        return 2 if rows >= ORDER_2_ROWS_PER_PARAMETER * p and p <= MAX_ORDER_2_PARAMETERS else 1

    def __init__(self, problem):
        super().__init__(problem)
        n = self.n
        rows = planned_rows(problem)
        self.order = self.order_for(n, rows)
        self.design = stratified_coalitions(n, rows, problem.seed, paired=self.order == 1)
        self.coalitions, self.weight = self.design.coalitions, self.design.weight
        self.rows_per_unit = n
        self.units = -(-len(self.coalitions) // n)
        d = self.problem.output_size
        self.values = np.zeros((len(self.coalitions), d))
        self.filled = np.zeros(len(self.coalitions), bool)
        self.fitted = None  # the last fit (max_se and finish both ask for it)

    def config(self):
        return dict(super().config(), planned=len(self.coalitions))

    def run(self, runner):
        intact, empty = runner.evaluate(intact_and_empty(self.n))
        self.intact, self.empty = np.asarray(intact), np.asarray(empty, np.float64).reshape(-1)
        runner.walk(self)
        return self.finish()

    def plan(self, first, stop):
        """Units [first, stop) of the plan, n coalitions each; rows past its end repeat the intact coalition, which
        the cache holds (its values are not used)."""
        r = self.rows_per_unit
        self.cursor, end = first * r, stop * r
        rows = self.coalitions[self.cursor:end]
        return np.concatenate([rows, np.ones((end - self.cursor - len(rows), self.n), bool)])

    def fold(self, values):
        values = np.asarray(values, np.float64).reshape(len(values), -1)
        end = min(self.cursor + len(values), len(self.coalitions))
        used = max(end - self.cursor, 0)
        self.values[self.cursor:end] = values[:used]
        self.filled[self.cursor:end] = True
        self.cursor += len(values)
        self.fitted = None

    def state(self):
        return dict(values=self.values, filled=self.filled)

    def load_state(self, arrays):
        self.values[...] = arrays["values"]
        self.filled[...] = arrays["filled"]
        self.fitted = None

    def merge(self, other):
        self.values[other.filled] = other.values[other.filled]
        self.filled |= other.filled
        self.fitted = None

    def max_se(self, relative=False):
        if not self.filled.all():
            return float("inf")
        modes, se, _, _ = self._fit()
        if not relative:
            return float(se.max())
        scale = float(modes.max() - modes.min())
        return float(se.max()) / scale if scale > 0 else float("inf")

    def finish(self):
        if not self.filled.all():
            raise ValueError(f"the {self.name} estimator fits once all {len(self.coalitions)} planned coalitions are "
                             f"in; {int(self.filled.sum())} are")
        modes, se, dof, ridge = self._fit()
        shape = (self.n, *self.intact.shape)
        return dict(modes=modes.reshape(shape).astype(self.dtype), se=se.reshape(shape).astype(self.dtype),
                    se_dof=dof, order=self.order, ridge=ridge, coalitions_planned=len(self.coalitions))

    def _fit(self):
        if self.fitted is None:
            self.fitted = self._solve()
        return self.fitted

    def _solve(self):
        """The constrained weighted least squares, and its design-based standard errors."""
        n, d = self.n, self.intact.size
        total = self.intact.reshape(d).astype(np.float64) - self.empty
        p = parameters(n, self.order)
        gram, b = np.zeros((p, p)), np.zeros((p, d))
        for a in range(0, len(self.coalitions), CHUNK):
            x = features(self.coalitions[a:a + CHUNK], self.order)
            wx = x * self.weight[a:a + CHUNK, None]
            gram += wx.T @ x
            b += wx.T @ (self.values[a:a + CHUNK] - self.empty)
        gram[np.diag_indices(p)] += 1e-12 * max(np.trace(gram) / p, 1e-300)  # pairs no coalition separates
        ridge, scale = self._ridge(gram, b, total)
        gram[np.arange(n, p), np.arange(n, p)] += ridge * scale
        coef, project = _constrained(gram, b, total)
        to_modes = shapley_map(n, self.order)  # (n, p)
        modes = to_modes @ coef
        # each coalition's influence on the modes (b_c = w_c x_c y_c), and its leverage, by which its residual is
        # scaled up to the residual of a fit without it (HC3)
        influence_map = project @ to_modes.T                                   # (p, n)
        variance = np.zeros((n, d))
        slots, strata, shares = self.design.slots, [], np.zeros((n, d))
        for _, rows, m, population in self.design.sampled():  # draws without replacement, unit by unit
            x = features(self.coalitions[rows], self.order)
            leverage = ((x @ project) * x).sum(1) * self.weight[rows]
            residual = (self.values[rows] - self.empty - x @ coef) / np.maximum(1 - leverage, 1e-3)[:, None]
            influence = (x @ influence_map) * self.weight[rows, None]                  # (rows, n)
            strata.append((influence.reshape(slots, m, n), residual.reshape(slots, m, d), population))
        for g, r, population in _collapsed(strata):
            # a unit's term for (i, e) is the sum over its slots of influence_i x residual_e; the spread of the
            # terms over units, from sums of products, without forming the (units, n, d) terms
            m = g.shape[1]
            summed = sum(g[a].T @ r[a] for a in range(slots))
            squares = sum((g[a] * g[b]).T @ (r[a] * r[b]) for a in range(slots) for b in range(slots))
            part = np.maximum(m * (1 - m / population) * (squares - summed ** 2 / m) / (m - 1), 0)  # rounding
            variance += part
            shares += part ** 2 / (m - 1)
        # the degrees of freedom of the summed variance (Satterthwaite): its 10th percentile over elements, so that
        # the t quantile errs on the wide side for most of them
        spread = variance > 0
        dof = float(np.percentile(variance[spread] ** 2 / shares[spread], 10)) if spread.any() else float("inf")
        return modes, np.sqrt(variance), dof, ridge

    def _ridge(self, gram, b, total):
        """(ridge, scale): the penalty on the pairs' coefficients is ridge x scale, where scale is their mean
        diagonal x coefficients / coalitions and ridge the one of RIDGE_GRID whose fit predicts held-out values best
        (the leave-one-out error of LOO_ROWS rows spread over the plan, from their leverages). No penalty for the
        first-order game."""
        n, p = self.n, len(gram)
        if self.order == 1:
            return 0.0, 0.0
        scale = np.diag(gram)[n:].mean() * p / len(self.coalitions)
        rows = np.arange(0, len(self.coalitions), -(-len(self.coalitions) // LOO_ROWS))
        x, w, y = features(self.coalitions[rows], 2), self.weight[rows], self.values[rows] - self.empty

        def held_out_error(ridge):
            coef, project = _constrained(gram + np.diag(np.r_[np.zeros(n), np.full(p - n, ridge * scale)]), b, total)
            leverage = ((x @ project) * x).sum(1) * w
            return float((w[:, None] * ((y - x @ coef) / np.maximum(1 - leverage, 1e-9)[:, None]) ** 2).sum())
        return min(RIDGE_GRID, key=held_out_error), scale


def _constrained(gram, b, total):
    """(coef, the constrained inverse) of the fit under sum(coef) = total, which is linear in b:
    coef = project b + ones_inv total / sum(ones_inv)."""
    inverse = np.linalg.inv(gram)
    ones_inv = inverse.sum(1)
    project = inverse - np.outer(ones_inv, ones_inv) / ones_inv.sum()
    return project @ b + np.outer(ones_inv, total) / ones_inv.sum(), project


def _collapsed(strata):
    """Strata with a single unit drawn show no spread: they are pooled with each other (or, alone, with the last
    stratum of two or more) as one stratum of an infinite population: the collapsed-strata estimator, which
    overstates the variance rather than drop it."""
    many = [s for s in strata if s[0].shape[1] >= 2]
    single = [s for s in strata if s[0].shape[1] == 1]
    if len(single) == 1 and many:
        g, r, _ = many.pop()
        single.append((g, r, np.inf))
    if len(single) >= 2:
        many.append((np.concatenate([s[0] for s in single], 1), np.concatenate([s[1] for s in single], 1), np.inf))
    return many


def features(coalitions: np.ndarray, order: int = 2) -> np.ndarray:
    """The design of the game of that order: each unit intact, and for order 2 each pair intact (float64)."""
    z = coalitions.astype(np.float64)
    if order == 1:
        return z
    i, j = np.triu_indices(coalitions.shape[1], 1)
    return np.concatenate([z, z[:, i] * z[:, j]], 1)


def shapley_map(n_players: int, order: int = 2) -> np.ndarray:
    """(n, p): the Shapley values of a game of that order from its coefficients, phi_i = m_i + 1/2 sum_j m_ij."""
    n = n_players
    out = np.zeros((n, parameters(n, order)))
    out[np.arange(n), np.arange(n)] = 1
    if order == 1:
        return out
    i, j = np.triu_indices(n, 1)
    out[i, n + np.arange(len(i))] = 0.5
    out[j, n + np.arange(len(i))] = 0.5
    return out

