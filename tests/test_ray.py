"""The Ray backend on a local cluster with 2 CPU workers: same result as the local walk, and a worker that
dies mid-shard has its shard run again, never counted twice."""
import functools
import importlib.util

import numpy as np
import pytest

import games
from common import Budget, Compute, Method, Ray, shapley_modes
from common.coalitions import Layout

if importlib.util.find_spec("ray") is None:  # skip only when Ray is not installed; a broken Ray fails
    pytest.skip("Ray is not installed (pip install -e '.[dist]')", allow_module_level=True)
import ray  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(games)  # workers need not import tests/
    yield
    ray.shutdown()


def test_shards_cover_the_units_on_the_batch_grid():
    iid = Layout(12, 36).shards(100, 8)  # 3 units per block: shards start on multiples of 3
    assert len(iid) == 8 and iid[0][0] == 0 and iid[-1][1] == 100 and all(a % 3 == 0 for a, _ in iid)
    assert all(b == c for (_, b), (c, _) in zip(iid, iid[1:]))
    bounds = Layout(20, 30).shards(25, 4)  # a unit per block
    assert bounds[0][0] == 0 and bounds[-1][1] == 25 and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("sampler, budget, estimator", [
    ("iid", 400, "chain"), ("antithetic", Budget(orderings=40), "chain"), ("latin-antithetic", 480, "chain"),
    ("orthogonal", Budget(orderings=44), "chain"), ("orthogonal", 450, "chain-kernel"),
    ("orthogonal", Budget(orderings=88), "surrogate"), ("auto", 360, "kadd")])
def test_ray_equals_local(local_ray, sampler, budget, estimator):
    """The same modes and error bars, and the same evaluations: the coalitions kept across shard boundaries are
    evaluated once, before the shards."""
    factory = functools.partial(games.TanhGame, 12, 5)
    local = shapley_modes(factory(), 12, budget, seed=2, method=Method(sampler=sampler, estimator=estimator),
                          progress=False,
                          compute=Compute(batch_size=24))
    remote = shapley_modes(None, 12, budget, seed=2, method=Method(sampler=sampler, estimator=estimator),
                           progress=False, runner=Ray(factory, workers=2), compute=Compute(batch_size=24))
    assert remote.metadata["runner"] == "ray" and remote.metadata["estimator"] == estimator
    assert remote.evaluations == local.evaluations and remote.orderings == local.orderings
    np.testing.assert_allclose(remote.modes, local.modes, atol=1e-9, rtol=0)
    np.testing.assert_allclose(remote.se, local.se, atol=1e-9, rtol=0)


def test_dead_worker_shard_is_rerun_once(local_ray, tmp_path):
    marker = tmp_path / "died"
    factory = functools.partial(games.TanhGame, 12, 5, str(marker))
    local = shapley_modes(games.TanhGame(12, 5), 12, 480, seed=4, progress=False, compute=Compute(batch_size=24))
    remote = shapley_modes(None, 12, 480, seed=4, progress=False, runner=Ray(factory, workers=2),
                           compute=Compute(batch_size=24))
    assert marker.exists()  # a worker did die
    np.testing.assert_allclose(remote.modes, local.modes, atol=1e-9, rtol=0)
    np.testing.assert_allclose(remote.se, local.se, atol=1e-9, rtol=0)


def test_ray_needs_a_factory_and_no_checkpoint(local_ray):
    from common import Checkpoint
    with pytest.raises(ValueError, match="game_factory"):
        shapley_modes(games.TanhGame(), 12, 48, progress=False, runner=Ray())
    with pytest.raises(ValueError, match="checkpoints"):
        shapley_modes(games.TanhGame(), 12, 48, progress=False, runner=Ray(), checkpoint=Checkpoint("x"))


def test_interaction_modes_on_ray_equal_local(local_ray):
    from common import interaction_modes
    factory = functools.partial(games.TanhGame, 12, 5)
    local = interaction_modes(factory(), 12, 300, pairs=[(0, 1), (3, 7)], seed=3, progress=False,
                              compute=Compute(batch_size=32))
    remote = interaction_modes(None, 12, 300, pairs=[(0, 1), (3, 7)], seed=3, progress=False,
                               runner=Ray(factory, workers=2), compute=Compute(batch_size=32))
    assert remote.evaluations == local.evaluations
    np.testing.assert_allclose(remote.modes, local.modes, atol=1e-9, rtol=0)
    np.testing.assert_allclose(remote.se, local.se, atol=1e-9, rtol=0)
    np.testing.assert_allclose(remote.first_order.modes, local.first_order.modes, atol=1e-9, rtol=0)
