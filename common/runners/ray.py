"""The Ray runner: shards of units on Ray actors, each holding its own copy of the game (and model; one GPU each
where the cluster has GPUs); the shards' estimator states are merged in shard order, so the result does not
depend on timing. The coalitions that the cache keeps across a shard boundary are evaluated once, here, before
the shards, and every shard gets their values: a Ray run evaluates what a local one does. An actor that dies is
restarted by Ray (it rebuilds its game) and its task is run again (`max_restarts`, `max_task_retries`); a shard's
state is returned once, when it is complete, so nothing is counted twice.
"""
import copy

import numpy as np
from tqdm.auto import tqdm

from ..coalitions import CachedGame, Layout, ValueStore, coalition_keys
from ..game import CheckedGame
from .base import Runner
from .local import walk_units


class ShardWorker:
    def __init__(self, game_factory, labels, dtype):
        self.game = CheckedGame(game_factory(), labels, dtype)

    def run(self, index, template, known, cached, start, stop, batch_size, output_shape):
        estimator = copy.deepcopy(template)  # the object store's arrays are read-only
        layout = Layout(estimator.rows_per_unit, batch_size)
        store = ValueStore(0, known[1].shape[1], known[1].dtype, growable=True)
        store.load(*known)
        live = ValueStore(len(cached), store.values.shape[1], store.values.dtype)
        evaluator = CachedGame(self.game, store, live, cached, output_shape)
        walk_units(evaluator, estimator, layout, start, stop)
        return index, estimator.state(), evaluator.evaluations


class RayRunner(Runner):
    def __init__(self, game, *, game_factory, labels, workers=None, address=None, shards_per_worker: int = 4,
                 max_restarts: int = 3, **common):
        super().__init__(game, **common)
        if game_factory is None:
            raise ValueError("Ray needs a game_factory: a picklable callable that builds the game on each worker "
                             "(so that every worker loads its own copy of the model)")
        self.factory, self.labels, self.workers, self.address = game_factory, labels, workers, address
        self.shards_per_worker, self.max_restarts = shards_per_worker, max_restarts

    def walk(self, estimator):
        import ray
        from ray.util import ActorPool

        layout = self.plan_walk(estimator)
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        resources = ray.cluster_resources()
        use_gpu = resources.get("GPU", 0) >= 1
        workers = self.workers
        if workers is None:
            workers = int(resources.get("GPU", 0)) if use_gpu else max(1, int(resources.get("CPU", 1)))
        shards = layout.shards(estimator.units, workers * self.shards_per_worker, estimator.shard_multiple)
        cuts = [int(layout.segment_of(np.array([a * layout.rows_per_unit]))[0]) for a, _ in shards]
        bounds = cuts[1:] + [np.iinfo(np.int64).max]
        if self.schedule is not None:  # the cached coalitions that cross a shard boundary: evaluated once, here
            crossing = self.schedule.crossing(cuts[1:])
            if len(crossing):
                self.evaluate(self.coalitions_of(estimator, layout, crossing))
        template = copy.deepcopy(estimator)  # fresh: every shard starts from it
        known = (self.known.keys, self.known.values, self.known.used)
        Worker = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=self.max_restarts,
                            max_task_retries=self.max_restarts)(ShardWorker)
        actors = [Worker.remote(self.factory, self.labels, self.dtype) for _ in range(min(workers, len(shards)))]
        shared_template, shared_known = ray.put(template), ray.put(known)  # to the object store once
        cached = [{} if self.schedule is None else self.schedule.cached((a, b)) for a, b in zip(cuts, bounds)]
        done, evaluations = {}, 0
        with tqdm(total=len(shards), unit="shard", disable=not self.progress,
                  desc=f"{self.desc} on {len(actors)} Ray workers", dynamic_ncols=True) as bar:
            pool = ActorPool(actors)
            tasks = pool.map_unordered(
                lambda actor, i: actor.run.remote(i, shared_template, shared_known, cached[i], *shards[i],
                                                  self.batch_size, self.output_shape), range(len(shards)))
            for index, state, spent in tasks:
                done[index] = state
                evaluations += spent
                bar.update(1)
        for index in sorted(done):
            part = copy.deepcopy(template)
            part.load_state(done[index])
            estimator.merge(part)
        self.evaluations += evaluations
        self.units = estimator.units

    @staticmethod
    def coalitions_of(estimator, layout: Layout, keys: np.ndarray) -> np.ndarray:
        """The coalitions behind cached keys, found by planning the blocks again (keys may be hashes)."""
        found = {}
        for first, end in layout.blocks(0, estimator.units):
            rows = estimator.plan(first, end)
            block = coalition_keys(rows)
            for r in np.flatnonzero(np.isin(block, keys)):
                found.setdefault(block[r].tobytes(), rows[r])
            if len(found) == len(keys):
                break
        return np.stack(list(found.values()))
