"""Exact Shapley modes by enumerating every coalition: the truth that estimators are tested against, for small
games (n up to about 20). Streamed in batches, so memory is O(n x output size) whatever 2^n is."""
import math

import numpy as np


def coalitions_of(codes: np.ndarray, n_players: int) -> np.ndarray:
    """Bool coalitions (len(codes), n) from integer codes: bit n-1-i of the code says whether player i is intact."""
    return ((codes[:, None] >> np.arange(n_players - 1, -1, -1)) & 1).astype(bool)


def shapley_coefficients(coalitions: np.ndarray) -> np.ndarray:
    """(C, n): the weight of each coalition's value in each player's Shapley value. With w(s) = s! (n-s-1)! / n!,
    phi_i = sum over S without i of w(|S|) (v(S + i) - v(S)): a coalition's value enters with w(|S|-1) where the
    player is in S and -w(|S|) where it is not. Summed over every coalition, this is the exact value."""
    n = coalitions.shape[1]
    w = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    sizes = coalitions.sum(1)
    return np.where(coalitions, w[np.maximum(sizes - 1, 0)][:, None], -w[np.minimum(sizes, n - 1)][:, None])


def _values(game, coalitions: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The game's values of the coalitions as float64 (C, elements), and the output's shape."""
    values = game(coalitions)
    values = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values, dtype=np.float64)
    return values.reshape(len(values), -1), values.shape[1:]


def exact_shapley_modes(game, n_players: int, batch_size: int = 4096) -> np.ndarray:
    """phi_i = sum over coalitions S without i of |S|! (n-|S|-1)! / n! (v(S + i) - v(S)), for every output element,
    the game called on each of the 2^n coalitions exactly once (`shapley_coefficients`)."""
    n = n_players
    if n > 24:
        raise ValueError(f"enumerating 2^{n} coalitions is not feasible; estimate instead")
    phi = None
    for start in range(0, 2 ** n, batch_size):
        coalitions = coalitions_of(np.arange(start, min(start + batch_size, 2 ** n)), n)
        values, shape = _values(game, coalitions)
        block = shapley_coefficients(coalitions).T @ values
        phi = block if phi is None else phi + block
    return phi.reshape(n, *shape)


def exact_marginal_variance(game, n_players: int, batch_size: int = 4096) -> np.ndarray:
    """Each player's variance of its marginal contribution v(S + i) - v(S) over uniformly random orderings, per
    output element, (n, *output): sum over S without i of |S|! (n-|S|-1)! / n! (v(S + i) - v(S))^2 less phi_i^2.
    What one ordering's sample of a unit spreads by: the units with the largest are the hardest to estimate.
    Holds every coalition's value in memory (2^n x output)."""
    n = n_players
    if n > 22:
        raise ValueError(f"holding the values of 2^{n} coalitions is not feasible; estimate instead")
    codes = np.arange(2 ** n)
    blocks = [_values(game, coalitions_of(codes[a:a + batch_size], n)) for a in range(0, 2 ** n, batch_size)]
    values, shape = np.concatenate([b for b, _ in blocks]), blocks[0][1]
    sizes = coalitions_of(codes, n).sum(1)
    w = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    variance = np.empty((n, values.shape[1]))
    for i in range(n):
        bit = 1 << (n - 1 - i)
        without = codes[(codes & bit) == 0]
        delta = values[without | bit] - values[without]
        weight = w[sizes[without]]
        variance[i] = weight @ delta ** 2 - (weight @ delta) ** 2
    return np.maximum(variance, 0).reshape(n, *shape)
