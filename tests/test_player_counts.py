"""Every estimator at every player count users run, 2 to 300, at a small and a large budget: it finishes, or it
refuses with a clear ValueError before the game is asked anything. A finished run's modes sum to v(N) - v(empty)
on every output element, and are exact on the game's additive outputs (the surrogate's fitted control variate
adds noise there: within its 99.9% interval). The counts around 67 and 90 are where the order-2 regression's binomial counts pass int64 and where auto
stops taking it."""
import math

import numpy as np
import pytest
from games import Counting

from common import Budget, Method, shapley_modes
from common.estimators import ESTIMATORS
from common.estimators.coalition_plan import stratified_coalitions

SIZES = (2, 3, 4, 5, 8, 12, 20, 39, 40, 41, 64, 66, 67, 80, 90, 91, 128, 200, 300)
# the surrogate fits a network per pair of sampler groups (2-20 s a run here): the sizes around the int64 and
# auto boundaries, and both ends
SURROGATE_SIZES = (2, 3, 4, 5, 8, 12, 39, 40, 66, 67, 90, 91, 300)
# 3 orderings (3n evaluations for kadd), and 40n evaluations: below and above where auto takes the order-2 regression
# at 67-90 units; 40n buys every coalition of up to 8 players (the exact values)
BUDGETS = (lambda n: Budget(orderings=3), lambda n: 40 * n)


class MixedGame:
    """Three additive outputs (the Shapley modes are the weights, exactly) and three saturating ones."""

    def __init__(self, n):
        rng = np.random.default_rng(n)
        self.w, self.u = rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) * 3 / math.sqrt(n)

    def __call__(self, c):
        z = c.astype(float)
        return np.concatenate([z @ self.w, np.tanh(z @ self.u)], 1)


def accepts(estimator: str, n: int, budget, sampler: str) -> bool:
    """What each estimator says it runs (the classes' own declarations are what is under test)."""
    evaluations = budget if isinstance(budget, int) else budget.evaluations_for(n)
    every = evaluations >= 2 ** n and (isinstance(budget, int) or estimator in ("auto", "kadd"))  # the exact values
    if estimator in ("auto", "chain") or every:
        return True
    if estimator == "kadd":
        return n >= 3
    return n >= 4 and sampler == "orthogonal"  # chain-kernel, surrogate: sampler groups of at least n orderings


def check(estimator, n, budget, sampler):
    game = Counting(MixedGame(n))
    if not accepts(estimator, n, budget, sampler):
        with pytest.raises(ValueError, match=estimator if estimator != "auto" else "."):
            shapley_modes(game, n, budget, method=Method(estimator=estimator, sampler=sampler), progress=False)
        assert game.calls == 0, "refused after asking the game"
        return None
    r = shapley_modes(game, n, budget, method=Method(estimator=estimator, sampler=sampler), progress=False)
    spent = budget if isinstance(budget, int) else budget.evaluations_for(n)
    assert game.coalitions == game.distinct == r.evaluations <= spent
    assert r.modes.shape == (n, 6) and np.isfinite(r.modes).all() and np.isfinite(r.se).all()
    np.testing.assert_allclose(r.modes.sum(0), r.intact - r.lesioned, atol=1e-8 * max(1, np.abs(r.intact).max()))
    if estimator == "surrogate":
        assert (np.abs(r.modes[:, :3] - game.game.w) <= r.margin(0.999)[:, :3]).all()
    else:
        np.testing.assert_allclose(r.modes[:, :3], game.game.w, atol=1e-8)
    return r.metadata["estimator"]


@pytest.mark.parametrize("n", SIZES)
def test_auto_chain_and_kadd_run_or_refuse_at_every_size(n):
    for budget in BUDGETS:
        picked = check("auto", n, budget(n), "auto")
        if 67 <= n <= 90 and isinstance(budget(n), int):
            assert picked == "kadd"  # where the binomial counts overflowed int64
        if n <= 8 and isinstance(budget(n), int):
            assert picked == "exact"
        for estimator in ("chain", "kadd"):
            check(estimator, n, budget(n), "auto")


@pytest.mark.parametrize("estimator, n", [("chain-kernel", n) for n in SIZES] +
                         [("surrogate", n) for n in SURROGATE_SIZES])
def test_the_chain_regressions_run_on_two_orthogonal_blocks_and_refuse_smaller_groups(estimator, n):
    """They need sampler groups of n orderings or more: two orthogonal blocks (4(n - 1) orderings) is the least
    budget that gives them error bars; antithetic pairs are refused at every size."""
    assert estimator in ESTIMATORS
    if n >= 4:
        check(estimator, n, Budget(orderings=4 * (n - 1)), "orthogonal")
    check(estimator, n, Budget(orderings=40), "antithetic")


@pytest.mark.parametrize("n, budget, paired", [(67, 2680, False), (90, 360, False), (90, 3600, True),
                                               (300, 12000, True), (300, 900, False)])
def test_plans_past_int64_are_distinct_and_weighted_by_the_kernel(n, budget, paired):
    """C(n, n/2) is far past int64 here: the draws stay distinct, of every size asked, and each size's weights
    sum to the Shapley kernel's mass of that size."""
    plan = stratified_coalitions(n, budget, seed=0, paired=paired)
    z = plan.coalitions
    assert budget - 1 <= len(z) <= budget
    assert len(np.unique(np.packbits(z, axis=1), axis=0)) == len(z)
    size = z.sum(1)
    assert 1 <= size.min() and size.max() <= n - 1
    present = np.unique(size)
    mass = np.bincount(size, weights=plan.weight, minlength=n + 1)[present]
    np.testing.assert_allclose(mass, 1 / (present * (n - present)))
    middle = n // 2 - 1
    assert plan.population[middle] > 2.0 ** 63 and 0 < plan.units[middle] < plan.population[middle]
    assert (plan.units <= plan.population).all()
