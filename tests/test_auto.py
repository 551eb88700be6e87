"""What estimator="auto" picks: a rule on players, budget, output size, memory, a target SE and the game's declared
cost (never a clock), so that the same run picks the same estimator everywhere."""
import numpy as np
import pytest
from games import additive, saturating

from common import TargetSE, shapley_modes
from common.estimators import first_order_estimator


def declared(cost, game=saturating):
    def wrapped(c):
        return game(c)
    wrapped.cost_per_coalition = cost
    return wrapped


def pick(game=saturating, n=10, **kw):
    return shapley_modes(game, n, **(dict(n_permutations=36, progress=False, estimator="auto", sampler="auto") | kw)
                         ).metadata["estimator"]


@pytest.mark.parametrize("case, expected", [
    (dict(), "kadd"),                                                # the best measured, from n/2 orderings' worth
    (dict(n_permutations=5), "kadd"),                                # 5 of 10 units: pairs, first order
    (dict(n_permutations=4), "chain"),                               # below min(n/2, 1.6 sqrt n): antithetic wins
    (dict(n=60, n_permutations=16, sampler="antithetic"), "kadd"),   # SmolLM2's 16 of 60: above 1.6 sqrt(60)
    (dict(n=60, n_permutations=12, sampler="antithetic"), "chain"),  # 12.4 orderings' worth is the line
    (dict(target=TargetSE(0.5)), "surrogate"),                       # kadd cannot stop early
    (dict(target=TargetSE(0.5), game=lambda c: np.repeat(saturating(c), 400, axis=1)), "chain-kernel"),  # 1,200
    (dict(game=declared(1e-4), n=40, n_permutations=160), "chain-kernel"),  # a 0.1 ms game pays no 820-coefficient fit
    (dict(game=declared(1e-2), n=40, n_permutations=160), "kadd"),    # a 10 ms game does
    (dict(game=declared(1e-4)), "kadd"),                             # 55 coefficients pay for themselves
    (dict(sampler="antithetic", target=TargetSE(0.5)), "chain"),     # groups smaller than n
    (dict(estimator="msapy", n_permutations=2), "msapy"),
    (dict(game=additive(np.arange(3.0)), n=3, n_permutations=8), "kadd"),  # 6 coalitions: all of them
])
def test_auto_picks(case, expected):
    case = dict(case)
    assert pick(case.pop("game", saturating), case.pop("n", 10), **case) == expected


def test_auto_stays_within_memory(monkeypatch):
    monkeypatch.setattr("common.estimators.AUTO_MAX_BYTES", 10 ** 4)
    assert pick() == "chain-kernel"  # kadd's values and the surrogate's stored groups do not fit; chain-kernel's do
    monkeypatch.setattr("common.estimators.AUTO_MAX_BYTES", 100)
    assert pick() == "chain"


def test_the_rule_reads_no_clock():
    assert first_order_estimator("auto", 18, 10, 3, 8, n_orderings=36) is first_order_estimator(
        "auto", 18, 10, 3, 8, n_orderings=36)
    assert shapley_modes(additive(np.arange(8.0)), 8, n_permutations=3, progress=False).metadata["estimator"] == \
        "chain"  # the API's default is msapy's estimator
