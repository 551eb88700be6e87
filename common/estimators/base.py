"""The estimator contract, in the manner of shapiq's approximators: one class per file, the same constructor (the
`Problem`, then the estimator's own settings, keyword-only, declared with their defaults in `settings`), what it
declares (why it refuses a problem, its least budget, its memory, whether it stops at a target SE, whether it
walks orderings), and one method, `run(runner)`, which runs it on the runner's game and returns its estimates.
The driver (common/shapley.py) and the auto policy (auto.py) read only this.

A runner (common/runners) gives an estimator `evaluate(coalitions)` (through the coalition cache, where the intact
and empty coalitions already are), `walk(estimator)` (its units of work, in blocks that checkpoints and Ray shards
cut between) and `oracle` (True for msapy's own walk, which computes the chain mean itself).

The walk protocol, what `runner.walk` uses: `rows_per_unit` planned rows a unit; `units`, how many (None: as many
as the budget buys, which the runner counts before evaluating anything); `plan(first, stop)`, the coalitions of
units [first, stop) in order; `fold(values)`, the values of the next planned rows; between blocks the state is
complete: `state()` (named arrays, no copies), `load_state`, `merge` (another shard's units) and `max_se`.
`distinct_plan`: the planned rows are distinct (but for repeats of the intact and empty coalitions), so the walk
needs no schedule of repeats; `shard_multiple`: Ray shards start at multiples of this many units.
"""
from dataclasses import dataclass, replace

import numpy as np

from ..budget import Budget


@dataclass(frozen=True)
class Problem:
    """What every estimator is built for. output_shape is None until the game's intact value is known: the
    refusals and the least budget must not need it."""
    n_players: int
    budget: Budget
    seed: int
    output_shape: tuple | None = None
    dtype: np.dtype = np.dtype(np.float64)
    cost_per_coalition: float | None = None  # the game's declared seconds a coalition, for auto's rule

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape, dtype=np.int64)) if self.output_shape is not None else 1

    @property
    def evaluations(self) -> int:
        return self.budget.evaluations_for(self.n_players)

    def with_output(self, shape, dtype, cost) -> "Problem":
        return replace(self, output_shape=tuple(shape), dtype=np.dtype(dtype), cost_per_coalition=cost)


class Estimator:
    name = "estimator"
    about = ""                 # one line for the command lines' --help
    settings: dict = {}        # its own options and their defaults
    walks_orderings = False    # it walks orderings of the players (takes a sampler)
    stops_early = True         # max_se can stop the run at a target SE
    msapy_parity = False       # msapy's own walk of the same orderings computes this estimate
    distinct_plan = False      # its plan repeats no coalition but the intact and empty ones
    shard_multiple = 1         # shards of its units start at multiples of this (units that must stay together)

    @classmethod
    def checked_settings(cls, **given) -> dict:
        """The estimator's settings, defaults filled in; a setting it does not take is a ValueError."""
        unknown = sorted(set(given) - set(cls.settings))
        if unknown:
            raise ValueError(f"the {cls.name} estimator takes no setting {unknown[0]!r}"
                             + (f" (it takes {', '.join(cls.settings)})" if cls.settings else ""))
        return {**cls.settings, **given}

    @classmethod
    def refuses(cls, problem: Problem, **settings) -> str | None:
        """Why it cannot run this problem, and what would; None where it can."""
        return None

    @classmethod
    def minimum_evaluations(cls, problem: Problem, **settings) -> int:
        """The least budget, in evaluations, it runs on (the intact and empty coalitions included)."""
        return 2

    @classmethod
    def recommended(cls, problem: Problem, **settings) -> bool:
        """Whether `auto` may take it for this problem (where it was measured to pay: docs/estimators.md)."""
        return True

    @classmethod
    def state_bytes(cls, problem: Problem, **settings) -> int:
        """About how much memory its state takes (the output shape known)."""
        raise NotImplementedError

    @classmethod
    def fit_seconds(cls, problem: Problem, **settings) -> float:
        """Its own compute beyond the game's, by rule (never a clock): auto weighs it against the declared cost."""
        return 0.0

    def __init__(self, problem: Problem, **settings):
        if problem.output_shape is None:
            raise ValueError("an estimator is built once the output shape is known")
        self.problem, self.n = problem, problem.n_players
        self.output_shape, self.dtype = tuple(problem.output_shape), np.dtype(problem.dtype)
        self.units: int | None = None

    def config(self) -> dict:
        """What a checkpoint must match to be resumed by this estimator (JSON-serialisable)."""
        return dict(estimator=self.name, rows_per_unit=self.rows_per_unit, units=self.units)

    def run(self, runner) -> dict:
        """The estimates, e.g. dict(modes=..., se=..., se_dof=...)."""
        raise NotImplementedError

    rows_per_unit: int

    def plan(self, first: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def fold(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    def load_state(self, arrays: dict) -> None:
        raise NotImplementedError

    def merge(self, other: "Estimator") -> None:
        raise NotImplementedError

    def max_se(self, relative: bool = False) -> float:
        """The largest standard error of any estimate (relative=True: over the estimates' range); inf while too
        few samples tell. For stopping at a target error."""
        raise NotImplementedError


def intact_and_empty(n_players: int) -> np.ndarray:
    """(2, n): the intact coalition and the empty one, which every run evaluates first."""
    return np.stack([np.ones(n_players, bool), np.zeros(n_players, bool)])


def chain_coalitions(orderings: np.ndarray) -> np.ndarray:
    """(k * n, n) coalitions of the lesion chains: row (j, step) keeps the players ranked after `step` in
    ordering j, so each ordering starts one lesion below the intact network and ends fully lesioned."""
    k, n = orderings.shape
    rank = np.empty_like(orderings)
    np.put_along_axis(rank, orderings, np.arange(n)[None, :], axis=1)
    return (rank[:, None, :] > np.arange(n)[None, :, None]).reshape(k * n, n)


def relative(se: float, scale: float) -> float:
    """A standard error over the estimates' range, for TargetSE(relative=True)."""
    return se / scale if scale > 0 and np.isfinite(se) else float("inf")
