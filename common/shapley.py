"""Monte Carlo Shapley modes of lesion games: the engine.

A game is a callable on a boolean coalition matrix: game(coalitions) with coalitions of shape (C, n),
True = player intact, returns an array (numpy or torch) of shape (C, *output_shape).

For every sampled ordering of the players we walk the chain the way msapy's lazy mode does: start from
the intact network and lesion the players one by one; the drop in value at each step is that player's
marginal contribution. The chain's coalitions are evaluated many at a time, and a per-player running mean
and variance (Welford) is kept, so memory is O(n x output size) however many orderings are walked.
"""
import signal
import threading
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .orderings import SAMPLERS, sample_orderings
from .result import ShapleyResult
from .running_stats import RunningModes

ENGINES = ("batched", "msapy")
BACKENDS = ("local", "ray")
_DEFAULT_BATCH_ELEMENTS = 2 ** 24  # output elements per game call when neither caller nor game picks a batch


def _players(players) -> list:
    if isinstance(players, (int, np.integer)):
        labels = list(range(int(players)))
    else:
        labels = list(players)
    if len(labels) < 2:
        raise ValueError(f"need at least 2 players, got {len(labels)}")
    if len(set(map(repr, labels))) != len(labels):
        raise ValueError("player labels must be distinct")
    return labels


def _describe(coalition: np.ndarray, labels: list, limit: int = 8) -> str:
    lesioned = [labels[i] for i in np.flatnonzero(~coalition)]
    shown = ", ".join(map(repr, lesioned[:limit])) + (", ..." if len(lesioned) > limit else "")
    return f"the coalition with {len(lesioned)} lesioned player(s) [{shown}]"


class _CheckedGame:
    """Calls the game, converts its output to numpy and checks its shape and finiteness."""

    def __init__(self, game, labels, dtype):
        self.game, self.labels, self.dtype, self.output_shape = game, labels, dtype, None

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        out = self.game(coalitions)
        if hasattr(out, "detach"):  # a torch tensor, possibly on a GPU
            out = out.detach().cpu().numpy()
        out = np.asarray(out, dtype=self.dtype)
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
            raise ValueError(f"the game returned NaN or inf for {_describe(coalitions[row], self.labels)}")
        return out


