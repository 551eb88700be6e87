"""Shapley modes from a Shapley-kernel regression on distinct coalitions: kADD-SHAP (Pelegrina et al. 2023) of order
three or two where the budget determines it, paired KernelSHAP below.

The game is fitted by least squares, with the Shapley kernel's weights, by the best game of order k (3 or 2):
v(S) ~ v(empty) + sum_{T in S, |T| <= k} m_T, a coefficient per unit, pair and (order 3) triple, constrained to be
exact on the intact network. Its Shapley values, m_i + 1/2 sum_j m_ij + 1/3 sum_jl m_ijl, are the modes: on a game
of order k they are its own (tested), and with a sample they keep what the pairs and triples explain, which the
chains leave as noise. One design matrix serves every output element: one solve, many right-hand sides. The
higher orders' coefficients take the ridge penalty whose fit best predicts held-out coalitions: none on a game
the fit's order describes, more where higher orders leave noise (docs/estimators.md). The highest order taken is
the one of at most `max_order` whose game has at most MAX_PARAMETERS coefficients and the plan
ROWS_PER_PARAMETER[order] coalitions a coefficient (never an under-determined fit); where neither order 3 nor 2 is,
the order-1 game (KernelSHAP, n coefficients) is fitted instead, on complementary pairs (with pairs, the order-2
terms would cancel out of the Shapley values anyway).

The coalitions (coalition_plan.py) are drawn once for the whole run from the seed, distinct and stratified by
size, as many as the budget buys beside the intact and empty ones (a budget that buys every coalition gets the
exact values instead: common/estimators/exact.py); the higher-order fits take them unpaired (20% more accurate than
pairs at 4n orderings' worth for order 2). The walk's units are n consecutive coalitions of the plan, so a resumed
run or a Ray shard evaluates exactly the same coalitions.

Error bars: the design-based variance of the fit, linearised (each unit of the sample's residual through the
fit's influence, the residual scaled up by its leverage: HC3), within each stratum and with the
finite-population correction; enumerated strata add none, strata with one draw are pooled. Their degrees of
freedom (Satterthwaite's, the 10th percentile over elements) are recorded, and `result.margin` widens the
interval where they are few. The state is every value evaluated, (coalitions, output) floats: `auto` takes it only
where that and the normal matrix fit. The fit needs the whole plan, so the estimator cannot stop at a target SE.
"""
import itertools
import math

import numpy as np

from .base import Estimator, intact_and_empty
from .coalition_plan import stratified_coalitions

MIN_PLAYERS = 3
# an order above 1 is fitted where the plan holds this many coalitions per coefficient of its game, and up to
# MAX_PARAMETERS coefficients (the normal matrix and its inverse: about 90 units at order 2, 29 at order 3); else
# the first-order regression on complementary pairs (paired KernelSHAP), down to 2 orderings' worth. Order 3 with
# its ridge beat order 2 from 1.5 coalitions a coefficient on 12- and 20-unit games, covering 0.95-0.99
# (docs/estimator_tables.md)
ROWS_PER_PARAMETER = {2: 2.5, 3: 1.5}
MAX_PARAMETERS = 4096
# the higher orders' ridge penalties tried, by the fit's order, in units of each order's mean diagonal of the normal
# matrix x coefficients / coalitions (a prior that fades as the plan grows; the benchmark's real networks take
# 0.03-0.3 at order 2 and 0-0.01 at order 3), and the rows whose leave-one-out error picks one (fewer at order 3,
# where each row's leverage costs p^2, p = 298 at 12 units: docs/estimator_history.md)
RIDGE_GRID = {2: (0.0, 0.01, 0.03, 0.1, 0.3, 1.0), 3: (0.0, 0.003, 0.01, 0.03)}
LOO_ROWS = {2: 2048, 3: 256}
# the design matrix is built once where it takes at most DESIGN_BYTES (the normal matrix, the ridge's choice and
# the variance all read it), else CHUNK rows at a time, as each needs them
DESIGN_BYTES = 2 ** 26
CHUNK = 4096
# auto takes it from min(n/2, RECOMMENDED_ORDERINGS_PER_ROOT_N sqrt(n)) orderings' worth (its first-order fit
# overtook antithetic orderings at 4, 6, 9 and 11 on MLPs of 12, 20, 32 and 60 units), where its fit costs under a
# tenth of the evaluations: the fit's multiply-adds at SECONDS_PER_FLOP, and a fixed cost per solve (its own times
# in docs/results/sizes_12.json and sizes_20.json, 2 CPU cores: 2.2-5e-11 s a multiply-add, 1.2-1.6 ms for the
# smallest first-order fits, 4-5 ms for order 2 and 14-33 ms for order 3 at 12 units)
RECOMMENDED_ORDERINGS_PER_ROOT_N = 1.6
SECONDS_PER_FLOP = 4e-11
SECONDS_PER_SOLVE = 5e-4
SECONDS_PER_FIT = 1e-3


