"""Every coalition, enumerated: the Shapley values themselves, with no error. The driver takes it whatever the
estimator asked for wherever the budget buys all 2^n coalitions (a run then evaluates each once)."""
import numpy as np

from ..exact import coalitions_of, shapley_coefficients
from .base import Estimator, intact_and_empty

ROWS_PER_UNIT = 4096


class Exact(Estimator):
    name = "exact"
    about = "every coalition enumerated, where the budget buys all 2^n: the Shapley values, no error"
    distinct_plan = True
    stops_early = False

    @classmethod
    def refuses(cls, problem):
        n = problem.n_players
        if n > 40 or 2 ** n > problem.evaluations:
            return (f"the {cls.name} estimator evaluates every coalition: 2^{n} = {2 ** n:,} evaluations, the budget "
                    f"buys {problem.evaluations:,}; estimator='auto' takes one that samples")
        return None

    @classmethod
    def minimum_evaluations(cls, problem):
        return 2 ** problem.n_players

    @classmethod
    def state_bytes(cls, problem):
        return problem.n_players * problem.output_size * 8

    def __init__(self, problem):
        super().__init__(problem)
        why = self.refuses(problem)
        if why:
            raise ValueError(why)
        self.total = 2 ** self.n
        self.rows_per_unit = min(self.total, ROWS_PER_UNIT)
        self.units = -(-self.total // self.rows_per_unit)
        self.phi = np.zeros((self.n, self.problem.output_size))
        self.done = np.zeros(self.units, bool)

    def run(self, runner):
        runner.evaluate(intact_and_empty(self.n))
        runner.walk(self)
        return dict(modes=self.phi.reshape(self.n, *self.output_shape).astype(self.dtype),
                    se=np.zeros((self.n, *self.output_shape), self.dtype), se_dof=float("inf"))

    def plan(self, first, stop):
        """Units [first, stop) of the coalitions by code; past 2^n the intact coalition (held by the cache)."""
        codes = np.minimum(np.arange(first * self.rows_per_unit, stop * self.rows_per_unit), self.total - 1)
        self.rows = coalitions_of(codes, self.n)
        self.real = np.arange(first * self.rows_per_unit, stop * self.rows_per_unit) < self.total
        self.first, self.cursor = first, 0
        return self.rows

    def fold(self, values):
        at = slice(self.cursor, self.cursor + len(values))
        rows, real = self.rows[at], self.real[at]
        self.phi += shapley_coefficients(rows[real]).T @ np.asarray(values, np.float64).reshape(len(values), -1)[real]
        self.cursor += len(values)
        if self.cursor == len(self.rows):
            self.done[self.first:self.first + len(self.rows) // self.rows_per_unit] = True

    def state(self):
        return dict(phi=self.phi, done=self.done)

    def load_state(self, arrays):
        self.phi[...], self.done[...] = arrays["phi"], arrays["done"]

    def merge(self, other):
        self.phi += other.phi
        self.done |= other.done

    def max_se(self, relative=False):
        return 0.0 if self.done.all() else float("inf")
