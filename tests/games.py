"""Games with known Shapley values, and brute-force exact Shapley values for small games."""
import itertools
import math

import numpy as np


def additive(weights):
    """v(S) = sum_{i in S} w_i (a vector per player): player i's mode is exactly w_i, for every ordering."""
    weights = np.asarray(weights, dtype=float)
    return lambda c: c.astype(float) @ weights


def pairwise(n, strength=3.0):
    """v(S) = strength * [0 in S and 1 in S] + |S minus {0, 1}|: players 0, 1 get strength / 2, others 1."""
    return lambda c: strength * (c[:, 0] & c[:, 1]) + c[:, 2:].sum(1)


def unanimity(sets, n):
    """Output k is 1 when every player of sets[k] is intact: each member of sets[k] gets 1 / |sets[k]| there."""
    def game(c):
        return np.stack([c[:, list(s)].all(1) for s in sets], 1).astype(float)
    truth = np.zeros((n, len(sets)))
    for k, s in enumerate(sets):
        truth[list(s), k] = 1.0 / len(s)
    return game, truth


def saturating(c):
    """Three outputs, each a steep sigmoid of a weighted count of intact units: like an accuracy, it saturates
    with many units and collapses with few, so unit contributions depend on which others are intact."""
    weights = np.random.default_rng(5).uniform(0.2, 1.0, size=(c.shape[1], 3))
    return 1 / (1 + np.exp(-6 * (c.astype(float) @ weights / weights.sum(0) - 0.45)))


def coverage_floor(level: float, runs: int, sigmas: float = 3.0) -> float:
    """The least mean coverage that `runs` independent runs of an honest `level` interval give, but for a
    `sigmas`-sigma fluke. One run's fraction of covered elements has variance at most level (1 - level), however
    its elements correlate, so the floor holds whatever the game; it does not depend on rounding."""
    return level - sigmas * np.sqrt(level * (1 - level) / runs)


def exact_shapley(game, n):
    """Exact Shapley values from all 2^n coalitions (n up to ~14)."""
    coalitions = np.array(list(itertools.product([False, True], repeat=n)))
    values = np.asarray(game(coalitions), dtype=float)
    index = {tuple(c): i for i, c in enumerate(coalitions)}
    sizes = coalitions.sum(1)
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.zeros((n, *values.shape[1:]))
    for i, c in enumerate(coalitions):
        for p in np.flatnonzero(~c):  # p joins coalition c
            with_p = c.copy()
            with_p[p] = True
            phi[p] += weight[sizes[i]] * (values[index[tuple(with_p)]] - values[i])
    return phi


class TanhGame:
    """A picklable nonlinear vector game for the Ray backend; optionally kills its worker process once."""

    def __init__(self, n=12, out=5, die_marker=None):
        self.w = np.random.default_rng(0).normal(size=(n, out))
        self.die_marker = die_marker

    def __call__(self, c):
        # the driver only evaluates the 2 coalitions V(intact), V(lesioned); workers evaluate whole batches
        if self.die_marker is not None and len(c) > 2 and not __import__("os").path.exists(self.die_marker):
            open(self.die_marker, "w").close()
            __import__("os")._exit(1)  # the worker dies mid-shard, once
        return np.tanh(c.astype(float) @ self.w) ** 2


class Counting:
    """Wraps a game and counts what it is asked (like shapiq's DummyGame.access_counter): calls and coalitions."""

    def __init__(self, game):
        self.game, self.calls, self.coalitions, self.sizes = game, 0, 0, []
        self.batch_size = getattr(game, "batch_size", None)  # the engine reads it

    def __call__(self, c):
        self.calls += 1
        self.coalitions += len(c)
        self.sizes.append(len(c))
        return self.game(c)


def exact_interactions(game, n, index="SII"):
    """Exact pairwise SII or STII (order 2) of every pair i < j, by enumerating all coalitions: (P, *output)."""
    coalitions = np.array(list(itertools.product([False, True], repeat=n)))
    values = np.asarray(game(coalitions), dtype=float)
    lookup = {tuple(c): v for c, v in zip(coalitions, values)}
    out = []
    for i, j in itertools.combinations(range(n), 2):
        total = 0.0
        for c in coalitions:
            if c[i] or c[j]:
                continue
            s = int(c.sum())
            w = (math.factorial(s) * math.factorial(n - s - 2) / math.factorial(n - 1) if index == "SII"
                 else 2.0 / n / math.comb(n - 1, s))
            ci, cj, cij = c.copy(), c.copy(), c.copy()
            ci[i] = cj[j] = cij[i] = cij[j] = True
            total = total + w * (lookup[tuple(cij)] - lookup[tuple(ci)] - lookup[tuple(cj)] + lookup[tuple(c)])
        out.append(total)
    return np.array(out)


def network_game(n_hidden=10, seed=0, n_in=6, n_inputs=64, batch_size=256):
    """A small real network's lesion game: a random tanh MLP (n_in -> n_hidden -> 3), its hidden units the players,
    value = the mean softmax probability of each of the 3 classes over `n_inputs` random inputs."""
    import torch

    from common.lesion import LesionGame, find_units
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(n_in, n_hidden), torch.nn.Tanh(),
                                torch.nn.Linear(n_hidden, 3)).double()
    x = torch.randn(n_inputs, n_in, dtype=torch.float64) * 2
    return LesionGame(model, find_units(model, ["1"], x), x, lambda out: out.softmax(-1).mean(1),
                      batch_size=batch_size)


def dies_after(game, calls: int):
    """The game, but the process 'crashes' (KeyboardInterrupt) at call calls + 1: a kill between checkpoints."""
    count = [0]

    def dying(c):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt("simulated crash")
        return game(c)
    dying.batch_size = getattr(game, "batch_size", None)
    return dying


def planted_game(n, n_outputs, seed=0):
    """A sparse game: a small linear part plus 3 planted pairs per output (different pairs for each output), pair
    k of an output with weight 2 + k; returns (game, the planted pairs of each output, sorted)."""
    rng = np.random.default_rng(seed)
    planted = [sorted(tuple(sorted(int(x) for x in rng.choice(n, 2, replace=False))) for _ in range(3))
               for _ in range(n_outputs)]
    linear = rng.normal(size=(n, n_outputs)) * 0.1

    def game(c):
        c = c.astype(float)
        out = c @ linear
        for d, pairs in enumerate(planted):
            for k, (i, j) in enumerate(pairs):
                out[:, d] += (2 + k) * c[:, i] * c[:, j]
        return out
    return game, planted
