"""Rankings of units by importance, from the costliest (Shapley modes) to the free (weights), each with its cost.

Every ranking returns a `Ranking`: a score per unit (per output element where it has one; higher = more important)
and what it cost, in game evaluations and seconds. Compare them with `common.removal`.

    shapley(result)                                  the modes of a finished run (its evaluations and seconds)
    leave_one_out(game, n)                           v(N) - v(N minus i): n + 1 evaluations
    leave_one_in(game, n)                            v({i}) - v(empty): n + 1 evaluations
    weight_norm(model, units, consumers)             the norm of each unit's outgoing weights: no evaluation
    activation_magnitude(model, units, run)          mean |activation| over the inputs `run()` feeds: no evaluation
    gradient_times_activation(model, units, objective)   attribution patching: one backward pass per output element
    random_scores(n, seed)                           the floor
"""
import time
from dataclasses import dataclass

import numpy as np
import torch

from common.lesion import module_named, unit_axis, unit_means, watching
from common.prune import input_axis


@dataclass
class Ranking:
    name: str
    scores: np.ndarray   # (n,) or (n, *output_shape); higher = more important
    evaluations: int     # game evaluations it spent
    seconds: float

    def order(self, target=None) -> np.ndarray:
        """Unit indices from the least to the most important, for one output element (`target`, an index into the
        output) or, by default, for the mean over the output elements. A ranking with one score per unit gives the
        same order for every target. Ties keep the units' order."""
        if self.scores.ndim == 1:
            return np.argsort(self.scores, kind="stable")
        column = self.scores.reshape(len(self.scores), -1).mean(1) if target is None else \
            self.scores[(slice(None), *np.atleast_1d(target))]
        return np.argsort(column, kind="stable")


def _timed(name, evaluations, compute) -> Ranking:
    started = time.perf_counter()
    scores = np.asarray(compute(), dtype=np.float64)
    return Ranking(name, scores, evaluations, time.perf_counter() - started)


def shapley(result, name: str = "shapley") -> Ranking:
    """The Shapley modes of a ShapleyResult, with the evaluations and seconds its run spent."""
    meta = result.metadata
    spent = int(meta.get("evaluations", meta.get("coalitions", 0)))
    return Ranking(name, np.asarray(result.modes, dtype=np.float64), spent, float(meta.get("seconds", 0.0)))


def _values(game, coalitions) -> np.ndarray:
    values = game(coalitions)
    return (values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)).astype(np.float64)


def leave_one_out(game, n: int) -> Ranking:
    """What the game loses when each unit alone is lesioned: blind to units that back each other up."""
    def compute():
        coalitions = ~np.eye(n + 1, n, k=-1, dtype=bool)  # row 0 intact, row i + 1 without unit i
        values = _values(game, coalitions)
        return values[0] - values[1:]
    return _timed("leave-one-out", n + 1, compute)


def leave_one_in(game, n: int) -> Ranking:
    """What each unit does alone, every other unit lesioned: blind to units that need each other."""
    def compute():
        coalitions = np.eye(n + 1, n, k=-1, dtype=bool)  # row 0 empty, row i + 1 only unit i
        values = _values(game, coalitions)
        return values[1:] - values[0]
    return _timed("leave-one-in", n + 1, compute)


def weight_norm(model: torch.nn.Module, units, consumers: dict | None = None) -> Ranking:
    """The Frobenius norm of each unit's outgoing weights: for a unit on a module's input (side "in", e.g. an
    attention head at o_proj's input) the module's own weights over its features; for a unit on a module's output,
    the weights of the layer that reads it, named by consumers = {module: consumer module} (e.g. {"act": "fc2"})."""
    consumers = consumers or {}
    missing = sorted({u.module for u in units if u.side == "out" and u.module not in consumers})
    if missing:
        raise ValueError(f"weight_norm needs the layer that reads the outputs of {missing}: pass "
                         "consumers={module: the module whose weights read it}")

    def compute():
        scores = []
        for unit in units:
            layer = module_named(model, unit.module if unit.side == "in" else consumers[unit.module])
            weight = layer.weight.detach()
            axis = input_axis(layer)
            scores.append(float(weight.narrow(axis, unit.index, unit.features.stop - unit.index).double().norm()))
        return scores
    return _timed("weight norm", 0, compute)


def activation_magnitude(model: torch.nn.Module, units, run, dim: int | None = None) -> Ranking:
    """Each unit's mean |activation| over the inputs that `run()` feeds the model (averaged over a slice's
    features): blind to what the rest of the network does with it. A unit that never runs (an expert no token
    was routed to) scores 0."""
    def compute():
        means = unit_means(model, units, run, dim, absolute=True, unreached_zero=True)
        return [float(means[u].mean()) for u in units]
    return _timed("mean |activation|", 0, compute)


def gradient_times_activation(model: torch.nn.Module, units, objective, dim: int | None = None) -> Ranking:
    """Attribution patching (Taylor pruning): the first-order estimate of what zero-ablating each unit costs,
    sum over positions of d objective / d activation x activation, per element of `objective(model)`, a
    differentiable stand-in for the game's score (e.g. log-probabilities for an accuracy). One forward pass, one
    backward pass per output element."""
    units = list(units)

    def compute():
        seen = {}
        model.eval()
        with torch.enable_grad(), watching(model, units, lambda key, x: seen.setdefault(key, x)):
            out = objective(model)
        keys = sorted(seen)
        if not keys:
            sites = sorted({(u.module, u.side) for u in units})
            raise ValueError(f"objective(model) never reached the units' sites {sites}")
        flat = out.reshape(-1)
        scores = np.zeros((len(units), flat.numel()))
        for k in range(flat.numel()):
            grads = torch.autograd.grad(flat[k], [seen[key] for key in keys], retain_graph=k + 1 < flat.numel(),
                                        allow_unused=True)
            per_feature = {}
            for key, g in zip(keys, grads):
                x = seen[key]
                g = torch.zeros_like(x) if g is None else g
                d = unit_axis(module_named(model, key[0]), x, dim, key[0])
                per_feature[key] = (g.detach() * x.detach()).double().movedim(d, -1).reshape(-1, x.shape[d]).sum(0)
            for i, unit in enumerate(units):  # a site never reached (an expert without tokens) estimates 0
                if (unit.module, unit.side) in per_feature:
                    scores[i, k] = float(per_feature[(unit.module, unit.side)][unit.features].sum())
        return scores.reshape(len(units), *out.shape) if out.ndim else scores[:, 0]
    return _timed("gradient x activation", 0, compute)


def random_scores(n: int, seed: int) -> Ranking:
    """A random order: what any ranking has to beat."""
    return _timed(f"random (seed {seed})", 0, lambda: np.random.default_rng(seed).random(n))
