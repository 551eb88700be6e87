"""What the estimators that walk orderings share, by composition: their sampler (common/orderings.py), the orderings
drawn lazily from the seed in sampler groups, and a unit of work = one sampler group.

A budget of evaluations leaves the number of groups open: the runner counts, before evaluating anything, how many
the budget buys through the coalition cache. Budget(orderings=k) walks k orderings, rounded down to whole groups.
"""
import numpy as np

from ..coalitions import coalition_keys
from ..orderings import SAMPLERS, auto_sampler, sample
from .base import intact_and_empty


def resolve_sampler(problem, sampler: str) -> str:
    """The sampler's name; "auto": the best measured one of which the budget buys at least two groups."""
    if sampler != "auto" and sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {('auto', *SAMPLERS)}")
    if sampler == "auto":
        return auto_sampler(problem.n_players, problem.budget.orderings_worth(problem.n_players))
    return sampler


def group_of(problem, sampler: str) -> int:
    return SAMPLERS[resolve_sampler(problem, sampler)].group(problem.n_players)


def fixed_units(problem, group: int) -> int | None:
    """Budget(orderings=k): k // group sampler groups; an evaluation budget: None (the runner counts them)."""
    return None if problem.budget.orderings is None else problem.budget.orderings // group


def refuses_orderings(name: str, problem, sampler: str) -> str | None:
    """A Budget(orderings=k) smaller than one sampler group."""
    group = group_of(problem, sampler)
    if problem.budget.orderings is not None and problem.budget.orderings < group:
        return (f"the {name} estimator walks orderings in groups of {group} ({resolve_sampler(problem, sampler)} "
                f"sampler): Budget(orderings={problem.budget.orderings}) holds none; give at least {group}")
    return None


def walk_orderings(estimator, sampler: str, rows_per_ordering: int) -> None:
    """What an estimator that walks orderings holds: its sampler, its orderings (drawn as far as asked), their
    group, and its units of work (a group each; `units` None where the budget is in evaluations)."""
    problem = estimator.problem
    estimator.sampler = resolve_sampler(problem, sampler)
    estimator.orderings = OrderingStream(estimator.sampler, problem.n_players, problem.seed)
    estimator.group = estimator.orderings.group
    estimator.rows_per_unit = estimator.group * rows_per_ordering
    estimator.units = fixed_units(problem, estimator.group)


def first_unit_cost(orderings: np.ndarray, rows_of, once: np.ndarray | None = None) -> int:
    """The distinct evaluations of a run's first unit: the rows `rows_of` plans for its orderings, the intact and
    empty coalitions and the coalitions evaluated once (`once`). The rows are made a few orderings at a time, as a
    block of 3,972 orderings of 1,987 units would be 15 GiB at once; only their 16-byte keys are kept."""
    k, n = orderings.shape
    step = max(1, (1 << 26) // (n * n))  # orderings per chunk: at most 64 MiB of rows
    keys = [coalition_keys(rows_of(orderings[a:a + step])) for a in range(0, k, step)]
    keys += [coalition_keys(intact_and_empty(n))] + ([coalition_keys(once)] if once is not None else [])
    return len(np.unique(np.concatenate(keys)))


class OrderingStream:
    """A sampler's orderings for a seed, drawn as far as asked: every sampler draws its groups in sequence from
    one generator, so the first k of a longer draw are the k of a shorter one."""

    def __init__(self, sampler: str, n_players: int, seed: int):
        self.sampler, self.n, self.seed = sampler, n_players, seed
        self.group = SAMPLERS[sampler].group(n_players)
        self.drawn = np.zeros((0, n_players), np.int64)

    def get(self, first: int, stop: int) -> np.ndarray:
        """Orderings [first, stop), by ordering index."""
        if stop > len(self.drawn):
            count = max(stop, 2 * len(self.drawn))
            count = -(-count // self.group) * self.group
            self.drawn = sample(self.sampler, self.n, count, self.seed).orderings
        return self.drawn[first:stop]

    def __getstate__(self):  # a copy sent to a Ray worker redraws what it needs
        return dict(self.__dict__, drawn=np.zeros((0, self.n), np.int64))
