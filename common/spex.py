"""SPEX (spectral explainer, the `spectralexplain` package) on lesion games: sparse interactions of any order at
a cost that grows slowly with the number of players; and screening with SPEX, then refining the top pairs with
`interaction_modes` and its error bars.

    found = spex_interactions(game, 64, budget=8000, index="fsii")        # {(i, j): value per output element}
    table = sparse_interactions(game, 64, 20_000, spex_budget=8000, top=10).table()  # ranked, with errors

The game is evaluated once on SPEX's masks (1 = player intact); for a vector output the transform then runs on
every output element, or on the summaries that `reduce` makes, from those same values: D outputs do not cost
D times the game calls. Every random source is seeded, and numpy's global state is restored afterwards.
SPEX's decoding runs on one numba thread.
"""
from contextlib import contextmanager

import numpy as np

from .game import CheckedGame, player_labels

INDICES = ("fsii", "fbii", "stii", "sii", "bii", "fourier", "mobius")
MAX_OUTPUTS = 64  # transforms per call without a `reduce`


def _require():
    try:
        import spectralexplain
    except ImportError as error:
        raise ImportError("SPEX needs the optional 'interactions' packages: pip install -e '.[interactions]' "
                          "(spectralexplain 0.0.4; its module is `spectralexplain`)") from error
    return spectralexplain


@contextmanager
def one_numba_thread():
    """SPEX's BCH decoder (galois, numba) calls tiny parallel kernels thousands of times; beside another busy job
    their thread joins made a 5-output call 7x slower. One thread is as fast on a quiet machine."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


class Interactions(dict):
    """{tuple of player indices: value}, ranked; `.evaluations` is the number of distinct coalitions evaluated."""
    evaluations: int = 0


class _Replay:
    """The value function SPEX calls: evaluates the game once per distinct mask, then replays column `d`."""

    def __init__(self, game, reduce):
        self.game, self.reduce, self.cache, self.column, self.calls = game, reduce, {}, 0, 0

    def __call__(self, masks):
        masks = np.asarray(masks).astype(bool)
        todo = [m for m in {m.tobytes(): m for m in masks}.values() if m.tobytes() not in self.cache]
        if todo:
            values = self.game(np.stack(todo))
            values = values.reshape(len(todo), -1) if self.reduce is None else np.asarray(self.reduce(values), float)
            values = values.reshape(len(todo), -1)
            self.calls += 1
            for m, v in zip(todo, values):
                self.cache[m.tobytes()] = v
        return [float(self.cache[m.tobytes()][self.column]) for m in masks]


def spex_interactions(game, players, budget: int, *, index: str = "fsii", max_order: int = 2, seed: int = 0,
                      reduce=None, algorithm: str = "spex") -> Interactions:
    """{tuple of player indices: value}, ranked by |value| (the largest over outputs); a value is a float for
    a scalar game, else an array of the output's shape (or of the `reduce` summaries' shape). Its
    `.evaluations` counts the distinct coalitions the game was asked for.

    budget: SPEX's sample budget (its minimum depends on n and max_order; too small a budget is an error that
        says the minimum). index: one of fsii, fbii, stii, sii, bii, fourier, mobius. reduce: an optional
        callable (C, *output_shape) -> (C, k) for outputs too large to transform element by element.
    """
    spex = _require()
    if index not in INDICES:
        raise ValueError(f"unknown SPEX index {index!r}; choose one of {INDICES}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    labels = player_labels(players)
    n = len(labels)
    checked = CheckedGame(game, labels)
    probe = checked(np.ones((1, n), bool))
    shape = probe.shape[1:] if reduce is None else np.asarray(reduce(probe)).shape[1:]
    n_outputs = int(np.prod(shape))
    if reduce is None and n_outputs > MAX_OUTPUTS:
        raise ValueError(f"the game has {n_outputs} output elements; SPEX transforms each one: pass reduce=, a "
                         f"function (C, *output) -> (C, k) with k <= {MAX_OUTPUTS} summaries, e.g. a mean per image")
    replay = _Replay(checked, reduce)
    state = np.random.get_state()
    found = []
    try:
        with one_numba_thread():
            for column in range(n_outputs):
                replay.column = column
                np.random.seed(seed)  # the same masks for every output: values come from the cache after the first
                try:
                    explainer = spex.Explainer(replay, list(range(n)), sample_budget=int(budget), max_order=max_order,
                                               algorithm=algorithm)
                except AssertionError as error:  # spectralexplain states its minimum budget in an assert
                    raise ValueError(f"SPEX's budget for {n} players, order {max_order}: {error}") from None
                found.append(explainer.interactions(index).interactions)
    finally:
        np.random.set_state(state)
    keys = sorted({k for part in found for k in part if len(k) > 0}, key=lambda k: (len(k), k))
    values = {k: np.array([part.get(k, 0.0) for part in found]).reshape(shape) for k in keys}
    ranked = sorted(values, key=lambda k: -np.abs(values[k]).max())
    out = Interactions((tuple(int(i) for i in k), float(values[k]) if shape == () else values[k]) for k in ranked)
    out.evaluations = len(replay.cache)
    return out


def sparse_interactions(game, players, budget, *, spex_budget: int = 8000, top: int = 10, seed: int = 0,
                        index: str = "SII", spex_index: str = "fsii", reduce=None, **options):
    """Screen all pairs with SPEX within `spex_budget` of its samples, then estimate the `top` pairs' interaction
    modes (with standard errors) within `budget` evaluations (interaction_modes' budget): an InteractionResult
    whose .table() ranks them. The SPEX candidates and its values are in result.metadata["spex"]."""
    from .interactions import interaction_modes
    labels = player_labels(players)
    found = spex_interactions(game, labels, spex_budget, index=spex_index, max_order=2, seed=seed, reduce=reduce)
    pairs = [k for k in found if len(k) == 2][:top]
    if not pairs:
        raise ValueError("SPEX found no pairwise interactions within this budget; raise spex_budget")
    result = interaction_modes(game, labels, budget, pairs=pairs, seed=seed, index=index, **options)
    result.metadata["spex"] = dict(index=spex_index, budget=int(spex_budget),
                                   evaluations=found.evaluations,
                                   candidates=[[list(k), np.asarray(found[k]).tolist()] for k in pairs])
    return result
