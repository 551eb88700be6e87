"""What runs, decided over the estimators' declarations and never by a clock, so that the same run picks the same
estimator everywhere. Before the game is asked anything, `named_estimator`: a budget that buys every coalition
gets the exact values, msapy's walk the chain mean. Once the output is known, estimator="auto"
(`auto_estimator`): best measured first (docs/estimators.md), the first that

- does not refuse the problem, runs on its budget and is `recommended` for it (where it was measured to pay),
- can stop at a target SE, where one is set,
- keeps its state within AUTO_MAX_BYTES,
- costs, by its own `fit_seconds`, at most a tenth of the game's evaluations at the game's declared
  `cost_per_coalition` (a game that declares none is taken to be slow enough).

A sampler given explicitly reaches only the estimators that walk orderings.
"""
from .chain_kernel import ChainKernel
from .chain_mean import ChainMean
from .exact import Exact
from .kadd import KAdd
from .surrogate import Surrogate

# (estimator, its settings): kadd of order 3 where its fit pays, else of order 2, before the chain estimators
BEST_FIRST = ((KAdd, {}), (KAdd, dict(max_order=2)), (Surrogate, {}), (ChainKernel, {}), (ChainMean, {}))
AUTO_MAX_BYTES = 2 * 2 ** 30
FIT_SHARE = 0.1  # the most of the evaluations' cost an estimator's own fits may take


def named_estimator(asked, problem, *, sampler: str, settings: dict, oracle: bool = False, enumerate_all: bool = True):
    """(class, settings) to build for what was asked, decided before the game is evaluated; (None, settings) for
    auto, which needs the output. A budget of evaluations that buys every coalition gets the exact values (so do
    k orderings' worth of an estimator that walks none, or of auto); msapy's walk computes the chain mean."""
    if asked == "auto" and oracle:
        asked = ChainMean
    n = problem.n_players
    walks = asked == "auto" or asked.walks_orderings
    buys_all = n <= 40 and 2 ** n <= problem.evaluations
    if enumerate_all and buys_all and not oracle and (problem.budget.evaluations is not None or not walks or
                                                      asked == "auto"):
        return Exact, {}
    if asked == "auto":
        return None, settings
    return asked, dict(settings, sampler=settings.get("sampler", sampler)) if asked.walks_orderings else settings


def auto_estimator(problem, *, sampler: str = "auto", target: bool = False):
    """(class, settings) of the estimator auto takes; the problem's output shape known."""
    for cls, own in BEST_FIRST:
        settings = dict(own, sampler=sampler) if cls.walks_orderings else dict(own)
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
    names = dict.fromkeys("kadd (order 3, else 2)" if cls is KAdd else cls.name for cls, _ in BEST_FIRST)
    return ("the first of " + ", ".join(names) + " that applies, is recommended for the "
            "size and budget, can stop at a target SE if one is set, fits in memory and whose fits cost under a "
            "tenth of the game's declared cost")
