"""The local runner: walk an estimator's units through the game in this process, batched, through the coalition
cache; with a checkpoint, save the estimator's state and the cache's values every so often and on SIGINT, SIGTERM
or SIGHUP, and resume from them.

A resumed run makes exactly the game calls of a straight one (blocks lie on a fixed grid, and orderings and plans
are regenerated from the seed), so its result is bit-identical.
"""
import signal
import sys
import threading
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import Checkpointer, clean_stale, load_checkpoint, read_checkpoint_arrays
from ..coalitions import CachedGame, ValueStore
from .base import Runner

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
KNOWN = ("known_keys", "known_values", "known_used", "known_shape")


class RunInterrupted(SystemExit):
    """The run stopped on a signal after saving its state. A SystemExit whose code is the shell's 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP): uncaught, a script exits with it and no
    traceback, after the one line the runner printed; `except RunInterrupted` still catches it."""

    def __init__(self, signum: int, done: int, checkpoint):
        self.signum, self.done, self.checkpoint = signum, done, Path(checkpoint)
        self.exit_code = 128 + signum
        super().__init__(self.exit_code)

    def __str__(self):
        return (f"stopped by {signal.Signals(self.signum).name} after {self.done:,} units of work; the state is "
                f"saved in {self.checkpoint}: run again with resume (--resume, or Checkpoint(..., resume=True))")


class Precision:
    """Watches the estimator's largest standard error at fixed points of the walk (every `interval` units, at the
    first block end past each multiple), so that the stopping point does not depend on timing or on resumes.
    Reports, once, the orderings projected to reach `target` (or the error the budget will reach); says stop once
    the error is at or below `target`. `per_unit`: orderings a unit, for the messages."""

    def __init__(self, target: float | None, relative: bool, interval: int, total: int, report=None, start: int = 0,
                 per_unit: int = 1):
        self.target, self.relative, self.interval, self.total = target, relative, interval, total
        self.report, self.previous, self.projected, self.reached = report, start, False, None
        self.per_unit = per_unit

    def __call__(self, done: int, estimator) -> bool:
        due = done // self.interval > self.previous // self.interval
        self.previous = done
        if not due or (self.target is None and (self.projected or self.report is None)):
            return False
        se = estimator.max_se(self.relative)
        if not np.isfinite(se):
            return False
        what = "relative SE" if self.relative else "SE"
        orderings, total = done * self.per_unit, self.total * self.per_unit
        if not self.projected and self.report is not None:
            self.projected = True
            if self.target is None:
                self.report(f"largest {what} {se:.3g} after {orderings:,} orderings; about "
                            f"{se * (done / self.total) ** 0.5:.3g} expected after all {total:,}")
            else:
                need = int(np.ceil(orderings * (se / self.target) ** 2))
                self.report(f"largest {what} {se:.3g} after {orderings:,} orderings: about {need:,} orderings reach "
                            f"the target {self.target:g}" + ("" if need <= total else
                                                            f", more than the {total:,} the budget buys"))
        if self.target is not None and se <= self.target:
            self.reached = (done, se)
            return True
        return False


def walk_units(evaluator: CachedGame, estimator, layout, start: int, stop: int, *, bar=None, after_block=None) -> int:
    """Plan, evaluate and fold every block of units [start, stop); returns the units complete. `after_block(k)`
    runs when the first k units are complete; when it returns True the walk ends there."""
    done = start
    for first, end in layout.blocks(start, stop):
        coalitions = estimator.plan(first, end)
        base = layout.segment_of(np.array([first * layout.rows_per_unit]))[0]
        for index, (a, b) in enumerate(layout.segments(first, end)):
            before = evaluator.evaluations
            estimator.fold(evaluator.segment(coalitions[a:b], base + index))
            if bar is not None:
                bar.update(evaluator.evaluations - before)
        done = end
        if after_block is not None and after_block(done):
            break
    return done


class LocalRunner(Runner):
    def __init__(self, game, *, checkpoint=None, config=None, target=None, **common):
        """checkpoint: a common.Checkpoint (resume: its known values are read now, before anything is evaluated);
        config: what the checkpoint must match (the run's settings); target: a common.TargetSE."""
        super().__init__(game, **common)
        self.checkpoint, self.config, self.target = checkpoint, dict(config or {}), target
        self.precision = None
        self.resuming = False
        if checkpoint is not None:
            clean_stale(checkpoint.path)
            if checkpoint.path.exists():
                if not checkpoint.resume:
                    raise FileExistsError(f"checkpoint {checkpoint.path} exists: resume it (--resume / resume=True) "
                                          "or delete it")
                self.resuming = True
                known = read_checkpoint_arrays(checkpoint.path, self.config, KNOWN)
                self.known = ValueStore(0, known["known_values"].shape[1], self.dtype, growable=True)
                self.known.load(*(known[name] for name in KNOWN[:3]))
                self.output_shape = tuple(int(k) for k in known["known_shape"])

    def walk(self, estimator):
        layout = self.plan_walk(estimator)
        cached = self.schedule.cached() if self.schedule is not None else {}
        live = self.live_store(self.schedule.capacity if self.schedule is not None else 0)
        evaluator = CachedGame(self.game, self.known, live, cached, self.output_shape)
        shape = np.array(self.output_shape, np.int64)
        arrays = lambda: {**estimator.state(), **self.known.state("known"), "known_shape": shape,  # noqa: E731
                          "spent": np.int64(self.evaluations + evaluator.evaluations), **live.state("live")}
        config = dict(self.config, **estimator.config(),
                      planned_evaluations=self.planned_evaluations(estimator))
        checkpointer = None if self.checkpoint is None else Checkpointer(self.checkpoint.path, self.checkpoint.every,
                                                                         config)
        start = 0
        if self.resuming:
            buffers = {**estimator.state(), **live.state("live")}
            start, saved = load_checkpoint(self.checkpoint.path, config, buffers, fresh=(*KNOWN, "spent"))
            live.load(*(buffers[f"live_{k}"] for k in ("keys", "values", "used")))
            self.evaluations += int(saved["spent"])  # what the run spent before it stopped
        total = estimator.units
        per_unit = getattr(estimator, "group", 1)
        if estimator.stops_early and (self.target is not None or self.progress):
            interval = max(1, -(-total // 50))  # ~50 checks
            self.precision = Precision(None if self.target is None else self.target.se,
                                       self.target is not None and self.target.relative, interval, total,
                                       report=tqdm.write if self.progress else None, start=start, per_unit=per_unit)
        received = []

        def on_signal(signum, frame):  # finish the block in flight, save, then stop
            if received:  # a second signal: stop now; the last checkpoint stays
                raise KeyboardInterrupt(f"stopped by a second {signal.Signals(signum).name}; the last checkpoint "
                                        f"{checkpointer.path} stays")
            received.append(signum)

        def after_block(done):
            if self.precision is not None and self.precision(done, estimator):
                return True  # the target is reached: the result is written next, no checkpoint needed
            if checkpointer is not None and (received or checkpointer.due()):
                checkpointer.save(done, arrays())
            if received:
                stop = RunInterrupted(received[0], done, checkpointer.path)
                print(f"\n{stop}", file=sys.stderr, flush=True)
                raise stop
            return False

        watch = checkpointer is not None and threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS} if watch else {}
        try:
            with tqdm(total=self.planned_evaluations(estimator), unit="eval", unit_scale=True, disable=not self.progress,
                      smoothing=0.05, desc=self.desc, dynamic_ncols=True) as bar:
                self.units = walk_units(evaluator, estimator, layout, start, total, bar=bar, after_block=after_block)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.evaluations += evaluator.evaluations
