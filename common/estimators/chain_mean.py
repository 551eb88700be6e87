"""First-order Shapley modes as the mean marginal contribution along lesion chains: msapy's estimator, many
coalitions per call (chains.py holds the accumulator).

It walks orderings, in the sampler's groups: the paper's iid orderings, or antithetic pairs, Latin blocks,
orthogonal codes. n planned coalitions an ordering, of which the coalition cache sends each distinct one once (the
empty coalition ends every chain; the chains of few players revisit theirs).
"""
import numpy as np

from ..orderings import SAMPLERS
from .base import Estimator, chain_coalitions, intact_and_empty
from .chains import ChainContributions
from .walking import OrderingStream, first_unit_cost, refuses_orderings, resolve_sampler, walk_orderings


class ChainMean(Estimator):
    name = "chain"
    about = "the mean marginal contribution along each ordering's lesion chain (msapy's estimator)"
    settings = dict(sampler="auto")
    walks_orderings = True
    msapy_parity = True

    @classmethod
    def refuses(cls, problem, sampler="auto"):
        return refuses_orderings(cls.name, problem, sampler)

    @classmethod
    def minimum_evaluations(cls, problem, sampler="auto"):
        name = resolve_sampler(problem, sampler)
        group = SAMPLERS[name].group(problem.n_players)
        return first_unit_cost(OrderingStream(name, problem.n_players, problem.seed).get(0, group), chain_coalitions)

    @classmethod
    def state_bytes(cls, problem, sampler="auto"):
        return 3 * problem.n_players * problem.output_size * np.dtype(problem.dtype).itemsize

    def __init__(self, problem, *, sampler="auto"):
        super().__init__(problem)
        walk_orderings(self, sampler, self.n)
        self.chains = ChainContributions(self.n, self.output_shape, self.group, self.dtype)

    def config(self):
        return dict(super().config(), sampler=self.sampler)

    def run(self, runner):
        self.chains.intact = runner.evaluate(intact_and_empty(self.n))[0]
        if runner.oracle:  # msapy walks the same orderings and computes this very mean itself
            modes = runner.oracle_modes(self)
            return dict(modes=modes, se=np.full_like(modes, np.nan))
        runner.walk(self)
        return self.chains.finish()

    def walked_orderings(self) -> np.ndarray:
        return self.orderings.get(0, self.units * self.group)

    def plan(self, first, stop):
        orderings = self.orderings.get(first * self.group, stop * self.group)
        self.chains.start(orderings, first * self.group)
        self.row = 0
        return chain_coalitions(orderings)

    def fold(self, values):
        rows = np.arange(self.row, self.row + len(values))
        self.row += len(values)
        which, step = np.divmod(rows, self.n)
        self.chains.fold(which, step, values)

    def state(self):
        return self.chains.state()

    def load_state(self, arrays):
        self.chains.load_state(arrays)

    def merge(self, other):
        self.chains.stats.merge(other.chains.stats)

    def max_se(self, relative=False):
        return self.chains.max_se(relative)
