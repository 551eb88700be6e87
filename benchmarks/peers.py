"""The field's Shapley-value approximators (shapiq 1.4.1) on our vector-valued lesion games, for the benchmarks.

shapiq's games are scalar, so a vector game runs one approximator per output element, every one with the same
seed and so the same coalitions, over one cache: each distinct coalition is evaluated once, for every element.
What a user pays is then the cache's size (distinct coalitions) and the game's time; `Cached` counts both, and
the rows the approximators sent.

    pip install -e '.[bench]'
"""
import importlib.util
import time

import numpy as np

# name -> (shapiq class, keyword arguments): shapiq 1.4.1's approximators of first-order Shapley values (its
# SV_APPROXIMATORS less SPEX and ProxySPEX, which look for sparse interactions)
PEERS = {"shapiq-kernelshap": ("KernelSHAP", dict(pairing_trick=True)),
         "shapiq-kadd": ("kADDSHAP", dict(max_order=2)),
         "shapiq-svarm": ("SVARM", dict()),
         "shapiq-permutation": ("PermutationSamplingSV", dict()),
         "shapiq-stratified": ("StratifiedSamplingSV", dict()),
         "shapiq-owen": ("OwenSamplingSV", dict()),
         "shapiq-unbiased-kernelshap": ("UnbiasedKernelSHAP", dict())}


def available() -> bool:
    return importlib.util.find_spec("shapiq") is not None


class Cached:
    """A vector game that counts the rows asked, the distinct coalitions among them and the seconds spent in the
    game and in this wrapper's bookkeeping (which no method is charged for: a method's own time is the run's wall
    time less these). Calls for the whole output (our engine's) evaluate every row, as a run does; calls for one
    element (shapiq's) are served from a cache of each distinct coalition's values at the `keep` elements (default
    all), so that every element's approximator pays for a coalition once."""

    CALL_ROWS = 512  # coalitions per game call

    def __init__(self, game, keep=None):
        self.game, self.keep, self.values, self.seen, self.rows, self.seconds = game, keep, {}, set(), 0, 0.0
        self.cost_per_coalition = getattr(game, "cost_per_coalition", None)  # what auto weighs its fits against

    def __call__(self, coalitions: np.ndarray, element: int | None = None) -> np.ndarray:
        """The values of the coalitions (C, output), or of one output element (C,)."""
        started = time.perf_counter()
        coalitions = np.atleast_2d(np.asarray(coalitions, bool))
        self.rows += len(coalitions)
        keys = [row.tobytes() for row in coalitions]
        self.seen.update(keys)
        if element is None:
            out = np.asarray(self.game(coalitions), np.float64).reshape(len(coalitions), -1)
        else:
            new = {key: i for i, key in enumerate(keys) if key not in self.values}  # a row of each new coalition
            fresh, rows = list(new), coalitions[list(new.values())]
            for a in range(0, len(rows), self.CALL_ROWS):  # shapiq asks for its whole budget at once
                values = np.asarray(self.game(rows[a:a + self.CALL_ROWS]), np.float64)
                values = values.reshape(len(values), -1)
                self.values.update(zip(fresh[a:a + self.CALL_ROWS],
                                       values if self.keep is None else values[:, self.keep]))
            column = element if self.keep is None else self.keep.index(element)
            out = np.array([self.values[key][column] for key in keys])
        self.seconds += time.perf_counter() - started
        return out

    @property
    def distinct(self) -> int:
        return len(self.seen)


def peer_modes(name: str, game, n_players: int, budget: int, seed: int, elements=None):
    """(modes (n, *output), Cached) of shapiq's approximator `name` with `budget` coalitions per output element;
    with `elements` (flat indices), on those elements only (the others are NaN)."""
    import shapiq
    cls, kwargs = PEERS[name]
    cached = Cached(game, keep=None if elements is None else [int(e) for e in elements])
    shape = np.shape(cached(np.ones((1, n_players), bool)))[1:]
    elements = range(int(np.prod(shape))) if elements is None else elements
    modes = np.full((n_players, int(np.prod(shape))), np.nan)
    for e in elements:
        approximator = getattr(shapiq, cls)(n_players, random_state=seed, **kwargs)
        values = approximator.approximate(budget, lambda c, *_, e=e: cached(c, int(e)))
        modes[:, e] = [values[(i,)] for i in range(n_players)]
    return modes.reshape(n_players, *shape), cached
