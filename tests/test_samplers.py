"""Every sampler against exact Shapley modes of a small real network; their structure; stopping at a target error;
the automatic choice."""
import numpy as np
import pytest
from games import Counting, dies_after, network_game

from common import SAMPLERS, Budget, Checkpoint, Compute, Method, TargetSE, shapley_modes
from common.exact import exact_shapley_modes
from common.orderings import BEST_FIRST, auto_sampler, sample


@pytest.fixture(scope="module")
def game_and_truth():
    game = network_game(n_hidden=8, seed=3, n_inputs=48, batch_size=128)
    return game, exact_shapley_modes(game, 8)


def test_exact_enumeration_agrees_with_the_textbook_formula():
    from games import exact_shapley
    game = network_game(n_hidden=6, seed=1, n_inputs=48, batch_size=128)
    np.testing.assert_allclose(exact_shapley_modes(game, 6, batch_size=7), exact_shapley(game, 6), atol=1e-14)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_matches_exact_values_within_its_error_bars(sampler, game_and_truth):
    game, truth = game_and_truth
    group = SAMPLERS[sampler].group(8)
    run = dict(method=Method(sampler=sampler, estimator="chain"), progress=False)
    small = shapley_modes(game, 8, Budget(orderings=4 * group), seed=0, **run)
    large = shapley_modes(game, 8, Budget(orderings=64 * group), seed=0, **run)
    for r in (small, large):
        assert r.sampler == sampler and r.efficiency_gap() < 1e-10
        assert (np.abs(r.modes - truth) <= 4 * r.se + 1e-12).mean() >= 0.95
    rmse = lambda rs: np.sqrt(np.mean([np.mean((r.modes - truth) ** 2) for r in rs]))  # noqa: E731
    smalls = [shapley_modes(game, 8, Budget(orderings=4 * group), seed=s, **run)
              for s in range(1, 7)]
    assert rmse([large]) < 0.5 * rmse(smalls)  # 16x the orderings: about 4x smaller
    assert 0.4 < rmse([large]) / np.sqrt(np.mean(large.se ** 2)) < 2.5  # the error bars are honest


def test_sampler_structure():
    n = 7
    for name in SAMPLERS:
        o = sample(name, n, 4 * SAMPLERS[name].group(n), seed=2)
        assert (np.sort(o.orderings, 1) == np.arange(n)).all(), name  # every row is an ordering
    latin = sample("latin", n, 2 * n, 0).orderings
    for block in (latin[:n], latin[n:]):  # every player takes every position once per block
        assert (np.sort(block, 0) == np.arange(n)[:, None]).all()
    both = sample("latin-antithetic", n, 2 * n, 0).orderings
    np.testing.assert_array_equal(both[n:], both[:n, ::-1])
    orth = sample("orthogonal", n, 2 * (n - 1), 0).orderings
    np.testing.assert_array_equal(orth[n - 1:], orth[:n - 1, ::-1])  # the -q directions reverse the +q ones
    with pytest.raises(ValueError, match="multiple of 14"):
        sample("latin-antithetic", n, 20, 0)


def test_auto_takes_the_best_measured_sampler_that_fits_twice():
    assert BEST_FIRST[0] == "orthogonal"
    assert auto_sampler(200, 1000) == "orthogonal"     # 2.51 blocks of 398
    assert auto_sampler(256, 1000) == "antithetic"     # 1.96 blocks of 510, 1.95 of 512: neither twice
    assert auto_sampler(256, 1020) == "orthogonal"
    assert auto_sampler(1987, 1000) == "antithetic"    # a 3972-ordering block does not fit
    assert auto_sampler(32, 40) == "antithetic"
    assert auto_sampler(5, 7) == "antithetic"
    assert auto_sampler(5, 3.9) == "iid"
    game = network_game(n_hidden=8, seed=3, n_inputs=48, batch_size=128)
    r = shapley_modes(game, 8, Budget(orderings=60), seed=1, method=Method(sampler="auto", estimator="chain"),
                      progress=False)
    assert r.sampler == "orthogonal" and r.orderings == 56 and r.metadata["sampler_asked"] == "auto"  # whole groups


def test_target_se_stops_at_the_first_check_point_below_it_and_is_deterministic(game_and_truth):
    game, truth = game_and_truth
    run = dict(seed=4, method=Method(estimator="chain", sampler="iid"), progress=False)
    full = shapley_modes(game, 8, Budget(orderings=2000), **run)
    target = 2 * full.se.max()  # reached after roughly a quarter of the orderings
    counted = Counting(game)
    a = shapley_modes(counted, 8, Budget(orderings=2000), target=TargetSE(target), **run)
    b = shapley_modes(game, 8, Budget(orderings=2000), target=TargetSE(target), **run)
    assert a.metadata["target_reached"] and a.se.max() <= target and np.isclose(a.metadata["max_se"], a.se.max())
    assert 200 < a.orderings < 1000 and counted.coalitions == counted.distinct == a.evaluations <= 2 ** 8
    np.testing.assert_array_equal(a.modes, b.modes)
    assert (np.abs(a.modes - truth) <= 4 * a.se + 1e-12).mean() >= 0.95
    shorter = shapley_modes(game, 8, Budget(orderings=a.orderings - 40), **run)
    assert shorter.se.max() > target  # the previous check point had not reached it
    relative = shapley_modes(game, 8, Budget(orderings=2000), target=TargetSE(0.05, relative=True), **run)
    assert relative.se.max() <= 0.05 * (relative.modes.max() - relative.modes.min())
    unreachable = shapley_modes(game, 8, Budget(orderings=100), target=TargetSE(1e-9), **run)
    assert not unreachable.metadata["target_reached"] and unreachable.orderings == 100


def test_target_se_with_checkpoints_resumes_to_the_same_stop(tmp_path, game_and_truth):
    game, _ = game_and_truth
    run = dict(seed=5, method=Method(estimator="chain", sampler="iid"), progress=False, compute=Compute(batch_size=16))
    target = 1.3 * shapley_modes(game, 8, Budget(orderings=3000), **run).se.max()  # stops ~ 1800
    straight = shapley_modes(game, 8, Budget(orderings=3000), target=TargetSE(target), **run)
    with pytest.raises(KeyboardInterrupt):
        shapley_modes(dies_after(game, 10), 8, Budget(orderings=3000), target=TargetSE(target),
                      checkpoint=Checkpoint(tmp_path / "run.ckpt", every=0), **run)
    resumed = shapley_modes(game, 8, Budget(orderings=3000), target=TargetSE(target),
                            checkpoint=Checkpoint(tmp_path / "run.ckpt", every=0, resume=True), **run)
    assert 10 * 2 < resumed.orderings == straight.orderings < 3000
    np.testing.assert_array_equal(resumed.modes, straight.modes)
    np.testing.assert_array_equal(resumed.se, straight.se)
