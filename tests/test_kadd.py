"""The kadd estimator (common/estimators/kadd.py): a Shapley-kernel regression of order 3, 2 or 1 on distinct
coalitions.
Against exact Shapley modes of small real networks, at the budgets users run; what it asks of the game;
checkpoints and merging; what it refuses."""
import itertools
import math

import numpy as np
import pytest
from games import (Counting, additive, assert_resumes_bit_identically, coverage_floor, network_game, pairwise,
                   saturating)

from common import Budget, Compute, Method, TargetSE, shapley_modes
from common.estimators import KAdd, Problem
from common.estimators.coalition_plan import stratified_coalitions
from common.estimators.kadd import (MAX_PARAMETERS, RIDGE_GRID, ROWS_PER_PARAMETER, features, parameters,
                                    shapley_map)
from common.exact import exact_shapley_modes

N = 10


@pytest.fixture(scope="module")
def network():
    game = network_game(n_hidden=N, seed=4, n_inputs=48, batch_size=256)
    return game, exact_shapley_modes(game, N)


def run(game, n, k, seed=0, estimator="kadd", sampler="auto", settings=None, **kwargs):
    """k orderings' worth (k x n evaluations), or k evaluations for a Budget or an int given as `budget`."""
    budget = kwargs.pop("budget") if "budget" in kwargs else Budget(orderings=k)
    return shapley_modes(game, n, budget, seed=seed, method=Method(estimator, sampler, settings), progress=False,
                         **kwargs)


def test_every_coalition_gives_the_exact_values_once_each(network):
    game, truth = network
    counted = Counting(game)
    r = run(counted, N, 1000)  # more than every coalition's worth: the exact values, each coalition once
    np.testing.assert_allclose(r.modes, truth, atol=1e-10)
    np.testing.assert_array_equal(r.se, 0)
    assert r.metadata["estimator"] == "exact" and r.orderings is None
    assert counted.coalitions == counted.distinct == r.evaluations == 2 ** N


@pytest.mark.parametrize("paired", [False, True])
def test_the_plan_is_distinct_stratified_and_spends_the_budget(paired):
    for n, budget in ((10, 300), (12, 576), (12, 70), (20, 1600), (33, 4000)):
        plan = stratified_coalitions(n, budget, seed=3, paired=paired)
        z = plan.coalitions
        assert budget - 1 <= len(z) <= budget  # whole pairs
        assert len(np.unique(np.packbits(z, axis=1), axis=0)) == len(z)
        size = z.sum(1)
        assert 1 <= size.min() and size.max() <= n - 1
        # the weights sum, size by size, to the Shapley kernel's mass of that size
        sizes = np.arange(1, n)
        present = np.isin(sizes, size)
        mass = np.bincount(size, weights=plan.weight, minlength=n + 1)[1:n]
        np.testing.assert_allclose(mass[present], 1 / (sizes * (n - sizes))[present])
        for t, rows, m, population in plan.sampled():  # partly drawn strata: units laid out slot by slot
            assert len(rows) == plan.slots * m and m < population
            if paired:
                np.testing.assert_array_equal(z[rows[m:]], ~z[rows[:m]])
        for t in np.flatnonzero(plan.units == plan.population):  # an enumerated stratum holds all its coalitions
            s = t + 1
            count = math.comb(n, s) * (2 if paired and 2 * s != n else 1)
            assert (plan.stratum == t).sum() == count
    a, b = stratified_coalitions(12, 576, seed=1), stratified_coalitions(12, 576, seed=1)
    np.testing.assert_array_equal(a.coalitions, b.coalitions)
    assert not np.array_equal(a.coalitions, stratified_coalitions(12, 576, seed=2).coalitions)


def test_asks_distinct_coalitions_n_an_ordering():
    n, k = 12, 40
    game = Counting(lambda c: np.tanh(c.astype(float) @ np.ones((n, 2))))
    r = run(game, n, k, compute=Compute(batch_size=7))
    assert game.coalitions == game.distinct == r.evaluations == k * n and max(game.sizes) <= 7  # the budget, spent


