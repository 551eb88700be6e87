"""What every runner gives an estimator (common/estimators/base.py): `evaluate(coalitions)` through the run's
store of known values, and the walk's schedule (common/coalitions.py): how many units a budget buys, which
coalitions are kept between segments. Local, Ray and msapy runners differ only in how they walk."""
import numpy as np

from ..coalitions import Layout, Schedule, ValueStore, coalition_keys, plan_keys, schedule_within


class Runner:
    oracle = False  # msapy's own walk computes the chain mean itself

    def __init__(self, game, *, budget: int, batch_size: int, dtype, cache_bytes: int, progress: bool = False,
                 desc: str = "Shapley modes"):
        self.game, self.budget, self.batch_size, self.dtype = game, int(budget), int(batch_size), np.dtype(dtype)
        self.cache_bytes, self.progress, self.desc = int(cache_bytes), progress, desc
        self.known = None      # ValueStore of every coalition evaluated outside the walk (intact, empty, prologues)
        self.output_shape = None
        self.evaluations = 0   # what this runner sent the game
        self.units = None      # units walked
        self.schedule = None

    # ---------------------------------------------------------------- evaluate
    def evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        """The values of (C, n) coalitions, each distinct one not yet known evaluated once (in batches)."""
        coalitions = np.asarray(coalitions, bool)
        keys = coalition_keys(coalitions)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        raw = unique.tobytes()
        todo = [j for j in np.argsort(first, kind="stable")
                if self.known is None or self.known.get(raw[16 * j:16 * j + 16]) is None]
        for a in range(0, len(todo), self.batch_size):
            part = todo[a:a + self.batch_size]
            values = self.game(coalitions[first[part]])
            self.evaluations += len(part)
            if self.known is None:
                self.output_shape = values.shape[1:]
                self.known = ValueStore(0, int(np.prod(self.output_shape, dtype=np.int64)), self.dtype, growable=True)
            for j, value in zip(part, values.reshape(len(part), -1)):
                self.known.put(raw[16 * j:16 * j + 16], value)
        rows = np.stack([self.known.get(raw[16 * j:16 * j + 16]) for j in range(len(unique))])
        return rows[inverse.ravel()].reshape(len(coalitions), *self.output_shape)

    # ---------------------------------------------------------------- the walk's schedule
    @property
    def width(self) -> int:
        return self.known.values.shape[1]

    def cache_rows(self) -> int:
        return self.cache_bytes // max(self.width * self.dtype.itemsize, 1)

    def plan_walk(self, estimator) -> Layout:
        """Fix the estimator's units (as many as the budget buys, where they are open) and the walk's schedule."""
        layout = Layout(estimator.rows_per_unit, self.batch_size)
        known = self.known.key_array()
        if estimator.distinct_plan:
            self.schedule = None
        elif estimator.units is None:
            units, self.schedule = schedule_within(estimator, layout, self.budget, known, self.cache_rows())
            if units == 0:
                raise ValueError(f"a budget of {self.budget:,} evaluations buys no unit of the {estimator.name} "
                                 f"estimator ({estimator.rows_per_unit} coalitions a unit); give more")
            estimator.units = units
        else:
            self.schedule = Schedule(plan_keys(estimator, layout, 0, estimator.units), layout, 0, known,
                                     self.cache_rows())
        return layout

    def planned_evaluations(self, estimator) -> int:
        """What the walk will send the game, for the progress bar."""
        if self.schedule is not None:
            return self.schedule.evaluations
        return estimator.units * estimator.rows_per_unit

    def live_store(self, capacity: int) -> ValueStore:
        return ValueStore(capacity, self.width, self.dtype)
