"""Orderings of players for Monte Carlo Shapley estimation.

Orderings are arrays of player indices, shape (n_permutations, n). The iid sampler draws them exactly as
msapy does (`make_permutation_space` fed by `np.random.default_rng(seed)`), so that msapy, given the same
seed, walks the very same orderings. Unlike msapy, seed 0 is a real seed here.
"""
import warnings

import numpy as np
from msapy.msa import make_permutation_space

SAMPLERS = ("iid", "antithetic")


def sample_orderings(n_players: int, n_permutations: int, seed: int, sampler: str = "iid") -> np.ndarray:
    """Return an int array (n_permutations, n_players); row j is the j-th ordering to walk.

    "antithetic" pairs each ordering with its reverse (rows 2k and 2k+1), which cancels every pairwise
    interaction inside a pair; n_permutations counts orderings, so it must be even.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if sampler == "antithetic" and n_permutations % 2:
        raise ValueError(f"the antithetic sampler walks orderings in (ordering, reverse) pairs, "
                         f"so n_permutations must be even, got {n_permutations}")
    rng = np.random.default_rng(seed)
    n_draws = n_permutations // 2 if sampler == "antithetic" else n_permutations
    with warnings.catch_warnings():  # msapy warns that few orderings are inaccurate; our error bars say how much
        warnings.simplefilter("ignore")
        space = make_permutation_space(elements=list(range(n_players)), n_permutations=n_draws, rng=rng)
    drawn = np.asarray(space, dtype=np.int64).reshape(n_draws, n_players)
    if sampler == "iid":
        return drawn
    return np.stack([drawn, drawn[:, ::-1]], axis=1).reshape(n_permutations, n_players)
