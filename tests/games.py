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
        # a sum in a fixed order, not a BLAS product, whose blocking (and last bits) change with the batch's shape:
        # the surrogate's fit carries even those into its modes
        return np.tanh((c[:, :, None] * self.w).sum(1)) ** 2


class Counting:
    """Wraps a game and counts what it is asked (like shapiq's DummyGame.access_counter): calls, coalitions, and
    the distinct ones among them (`distinct`: a run never sends one twice, so it equals `coalitions`)."""

    def __init__(self, game):
        self.game, self.calls, self.coalitions, self.sizes, self.seen = game, 0, 0, [], set()
        self.batch_size = getattr(game, "batch_size", None)  # the engine reads it
        self.cost_per_coalition = getattr(game, "cost_per_coalition", None)

    def __call__(self, c):
        self.calls += 1
        self.coalitions += len(c)
        self.sizes.append(len(c))
        self.seen.update(bytes(row) for row in np.packbits(np.asarray(c, bool), axis=1))
        return self.game(c)

    @property
    def distinct(self) -> int:
        return len(self.seen)


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


def assert_resumes_bit_identically(run, game, n, k, path, *, batch_size, seed=3, calls=None):
    """run(game, n, k, seed=..., **options), killed after `calls` game calls (default: half of the straight run's)
    and resumed from its checkpoint
    at `path`, gives the uninterrupted run's modes and standard errors bit for bit, and counts the evaluations of
    both processes as the straight run's: the resumed process sends only what the first had not saved."""
    import pytest

    from common import Checkpoint, Compute
    compute = Compute(batch_size=batch_size)
    straight = Counting(game)
    full = run(straight, n, k, seed=seed, compute=compute)
    first, second = Counting(dies_after(game, straight.calls // 2 if calls is None else calls)), Counting(game)
    with pytest.raises(KeyboardInterrupt):
        run(first, n, k, seed=seed, checkpoint=Checkpoint(path, every=0), compute=compute)
    assert path.exists(), "no block was complete when the run died: a longer run, or smaller batches"
    resumed = run(second, n, k, seed=seed, checkpoint=Checkpoint(path, every=0, resume=True), compute=compute)
    np.testing.assert_array_equal(resumed.modes, full.modes)
    np.testing.assert_array_equal(resumed.se, full.se)
    assert resumed.evaluations == full.evaluations and second.coalitions < full.evaluations
    lost = len(first.seen & second.seen)  # evaluated after the last checkpoint, before the kill
    assert second.coalitions - lost == full.evaluations - first.coalitions


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


class RoleNetwork:
    """A network built so that the right order of its 8 hidden units is known: fc1 -> ReLU ("act") -> fc2 -> clamp
    to [0, 1], 3 outputs, the value of each output its mean over random inputs x in [0.5, 1]^2.

        unit 0   dead: no input reaches it (its outgoing weights are the largest)    worth 0
        unit 1   dead: nothing reads it (its activation is the largest)               worth 0
        2, 3     a redundant pair on output 0: either alone saturates it              0 each alone, 1 together
        unit 4   carries output 1 alone: 0.6 x (0.5 + x1), about 0.75                 worth about 0.75
        5, 6, 7  weak and additive on output 2: 0.1 each                              worth 0.1 each

    Exact Shapley values: 0.5 each for the pair on output 0, unit 4's value on output 1, 0.1 each on output 2.
    """
    DEAD, PAIR, ALONE, WEAK = (0, 1), (2, 3), (4,), (5, 6, 7)

    def __init__(self, n_inputs=32, seed=0):
        from collections import OrderedDict

        import torch

        layers = [("fc1", torch.nn.Linear(2, 8)), ("act", torch.nn.ReLU()), ("fc2", torch.nn.Linear(8, 3)),
                  ("clamp", torch.nn.Hardtanh(0.0, 1.0))]
        self.model = torch.nn.Sequential(OrderedDict(layers)).double()
        f64 = dict(dtype=torch.float64)
        w1, b1 = torch.zeros(8, 2, **f64), torch.tensor([-1.0, 0, 0.5, 0.5, 0.5, 1, 1, 1], **f64)
        w1[1] = 3.0                   # unit 1: a large activation that nothing reads
        w1[2:4, 0] = w1[4, 1] = 1.0   # units 2-4: 0.5 + x, in [1, 1.5]; units 5-7: 1
        w2 = torch.zeros(3, 8, **f64)
        w2[:, 0] = 2.0                # unit 0: large outgoing weights, but it never fires
        w2[0, 2] = w2[0, 3] = 1.0
        w2[1, 4] = 0.6
        w2[2, 5:] = 0.1
        with torch.no_grad():
            for param, value in ((self.model.fc1.weight, w1), (self.model.fc1.bias, b1),
                                 (self.model.fc2.weight, w2), (self.model.fc2.bias, torch.zeros(3, **f64))):
                param.copy_(value)
        gen = torch.Generator().manual_seed(seed)
        self.inputs = 0.5 + 0.5 * torch.rand(n_inputs, 2, generator=gen, dtype=torch.float64)

    @property
    def units(self):
        from common.lesion import Unit
        return [Unit("act", i) for i in range(8)]

    def truth(self) -> np.ndarray:
        """The exact Shapley values (8, 3)."""
        phi = np.zeros((8, 3))
        phi[2:4, 0] = 0.5
        phi[4, 1] = float(0.6 * (0.5 + self.inputs[:, 1]).mean())
        phi[5:, 2] = 0.1
        return phi

    def game(self):
        """(C, 8) coalitions -> (C, 3): each output's mean over the inputs."""
        from common.lesion import LesionGame
        return LesionGame(self.model, self.units, self.inputs, lambda out: out.mean(1).numpy())

    def per_input(self, inputs):
        """(C, 8) coalitions -> (C, B): each input's mean over the 3 outputs (a removal curve's target)."""
        from common.lesion import LesionGame
        return LesionGame(self.model, self.units, inputs, lambda out: out.mean(-1).numpy())

    def objective(self, model):
        """The value, differentiably: each output's mean over the inputs."""
        return model(self.inputs).mean(0)


def tiny_tokenizer_mixtral(*, hidden_size, intermediate_size, experts, max_positions, seed=0):
    """A random 2-layer Mixtral (top-2 routing) with the tiny MoE's tokenizer: (model, tokenizer)."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    from LLM.train_tiny_moe import build_tokenizer
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = MixtralConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           num_local_experts=experts, num_experts_per_tok=2, max_position_embeddings=max_positions,
                           sliding_window=None, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return MixtralForCausalLM(config), tokenizer


def save_tiny_mixtral(path, experts=4):
    """tiny_tokenizer_mixtral (widths 32) saved to `path` with its tokenizer; returns the model."""
    model, tokenizer = tiny_tokenizer_mixtral(hidden_size=32, intermediate_size=32, experts=experts, max_positions=512)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def save_tiny_llama(path):
    """A random 2-layer Llama (4 heads a layer) with the tiny model's tokenizer and chat template, saved."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from LLM.train_tiny_moe import build_tokenizer
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class ShardedRunner:
    """A runner that walks an estimator's units in shards [0, cuts[0]), [cuts[0], cuts[1]), ..., each on a fresh
    copy of the estimator, merged in order: what the Ray runner does, in this process and without the coalition
    cache (every planned row is evaluated). No cuts: one straight walk, no merge."""
    oracle = False

    def __init__(self, game, cuts=()):
        self.game, self.cuts = game, list(cuts)

    def evaluate(self, coalitions):
        return np.asarray(self.game(coalitions))

    def walk(self, estimator):
        import copy
        if not self.cuts:
            self._walk(estimator, 0, estimator.units)
            return
        template = copy.deepcopy(estimator)
        bounds = [0, *self.cuts, estimator.units]
        for a, b in zip(bounds[:-1], bounds[1:]):
            part = copy.deepcopy(template)
            self._walk(part, a, b)
            estimator.merge(part)

    def _walk(self, estimator, start, stop):
        for unit in range(start, stop):
            estimator.fold(np.asarray(self.game(estimator.plan(unit, unit + 1))))


def problem_for(game, n, budget, seed=0):
    """The Problem an estimator is built for, the game's output known."""
    from common.estimators import Problem
    from common.budget import as_budget
    intact = np.asarray(game(np.ones((1, n), bool)))[0]
    return Problem(n, as_budget(budget), seed).with_output(intact.shape, np.float64, None)
