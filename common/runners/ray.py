"""The Ray runner: shards of orderings on Ray actors, each holding its own copy of the game (and model; one GPU
each where the cluster has GPUs); the shards' estimator states are merged in shard order, so the result does
not depend on timing. An actor that dies is restarted by Ray (it rebuilds its game) and its task is run again
(`max_restarts`, `max_task_retries`); a shard's state is returned once, when it is complete, so nothing is
counted twice.
"""
from tqdm.auto import tqdm

from ..game import CheckedGame
from ..walk import shard_bounds
from .local import walk


class ShardWorker:
    def __init__(self, game_factory, labels, dtype, estimator_factory):
        self.game = CheckedGame(game_factory(), labels, dtype)
        self.estimator_factory = estimator_factory

    def run(self, index, orderings, start, stop, batch_size):
        estimator = self.estimator_factory()
        before = self.game.coalitions
        walk(self.game, estimator, orderings, batch_size, start=start, stop=stop)
        return index, estimator.state(), self.game.coalitions - before


def run_ray(game_factory, labels, estimator_factory, estimator, orderings, *, batch_size: int, dtype,
            n_workers=None, address=None, progress=True, shards_per_worker: int = 4, max_restarts: int = 3,
            desc: str = "Shapley modes") -> int:
    """Walk every ordering on Ray; merges into `estimator` and returns the coalitions the workers evaluated."""
    import ray
    from ray.util import ActorPool

    if game_factory is None:
        raise ValueError("Ray needs a game_factory: a picklable callable that builds the game on each worker "
                         "(so that every worker loads its own copy of the model)")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    resources = ray.cluster_resources()
    use_gpu = resources.get("GPU", 0) >= 1
    if n_workers is None:
        n_workers = int(resources.get("GPU", 0)) if use_gpu else max(1, int(resources.get("CPU", 1)))
    shards = shard_bounds(len(orderings), estimator.rows_per_ordering, batch_size, orderings.group,
                          n_workers * shards_per_worker)
    Worker = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=max_restarts,
                        max_task_retries=max_restarts)(ShardWorker)
    actors = [Worker.remote(game_factory, labels, dtype, estimator_factory) for _ in range(min(n_workers, len(shards)))]
    shared = ray.put(orderings)  # sent to the object store once, not once per shard
    done, coalitions = {}, 0
    with tqdm(total=len(orderings) * estimator.rows_per_ordering, unit="coalition", unit_scale=True,
              disable=not progress, desc=f"{desc} on {len(actors)} Ray workers", dynamic_ncols=True) as bar:
        pool = ActorPool(actors)
        tasks = pool.map_unordered(lambda actor, i: actor.run.remote(i, shared, *shards[i], batch_size),
                                   range(len(shards)))
        for index, state, evaluated in tasks:
            done[index] = state
            coalitions += evaluated
            bar.update((shards[index][1] - shards[index][0]) * estimator.rows_per_ordering)
    for index in sorted(done):
        part = estimator_factory()
        part.load_state(done[index])
        estimator.merge(part)
    return coalitions
