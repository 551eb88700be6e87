"""The local runner: walk the blocks of common/walk.py through the game, batched, in this process; with a
checkpoint, save the estimator's state every so often and on SIGINT, SIGTERM or SIGHUP, and resume from it.

A resumed run makes exactly the same game calls as a straight one (blocks lie on a fixed grid and orderings
are regenerated from the seed), so its result is bit-identical.
"""
import signal
import threading
from pathlib import Path

from tqdm.auto import tqdm

from ..checkpoint import clean_stale
from ..walk import blocks

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunInterrupted(KeyboardInterrupt):
    """The run stopped on a signal after saving its state; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int, done: int, checkpoint):
        self.signum, self.done, self.checkpoint = signum, done, Path(checkpoint)
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} after {done} orderings; state saved to "
                         f"{self.checkpoint}; resume with --resume (resume=True)")


def walk(game, estimator, orderings, batch_size: int, start: int = 0, stop: int | None = None,
         progress: bool = False, after_block=None, desc: str = "Shapley modes") -> None:
    """Evaluate the planned coalitions of every block of orderings [start, stop) and fold them in.
    `after_block(k)` runs when the first k orderings are complete."""
    stop = len(orderings) if stop is None else stop
    rows = estimator.rows_per_ordering
    with tqdm(total=len(orderings) * rows, initial=start * rows, unit="coalition", unit_scale=True,
              disable=not progress, smoothing=0.05, desc=desc, dynamic_ncols=True) as bar:
        for block in blocks(start, stop, rows, batch_size, orderings.group):
            coalitions = estimator.plan(orderings.orderings[block.start:block.stop], block.start)
            for a, b in block.calls:
                estimator.fold(game(coalitions[a:b]))
                bar.update(b - a)
            if after_block is not None:
                after_block(block.stop)


def run_local(game, estimator, orderings, batch_size: int, progress: bool = True, checkpointer=None,
              resume: bool = False, desc: str = "Shapley modes") -> int:
    """Walk every ordering; returns the number of orderings this process walked (fewer after a resume)."""
    if checkpointer is None:
        walk(game, estimator, orderings, batch_size, progress=progress, desc=desc)
        return len(orderings)
    path = checkpointer.path
    clean_stale(path)
    start = 0
    if path.exists():
        if not resume:
            raise FileExistsError(f"checkpoint {path} exists: resume it (--resume / resume=True) or delete it")
        start = checkpointer.resume(estimator)
    received = []

    def on_signal(signum, frame):  # finish the block in flight, save, then stop
        if received:  # a second signal: stop now; the last checkpoint stays
            raise KeyboardInterrupt(f"stopped by a second {signal.Signals(signum).name}; the last checkpoint "
                                    f"{path} stays")
        received.append(signum)

    def after_block(done):
        if received or checkpointer.due():
            checkpointer.save(done, estimator)
        if received:
            raise RunInterrupted(received[0], done, path)

    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS} if in_main else {}
    try:
        walk(game, estimator, orderings, batch_size, start=start, progress=progress, after_block=after_block,
             desc=desc)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return len(orderings) - start
