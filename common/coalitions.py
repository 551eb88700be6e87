"""The engine's coalition cache: a run never sends the game a coalition it has already evaluated.

A coalition's key is its bits packed into 16 bytes: exact up to 128 players, beyond that a 128-bit hash of them
(two 64-bit hashes of the mixed packed words: two distinct coalitions share a key with probability about 2^-128).

The walk (`Layout`) cuts a run's units of work (sampler groups of orderings, slices of a coalition plan) into
blocks of whole units, and each block into segments of at most batch_size planned rows: a segment is one game
call's worth. Before the walk the engine plans every unit once, without evaluating anything (`Schedule`): a
coalition used in two or more segments is evaluated in the first of them and kept until its last use (within
`cache_bytes`; beyond, the most used are kept), and a segment evaluates once each coalition that the cache does
not hold. The schedule depends on the seed and the batch size alone, so a resumed run and a Ray shard make
exactly the calls of a straight run, and the evaluations a budget buys are counted before any is made.
"""
import math
from dataclasses import dataclass

import numpy as np

KEY = np.dtype("V16")
_CONSTANTS = np.random.default_rng(20230611).integers(0, 2 ** 63, size=(2, 2, 4096), dtype=np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, a bijection of 64-bit words in which every input bit flips half the output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def coalition_keys(coalitions: np.ndarray) -> np.ndarray:
    """(C,) 16-byte keys of (C, n) bool coalitions: the packed bits themselves up to 128 players; beyond, two
    64-bit hashes, each a sum over the packed words of a random odd multiple of the mixed word (a word mixed with
    its position's constant first), so that no pattern of differing bits cancels."""
    packed = np.packbits(np.asarray(coalitions, bool), axis=1)
    if packed.shape[1] <= KEY.itemsize:
        out = np.zeros((len(packed), KEY.itemsize), np.uint8)
        out[:, :packed.shape[1]] = packed
        return out.view(KEY).ravel()
    words = -(-packed.shape[1] // 8)
    if words > _CONSTANTS.shape[2]:
        raise ValueError(f"coalitions of {coalitions.shape[1]} players are more than the cache's keys cover "
                         f"({64 * _CONSTANTS.shape[2]})")
    padded = np.zeros((len(packed), 8 * words), np.uint8)
    padded[:, :packed.shape[1]] = packed
    w = padded.view(np.uint64)
    hashed = [(_mix(w + _CONSTANTS[k, 0, :words]) * (_CONSTANTS[k, 1, :words] | np.uint64(1))).sum(1, dtype=np.uint64)
              for k in range(2)]  # sums mod 2^64
    return np.ascontiguousarray(np.stack(hashed, 1)).view(KEY).ravel()


@dataclass(frozen=True)
class Layout:
    """Units of `rows_per_unit` planned rows each, in blocks of whole units that fill a batch (at least one unit),
    each block cut into segments of at most `batch_size` rows, from unit 0: a fixed grid, so that any run that
    starts on a block boundary makes the same segments."""
    rows_per_unit: int
    batch_size: int

    @property
    def block_units(self) -> int:
        return max(1, self.batch_size // self.rows_per_unit)

    @property
    def segments_per_block(self) -> int:
        return -(-self.block_units * self.rows_per_unit // self.batch_size)

    def blocks(self, start: int, stop: int):
        """(first unit, end unit) of each block covering units [start, stop); start must be on the grid."""
        if start % self.block_units:
            raise ValueError(f"unit {start} is not on the walk's grid of {self.block_units}-unit blocks")
        for first in range(start, stop, self.block_units):
            yield first, min(first + self.block_units, stop)

    def segments(self, first: int, end: int):
        """(first row, end row) of each segment of the block of units [first, end), rows counted in the block."""
        rows = (end - first) * self.rows_per_unit
        return [(a, min(a + self.batch_size, rows)) for a in range(0, rows, self.batch_size)]

    def segment_of(self, rows: np.ndarray) -> np.ndarray:
        """The global segment index of each global planned row."""
        block_rows = self.block_units * self.rows_per_unit
        block, within = np.divmod(rows, block_rows)
        return block * self.segments_per_block + within // self.batch_size

    def shards(self, units: int, n_shards: int, multiple: int = 1) -> list:
        """Contiguous (start, stop) ranges of units, each starting on the block grid and on a multiple of
        `multiple` units (an estimator's units that must stay in one shard)."""
        step = math.lcm(self.block_units, multiple)
        cuts = sorted({0, units} | {min(units, round(i * units / n_shards / step) * step) for i in range(n_shards)})
        return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def plan_keys(estimator, layout: Layout, start: int, stop: int) -> np.ndarray:
    """The keys of every row the estimator plans for units [start, stop), block by block (no evaluation)."""
    parts = [coalition_keys(estimator.plan(a, b)) for a, b in layout.blocks(start, stop)]
    return np.concatenate(parts) if parts else np.zeros(0, KEY)


# a walk whose planned rows outnumber its evaluations this many times over (chains that revisit the coalitions of
# few players) stops there: more orderings would cost the estimator's own time and no evaluations
MAX_ROWS_PER_EVALUATION = 4


class Schedule:
    """What a walk of units [start, stop) evaluates, from the keys of all its planned rows (`keys`, from row
    start x rows_per_unit on) and the keys the run already holds (`known`: the intact and empty coalitions, an
    estimator's prologue). Coalitions used in two or more segments are cached, the most used first, up to
    `cache_rows` of them; `evaluations` is what the walk sends the game, `capacity` the most values kept at once."""

    def __init__(self, keys: np.ndarray, layout: Layout, start: int, known: np.ndarray, cache_rows: int):
        rows = start * layout.rows_per_unit + np.arange(len(keys))
        segment = layout.segment_of(rows)
        unique, inverse = np.unique(keys, return_inverse=True)
        inverse = inverse.ravel()
        fresh = ~np.isin(unique, known)
        pairs = np.unique(np.stack([inverse, segment], 1), axis=0)  # (coalition, a segment it is used in)
        uses = np.bincount(pairs[:, 0], minlength=len(unique))
        first = np.full(len(unique), np.iinfo(np.int64).max)
        np.minimum.at(first, pairs[:, 0], pairs[:, 1])
        last = np.zeros(len(unique), np.int64)
        np.maximum.at(last, pairs[:, 0], pairs[:, 1])
        candidates = np.flatnonzero(fresh & (uses >= 2))
        keep = np.sort(candidates[np.lexsort((first[candidates], -uses[candidates]))][:max(int(cache_rows), 0)])
        kept = np.zeros(len(unique), bool)
        kept[keep] = True
        self.rows = len(keys)
        self.evaluations = int(fresh.sum() + (uses[fresh & ~kept] - 1).sum())
        self.keys, self.first, self.last = unique[keep], first[keep], last[keep]
        self.capacity = _most_at_once(self.first, self.last)

    def cached(self, segments: tuple | None = None) -> dict:
        """{key: last segment} of the cached coalitions first used in segments [a, b) (all of them for None) and
        last used there too: what one walk of those segments keeps between its segments."""
        pick = np.ones(len(self.keys), bool) if segments is None else \
            (self.first >= segments[0]) & (self.last < segments[1])
        raw = self.keys[pick].tobytes()
        return {raw[16 * i:16 * i + 16]: int(last) for i, last in enumerate(self.last[pick])}

    def crossing(self, cuts) -> np.ndarray:
        """The keys of cached coalitions used on both sides of a cut (the first segment of a Ray shard): a Ray
        run evaluates them once, before the shards."""
        cuts = np.asarray(sorted(cuts))
        side = lambda segment: np.searchsorted(cuts, segment, side="right")  # noqa: E731
        return self.keys[side(self.first) != side(self.last)]


def schedule_within(estimator, layout: Layout, budget: int, known: np.ndarray, cache_rows: int):
    """(units, Schedule): the most whole units of an estimator whose units are open (walked orderings) that the
    budget buys, the `known` coalitions already spent; 0 units where it buys none."""
    left = budget - len(known)
    rows = layout.rows_per_unit
    most = max(1, MAX_ROWS_PER_EVALUATION * budget // rows)
    keys = np.zeros(0, KEY)

    def schedule(k):  # keys are planned a whole block at a time, from the grid's start
        nonlocal keys
        if len(keys) < k * rows:
            stop = -(-k // layout.block_units) * layout.block_units
            keys = np.concatenate([keys, plan_keys(estimator, layout, len(keys) // rows, stop)])
        return Schedule(keys[:k * rows], layout, 0, known, cache_rows)

    good = min(max(left // rows, 0), most)  # no cache: every planned row an evaluation, surely within the budget
    best = schedule(good) if good else None
    if best is None:  # not even one unit without the cache: with it?
        trial = schedule(1)
        if trial.evaluations > left:
            return 0, None
        good, best = 1, trial
    bad = None
    while bad is None and good < most:  # double while the cache lets more units in
        trial_units = min(2 * good, most)
        trial = schedule(trial_units)
        if trial.evaluations <= left:
            good, best = trial_units, trial
        else:
            bad = trial_units
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        trial = schedule(middle)
        if trial.evaluations <= left:
            good, best = middle, trial
        else:
            bad = middle
    return good, best


def _most_at_once(first: np.ndarray, last: np.ndarray) -> int:
    """The most intervals [first, last] that overlap at one point."""
    if not len(first):
        return 0
    events = np.concatenate([np.stack([first, np.ones_like(first)], 1), np.stack([last + 1, -np.ones_like(last)], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]  # ends before starts at the same point
    return int(np.cumsum(events[:, 1]).max())


class ValueStore:
    """Values kept by key in preallocated rows, so that a checkpoint saves and loads them without copies: the run's
    `known` values (growable: the run adds them as it asks) or the walk's cached ones (the schedule's capacity)."""

    def __init__(self, capacity: int, width: int, dtype, growable: bool = False):
        self.keys = np.zeros(capacity, KEY)
        self.values = np.zeros((capacity, width), dtype)
        self.used = np.zeros(capacity, bool)
        self.growable, self.slot = growable, {}
        self.free = list(range(capacity - 1, -1, -1))

    def __len__(self):
        return len(self.slot)

    def key_array(self) -> np.ndarray:
        return self.keys[self.used]

    def get(self, key: bytes):
        at = self.slot.get(key)
        return None if at is None else self.values[at]

    def put(self, key: bytes, value) -> None:
        if key in self.slot:
            return
        if not self.free:
            if not self.growable:
                raise RuntimeError("the coalition cache is full, where its schedule said it would not be")
            old = len(self.used)
            grow = max(8, old)
            self.keys = np.concatenate([self.keys, np.zeros(grow, KEY)])
            self.values = np.concatenate([self.values, np.zeros((grow, self.values.shape[1]), self.values.dtype)])
            self.used = np.concatenate([self.used, np.zeros(grow, bool)])
            self.free = list(range(old + grow - 1, old - 1, -1))
        at = self.free.pop()
        self.keys[at] = np.frombuffer(key, KEY)[0]
        self.values[at] = value
        self.used[at] = True
        self.slot[key] = at

    def drop(self, key: bytes) -> None:
        at = self.slot.pop(key, None)
        if at is not None:
            self.used[at] = False
            self.free.append(at)

    def state(self, prefix: str) -> dict:
        return {f"{prefix}_keys": self.keys, f"{prefix}_values": self.values, f"{prefix}_used": self.used}

    def load(self, keys, values, used) -> None:
        """Take saved arrays: their own shapes for a growable store, this capacity's otherwise."""
        if self.growable:
            self.keys, self.values, self.used = np.array(keys), np.array(values), np.array(used)
        else:
            self.keys[...], self.values[...], self.used[...] = keys, values, used
        self.slot = {self.keys[i].tobytes(): int(i) for i in np.flatnonzero(self.used)}
        self.free = [int(i) for i in np.flatnonzero(~self.used)[::-1]]


class CachedGame:
    """Evaluates a segment's planned rows through the cache: each coalition that neither the run's `known` values
    nor the walk's `live` ones hold is evaluated once, in the order the plan first uses it (games that update
    consecutive rows cheaply, like the MLP's, keep their order); a coalition of `cached` is kept until its last
    segment. Returns the values of every planned row."""

    def __init__(self, game, known: ValueStore, live: ValueStore, cached: dict, output_shape: tuple):
        self.game, self.known, self.live, self.cached = game, known, live, cached
        self.output_shape, self.evaluations = tuple(output_shape), 0

    def segment(self, coalitions: np.ndarray, index: int) -> np.ndarray:
        keys = coalition_keys(coalitions)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        raw = unique.tobytes()
        key = lambda j: raw[16 * j:16 * j + 16]  # noqa: E731
        width = self.live.values.shape[1]
        values = np.empty((len(unique), width), self.live.values.dtype)
        todo = []
        for j in np.argsort(first, kind="stable"):
            held = self.known.get(key(j))
            if held is None:
                held = self.live.get(key(j))
            if held is None:
                todo.append(j)
            else:
                values[j] = held
        if todo:
            out = self.game(coalitions[first[todo]])
            values[todo] = out.reshape(len(todo), width)
            self.evaluations += len(todo)
            for j in todo:
                if key(j) in self.cached:
                    self.live.put(key(j), values[j])
        for j in range(len(unique)):
            if self.cached.get(key(j)) == index:  # its last use: let it go
                self.live.drop(key(j))
        return values[inverse.ravel()].reshape(len(coalitions), *self.output_shape)
