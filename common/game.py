"""The engine's view of a game: a callable on a boolean coalition matrix (C, n), True = player intact, returning
one row per coalition, shape (C, *output_shape), numpy or torch. `CheckedGame` converts the output to numpy,
checks it and counts what was evaluated."""
import numpy as np

DEFAULT_BATCH_ELEMENTS = 2 ** 24  # output elements per game call when neither caller nor game picks a batch


def player_labels(players) -> list:
    """n labels from an int n or a sequence of distinct labels (at least 2)."""
    if isinstance(players, (int, np.integer)) and not isinstance(players, (bool, np.bool_)):
        labels = list(range(int(players)))
    elif isinstance(players, (str, bytes, bool, np.bool_)) or not hasattr(players, "__iter__"):
        raise TypeError(f"players must be an int or a sequence of labels, got {players!r}")
    else:
        labels = list(players)
    if len(labels) < 2:
        raise ValueError(f"need at least 2 players, got {len(labels)}")
    if len(set(map(repr, labels))) != len(labels):
        raise ValueError("player labels must be distinct")
    return labels


def describe(coalition: np.ndarray, labels: list, limit: int = 8) -> str:
    lesioned = [labels[i] for i in np.flatnonzero(~coalition)]
    shown = ", ".join(map(repr, lesioned[:limit])) + (", ..." if len(lesioned) > limit else "")
    return f"the coalition with {len(lesioned)} lesioned player(s) [{shown}]"


class CheckedGame:
    """Calls the game, converts its output to numpy `dtype`, checks shape and finiteness, counts calls."""

    def __init__(self, game, labels, dtype=np.float64):
        if not callable(game):
            raise TypeError(f"game must be callable on a (C, n) bool array, got {type(game).__name__}")
        self.game, self.labels, self.dtype, self.output_shape = game, list(labels), np.dtype(dtype), None
        self.calls = self.coalitions = 0
        self.batch_size = getattr(game, "batch_size", None)

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        out = self.game(coalitions)
        self.calls += 1
        self.coalitions += len(coalitions)
        if hasattr(out, "detach"):  # a torch tensor, possibly on a GPU
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if np.iscomplexobj(out):
            raise TypeError(f"the game returned complex values ({out.dtype}); Shapley modes are computed for real "
                            "outputs: return the real and imaginary parts as separate elements")
        if not (np.issubdtype(out.dtype, np.number) or out.dtype == np.bool_):
            raise TypeError(f"the game returned {out.dtype} values; it must return numbers")
        out = out.astype(self.dtype, copy=False)
        if out.ndim == 0 or out.shape[0] != len(coalitions):
            raise ValueError(f"the game returned shape {out.shape} for {len(coalitions)} coalitions; "
                             f"it must return one row per coalition, shape (C, *output_shape)")
        if self.output_shape is None:
            self.output_shape = out.shape[1:]
        elif out.shape[1:] != self.output_shape:
            raise ValueError(f"the game returned rows of shape {out.shape[1:]} where earlier calls returned "
                             f"{self.output_shape}")
        bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"the game returned NaN or inf for {describe(coalitions[row], self.labels)}")
        return out


def batch_size_for(batch_size, game: CheckedGame, output_size: int) -> int:
    """Coalitions per game call: the caller's, else the game's own `batch_size`, else by output size."""
    if batch_size is None:
        batch_size = game.batch_size
    if batch_size is None:
        batch_size = int(np.clip(DEFAULT_BATCH_ELEMENTS // max(output_size, 1), 1, 4096))
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)
