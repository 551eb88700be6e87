"""Orderings of players for Monte Carlo Shapley estimation: the samplers.

A sampler returns `Orderings`: an int array (n_orderings, n_players) whose row j is the j-th ordering to walk,
and a group size g. Consecutive groups of g orderings are independent draws; inside a group the orderings are
built to be negatively correlated (an ordering and its reverse, say), so one statistical sample is the mean
over a group. Estimators average within groups and compute standard errors across them; no code downstream
needs to know which sampler made the orderings.

The iid sampler draws exactly as msapy's `make_permutation_space` does when fed `np.random.default_rng(seed)`,
so that msapy, given the same seed, walks the very same orderings. Unlike msapy, seed 0 is a real seed here.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Orderings:
    orderings: np.ndarray  # (n_orderings, n_players) player indices
    group: int = 1         # orderings per independent sample

    def __len__(self) -> int:
        return len(self.orderings)


def _msapy_draws(n_players: int, n_draws: int, rng) -> np.ndarray:
    """msapy's `make_permutation_space` on players 0..n-1: one `rng.permutation` per ordering (the same stream,
    tested against msapy), without its refusal of fewer than 3 players."""
    return np.stack([rng.permutation(n_players) for _ in range(n_draws)]).astype(np.int64, copy=False) \
        if n_draws else np.zeros((0, n_players), np.int64)


class Sampler:
    """Draws orderings in independent groups of `group(n_players)` orderings each."""
    about = ""

    def group(self, n_players: int) -> int:
        return 1

    def draw(self, n_players: int, n_orderings: int, seed: int) -> np.ndarray:
        raise NotImplementedError


class IID(Sampler):
    about = "independent uniform orderings, msapy's for the same seed (the paper's)"

    def draw(self, n_players, n_orderings, seed):
        return _msapy_draws(n_players, n_orderings, np.random.default_rng(seed))


class Antithetic(Sampler):
    about = ("each msapy ordering followed by its reverse: a pair cancels every pairwise interaction, so it is exact "
             "for games with at most pairwise interactions")

    def group(self, n_players):
        return 2

    def draw(self, n_players, n_orderings, seed):
        drawn = _msapy_draws(n_players, n_orderings // 2, np.random.default_rng(seed))
        return np.stack([drawn, drawn[:, ::-1]], axis=1).reshape(-1, n_players)


def latin_block(n_players: int, rng) -> np.ndarray:
    """n orderings in which every player takes every position exactly once: a cyclic Latin square with its rows,
    positions and players shuffled, so that every row alone is a uniform random ordering."""
    rows, positions, players = rng.permutation(n_players), rng.permutation(n_players), rng.permutation(n_players)
    return players[(rows[:, None] + positions[None, :]) % n_players]


class Latin(Sampler):
    about = ("blocks of n orderings in which every player takes every position once: each player's contributions "
             "are stratified by coalition size (a multiple of n orderings)")

    def group(self, n_players):
        return n_players

    def draw(self, n_players, n_orderings, seed):
        rng = np.random.default_rng(seed)
        return np.concatenate([latin_block(n_players, rng) for _ in range(n_orderings // n_players)])


class LatinAntithetic(Sampler):
    about = ("a Latin block followed by the reverse of each of its orderings: stratified by size, and pairwise "
             "interactions cancel (a multiple of 2n orderings)")

    def group(self, n_players):
        return 2 * n_players

    def draw(self, n_players, n_orderings, seed):
        rng = np.random.default_rng(seed)
        blocks = [latin_block(n_players, rng) for _ in range(n_orderings // (2 * n_players))]
        return np.concatenate([np.concatenate([b, b[:, ::-1]]) for b in blocks])


class Orthogonal(Sampler):
    """Mitchell et al. (2022): orderings as points of the sphere in the sum-zero subspace (an ordering is the
    argsort of a point); 2(n - 1) orderings from the +- directions of a random orthonormal basis cover it evenly."""
    about = ("orthogonal spherical codes (Mitchell et al. 2022): 2(n-1) orderings per block from the +- directions "
             "of a random orthonormal basis (a multiple of 2(n-1) orderings)")

    def group(self, n_players):
        return 2 * (n_players - 1)

    def draw(self, n_players, n_orderings, seed):
        rng = np.random.default_rng(seed)
        centre = np.eye(n_players) - 1.0 / n_players  # projection onto the sum-zero subspace
        basis = np.linalg.svd(centre)[0][:, :n_players - 1]  # its orthonormal basis
        blocks = []
        for _ in range(n_orderings // self.group(n_players)):
            q = np.linalg.qr(rng.standard_normal((n_players - 1, n_players - 1)))[0]
            points = (basis @ q).T  # n - 1 orthonormal directions in the subspace
            blocks.append(np.argsort(np.concatenate([points, -points]), axis=1, kind="stable"))
        return np.concatenate(blocks)


SAMPLERS = {"iid": IID(), "antithetic": Antithetic(), "latin": Latin(), "latin-antithetic": LatinAntithetic(),
            "orthogonal": Orthogonal()}


# best first, as measured by benchmarks/bench_estimators.py (RMSE against exact modes at equal evaluations)
BEST_FIRST = ("orthogonal", "latin-antithetic", "antithetic", "iid")


def auto_sampler(n_players: int, orderings: float) -> str:
    """The best measured sampler of which at least two groups fit in `orderings` orderings."""
    for name in BEST_FIRST:
        if orderings >= 2 * SAMPLERS[name].group(n_players):
            return name
    return "iid"


def sample(sampler: str, n_players: int, n_orderings: int, seed: int) -> Orderings:
    """The orderings of a sampler; ValueError for an unknown sampler or a count that is not whole groups."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {tuple(SAMPLERS)}")
    group = SAMPLERS[sampler].group(n_players)
    if n_orderings % group:
        raise ValueError(f"the {sampler} sampler walks orderings in groups of {group}, so the number of orderings "
                         f"must be a multiple of {group}, got {n_orderings}")
    return Orderings(SAMPLERS[sampler].draw(n_players, n_orderings, seed), group)


def sample_orderings(n_players: int, n_orderings: int, seed: int, sampler: str = "iid") -> np.ndarray:
    """The (n_orderings, n_players) orderings of a sampler, as an array."""
    return sample(sampler, n_players, n_orderings, seed).orderings
