"""Shard the orderings over Ray actors, each holding its own copy of the game (and model; one GPU each
where the cluster has GPUs), and merge their accumulators with the parallel mean/variance update.

A worker that dies mid-shard is replaced and its shard is run again from the start; partial results are
only merged for shards that finished, once each, in shard order, so the result does not depend on timing.
"""
import numpy as np
from tqdm.auto import tqdm

from .running_stats import RunningModes


class _Worker:
    def __init__(self, game_factory, labels, dtype):
        from .shapley import _CheckedGame
        self.game = _CheckedGame(game_factory(), labels, dtype)
        self.labels, self.dtype = labels, dtype

    def run(self, orderings, first_ordering, intact, sampler, batch_size):
        from .shapley import walk_orderings
        stats = RunningModes(len(self.labels), intact.shape, self.dtype)
        walk_orderings(self.game, orderings, intact, stats, sampler, batch_size, progress=False,
                       first_ordering=first_ordering)
        return stats.count, stats.mean, stats.m2


def shard_bounds(n_orderings: int, n_players: int, batch_size: int, sampler: str, n_shards: int) -> list:
    """Contiguous shards of orderings that start on the walk's batch grid (and on antithetic pairs)."""
    step = max(1, batch_size // n_players)
    if sampler == "antithetic":
        step += step % 2
    cuts = sorted({0, n_orderings} | {min(n_orderings, round(i * n_orderings / n_shards / step) * step)
                                      for i in range(n_shards)})
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def walk_on_ray(game_factory, labels, orderings, intact, stats: RunningModes, sampler, batch_size, dtype, *,
                n_workers=None, address=None, progress=True, shards_per_worker=4, max_failures=None):
    import ray

    if game_factory is None:
        raise ValueError("backend='ray' needs game_factory: a picklable callable that builds the game on each worker "
                         "(so that every worker loads its own copy of the model)")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    resources = ray.cluster_resources()
    use_gpu = resources.get("GPU", 0) >= 1
    if n_workers is None:
        n_workers = int(resources.get("GPU", 0)) if use_gpu else max(1, int(resources.get("CPU", 1)))
    Worker = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=0)(_Worker)
    n = len(labels)
    shards = shard_bounds(len(orderings), n, batch_size, sampler, n_workers * shards_per_worker)
    max_failures = 3 * len(shards) if max_failures is None else max_failures
    todo, done, running, failures = list(range(len(shards))), {}, {}, 0
    idle = [Worker.remote(game_factory, labels, dtype) for _ in range(min(n_workers, len(shards)))]
    with tqdm(total=orderings.size, unit="coalition", unit_scale=True, disable=not progress,
              desc=f"Shapley modes on {len(idle)} Ray workers") as bar:
        while todo or running:
            while todo and idle:
                shard, actor = todo.pop(0), idle.pop()
                a, b = shards[shard]
                running[actor.run.remote(orderings[a:b], a, intact, sampler, batch_size)] = (shard, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            shard, actor = running.pop(ready[0])
            try:
                done[shard] = ray.get(ready[0])
                idle.append(actor)
                bar.update((shards[shard][1] - shards[shard][0]) * n)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as error:
                failures += 1
                if failures > max_failures:
                    raise RuntimeError(f"Ray workers died {failures} times; giving up") from error
                todo.insert(0, shard)  # run the whole shard again on a fresh worker; nothing of it was merged
                idle.append(Worker.remote(game_factory, labels, dtype))
    for shard in sorted(done):
        part = RunningModes(n, intact.shape, dtype)
        part.count, part.mean, part.m2 = (np.array(x) for x in done[shard])
        stats.merge(part)
