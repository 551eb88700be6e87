"""What estimator="auto" picks: a policy over the estimators' declarations (refusals, the least budget, what they
are recommended for, memory, a target SE, and the game's declared cost against the fits' cost, never a clock), so
that the same run picks the same estimator everywhere."""
import numpy as np
import pytest
from games import additive, saturating

from common import Budget, TargetSE, shapley_modes
from common.estimators import Problem, auto_estimator


def declared(cost, game=saturating):
    def wrapped(c):
        return game(c)
    wrapped.cost_per_coalition = cost
    return wrapped


def pick(game=saturating, n=10, **kw):
    kw = dict(budget=Budget(orderings=36), progress=False, estimator="auto", sampler="auto") | kw
    return shapley_modes(game, n, **kw).metadata["estimator"]


@pytest.mark.parametrize("case, expected", [
    (dict(), "kadd"),                                                    # the best measured, from n/2 orderings' worth
    (dict(budget=50), "kadd"),                                           # 5 of 10 units: pairs, first order
    (dict(budget=40), "chain"),                                          # below min(n/2, 1.6 sqrt n): antithetic wins
    (dict(n=60, budget=Budget(orderings=16)), "kadd"),                   # SmolLM2's 16 of 60: above 1.6 sqrt(60)
    (dict(n=60, budget=Budget(orderings=12)), "chain"),                  # 12.4 orderings' worth is the line
    (dict(n=60, budget=Budget(orderings=16), sampler="antithetic"), "chain"),  # a sampler: an estimator that walks
    (dict(target=TargetSE(0.5)), "surrogate"),                           # kadd cannot stop early
    (dict(target=TargetSE(0.5), game=lambda c: np.repeat(saturating(c), 400, axis=1)), "chain-kernel"),  # 1,200
    (dict(game=declared(1e-4), n=40, budget=Budget(orderings=160)), "chain-kernel"),  # a 0.1 ms game pays no
    (dict(game=declared(1e-2), n=40, budget=Budget(orderings=160)), "kadd"),          # 820-coefficient fit; 10 ms does
    (dict(game=declared(1e-4)), "kadd"),                                 # 55 coefficients pay for themselves
    (dict(sampler="antithetic", target=TargetSE(0.5)), "chain"),         # groups smaller than n
    (dict(runner="msapy", budget=Budget(orderings=2)), "chain"),         # what msapy's walk computes
    (dict(game=additive(np.arange(3.0)), n=3, budget=Budget(orderings=8)), "exact"),  # 24 >= 8 coalitions: all of them
    (dict(budget=1024), "exact"),                                        # every coalition of 10 players
])
def test_auto_picks(case, expected):
    case = dict(case)
    assert pick(case.pop("game", saturating), case.pop("n", 10), **case) == expected


def test_auto_stays_within_memory(monkeypatch):
    monkeypatch.setattr("common.estimators.auto.AUTO_MAX_BYTES", 10 ** 4)
    assert pick() == "chain-kernel"  # kadd's values and the surrogate's stored groups do not fit; chain-kernel's do
    monkeypatch.setattr("common.estimators.auto.AUTO_MAX_BYTES", 100)
    assert pick() == "chain"


def test_the_rule_reads_no_clock_and_the_api_defaults_to_it():
    problem = Problem(10, Budget(orderings=36), 1).with_output((3,), np.float64, None)
    assert auto_estimator(problem) == auto_estimator(problem)
    assert shapley_modes(saturating, 10, 360, progress=False).metadata["estimator"] == "kadd"  # the API's default
