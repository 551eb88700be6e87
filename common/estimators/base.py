"""The estimator interface: an estimator owns its state, says which coalitions it needs for a block of
orderings, and folds the game's values into its state as they arrive.

A runner (common/runners) walks the blocks of common/walk.py: for each block it calls `plan` once, evaluates the
planned coalitions in game calls, in order, and hands every call's values to `fold`. Between blocks the state is
complete, so it can be saved (`state`, `load_state`) or merged with another shard's (`merge`). Adding an
estimator touches no runner: subclass, set `rows_per_ordering`, implement the five methods. Hooks with
defaults: `refuses(n, group, n_orderings)` says why the estimator cannot run on n players in sampler groups of
`group` orderings, n_orderings in all (checked before the game runs); `prologue(n)` lists coalitions needed once,
before the walk (`common.shapley.estimate` evaluates them and passes their values, with the fully lesioned
network's appended, as the `border` argument); `takes_run`: the constructor also takes the run's `n_orderings`
and `seed` (an estimator that plans its own coalitions for the whole run); `most_orderings(n)`: the orderings'
worth beyond which it has nothing left to evaluate (None: no such end); `stops_early`: whether `max_se` can stop
the run at a target SE before its end.
"""
import numpy as np


class Estimator:
    name = "estimator"
    about = ""  # one line for the command lines' --help
    rows_per_ordering: int  # coalitions planned per ordering
    takes_run = False  # the constructor takes n_orderings= and seed= (a plan of its own for the whole run)
    stops_early = True  # max_se can stop the run at a target SE

    @classmethod
    def refuses(cls, n_players: int, group: int, n_orderings: int) -> str | None:
        """Why this estimator cannot run on n players in sampler groups of `group` orderings, n_orderings in all;
        None where it can."""
        return None

    @staticmethod
    def most_orderings(n_players: int) -> int | None:
        """The orderings' worth after which the estimator has nothing new to evaluate; None: no such end."""
        return None

    @staticmethod
    def prologue(n_players: int) -> np.ndarray | None:
        """(k, n) coalitions evaluated once, before the walk (their values arrive as `border`); None: none."""
        return None

    def __init__(self, n_players: int, intact: np.ndarray, group: int = 1, dtype=np.float64):
        self.n, self.intact, self.group, self.dtype = n_players, np.asarray(intact), int(group), np.dtype(dtype)

    def config(self) -> dict:
        """What a checkpoint must match to be resumed by this estimator (JSON-serialisable)."""
        return dict(estimator=self.name, rows_per_ordering=self.rows_per_ordering)

    def plan(self, orderings: np.ndarray, first: int) -> np.ndarray:
        """Start a block: the (len(orderings) * rows_per_ordering, n) bool coalitions to evaluate, in order.
        `first` is the global index of orderings[0] (groups start at multiples of `group`)."""
        raise NotImplementedError

    def fold(self, values: np.ndarray) -> None:
        """Fold in the values of the next planned coalitions (one game call's worth)."""
        raise NotImplementedError

    def state(self) -> dict:
        """The complete state between blocks, as named arrays (no copies)."""
        raise NotImplementedError

    def load_state(self, arrays: dict) -> None:
        raise NotImplementedError

    def merge(self, other: "Estimator") -> None:
        """Fold in another estimator's state over disjoint orderings."""
        raise NotImplementedError

    def max_se(self, relative: bool = False) -> float:
        """The largest standard error of any estimate, or, relative=True, that divided by the estimates' range
        (max - min); inf while there are too few samples to tell. For stopping at a target error."""
        raise NotImplementedError

    def finish(self) -> dict:
        """The estimates, e.g. dict(modes=..., se=...); the estimator may reuse its buffers for them."""
        raise NotImplementedError


def chain_coalitions(orderings: np.ndarray) -> np.ndarray:
    """(k * n, n) coalitions of the lesion chains: row (j, step) keeps the players ranked after `step` in
    ordering j, so each ordering starts one lesion below the intact network and ends fully lesioned."""
    k, n = orderings.shape
    rank = np.empty_like(orderings)
    np.put_along_axis(rank, orderings, np.arange(n)[None, :], axis=1)
    return (rank[:, None, :] > np.arange(n)[None, :, None]).reshape(k * n, n)