def planned_rows(problem) -> int:
    """The coalitions of its plan: the budget less the intact and empty ones, fewer than all the others (a budget
    that buys every coalition gets the exact values instead)."""
    return max(min(problem.evaluations - 2, 2 ** min(problem.n_players, 62) - 3), 0)


def parameters(n_players: int, order: int = 2) -> int:
    """Coefficients of the game of that order: one per unit, and up to that order one per pair and per triple."""
    return sum(math.comb(n_players, k) for k in range(1, order + 1))


class KAdd(Estimator):
    name = "kadd"
    about = ("a Shapley-kernel regression of order 3 or 2 where the budget determines it (kADD-SHAP; order 1 on "
             "complementary pairs below) on distinct coalitions stratified by size, its own plan for the whole "
             "budget; state (coalitions x output); cannot stop at a target SE")
    settings = dict(max_order=3)
    stops_early = False
    distinct_plan = True

    @classmethod
    def checked_settings(cls, **given):
        settings = super().checked_settings(**given)
        if settings["max_order"] not in (1, 2, 3):
            raise ValueError(f"the {cls.name} estimator's max_order is 1, 2 or 3, got {settings['max_order']!r}")
        return settings

    @classmethod
    def refuses(cls, problem, max_order=3):
        n = problem.n_players
        if n < MIN_PLAYERS:
            return f"the {cls.name} estimator needs at least {MIN_PLAYERS} players, got {n}: use estimator='chain'"
        return None

    @classmethod
    def minimum_evaluations(cls, problem, max_order=3):
        return 2 * problem.n_players + 2  # two orderings' worth: complementary pairs to fit n coefficients

    @classmethod
    def recommended(cls, problem, max_order=3):
        """From min(n/2, RECOMMENDED_ORDERINGS_PER_ROOT_N sqrt n) orderings' worth, up to MAX_PARAMETERS
        coefficients of the order-2 game."""
        n = problem.n_players
        enough = min(n / 2, RECOMMENDED_ORDERINGS_PER_ROOT_N * math.sqrt(n))
        return problem.budget.orderings_worth(n) >= enough and parameters(n, 2) <= MAX_PARAMETERS

    @classmethod
    def state_bytes(cls, problem, max_order=3):
        """Every value, the normal matrix with its inverse, and the design matrix where it is kept whole."""
        n, rows = problem.n_players, planned_rows(problem)
        p = parameters(n, cls.order_for(n, rows, max_order))
        design = rows * p * 8 if rows * p * 8 <= DESIGN_BYTES else 0
        return rows * (problem.output_size * 8 + n + 24) + p * (3 * p + 2 * problem.output_size) * 8 + design

    @classmethod
    def fit_seconds(cls, problem, max_order=3):
        """The normal matrix and the leverages (rows x p^2), a solve per ridge tried and one more (p^3 each), the
        held-out rows' residuals for each ridge and the right-hand sides (rows x p x output)."""
        n, rows, d = problem.n_players, planned_rows(problem), problem.output_size
        order = cls.order_for(n, rows, max_order)
        p = parameters(n, order)
        held_out = len(RIDGE_GRID[order]) * min(rows, LOO_ROWS[order]) if order > 1 else 0
        solves = len(RIDGE_GRID[order]) if order > 1 else 1
        flops = (2 * rows + held_out) * p * p + solves * p ** 3 + (rows + held_out) * p * d
        return SECONDS_PER_FIT + SECONDS_PER_SOLVE * solves + SECONDS_PER_FLOP * flops

    @staticmethod
    def order_for(n_players: int, rows: int, max_order: int = 3) -> int:
        """The highest order up to max_order whose game has at most MAX_PARAMETERS coefficients and the plan
        ROWS_PER_PARAMETER[order] coalitions a coefficient; 1 where neither 3 nor 2 is."""
        for order in range(max_order, 1, -1):
            p = parameters(n_players, order)
            if p <= MAX_PARAMETERS and rows >= ROWS_PER_PARAMETER[order] * p:
                return order
        return 1

    def __init__(self, problem, max_order=3):
        super().__init__(problem)
        n = self.n
        rows = planned_rows(problem)
        self.order = self.order_for(n, rows, max_order)
        self.design = stratified_coalitions(n, rows, problem.seed, paired=self.order == 1)
        self.coalitions, self.weight = self.design.coalitions, self.design.weight
        self.rows_per_unit = n
        self.units = -(-len(self.coalitions) // n)
        d = self.problem.output_size
        self.values = np.zeros((len(self.coalitions), d))
        self.filled = np.zeros(len(self.coalitions), bool)
        self.fitted = None  # the last fit (max_se and finish both ask for it)

    def config(self):
        return dict(super().config(), planned=len(self.coalitions), order=self.order)

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
        whole = features(self.coalitions, self.order) if len(self.coalitions) * p * 8 <= DESIGN_BYTES else None
        design = (lambda rows: features(self.coalitions[rows], self.order)) if whole is None else whole.__getitem__
        for a in range(0, len(self.coalitions), CHUNK):
            x = design(slice(a, a + CHUNK))
            wx = x * self.weight[a:a + CHUNK, None]
            gram += wx.T @ x
            b += wx.T @ (self.values[a:a + CHUNK] - self.empty)
        gram[np.diag_indices(p)] += 1e-12 * max(np.trace(gram) / p, 1e-300)  # pairs no coalition separates
        ridge, (coef, project) = self._ridge(gram, b, total, design)
        to_modes = shapley_map(n, self.order)  # (n, p)
        modes = to_modes @ coef
        # each coalition's influence on the modes (b_c = w_c x_c y_c), and its leverage, by which its residual is
        # scaled up to the residual of a fit without it (HC3)
        influence_map = project @ to_modes.T                                   # (p, n)
        variance = np.zeros((n, d))
        slots, strata, shares = self.design.slots, [], np.zeros((n, d))
        for _, rows, m, population in self.design.sampled():  # draws without replacement, unit by unit
            x = design(rows)
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

    def _ridge(self, gram, b, total, design):
        """(ridge, its fit: coef and constrained inverse): the penalty on each coefficient of order 2 or more is
        ridge x scale, where scale (p,) is its order's mean diagonal x coefficients / coalitions (0 for the units)
        and ridge the one of RIDGE_GRID[order] whose fit predicts held-out values best (the leave-one-out error of
        LOO_ROWS[order] rows spread over the plan, from their leverages). No penalty for the first-order game.
        design: plan rows -> their design matrix."""
        n, p = self.n, len(gram)
        scale = np.zeros(p)
        if self.order == 1:
            return 0.0, _constrained(gram, b, total)
        for order in range(2, self.order + 1):
            columns = slice(parameters(n, order - 1), parameters(n, order))
            scale[columns] = np.diag(gram)[columns].mean() * p / len(self.coalitions)
        rows = np.arange(0, len(self.coalitions), -(-len(self.coalitions) // LOO_ROWS[self.order]))
        x, w, y = design(rows), self.weight[rows], self.values[rows] - self.empty
        best = None
        for ridge in RIDGE_GRID[self.order]:
            coef, project = _constrained(gram + np.diag(ridge * scale), b, total)
            leverage = ((x @ project) * x).sum(1) * w
            error = float((w[:, None] * ((y - x @ coef) / np.maximum(1 - leverage, 1e-9)[:, None]) ** 2).sum())
            if best is None or error < best[0]:
                best = error, ridge, (coef, project)
        return best[1:]


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
    """The design of the game of that order: each unit intact, and up to that order each pair and each triple
    intact (float64)."""
    z = coalitions.astype(np.float64)
    columns = [z]
    for subset in _subsets(coalitions.shape[1], order):
        column = z[:, subset[0]]
        for member in subset[1:]:
            column = column * z[:, member]
        columns.append(column)
    return np.concatenate(columns, 1)


def shapley_map(n_players: int, order: int = 2) -> np.ndarray:
    """(n, p): the Shapley values of a game of that order from its coefficients: each member of a pair or triple
    gets its share, phi_i = m_i + 1/2 sum_j m_ij + 1/3 sum_jl m_ijl."""
    n = n_players
    out = np.zeros((n, parameters(n, order)))
    out[np.arange(n), np.arange(n)] = 1
    start = n
    for subset in _subsets(n, order):
        k, count = subset.shape
        for member in subset:
            out[member, start + np.arange(count)] = 1.0 / k
        start += count
    return out


def _subsets(n_players: int, order: int):
    """(k, C(n, k)) index arrays of the pairs (k = 2) and triples (k = 3) up to that order, in the design's order."""
    for k in range(2, order + 1):
        yield np.array(list(itertools.combinations(range(n_players), k)), dtype=np.intp).T.reshape(k, -1)
