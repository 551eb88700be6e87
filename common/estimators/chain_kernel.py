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

from ..orderings import SAMPLERS
from .base import Estimator, intact_and_empty
from .chain_walk import STATE_VERSION, ChainWalk, KernelEstimate, chain_rows, prologue, unfit
from .walking import OrderingStream, first_unit_cost, group_of, refuses_orderings, resolve_sampler, walk_orderings


def refuses_chains(name: str, problem, sampler: str) -> str | None:
    """chain-kernel's and the surrogate's refusals: too few players, groups smaller than n, too few orderings."""
    why = unfit(problem.n_players, group_of(problem, sampler), name)
    if why:
        return why + " (sampler='auto' takes orthogonal where the budget buys two of its groups)"
    return refuses_orderings(name, problem, sampler)


def chains_minimum(problem, sampler: str) -> int:
    """The prologue, the ends and one sampler group of chains."""
    name = resolve_sampler(problem, sampler)
    group = SAMPLERS[name].group(problem.n_players)
    orderings = OrderingStream(name, problem.n_players, problem.seed).get(0, group)
    return first_unit_cost(orderings, chain_rows, prologue(problem.n_players))


class ChainKernel(Estimator):
    name = "chain-kernel"
    about = ("the chain mean averaged with a KernelSHAP regression on the same chains, which skip the coalitions of "
             "size 0, 1 and n-1 (evaluated once): n-3 evaluations an ordering; needs sampler groups of at least n "
             "orderings (orthogonal, latin, latin-antithetic)")
    settings = dict(sampler="auto")
    walks_orderings = True

    @classmethod
    def refuses(cls, problem, sampler="auto"):
        return refuses_chains(cls.name, problem, sampler)

    @classmethod
    def minimum_evaluations(cls, problem, sampler="auto"):
        return chains_minimum(problem, sampler)

    @classmethod
    def state_bytes(cls, problem, sampler="auto"):
        n, d = problem.n_players, problem.output_size
        return n * d * (10 * 8 + np.dtype(problem.dtype).itemsize) + 3 * n * n * 8 + (2 * n + 1) * d * 8

    def __init__(self, problem, *, sampler="auto"):
        super().__init__(problem)
        walk_orderings(self, sampler, self.n - 3)

    def config(self):
        return dict(super().config(), sampler=self.sampler, state_version=STATE_VERSION)

    def run(self, runner):
        intact = runner.evaluate(intact_and_empty(self.n))[0]
        border = runner.evaluate(np.concatenate([prologue(self.n), intact_and_empty(self.n)[1:]]))
        self.walk = ChainWalk(self.n, intact, self.group, border, self.fold_group)
        self.kernel = KernelEstimate(self.walk)
        runner.walk(self)
        return self.kernel.finish((self.n, *self.output_shape), self.dtype)

    def fold_group(self, group):
        self.kernel.add(group)

    def plan(self, first, stop):
        return self.walk.plan(self.orderings.get(first * self.group, stop * self.group), first * self.group)

    def fold(self, values):
        self.walk.fold(values)

    def state(self):
        return self.kernel.state()

    def load_state(self, arrays):
        self.kernel.load_state(arrays)

    def merge(self, other):
        self.kernel.merge(other.kernel)

    def max_se(self, relative=False):
        return self.kernel.max_se(relative)
