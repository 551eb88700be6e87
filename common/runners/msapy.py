"""The msapy runner: msapy's lazy `interface`, one coalition per objective call, on our orderings. It is the
parity oracle (same orderings, same modes to rounding) and what the authors ran. It keeps no spread (no error
bars), no checkpoints, and runs in one process."""
import warnings

import numpy as np


def run_msapy(game, labels, orderings: np.ndarray, intact: np.ndarray, progress: bool = True) -> np.ndarray:
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
    if intact.ndim == 0:
        return np.asarray(table.mean(axis=0).to_numpy(), dtype=intact.dtype)
    return np.array(table.to_numpy(), dtype=intact.dtype).T.reshape(n, *intact.shape)
