"""What estimator="auto" picks: a policy over the estimators' declarations (refusals, the least budget, what they
are recommended for, memory, a target SE, and the game's declared cost against the fits' cost, never a clock), so
that the same run picks the same estimator everywhere."""
import numpy as np
import pytest
from games import additive, saturating

from common import Budget, Method, TargetSE, shapley_modes
from common.estimators import Problem, auto_estimator, named_estimator


def declared(cost, game=saturating):
    def wrapped(c):
        return game(c)
    wrapped.cost_per_coalition = cost
    return wrapped


def ten_outputs(c):
    return np.repeat(saturating(c), 10, axis=1)


def pick(game=saturating, n=10, **kw):
    kw = dict(budget=Budget(orderings=36), progress=False, method=Method(estimator="auto", sampler="auto")) | kw
    return shapley_modes(game, n, **kw).metadata["estimator"]


@pytest.mark.parametrize("case, expected", [
    (dict(), "kadd"),                                                    # the best measured, from n/2 orderings' worth
    (dict(budget=50), "kadd"),                                           # 5 of 10 units: pairs, first order
    (dict(budget=40), "chain"),                                          # below min(n/2, 1.6 sqrt n): antithetic wins
    (dict(n=60, budget=Budget(orderings=16)), "kadd"),                   # SmolLM2's 16 of 60: above 1.6 sqrt(60)
    (dict(n=60, budget=Budget(orderings=12)), "chain"),                  # 12.4 orderings' worth is the line
    (dict(n=60, budget=Budget(orderings=16), method=Method(sampler="antithetic")), "chain"),  # a sampler: a walker
    (dict(target=TargetSE(0.5)), "surrogate"),                           # kadd cannot stop early
    (dict(target=TargetSE(0.5), game=lambda c: np.repeat(saturating(c), 400, axis=1)), "chain-kernel"),  # 1,200
    (dict(game=declared(1e-4), n=40, budget=Budget(orderings=160)), "chain-kernel"),  # a 0.1 ms game pays no
    (dict(game=declared(1e-2), n=40, budget=Budget(orderings=160)), "kadd"),          # 820-coefficient fit; 10 ms does
    (dict(game=declared(1e-3)), "kadd"),                                 # 175 coefficients pay for themselves
    (dict(game=declared(1e-4)), "chain-kernel"),                         # 36 ms of evaluations: not 5 ms of fit
    (dict(method=Method(sampler="antithetic"), target=TargetSE(0.5)), "chain"),         # groups smaller than n
    (dict(runner="msapy", budget=Budget(orderings=2)), "chain"),         # what msapy's walk computes
    (dict(game=additive(np.arange(3.0)), n=3, budget=Budget(orderings=8)), "exact"),  # 24 >= 8 coalitions: all of them
    (dict(budget=1024), "exact"),                                        # every coalition of 10 players
])
def test_auto_picks(case, expected):
    case = dict(case)
    assert pick(case.pop("game", saturating), case.pop("n", 10), **case) == expected


@pytest.mark.parametrize("case, order", [
    (dict(), 3),                             # 358 coalitions, 2.0 a coefficient of the order-3 game: determined
    (dict(game=declared(1.5e-4)), 2),        # a 0.15 ms game pays for the order-2 fit (55 coefficients), not order 3
    (dict(game=declared(1e-1)), 3),          # a slow one for order 3 (175)
    (dict(budget=Budget(orderings=26)), 2),  # 258 coalitions: 1.5 a coefficient of order 3 is 263
    (dict(budget=Budget(orderings=27)), 3),
    (dict(n=30, budget=Budget(orderings=600)), 2),  # 4,525 coefficients at order 3: too many
    # the 12-unit MLP on the full MNIST (0.27-0.3 ms a coalition, 10 digits): order 3 from 4n orderings' worth
    (dict(n=12, game=declared(2.7e-4, ten_outputs), budget=Budget(orderings=48)), 3),
    (dict(n=12, game=declared(2.7e-4, ten_outputs), budget=Budget(orderings=38)), 2),
])
def test_auto_takes_order_three_where_it_is_determined_and_pays(case, order):
    case = dict(case)
    kw = dict(budget=Budget(orderings=36), progress=False) | case
    game, n = kw.pop("game", saturating), kw.pop("n", 10)
    meta = shapley_modes(game, n, **kw).metadata
    assert (meta["estimator"], meta["order"]) == ("kadd", order)


@pytest.mark.parametrize("n, orderings, output, cost, expected", [
    (10, 300, (10,), 1e-3, ("exact", None)),               # the MLP demo: every coalition
    (25, 1000, (10,), 1e-4, ("chain-kernel", None)),       # MLP/compute_msa.py on 1,000 digits: too cheap for fits
    (200, 1000, (10,), 1e-4, ("chain-kernel", None)),
    (50, 1000, (10,), 1e-3, ("chain-kernel", None)),       # --dataset mnist: 10,000 digits
    (100, 1000, (10,), 1e-3, ("surrogate", None)),         # ... whose cost pays for the network's fits from 100 units
    (32, 40, (9,), None, ("kadd", 1)),                     # the tiny MoE's 40 orderings of 32 experts
    (60, 16, (9,), None, ("kadd", 1)),                     # SmolLM2's 16 orderings of 60 sub-layers
    (18, 200, (9,), None, ("kadd", 3)),                    # 18 heads, or a layer's filters, on a slow game
    (256, 1000, (9,), None, ("chain", None)),              # Mixtral's experts: fewer than two orthogonal groups
    (112, 1000, (32, 3, 32, 32), None, ("chain-kernel", None)),   # the demo generator's filters, images
    (1987, 1000, (32, 3, 128, 128), None, ("chain", None)),       # the CelebA generator's: chain-kernel's state > 2 GiB
])
def test_what_each_scripts_default_run_gets(n, orderings, output, cost, expected):
    """The table of docs/estimators.md: auto's pick at each compute_msa.py's default size, budget and output."""
    from common.estimators.kadd import planned_rows
    problem = Problem(n, Budget(orderings=orderings), 0)
    cls, settings = named_estimator("auto", problem, sampler="auto", settings={})
    if cls is None:
        cls, settings = auto_estimator(problem.with_output(output, np.float64, cost))
    order = cls.order_for(n, planned_rows(problem), settings.get("max_order", 3)) if cls.name == "kadd" else None
    assert (cls.name, order) == expected


def test_auto_stays_within_memory(monkeypatch):
    monkeypatch.setattr("common.estimators.auto.AUTO_MAX_BYTES", 10 ** 4)
    assert pick() == "chain-kernel"  # kadd's values and the surrogate's stored groups do not fit; chain-kernel's do
    monkeypatch.setattr("common.estimators.auto.AUTO_MAX_BYTES", 100)
    assert pick() == "chain"


def test_the_rule_reads_no_clock_and_the_api_defaults_to_it():
    problem = Problem(10, Budget(orderings=36), 1).with_output((3,), np.float64, None)
    assert auto_estimator(problem) == auto_estimator(problem)
    assert shapley_modes(saturating, 10, 360, progress=False).metadata["estimator"] == "kadd"  # the API's default
