"""Benchmark: which orderings (and estimators) reach the same error with fewer game evaluations.

Games from real networks, each with its truth: exact Shapley modes by enumerating every coalition, or (the tiny
MoE, whose coalitions are generated text, and a 32-unit MLP) a reference from many more orderings (3,200 and
12,800). For every method and seed, the RMSE against the truth; printed as RMSE(iid) / RMSE(method) at equal
evaluations (> 1: the method is better). The budget is 4n orderings' worth of the plain chain (two orthogonal
blocks), evaluations being the game's coalitions, the intact network's included; a method whose group does not
fit the budget exactly uses the largest whole number of groups below it, and its RMSE is scaled by
sqrt(evaluations / budget) (the Monte Carlo rate), so every ratio is at equal cost.

    python benchmarks/bench_estimators.py                 # all games (~45 min on 2 CPU cores)
    python benchmarks/bench_estimators.py --games mlp-accuracy generator-12 --seeds 40

Methods: the engine's samplers (common.SAMPLERS: iid, antithetic, latin, latin-antithetic, orthogonal) with the
chain estimator; with orthogonal orderings, chain-kernel (the chain mean averaged with a KernelSHAP regression on
the same chains) and surrogate (chain-kernel with a fitted network as a control variate), which every
compute_msa.py runs by default for outputs of up to 1024 elements (chain-kernel for larger ones: the "auto"
column); and two prototypes not adopted (see the README's table): paired KernelSHAP with leverage-score sizes
(Musco & Witter 2024) on coalitions of its own, and quadratic regression-adjusted Monte Carlo (Witter et al.
2025), which needs O(n^2 x output) memory. The games with a reference run the engine's methods only: the MoE (16
experts of its first two layers, log-probability scoring, one item per task) and the 32-unit MLP, 12 seeds each.
The surrogate is not run on image outputs (auto takes chain-kernel there). The last line is min_ratio_vs_iid=X
for "auto", over all games.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import shapley_modes  # noqa: E402
from common.estimators import AUTO_MAX_SURROGATE_OUTPUT, first_order_estimator  # noqa: E402
from common.exact import exact_shapley_modes  # noqa: E402
from common.orderings import BEST_FIRST, SAMPLERS  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
DEFAULT_SAMPLER = BEST_FIRST[0]  # what --sampler auto picks first
ESTIMATORS = ("chain-kernel", "surrogate")  # run with that sampler; estimator="auto" picks one by output size


# ---------------------------------------------------------------- games from real networks
def digit_mlp(n_hidden=12):
    from common.mnist import load_mnist5k
    from MLP.model import to_inputs
    from MLP.train import train_mlp
    x_train, y_train, x_test, y_test = load_mnist5k()
    model = train_mlp(n_hidden, "none", to_inputs(x_train), torch.as_tensor(y_train), seed=0)
    return model, to_inputs(x_test), torch.as_tensor(y_test)


def mlp_accuracy_game(n_hidden=12):
    from MLP.game import MLPGame
    return MLPGame(*digit_mlp(n_hidden))


class SoftProbGame:
    """Per-digit mean softmax probability of the true class (the same network, a smooth value)."""

    def __init__(self, model, x, y):
        from MLP.game import MLPGame
        self.base = MLPGame(model, x, y)
        self.cost_per_coalition = self.base.cost_per_coalition

    def __call__(self, coalitions):
        logits = self.base.logits(coalitions)  # (C, 10, B), images sorted by digit
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        b = self.base.bounds
        return np.stack([p[:, d, b[d]:b[d + 1]].mean(1) for d in range(10)], 1)


def trained_generator(name, widths, steps):
    path = CACHE / name / "generator.pt"
    if not path.exists():
        from DCGAN import train
        train.main(["--config", "tiny32", "--widths", *map(str, widths), "--max-steps", str(steps),
                    "--out-dir", str(path.parent), "--threads", "1", "--sample-every", str(10 ** 6), "--n-fixed", "8"])
    from DCGAN.model import load_generator
    return load_generator(path)


class LayerGame:
    """Images of a generator with some filters of one layer lesioned (the other layers intact)."""

    def __init__(self, generator, noise, site, channels):
        from common.lesion import LesionGame, Unit
        self.game = LesionGame(generator, [Unit(site, c) for c in channels], noise, lambda out: out, max_rows=8192)

    def __call__(self, coalitions):
        return self.game(coalitions).numpy()


def generator12_game():
    generator, noise, _ = trained_generator("generator12", (12, 8, 8), 400)
    return LayerGame(generator, noise[:8], "blocks.0.act", range(12))


def dcgan_layer_game():
    generator, noise, _ = trained_generator("tiny32", (64, 32, 16), 1500)  # the demo's network and steps
    return LayerGame(generator, noise[:4], "blocks.2.act", range(16))


def moe16_game():
    from LLM import tasks as T
    from LLM.generate import ExpertGame
    from LLM.load import load_model
    from LLM.train_tiny_moe import DEFAULT_OUT, ensure_tiny_model
    model, tokenizer, _ = load_model(str(ensure_tiny_model(DEFAULT_OUT)), device="cpu")
    tasks = [T.Task(t.name, t.items[:1], t.max_new_tokens) for t in T.make_tasks(T.TINY)]
    game = ExpertGame(model, tokenizer, tasks, coalitions_per_call=16, score="logprob")
    game.max_rows = 256
    n_all = len(game.players)

    def first_two_layers(coalitions):  # players: the 16 experts of layers 0 and 1; the rest stay intact
        full = np.ones((len(coalitions), n_all), bool)
        full[:, :16] = coalitions
        return game(full)
    first_two_layers.batch_size = 16
    return first_two_layers


GAMES = {"mlp-accuracy": (mlp_accuracy_game, 12), "mlp-softprob": (lambda: SoftProbGame(*digit_mlp()), 12),
         "generator-12": (generator12_game, 12), "dcgan-layer": (dcgan_layer_game, 16), "moe-16": (moe16_game, 16),
         "mlp32-accuracy": (lambda: mlp_accuracy_game(32), 32)}
# too many coalitions to enumerate (2^16 generations, 2^32 MLPs): (budget, orderings of the reference); a budget of
# 4n orderings' worth fits two orthogonal blocks of 2(n - 1), so every method has two groups or more
REFERENCE_ONLY = {"moe-16": (64, 3200), "mlp32-accuracy": (128, 12800)}


# ---------------------------------------------------------------- methods tried as prototypes
def kernel_paired(game, n, budget, seed):
    """Paired KernelSHAP with leverage-score sampling (sizes uniform, Musco & Witter 2024), constrained WLS."""
    rng = np.random.default_rng(seed)
    ends = np.asarray(game(np.stack([np.zeros(n, bool), np.ones(n, bool)])), float)
    m = (budget - 2) // 2
    sizes = rng.integers(1, n, size=m)
    z = np.zeros((m, n), bool)
    for r, s in enumerate(sizes):
        z[r, rng.choice(n, s, replace=False)] = True
    z = np.concatenate([z, ~z])
    s = z.sum(1)
    weight = 1.0 / (s * (n - s))  # Shapley kernel / sampling probability, up to a constant
    y = np.asarray(game(z), float).reshape(len(z), -1) - ends[0].reshape(1, -1)
    total = (ends[1] - ends[0]).reshape(-1)
    a = (z * weight[:, None]).T @ z
    b = (z * weight[:, None]).T @ y
    a_inv = np.linalg.pinv(a)
    ones = np.ones(n)
    correction = (ones @ a_inv @ b - total) / (ones @ a_inv @ ones)
    return (a_inv @ (b - ones[:, None] * correction[None])).reshape(n, *ends.shape[1:])


def regression_adjusted(game, n, budget, seed):
    """Quadratic regression-adjusted Monte Carlo (Witter et al. 2025) on iid chains, cross-fitted: a
    quadratic surrogate fitted on one half of the chains, whose exact Shapley values plus the Monte Carlo
    estimate of (game - surrogate) on the other half give the estimate; then the halves swap."""
    from common.estimators.base import chain_coalitions
    orderings = SAMPLERS["iid"].draw(n, budget // n, seed)
    intact = np.asarray(game(np.ones((1, n), bool)), float)[0].reshape(-1)
    halves = [orderings[: len(orderings) // 2], orderings[len(orderings) // 2:]]
    data = []
    for half in halves:
        z = chain_coalitions(half)
        data.append((half, z, np.asarray(game(z), float).reshape(len(z), -1)))
    iu = np.triu_indices(n, 1)

    def features(z):
        z = z.astype(float)
        return np.concatenate([np.ones((len(z), 1)), z, z[:, iu[0]] * z[:, iu[1]]], 1)

    estimates = []
    for fit, use in ((data[0], data[1]), (data[1], data[0])):
        x = features(fit[1])
        coef = np.linalg.solve(x.T @ x + 1e-6 * np.eye(x.shape[1]), x.T @ fit[2])  # (1 + n + pairs, D)
        lin, pair = coef[1:n + 1], np.zeros((n, n, coef.shape[1]))
        pair[iu] = coef[n + 1:]
        pair = pair + pair.transpose(1, 0, 2)
        phi_f = lin + 0.5 * pair.sum(1)
        half, z, values = use
        k = len(half)
        residual = (values - features(z) @ coef).reshape(k, n, -1)
        at_intact = intact - features(np.ones((1, n), bool))[0] @ coef
        before = np.concatenate([np.broadcast_to(at_intact, (k, 1, len(at_intact))), residual[:, :-1]], 1)
        mc = np.zeros_like(phi_f)
        for j in range(k):  # step t of ordering j lesions player half[j, t]
            mc[half[j]] += before[j] - residual[j]
        estimates.append(phi_f + mc / k)
    return np.mean(estimates, 0).reshape(n, *game(np.ones((1, n), bool)).shape[1:])


# ---------------------------------------------------------------- the benchmark
def truth_of(name, game, n, reference_orderings):
    path = CACHE / f"truth_{name}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    if name in REFERENCE_ONLY:
        truth = shapley_modes(game, n, n_permutations=reference_orderings, seed=10 ** 6, sampler="antithetic",
                              progress=True).modes
    else:
        truth = exact_shapley_modes(game, n)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, truth)
    print(f"  truth of {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return truth


def run_method(method, game, n, budget_orderings, seed):
    """(estimate, evaluations used): the game's calls, the intact network's included."""
    if method in SAMPLERS or method in ESTIMATORS:
        sampler, estimator = (method, "chain") if method in SAMPLERS else (DEFAULT_SAMPLER, method)
        group = SAMPLERS[sampler].group(n)
        per_ordering, once = (n, 2) if estimator == "chain" else (n - 3, 2 + 2 * n)
        k = (budget_orderings * n + 2 - once) // per_ordering // group * group
        if k == 0:
            return None, 0
        result = shapley_modes(game, n, n_permutations=k, seed=seed, sampler=sampler, estimator=estimator,
                               progress=False)
        return result.modes, result.metadata["coalitions"]
    budget = budget_orderings * n
    return {"kernel-paired": kernel_paired, "regression-adjusted": regression_adjusted}[method](
        game, n, budget, seed), budget


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=tuple(GAMES), default=list(GAMES))
    p.add_argument("--methods", nargs="+", default=list(SAMPLERS) + list(ESTIMATORS) + ["kernel-paired",
                                                                                       "regression-adjusted"])
    p.add_argument("--seeds", type=int, default=100,
                   help="seeds per method and game with exact truth (default: %(default)s)")
    p.add_argument("--reference-seeds", type=int, default=12,
                   help="seeds per method for the tiny MoE, whose runs generate text (default: %(default)s)")
    p.add_argument("--orderings", type=int, default=None,
                   help="budget per run of the games with exact truth, in orderings' worth of evaluations of the "
                        "plain chain (default: 4 n, two orthogonal blocks)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if min(args.seeds, args.reference_seeds, 2 if args.orderings is None else args.orderings) < 2:
        p.error("--seeds, --reference-seeds and --orderings must be at least 2")
    torch.set_num_threads(args.threads)
    table = {}
    for name in args.games:
        build, n = GAMES[name]
        started = time.perf_counter()
        game = build()
        budget, reference = REFERENCE_ONLY.get(name, (4 * n if args.orderings is None else args.orderings, None))
        truth = truth_of(name, game, n, reference)
        scale = np.sqrt(np.mean(truth ** 2))
        rmse = {}
        seeds = args.reference_seeds if name in REFERENCE_ONLY else args.seeds
        for method in args.methods:
            if name in REFERENCE_ONLY and method not in (*SAMPLERS, *ESTIMATORS):
                continue  # the prototypes, rejected on the other games, are not worth an hour of generation
            if method == "surrogate" and truth[0].size > AUTO_MAX_SURROGATE_OUTPUT:
                continue  # images: a network per pixel per fit; estimator="auto" takes chain-kernel there
            errors = []
            for seed in range(seeds):
                estimate, used = run_method(method, game, n, budget, seed)
                if estimate is None:
                    break
                errors.append(np.mean((estimate - truth) ** 2) * used / (budget * n))
            rmse[method] = np.sqrt(np.mean(errors)) if errors else np.nan
        table[name] = {m: rmse["iid"] / rmse[m] if m in rmse else np.nan for m in args.methods}
        table[name]["auto"] = table[name].get(first_order_estimator(
            "auto", 2 * (n - 1), n, truth[0].size, 8, getattr(game, "cost_per_coalition", None)).name, np.nan)
        print(f"{name}: n={n}, {seeds} seeds x {budget * n} evaluations, RMS truth {scale:.3g}, "
              f"iid RMSE {rmse['iid']:.3g} ({time.perf_counter() - started:.0f} s)", flush=True)
    columns = [*args.methods, "auto"]
    width = max(map(len, columns)) + 2
    print("\nRMSE(iid) / RMSE(method) at equal evaluations (> 1: fewer evaluations for the same error); auto: the "
          "estimator compute_msa.py picks for the game (surrogate for outputs of up to 1024 elements)")
    print(f"{'game':<14}" + "".join(f"{m:>{width}}" for m in columns))
    for name, row in table.items():
        print(f"{name:<14}" + "".join(f"{row[m]:>{width}.2f}" for m in columns))
    for m in columns:
        measured = [row[m] for row in table.values() if not np.isnan(row[m])]
        print(f"min_ratio_vs_iid[{m}]=" + (f"{min(measured):.2f}" if measured else "-"))
    print(f"min_ratio_vs_iid={min(row['auto'] for row in table.values()):.2f}")


if __name__ == "__main__":
    main()
