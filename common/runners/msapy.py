"""The msapy runner: msapy's lazy `interface`, one coalition per objective call, on the orderings an estimator
that msapy can compute (the chain mean) walks. It is the parity oracle (same orderings, same modes to rounding)
and what the authors ran. It keeps no spread (no error bars), no checkpoints, and runs in one process; msapy
evaluates what it asks for, which the run counts."""
import warnings

import numpy as np

from .base import Runner


class MsapyRunner(Runner):
    oracle = True

    def __init__(self, game, *, labels, **common):
        super().__init__(game, **common)
        self.labels = labels

    def walk(self, estimator):
        raise ValueError(f"msapy's walk computes the chain mean only, not the {estimator.name} estimator")

    def oracle_modes(self, estimator) -> np.ndarray:
        """msapy's modes on the estimator's orderings (as many as the budget buys, counted as a local run)."""
        self.plan_walk(estimator)
        self.units = estimator.units
        before = self.game.coalitions
        modes = run_msapy(self.game, self.labels, estimator.walked_orderings(), self.output_shape, self.dtype,
                          self.progress)
        self.evaluations += self.game.coalitions - before
        return modes


def run_msapy(game, labels, orderings: np.ndarray, output_shape, dtype, progress: bool = True) -> np.ndarray:
    from msapy import msa

    n = len(labels)
    space = [tuple(int(i) for i in o) for o in orderings]
    if len(set(space)) < len(space):
        warnings.warn("msapy walks each distinct ordering once (it keeps them in a set): the orderings "
                      "drawn here repeat, so its estimate averages fewer orderings than asked", stacklevel=3)

    def objective(lesioned_players):  # msapy passes the lesioned players; our games take the intact ones
        coalition = np.ones((1, n), bool)
        coalition[0, list(lesioned_players)] = False
        out = game(coalition)[0]
        return out if out.ndim else float(out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "a permutation space is given": that is the point
        table = msa.interface(n_permutations=len(space), elements=list(range(n)), objective_function=objective,
                              permutation_space=space, lazy=True, dual_progress_bars=progress)
    if len(output_shape) == 0:
        return np.asarray(table.mean(axis=0).to_numpy(), dtype=dtype)
    return np.array(table.to_numpy(), dtype=dtype).T.reshape(n, *output_shape)
