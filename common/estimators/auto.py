"""estimator="auto": a policy over the estimators' declarations, never a clock (the same run picks the same
estimator everywhere). Best measured first (docs/estimators.md), the first that

- does not refuse the problem, runs on its budget and is `recommended` for it (where it was measured to pay),
- can stop at a target SE, where one is set,
- keeps its state within AUTO_MAX_BYTES,
- costs, by its own `fit_seconds`, at most a tenth of the game's evaluations at the game's declared
  `cost_per_coalition` (a game that declares none is taken to be slow enough).

A sampler given explicitly reaches only the estimators that walk orderings.
"""
from .chain_kernel import ChainKernel
from .chain_mean import ChainMean
from .kadd import KAdd
from .surrogate import Surrogate

BEST_FIRST = (KAdd, Surrogate, ChainKernel, ChainMean)
AUTO_MAX_BYTES = 2 * 2 ** 30
FIT_SHARE = 0.1  # the most of the evaluations' cost an estimator's own fits may take


def auto_estimator(problem, *, sampler: str = "auto", target: bool = False):
    """(class, settings) of the estimator auto takes; the problem's output shape known."""
    for cls in BEST_FIRST:
        settings = dict(sampler=sampler) if cls.walks_orderings else {}
        if not cls.walks_orderings and sampler != "auto":
            continue
        if cls.refuses(problem, **settings) or not cls.recommended(problem, **settings) or \
                problem.evaluations < cls.minimum_evaluations(problem, **settings):
            continue
        if target and not cls.stops_early:
            continue
        if cls.state_bytes(problem, **settings) > AUTO_MAX_BYTES:
            continue
        cost = problem.cost_per_coalition
        if cost is not None and cls.fit_seconds(problem, **settings) > FIT_SHARE * problem.evaluations * cost:
            continue
        return cls, settings
    return ChainMean, dict(sampler=sampler)


def describe() -> str:
    """auto's rule in one line, for --help."""
    return ("the first of " + ", ".join(cls.name for cls in BEST_FIRST) + " that applies, is recommended for the "
            "size and budget, can stop at a target SE if one is set, fits in memory and whose fits cost under a "
            "tenth of the game's declared cost")