@pytest.mark.parametrize("orderings, order", [(N // 2, 1), (N, 1), (2 * N, 2), (3 * N, 3), (4 * N, 3), (8 * N, 3),
                                             (4 * N, "too many")])
def test_error_bars_cover_the_exact_values_at_the_budgets_users_run(network, orderings, order, monkeypatch):
    """The 95% interval (the t quantile of the recorded degrees of freedom) covers about 95% of mode elements, from
    n/2 orderings' worth (complementary pairs, first order) through the order-2 game (2n) to 8n (the order-3 game,
    most sizes enumerated; 3n is 1.7 coalitions a coefficient); and where the higher orders have too many
    coefficients (first order again)."""
    if order == "too many":
        monkeypatch.setattr("common.estimators.kadd.MAX_PARAMETERS", N)
        order = 1
    game, truth = network
    runs = [run(game, N, orderings, seed) for seed in range(12)]
    covered = [np.mean(np.abs(r.modes - truth) <= r.margin(0.95) + 1e-12) for r in runs]
    assert np.mean(covered) >= coverage_floor(0.95, len(runs))
    assert all(r.efficiency_gap() < 1e-10 and r.metadata["se_dof"] > 0 for r in runs)
    assert {r.metadata["order"] for r in runs} == {order}
    error = np.sqrt(np.mean([(r.modes - truth) ** 2 for r in runs]))
    assert 0.5 < error / np.sqrt(np.mean([r.se ** 2 for r in runs])) < 1.5  # neither tight nor loose


def test_beats_the_chain_estimators_at_equal_evaluations(network):
    """At 400 evaluations, 4n orderings' worth, each estimator spending them its own way."""
    game, truth = network
    mse = lambda rs: np.mean([np.mean((r.modes - truth) ** 2) for r in rs])  # noqa: E731
    seeds, budget = range(10), 4 * N * N
    runs = {name: [run(game, N, None, s, name, budget=budget, **extra) for s in seeds]
            for name, extra in (("chain", dict(sampler="iid")), ("chain-kernel", dict(sampler="orthogonal")),
                                ("kadd", {}))}
    unit = {"chain": N, "chain-kernel": 2 * (N - 1) * (N - 3), "kadd": 1}  # a unit's rows: an ordering, a group
    assert all(budget - unit[name] < r.evaluations <= budget for name, rs in runs.items() for r in rs)
    iid, kernel, kadd = (mse(runs[name]) for name in ("chain", "chain-kernel", "kadd"))
    assert kadd < kernel < iid
    assert np.sqrt(iid / kadd) > 2


def test_exact_on_games_of_order_two():
    weights = np.random.default_rng(0).normal(size=(9, 3))
    r = run(additive(weights), 9, 30)
    np.testing.assert_allclose(r.modes, weights, atol=1e-10)
    r = run(pairwise(9), 9, 30)  # a pair's synergy and eight additive units
    np.testing.assert_allclose(r.modes, [1.5, 1.5] + [1.0] * 7, atol=1e-10)
    assert np.max(r.se) < 1e-8


def test_exact_on_games_of_order_three():
    """Units, pairs and triples with known Shapley values (each member of a set gets its share), from a plan of
    360 of the 510 coalitions: the order-3 fit is exact and takes no ridge; the order-2 fit is not."""
    n = 9
    sets = {(0,): 1.0, (4,): -2.0, (6, 7): 2.0, (0, 1, 2): 3.0, (3, 4, 5): -1.5, (1, 5, 8): 1.2}

    def game(c):
        return np.stack([sum(w * c[:, list(s)].all(1) for s, w in sets.items()), c[:, :3].all(1) * 1.0], 1)
    truth = np.zeros((n, 2))
    for s, w in sets.items():
        truth[list(s), 0] += w / len(s)
    truth[:3, 1] = 1 / 3
    r = run(game, n, 40)
    assert r.metadata["order"] == 3 and r.metadata["ridge"] == 0.0 and r.evaluations == 360
    np.testing.assert_allclose(r.modes, truth, atol=1e-10)
    assert np.max(r.se) < 1e-8
    assert np.abs(run(game, n, 20).modes - truth).max() > 0.01  # 180 coalitions: order 2, which misses the triples


def test_the_order_is_the_highest_the_plan_determines():
    """Order 3 from ROWS_PER_PARAMETER[3] coalitions a coefficient (and at most MAX_PARAMETERS of them), order 2 from
    ROWS_PER_PARAMETER[2], first order below; max_order caps it. The design and the Shapley map agree with a
    brute-force count of the subsets."""
    for n in (3, 9, 12, 29, 30):
        assert parameters(n, 3) == sum(1 for k in (1, 2, 3) for _ in itertools.combinations(range(n), k))
    for n in (9, 12, 20):
        p2, p3 = parameters(n, 2), parameters(n, 3)
        third, second = math.ceil(ROWS_PER_PARAMETER[3] * p3), math.ceil(ROWS_PER_PARAMETER[2] * p2)
        assert KAdd.order_for(n, third) == 3 and KAdd.order_for(n, third - 1) == 2
        assert KAdd.order_for(n, second) == 2 and KAdd.order_for(n, second - 1) == 1
        assert KAdd.order_for(n, third, max_order=2) == 2 and KAdd.order_for(n, third, max_order=1) == 1
    assert parameters(29, 3) <= MAX_PARAMETERS < parameters(30, 3)
    assert KAdd.order_for(30, 10 ** 6) == 2  # 4,525 coefficients: too many for order 3
    z = np.random.default_rng(0).random((50, 6)) < 0.5
    x = features(z, 3)
    subsets = [s for k in (1, 2, 3) for s in itertools.combinations(range(6), k)]
    np.testing.assert_array_equal(x, np.stack([z[:, list(s)].all(1) for s in subsets], 1))
    expected = np.array([[(i in s) / len(s) for s in subsets] for i in range(6)])
    np.testing.assert_allclose(shapley_map(6, 3), expected)
    with pytest.raises(ValueError, match="max_order is 1, 2 or 3, got 4"):
        KAdd.checked_settings(max_order=4)


def test_the_order_can_be_capped_through_the_api():
    game = additive(np.ones((9, 1)))
    assert run(game, 9, 40).metadata["order"] == 3
    assert run(game, 9, 40, settings=dict(max_order=2)).metadata["order"] == 2
    for settings, message in ((dict(max_order=4), "max_order is 1, 2 or 3"),
                              (dict(order=2), "takes no setting 'order'")):
        with pytest.raises(ValueError, match=message):
            run(game, 9, 40, settings=settings)
    with pytest.raises(ValueError, match="estimator='auto' picks its own"):
        run(game, 9, 40, estimator="auto", settings=dict(max_order=2))


def test_the_ridge_is_picked_by_held_out_error(monkeypatch):
    """On a game with interactions of every order the held-out error picks a penalty on the pairs, and it beats
    the unpenalised fit against the exact values; a game of order two takes none (exact above)."""
    n, seeds = 10, range(12)
    truth = exact_shapley_modes(saturating, n)
    picked = [run(saturating, n, 14, s) for s in seeds]  # 140 coalitions: 2.5 a coefficient of the order-2 game
    monkeypatch.setattr("common.estimators.kadd.RIDGE_GRID", {2: (0.0,), 3: (0.0,)})
    plain = [run(saturating, n, 14, s) for s in seeds]
    rmse = lambda rs: np.sqrt(np.mean([(r.modes - truth) ** 2 for r in rs]))  # noqa: E731
    assert all(r.metadata["ridge"] > 0 for r in picked) and {r.metadata["ridge"] for r in plain} == {0.0}
    assert rmse(picked) < 0.9 * rmse(plain)
    assert run(pairwise(9), 9, 30).metadata["ridge"] == 0.0


def test_the_fit_returned_is_that_of_the_ridge_chosen(network, monkeypatch):
    """Order 3 picks its ridge from its own grid and returns that ridge's fit: a grid of that ridge alone gives the
    same modes and error bars; and the design built in chunks gives what the whole one gives."""
    game, truth = network
    chosen = run(game, N, 40)
    assert chosen.metadata["order"] == 3 and chosen.metadata["ridge"] in RIDGE_GRID[3]
    monkeypatch.setattr("common.estimators.kadd.RIDGE_GRID", {**RIDGE_GRID, 3: (chosen.metadata["ridge"],)})
    alone = run(game, N, 40)
    np.testing.assert_array_equal(alone.modes, chosen.modes)
    np.testing.assert_array_equal(alone.se, chosen.se)
    monkeypatch.setattr("common.estimators.kadd.DESIGN_BYTES", 0)
    monkeypatch.setattr("common.estimators.kadd.CHUNK", 100)
    chunked = run(game, N, 40)
    np.testing.assert_allclose(chunked.modes, chosen.modes, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chunked.se, chosen.se, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("batch_size", [7, 64])
def test_resumed_run_is_bit_identical(network, tmp_path, batch_size):
    game, _ = network
    assert_resumes_bit_identically(run, game, N, 40, tmp_path / "r.ckpt", batch_size=batch_size)


def test_state_merges_over_disjoint_orderings(network):
    game, _ = network
    intact, empty = np.asarray(game(np.ones((1, N), bool))[0]), np.asarray(game(np.zeros((1, N), bool)))

    problem = Problem(N, Budget(orderings=30), 5).with_output(intact.shape, np.float64, None)

    def walked(start, stop):
        est = KAdd(problem)
        est.intact, est.empty = intact, empty.reshape(-1)
        est.fold(np.asarray(game(est.plan(start, stop))))
        return est
    whole, first = walked(0, 30), walked(0, 11)
    first.merge(walked(11, 30))
    a, b = whole.finish(), first.finish()
    np.testing.assert_array_equal(a["modes"], b["modes"])
    np.testing.assert_array_equal(a["se"], b["se"])
    with pytest.raises(ValueError, match="planned coalitions are in"):
        walked(0, 11).finish()


def test_refuses_what_it_cannot_do():
    game = additive(np.ones((12, 1)))
    with pytest.raises(ValueError, match="needs a budget of at least 26 evaluations on 12 players"):
        run(game, 12, 1)
    with pytest.raises(ValueError, match="cannot stop at a target SE"):
        run(game, 12, 40, target=TargetSE(0.01))


def test_runs_past_the_players_whose_coalition_counts_pass_float64():
    """C(1040, 520) is past float64's range (the paper's 1,987 filters too): the plan still draws, and the
    first-order fit of an additive game is its weights, to the rounding of 1,040 coefficients from 2,080 rows
    (within the error bars)."""
    n = 1040
    w = np.random.default_rng(0).normal(size=(n, 2))
    r = run(additive(w), n, None, budget=2 * n + 2)
    assert r.metadata["order"] == 1 and r.evaluations <= 2 * n + 2
    assert np.abs(r.modes - w).max() < 1e-2 and np.all(np.abs(r.modes - w) <= 3 * r.se + 1e-9)