def _batch_size(batch_size, game, output_size: int) -> int:
    if batch_size is None:
        batch_size = getattr(game, "batch_size", None)
    if batch_size is None:
        batch_size = int(np.clip(_DEFAULT_BATCH_ELEMENTS // max(output_size, 1), 1, 4096))
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return int(batch_size)


def shapley_modes(game, players, n_permutations: int = 1000, seed: int = 1, sampler: str = "iid",
                  batch_size: int | None = None, engine: str = "batched", dtype=np.float64,
                  progress: bool = True, checkpoint=None, checkpoint_every: float = 60.0, resume: bool = False,
                  fingerprint: str | None = None, backend: str = "local", n_workers: int | None = None,
                  address: str | None = None, game_factory=None) -> ShapleyResult:
    """Estimate every player's Shapley mode of `game` from `n_permutations` sampled orderings.

    players: an int n, or n labels (e.g. (layer, expert) tuples).
    sampler: "iid" (msapy's orderings for this seed) or "antithetic" (each ordering followed by its reverse).
    batch_size: coalitions per game call; default: the game's own `batch_size` attribute, else by output size.
    engine: "batched" (ours) or "msapy" (msapy.interface, lazy, one coalition per call; no error bars).
    dtype: accumulator precision; float32 halves the memory of very large outputs.
    checkpoint: a file to save the state to every `checkpoint_every` seconds and on Ctrl-C; with resume=True
        an existing checkpoint is continued (it must match this configuration and `fingerprint`, e.g. a hash
        of the model's weights from common.checkpoint.fingerprint). The result is bit-identical to a run
        that was never interrupted.
    backend: "local" or "ray" (shards of orderings on `n_workers` Ray actors, each building its own game
        with `game_factory()`; `address` of an existing cluster, else a local one).
    """
    labels = _players(players)
    n = len(labels)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "ray" and checkpoint is not None:
        raise ValueError("checkpoints are written by the local backend; with backend='ray', rerun failed shards instead")
    if game is None and game_factory is not None:
        game = game_factory()
    if not callable(game):
        raise TypeError(f"game must be callable on a (C, n) bool array, got {type(game).__name__}")
    orderings = sample_orderings(n, int(n_permutations), seed, sampler)
    checked = _CheckedGame(game, labels, dtype)
    intact, lesioned = checked(np.stack([np.ones(n, bool), np.zeros(n, bool)]))
    batch_size = _batch_size(batch_size, game, intact.size)
    started = time.perf_counter()
    if engine == "msapy":
        modes = _msapy_modes(checked, labels, orderings, intact, progress)
        se = np.full_like(modes, np.nan)
    else:
        stats = RunningModes(n, intact.shape, dtype)
        if backend == "ray":
            from .ray_backend import walk_on_ray
            walk_on_ray(game_factory, labels, orderings, intact, stats, sampler, batch_size, dtype,
                        n_workers=n_workers, address=address, progress=progress)
        else:
            config = dict(players=[repr(p) for p in labels], n_permutations=int(n_permutations), seed=seed,
                          sampler=sampler, dtype=np.dtype(dtype).name, output_shape=list(intact.shape),
                          batch_size=batch_size, fingerprint=fingerprint)
            _walk_with_checkpoints(checked, orderings, intact, stats, sampler, batch_size, progress,
                                   checkpoint, checkpoint_every, resume, config)
        se = stats.standard_error(consume=True)
        modes = stats.mean
    seconds = time.perf_counter() - started
    return ShapleyResult(modes=modes, se=se, players=labels, n_permutations=int(n_permutations), intact=intact,
                         lesioned=lesioned, seed=seed, sampler=sampler, engine=engine,
                         metadata=dict(seconds=seconds, coalitions=int(orderings.size), backend=backend,
                                       coalitions_per_s=orderings.size / max(seconds, 1e-12)))


def _walk_with_checkpoints(game, orderings, intact, stats, sampler, batch_size, progress, checkpoint,
                           checkpoint_every, resume, config):
    """Walk the orderings locally; save the state every `checkpoint_every` seconds and on Ctrl-C."""
    if checkpoint is None:
        walk_orderings(game, orderings, intact, stats, sampler, batch_size, progress)
        return
    done = 0
    if Path(checkpoint).exists():
        if not resume:
            raise FileExistsError(f"checkpoint {checkpoint} exists: resume it (--resume / resume=True) or delete it")
        done = load_checkpoint(checkpoint, config, stats)
    interrupted, last = [], [time.monotonic()]

    def on_sigint(signum, frame):  # finish the batch in flight, save, then stop
        interrupted.append(signum)

    def after_batch(walked):
        if interrupted or time.monotonic() - last[0] >= checkpoint_every:
            save_checkpoint(checkpoint, config, walked, stats)
            last[0] = time.monotonic()
        if interrupted:
            raise KeyboardInterrupt(f"stopped after {walked} orderings; state saved to {checkpoint}")

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    try:
        walk_orderings(game, orderings[done:], intact, stats, sampler, batch_size, progress, first_ordering=done,
                       after_batch=lambda k: after_batch(done + k))
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _ranks(orderings: np.ndarray) -> np.ndarray:
    """rank[j, p] = position of player p in ordering j."""
    rank = np.empty_like(orderings)
    np.put_along_axis(rank, orderings, np.arange(orderings.shape[1])[None, :], axis=1)
    return rank


def batches(n_orderings: int, n: int, batch_size: int, sampler: str):
    """The walk's layout: (first chain row, end row, orderings complete after it) per game call.

    Batches hold whole orderings (k = batch_size // n of them, even for antithetic pairs) or, when an
    ordering is longer than a batch, consecutive slices of one ordering. The layout depends only on where
    the walk starts on this grid, so a resumed or sharded walk evaluates exactly the same batches.
    """
    per_batch = batch_size // n
    if per_batch >= 2 and sampler == "antithetic":
        per_batch -= per_batch % 2
    if per_batch >= 1:
        for j in range(0, n_orderings, per_batch):
            end = min(j + per_batch, n_orderings)
            yield j * n, end * n, end
    else:
        for j in range(n_orderings):
            for start in range(0, n, batch_size):
                end = min(start + batch_size, n)
                yield j * n + start, j * n + end, j + 1 if end == n else j


def walk_orderings(game, orderings: np.ndarray, intact: np.ndarray, stats: RunningModes, sampler: str,
                   batch_size: int, progress: bool = True, first_ordering: int = 0, after_batch=None) -> None:
    """Walk every ordering's lesion chain and fold each player's marginal contributions into `stats`.

    `first_ordering` is the global index of orderings[0] (antithetic pairs start on even indices).
    `after_batch(k)` is called whenever the first k orderings are complete (pairs, for antithetic)."""
    n_orderings, n = orderings.shape
    rank = _ranks(orderings)  # the coalition of chain row (j, step) keeps players ranked after step
    pending = np.zeros_like(stats.mean) if sampler == "antithetic" else None  # first half of a pair
    previous = intact  # value of the chain's previous coalition
    with tqdm(total=n_orderings * n, unit="coalition", unit_scale=True, disable=not progress, smoothing=0.05,
              desc="Shapley modes") as bar:
        for start, end, complete in batches(n_orderings, n, batch_size, sampler):
            rows = np.arange(start, end)
            which, step = np.divmod(rows, n)
            values = game(rank[which] > step[:, None])
            before = np.concatenate([previous[None], values[:-1]])
            before[step == 0] = intact
            contributions = before - values
            previous = values[-1]
            # one segment per ordering inside this batch: each player appears at most once in a segment
            for j in np.unique(which):
                seg = which == j
                players = orderings[j, step[seg]]
                if sampler == "antithetic" and (first_ordering + j) % 2 == 0:
                    pending[players] = contributions[seg]
                elif sampler == "antithetic":
                    stats.update(players, (pending[players] + contributions[seg]) / 2)
                else:
                    stats.update(players, contributions[seg])
            bar.update(len(rows))
            if after_batch is not None and end % n == 0 and (sampler != "antithetic" or (first_ordering + complete) % 2 == 0):
                after_batch(complete)


def _msapy_modes(checked, labels, orderings, intact, progress) -> np.ndarray:
    """msapy.interface in lazy mode, one coalition per objective call, on our orderings."""
    import warnings

    from msapy import msa

    n = len(labels)
    space = [tuple(int(i) for i in o) for o in orderings]
    if len(set(space)) < len(space):
        warnings.warn("msapy walks each distinct ordering once (it keeps them in a set): the orderings "
                      "drawn here repeat, so its estimate averages fewer orderings than asked", stacklevel=3)

    def objective(lesioned_players):
        coalition = np.ones((1, n), bool)
        coalition[0, list(lesioned_players)] = False
        out = checked(coalition)[0]
        return out if out.ndim else float(out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "a permutation space is given": that is the point
        table = msa.interface(n_permutations=len(space), elements=list(range(n)), objective_function=objective,
                              permutation_space=space, lazy=True, dual_progress_bars=progress)
    if intact.ndim == 0:
        return np.asarray(table.mean(axis=0).to_numpy(), dtype=intact.dtype)
    return np.array(table.to_numpy(), dtype=intact.dtype).T.reshape(n, *intact.shape)
