"""The chain-kernel estimator (common/estimators/chain_kernel.py) against exact Shapley modes of a small real
network and games with known values; what it asks of the game; checkpoints; the automatic choice."""
import numpy as np
import pytest
from games import Counting, additive, assert_resumes_bit_identically, network_game, unanimity

from common import SAMPLERS, Budget, Compute, Method, TargetSE, shapley_modes
from common.exact import exact_shapley_modes


@pytest.fixture(scope="module")
def game_and_truth():
    game = network_game(n_hidden=8, seed=3, n_inputs=48, batch_size=128)
    return game, exact_shapley_modes(game, 8)


def run(game, n, k, seed=0, sampler="orthogonal", **kwargs):
    return shapley_modes(game, n, Budget(orderings=k), seed=seed,
                         method=Method(sampler=sampler, estimator="chain-kernel"),
                         progress=False, **kwargs)


@pytest.mark.parametrize("sampler", ["orthogonal", "latin", "latin-antithetic"])
def test_matches_exact_values_within_its_error_bars(sampler, game_and_truth):
    game, truth = game_and_truth
    group = SAMPLERS[sampler].group(8)
    small, large = run(game, 8, 8 * group, sampler=sampler), run(game, 8, 64 * group, sampler=sampler)
    for r in (small, large):
        assert r.metadata["estimator"] == "chain-kernel" and r.efficiency_gap() < 1e-10
        assert (np.abs(r.modes - truth) <= 4 * r.se + 1e-12).mean() >= 0.95
    rmse = lambda rs: np.sqrt(np.mean([np.mean((r.modes - truth) ** 2) for r in rs]))  # noqa: E731
    smalls = [run(game, 8, 8 * group, seed=s, sampler=sampler) for s in range(1, 7)]
    assert rmse([large]) < 0.55 * rmse(smalls)  # 8x the orderings: about 2.8x smaller, no bias floor
    assert 0.4 < rmse([large]) / np.sqrt(np.mean(large.se ** 2)) < 2.5  # the error bars are honest


def test_beats_the_chain_mean_at_equal_evaluations(game_and_truth):
    """The point of it: on the same network, fewer evaluations for the same error than both plain estimators."""
    game, truth = game_and_truth
    mse = {}
    for estimator, sampler in (("chain", "orthogonal"), ("chain-kernel", "orthogonal"), ("iid", "iid")):
        errors = []
        for seed in range(30):
            r = shapley_modes(game, 8, 228, seed=seed,
                              method=Method(sampler=sampler, estimator="chain" if estimator == "iid" else estimator),
                              progress=False)
            assert r.evaluations <= 228
            errors.append(np.mean((r.modes - truth) ** 2))
        mse[estimator] = np.mean(errors)
    iid = mse["iid"]
    assert mse["chain-kernel"] < mse["chain"] < iid
    assert np.sqrt(iid / mse["chain-kernel"]) > 1.5


def test_exact_on_additive_and_single_unanimity_games():
    weights = np.random.default_rng(0).normal(size=(7, 3))
    r = run(additive(weights), 7, 24)
    np.testing.assert_allclose(r.modes, weights, atol=1e-12)
    np.testing.assert_allclose(r.se, 0, atol=1e-12)
    game, truth = unanimity([(0, 1, 2, 3, 4, 5)], 6)  # one coalition of every size: the chain mean alone errs
    r = run(game, 6, 40)
    assert np.max(np.abs(r.modes - truth)) < 4 * np.max(r.se) + 1e-12


def test_asks_the_border_once_and_n_minus_3_coalitions_an_ordering():
    n, k = 9, 32
    game = Counting(lambda c: np.tanh(c.astype(float) @ np.random.default_rng(1).normal(size=(n, 2))))
    r = run(game, n, k, compute=Compute(batch_size=10))  # 6 coalitions an ordering: calls hold one ordering, never two
    assert game.coalitions == game.distinct == r.evaluations <= 2 + 2 * n + k * (n - 3)
    assert max(game.sizes) <= 10


def test_no_border_coalition_is_evaluated_twice():
    n = 8
    asked = []

    def game(c):
        asked.append(c.sum(1))
        return c.astype(float) @ np.arange(1.0, n + 1)
    run(game, n, 28)
    sizes = np.concatenate(asked)
    assert [(sizes == s).sum() for s in (0, 1, n - 1, n)] == [1, n, n, 1]
    assert set(np.unique(sizes[(sizes > 1) & (sizes < n - 1)])) == set(range(2, n - 1))


@pytest.mark.parametrize("batch_size", [4, 13, 60])
def test_resumed_run_is_bit_identical(tmp_path, batch_size):
    def game(c):
        return np.tanh(c.astype(float) @ np.random.default_rng(0).normal(size=(9, 4))) ** 2
    assert_resumes_bit_identically(run, game, 9, 64, tmp_path / "r.ckpt", batch_size=batch_size)


def test_target_se_stops_at_the_first_check_point_below_it(game_and_truth):
    game, _ = game_and_truth
    target = 1.5 * run(game, 8, 1400).se.max()  # about 1400 / 1.5^2 = 620 orderings reach it
    first, again = run(game, 8, 1400, target=TargetSE(target)), run(game, 8, 1400, target=TargetSE(target))
    assert 14 * 2 < first.orderings < 1400 and first.orderings % 14 == 0
    assert first.se.max() <= target and first.metadata["target_reached"]
    np.testing.assert_array_equal(first.modes, again.modes)
    assert 0 <= first.metadata["weight_of_regression"] <= 1


def test_the_chain_walk_alone_gives_each_group_its_chain_mean_and_an_exact_regression_on_additive_games():
    from common.estimators.chain_walk import ChainWalk, prologue
    from common.orderings import sample
    n = 7
    w = np.random.default_rng(1).normal(size=(n, 3))
    game = lambda c: c.astype(float) @ w  # noqa: E731
    orderings = sample("latin", n, 2 * n, 0)
    ends = game(np.stack([np.ones(n, bool), np.zeros(n, bool)]))
    groups = []
    walk = ChainWalk(n, ends[0], n, np.concatenate([game(prologue(n)), ends[1:]]), groups.append)
    coalitions = walk.plan(orderings.orderings, 0)
    for a in range(0, len(coalitions), 5):  # calls that split orderings
        walk.fold(game(coalitions[a:a + 5]))
    assert [g.first for g in groups] == [0, n] and len(coalitions) == 2 * n * (n - 3)
    for g in groups:
        np.testing.assert_allclose(g.p, w, atol=1e-12)  # an additive game's contributions never vary
        np.testing.assert_allclose(walk.regression(g.b, g.gram), w, atol=1e-10)
