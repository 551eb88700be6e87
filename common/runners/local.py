"""The local runner: walk the blocks of common/walk.py through the game, batched, in this process; with a
checkpoint, save the estimator's state every so often and on SIGINT, SIGTERM or SIGHUP, and resume from it.

A resumed run makes exactly the same game calls as a straight one (blocks lie on a fixed grid and orderings
are regenerated from the seed), so its result is bit-identical.
"""
import signal
import sys
import threading
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import clean_stale
from ..walk import blocks

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunInterrupted(SystemExit):
    """The run stopped on a signal after saving its state. A SystemExit whose code is the shell's 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP): uncaught, a script exits with it and no
    traceback, after the one line the runner printed; `except RunInterrupted` still catches it."""

    def __init__(self, signum: int, done: int, checkpoint):
        self.signum, self.done, self.checkpoint = signum, done, Path(checkpoint)
        self.exit_code = 128 + signum
        super().__init__(self.exit_code)

    def __str__(self):
        return (f"stopped by {signal.Signals(self.signum).name} after {self.done:,} orderings; the state is saved "
                f"in {self.checkpoint}: run again with resume (--resume, or Checkpoint(..., resume=True))")


class Precision:
    """Watches the estimator's largest standard error at fixed points of the walk (every `interval` orderings,
    at the first block end past each multiple), so that the stopping point does not depend on timing or on
    resumes. Reports, once, the orderings projected to reach `target` (or the error the budget will reach);
    says stop once the error is at or below `target`."""

    def __init__(self, target: float | None, relative: bool, interval: int, total: int, report=None, start: int = 0):
        self.target, self.relative, self.interval, self.total = target, relative, interval, total
        self.report, self.previous, self.projected, self.reached = report, start, False, None

    def __call__(self, done: int, estimator) -> bool:
        due = done // self.interval > self.previous // self.interval
        self.previous = done
        if not due or (self.target is None and (self.projected or self.report is None)):
            return False
        se = estimator.max_se(self.relative)
        if not np.isfinite(se):
            return False
        what = "relative SE" if self.relative else "SE"
        if not self.projected and self.report is not None:
            self.projected = True
            if self.target is None:
                self.report(f"largest {what} {se:.3g} after {done} orderings; about {se * (done / self.total) ** 0.5:.3g}"
                            f" expected after all {self.total}")
            else:
                need = int(np.ceil(done * (se / self.target) ** 2))
                self.report(f"largest {what} {se:.3g} after {done} orderings: about {need:,} orderings reach the "
                            f"target {self.target:g}" + ("" if need <= self.total else
                                                        f", more than the {self.total:,} allowed"))
        if self.target is not None and se <= self.target:
            self.reached = (done, se)
            return True
        return False


def walk(game, estimator, orderings, batch_size: int, *, start: int = 0, stop: int | None = None,
         progress: bool = False, after_block=None, desc: str = "Shapley modes") -> int:
    """Evaluate the planned coalitions of every block of orderings [start, stop) and fold them in; returns the
    number of orderings complete. `after_block(k)` runs when the first k orderings are complete; when it
    returns True the walk ends there."""
    stop = len(orderings) if stop is None else stop
    rows = estimator.rows_per_ordering
    done = start
    with tqdm(total=len(orderings) * rows, initial=start * rows, unit="coalition", unit_scale=True,
              disable=not progress, smoothing=0.05, desc=desc, dynamic_ncols=True) as bar:
        for block in blocks(start, stop, rows, batch_size, orderings.group):
            coalitions = estimator.plan(orderings.orderings[block.start:block.stop], block.start)
            for a, b in block.calls:
                estimator.fold(game(coalitions[a:b]))
                bar.update(b - a)
            done = block.stop
            if after_block is not None and after_block(done):
                break
    return done


def run_local(game, estimator, orderings, batch_size: int, *, progress: bool = True, checkpointer=None,
              resume: bool = False, precision: Precision | None = None, desc: str = "Shapley modes") -> int:
    """Walk the orderings (until `precision` says stop); returns how many orderings the estimate holds."""
    start = 0
    if checkpointer is not None:
        path = checkpointer.path
        clean_stale(path)
        if path.exists():
            if not resume:
                raise FileExistsError(f"checkpoint {path} exists: resume it (--resume / resume=True) or delete it")
            start = checkpointer.resume(estimator)
    if precision is not None:
        precision.previous = start
    received = []

    def on_signal(signum, frame):  # finish the block in flight, save, then stop
        if received:  # a second signal: stop now; the last checkpoint stays
            raise KeyboardInterrupt(f"stopped by a second {signal.Signals(signum).name}; the last checkpoint "
                                    f"{checkpointer.path} stays")
        received.append(signum)

    def after_block(done):
        if precision is not None and precision(done, estimator):
            return True  # the target is reached: the result is written next, no checkpoint needed
        if checkpointer is not None and (received or checkpointer.due()):
            checkpointer.save(done, estimator)
        if received:
            stop = RunInterrupted(received[0], done, checkpointer.path)
            print(f"\n{stop}", file=sys.stderr, flush=True)
            raise stop
        return False

    in_main = threading.current_thread() is threading.main_thread()
    watch = checkpointer is not None and in_main
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS} if watch else {}
    try:
        return walk(game, estimator, orderings, batch_size, start=start, progress=progress, after_block=after_block,
                    desc=desc)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
