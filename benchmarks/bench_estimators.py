"""Benchmark: which estimator reaches the same error with the fewest evaluations, beside the field's best.

Games from real networks, each with its truth: exact Shapley modes by enumerating every coalition (12-20 units),
or a reference from many more orderings (the tiny MoE's 16 experts, a 32-unit MLP), whose own variance is
subtracted from every method's squared error. For every method, budget and seed: the RMSE against the truth, the
rows sent to the game and the distinct coalitions among them, the estimator's own time (wall time less the
game's) and, where the method gives error bars, the coverage: the fraction of mode elements whose error is within
the result's 95% interval (`ShapleyResult.margin`: 2 SE where the SE has many degrees of freedom, the t quantile
where it has few), which should be about 0.95.

Budgets are in orderings' worth of the plain chain (n evaluations an ordering; 2 more for the intact and lesioned
networks): below n, 4n and 16n by default, given to our estimators and shapiq's as distinct game evaluations, and
to the samplers with the chain mean (iid: the paper's method) as that many orderings. Our engine never sends a
coalition twice and spends at most its budget, leaving less than one of its units of work (a sampler group, a
coalition); shapiq's approximators run through a cache (benchmarks/peers.py). Errors are compared at
equal cost all the same: a method's squared error is scaled by the distinct coalitions it cost over the budget
(the Monte Carlo rate).

    python benchmarks/bench_estimators.py                       # every game (about an hour on 2 CPU cores)
    python benchmarks/bench_estimators.py --games mlp-accuracy --budgets 4 --seeds 40
    python benchmarks/bench_estimators.py --defaults --seeds 10   # each compute_msa.py's default budget and size

Methods: the samplers (common.SAMPLERS) with the chain estimator; chain-kernel and surrogate on orthogonal
orderings; kadd (a regression of order 3, 2 or 1 on distinct coalitions; kadd-order2 capped at order 2); auto
(what every compute_msa.py runs: the sampler and estimator it picks, named in the table); and, where shapiq is
installed (pip install -e '.[bench]'), shapiq 1.4.1's KernelSHAP with pairing, kADD-SHAP, SVARM and permutation
sampling, one approximator per output element over a shared cache (on image outputs, on 48 fixed pixels, where
every method is then scored). The tiny MoE (generated text) runs ours only, at budgets up to 4n. The last lines
print min_ratio_vs_iid (auto against iid), min_ratio_vs_best_peer (auto against the best shapiq approximator; for
the worst game and budget, a 95% interval from resampling the seeds) and min_coverage (auto's), over every game
and budget.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import Budget, Method, shapley_modes  # noqa: E402
from common.estimators.surrogate import RECOMMENDED_MAX_OUTPUT  # noqa: E402
from common.exact import exact_shapley_modes  # noqa: E402
from common.orderings import BEST_FIRST, SAMPLERS  # noqa: E402

import peers  # noqa: E402  (benchmarks/peers.py)

CACHE = ROOT / "benchmarks" / ".cache"
DEFAULT_SAMPLER = BEST_FIRST[0]  # what --sampler auto picks first: chain-kernel and the surrogate run on it


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


class SoftmaxOutputGame:
    """Every test image's softmax output (10 x 1,000 elements: an output as large as a small image's, which no
    surrogate takes), from the same kind of network."""

    def __init__(self, model, x, y):
        from MLP.game import MLPGame
        self.base = MLPGame(model, x, y)
        self.cost_per_coalition = self.base.cost_per_coalition

    def __call__(self, coalitions):
        logits = self.base.logits(coalitions)  # (C, 10, B)
        p = np.exp(logits - logits.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True)).reshape(len(coalitions), -1)


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
         "mlp20-accuracy": (lambda: mlp_accuracy_game(20), 20), "mlp32-accuracy": (lambda: mlp_accuracy_game(32), 32),
         "mlp10-accuracy": (lambda: mlp_accuracy_game(10), 10), "mlp64-accuracy": (lambda: mlp_accuracy_game(64), 64),
         "mlp60-softprob": (lambda: SoftProbGame(*digit_mlp(60)), 60),
         "mlp112-softmax": (lambda: SoftmaxOutputGame(*digit_mlp(112)), 112)}
# too many coalitions to enumerate: (reference sampler, estimator, orderings, the largest budget in orderings' worth
# of n that the reference is precise enough for); the reference's variance is subtracted from every squared error
REFERENCE_ONLY = {"moe-16": ("antithetic", "chain", 3200, 4),
                  "mlp32-accuracy": ("orthogonal", "chain-kernel", 62000, 16),
                  "mlp64-accuracy": ("orthogonal", "chain-kernel", 96 * 126, 16),
                  "mlp60-softprob": ("orthogonal", "chain-kernel", 20 * 118, 1),  # whole groups of 2(n - 1)
                  "mlp112-softmax": ("orthogonal", "chain-kernel", 40 * 222, 9)}
# --defaults: the budget and size every compute_msa.py runs by default, as (game, orderings' worth of n, what it
# stands for). The LLM and DCGAN games' real networks are too slow for a reference on a CPU: MLPs of their size and
# about their output stand in (32 experts and 9 task scores; 60 sub-layers and 9 log-probabilities; 112 filters
# and images)
DEFAULTS = (("mlp10-accuracy", 30, "MLP demo: 300 orderings of 10 units (every coalition)"),
            ("mlp64-accuracy", 1000 / 64, "MLP/compute_msa.py: 1000 orderings, here of 64 units"),
            ("mlp32-accuracy", 40 / 32, "LLM/compute_msa.py, the tiny MoE: 40 orderings of 32 experts"),
            ("mlp60-softprob", 16 / 60, "LLM/compute_msa.py --model smollm2: 16 orderings of 60 sub-layers"),
            ("mlp112-softmax", 1000 / 112, "DCGAN/compute_msa.py: 1000 orderings of the demo generator's 112 "
                                           "filters, an output of thousands of elements"))
# the samplers with the chain estimator, then ours (kadd-order2: kadd capped at order 2)
OURS = (*SAMPLERS, "chain-kernel", "surrogate", "kadd", "kadd-order2", "auto")
PEER_PIXELS = 48  # image outputs: every method is scored on these many fixed pixels (shapiq runs one per element)


# ---------------------------------------------------------------- the benchmark
def truth_of(name, game, n):
    """(truth, its variance per element): exact, or a reference whose standard errors give the variance."""
    path = CACHE / f"truth2_{name}.npz"
    if path.exists():
        with np.load(path) as saved:
            return saved["truth"], saved["variance"]
    started = time.perf_counter()
    if name in REFERENCE_ONLY:
        sampler, estimator, orderings, _ = REFERENCE_ONLY[name]
        reference = shapley_modes(game, n, Budget(orderings=orderings), seed=10 ** 6,
                                  method=Method(sampler=sampler, estimator=estimator), progress=True)
        truth, variance = reference.modes, reference.se ** 2
    else:
        truth = exact_shapley_modes(game, n)
        variance = np.zeros_like(truth)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, truth=truth, variance=variance)
    print(f"  truth of {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return truth, variance


def run_method(method, game, n, budget_orderings, seed, elements=None):
    """One run (shapiq's on the flat output `elements` only, where given): dict(modes, se (half the 95% interval:
    the SE times the t quantile of its degrees of freedom over 2; None without error bars), rows, distinct, cost,
    seconds, own_seconds, name), or None where the method cannot run at this budget. Budget: budget_orderings * n
    + 2 evaluations."""
    budget = int(round(budget_orderings * n)) + 2
    cached = peers.Cached(game)
    started = time.perf_counter()
    if method in peers.PEERS:
        modes, cached = peers.peer_modes(method, game, n, budget, seed, elements)
        se, name, cost = None, method, cached.distinct
    else:
        how = Method(estimator=method) if method in ("auto", "kadd") else \
            Method(estimator="kadd", settings=dict(max_order=2)) if method == "kadd-order2" else \
            Method(sampler=method, estimator="chain") if method in SAMPLERS else \
            Method(sampler=DEFAULT_SAMPLER, estimator=method)
        # the samplers with the chain mean walk the budget's orderings as msapy would (a budget of every coalition
        # would otherwise make them exact too: no baseline); the estimators spend the evaluations their own way
        asked = Budget(orderings=max(1, int(budget_orderings))) if method in SAMPLERS else budget
        try:
            result = shapley_modes(cached, n, asked, seed=seed, method=how, progress=False)
        except ValueError:  # a budget below the estimator's least
            return None
        modes, se, cost = result.modes, result.margin(0.95) / 2, cached.distinct  # half the 95% interval (t)
        name = "/".join(part for part in (result.sampler, result.metadata["estimator"]) if part) + \
            (f" (order {result.metadata['order']})" if "order" in result.metadata else "")
    seconds = time.perf_counter() - started
    return dict(modes=np.asarray(modes, float), se=se, rows=cached.rows, distinct=cached.distinct, cost=cost,
                budget=budget, seconds=seconds, own_seconds=seconds - cached.seconds, name=name)


def score(run, truth, variance, pixels):
    """(squared error at equal cost, coverage or None) of one run, on the scored elements."""
    flat = lambda a: a.reshape(len(a), -1)[:, pixels]  # noqa: E731
    error = flat(run["modes"]) - flat(truth)
    mse = max(np.mean(error ** 2) - np.mean(flat(variance)), 0.0) * run["cost"] / run["budget"]
    coverage = None
    if run["se"] is not None and np.isfinite(run["se"]).all():
        coverage = float(np.mean(covered(run, truth, variance, pixels)))
    return mse, coverage


def covered(run, truth, variance, pixels=slice(None)):
    """(n, elements) bool: the elements whose error is within the run's 95% interval, widened by the truth's own
    variance (a reference's) and by float32's rounding (exact runs have SE 0)."""
    flat = lambda a: a.reshape(len(a), -1)[:, pixels]  # noqa: E731
    error = flat(run["modes"]) - flat(truth)
    rounding = 1e-6 * np.sqrt(np.mean(flat(truth) ** 2))
    return np.abs(error) <= 2 * np.sqrt(flat(run["se"]) ** 2 + flat(variance)) + rounding


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=tuple(GAMES), default=None,
                   help="default: every game (with --defaults, every game of its table)")
    p.add_argument("--methods", nargs="+", choices=(*OURS, *peers.PEERS), default=None,
                   help="default: all of ours, and shapiq's where it is installed")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.5, 4, 16],
                   help="budgets in orderings' worth of n evaluations (default: %(default)s)")
    p.add_argument("--defaults", action="store_true",
                   help="instead of --budgets: the default budget and size of every compute_msa.py (or a network of "
                        "its size that stands in)")
    p.add_argument("--seeds", type=int, default=20, help="seeds per method, game and budget (default: %(default)s)")
    p.add_argument("--reference-seeds", type=int, default=8,
                   help="seeds for the tiny MoE, whose runs generate text (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if min(args.seeds, args.reference_seeds) < 2 or min(args.budgets) <= 0:
        p.error("--seeds and --reference-seeds must be at least 2, --budgets positive")
    methods = args.methods or [*OURS, *(peers.PEERS if peers.available() else ())]
    if "iid" not in methods:
        methods = ["iid", *methods]
    if not peers.available() and any(m in peers.PEERS for m in methods):
        p.error("shapiq is not installed: pip install -e '.[bench]'")
    torch.set_num_threads(args.threads)
    rows = []  # (game, budget, method, picked, ratio_vs_iid, rmse, coverage, rows, distinct, own seconds)
    errors = {}  # (game, budget, method): each seed's squared error at equal cost
    games = args.games or list(GAMES)
    plan = [(name, [budget]) for name, budget, _ in DEFAULTS if name in games] if args.defaults else \
        [(name, args.budgets) for name in games]
    for name, budgets in plan:
        build, n = GAMES[name]
        started = time.perf_counter()
        game = build()
        truth, variance = truth_of(name, game, n)
        d = truth[0].size
        pixels = np.sort(np.random.default_rng(0).choice(d, PEER_PIXELS, replace=False)) if d > 1024 else slice(None)
        scored = None if d <= 1024 else pixels
        largest = REFERENCE_ONLY.get(name, (None, None, None, max(budgets)))[3]
        seeds = args.reference_seeds if name == "moe-16" else args.seeds
        for budget in [b for b in budgets if b <= largest]:
            table = {}
            for method in methods:
                if name == "moe-16" and method in peers.PEERS:
                    continue  # an hour of generation each
                if method == "surrogate" and d > RECOMMENDED_MAX_OUTPUT:
                    continue  # images: a network per pixel per fit; auto takes chain-kernel there
                runs = [run_method(method, game, n, budget * n, seed, scored) for seed in range(seeds)]
                if any(r is None for r in runs):
                    continue
                scores = [score(r, truth, variance, pixels) for r in runs]
                errors[name, budget, method] = np.array([m for m, _ in scores])
                coverage = [c for _, c in scores if c is not None]
                table[method] = dict(rmse=np.sqrt(np.mean([m for m, _ in scores])), picked=runs[0]["name"],
                                     coverage=np.mean(coverage) if coverage else None,
                                     rows=np.mean([r["rows"] for r in runs]),
                                     distinct=np.mean([r["distinct"] for r in runs]),
                                     own=np.mean([r["own_seconds"] for r in runs]),
                                     share=np.mean([r["own_seconds"] / r["seconds"] for r in runs]))
            iid = table["iid"]["rmse"]
            print(f"{name} (n={n}) at {budget:.3g}n: {seeds} seeds, iid RMSE {iid:.3g} "
                  f"({time.perf_counter() - started:.0f} s so far)", flush=True)
            for method, t in table.items():
                rows.append((name, budget, method, t["picked"], iid / t["rmse"], t["rmse"], t["coverage"], t["rows"],
                             t["distinct"], t["own"], t["share"]))
                print_row(rows[-1])
    print("\nRMSE(iid) / RMSE(method) at equal cost (> 1: fewer evaluations for the same error); coverage: mode "
          "elements within the 95% interval (about 2 SE; t quantiles for few degrees of freedom); own: the "
          "estimator's seconds per run (wall time less the game's), and their share of the run's wall time")
    print(f"{'game':<15}{'budget':>7}  {'method':<20}{'runs as':<28}{'ratio':>7}{'coverage':>10}{'rows':>8}"
          f"{'distinct':>10}{'own s':>9}{'share':>7}")
    for row in rows:
        print_row(row)
    summary(rows, errors)


EXACT_RATIO = 1e4  # RMSE(iid) / RMSE above this: an RMSE of float rounding


def ratio_text(ratio):
    return "exact" if ratio > EXACT_RATIO else f"{ratio:.2f}"


def print_row(row):
    game, budget, method, picked, ratio, _, coverage, sent, distinct, own, share = row
    cover = "-" if coverage is None else f"{coverage:.3f}"
    print(f"{game:<15}{budget:>6.3g}n  {method:<20}{picked:<28}{ratio_text(ratio):>7}{cover:>10}{sent:>8.0f}"
          f"{distinct:>10.0f}{own:>9.3f}{share:>7.0%}", flush=True)


def summary(rows, errors=None):
    """The three figures over every game and budget; RMSEs of float rounding count as equal (both exact). With
    each seed's squared errors, the worst ratio to the best peer also gets a 95% interval from resampling the
    seeds (every method ran the same seeds)."""
    iid = {(g, b): ratio * rmse for g, b, m, _, ratio, rmse, *_ in rows if m == "iid"}
    floor = lambda g, b, rmse: max(rmse, iid[g, b] / EXACT_RATIO)  # noqa: E731
    auto = {(g, b): (floor(g, b, rmse), coverage) for g, b, m, _, _, rmse, coverage, *_ in rows if m == "auto"}
    best_peer = {}  # (game, budget): (rmse, method)
    for g, b, m, _, _, rmse, *_ in rows:
        if m in peers.PEERS:
            best_peer[g, b] = min(best_peer.get((g, b), (np.inf, m)), (floor(g, b, rmse), m))
    if not auto:
        return
    print(f"min_ratio_vs_iid={ratio_text(min(iid[k] / rmse for k, (rmse, _) in auto.items()))}")
    against = {k: best_peer[k][0] / auto[k][0] for k in auto if k in best_peer}
    if against:
        (g, b), worst = min(against.items(), key=lambda item: item[1])
        interval = ""
        if errors is not None and auto[g, b][0] > iid[g, b] / EXACT_RATIO:  # not both exact
            peer, ours = errors[g, b, best_peer[g, b][1]], errors[g, b, "auto"]
            draws = np.random.default_rng(0).integers(0, len(ours), (2000, len(ours)))
            ratios = np.sqrt(peer[draws].mean(1) / ours[draws].mean(1))
            interval = (f" ({g} at {b:.3g}n against {best_peer[g, b][1]}; 95% interval over seeds "
                        f"{np.percentile(ratios, 2.5):.2f}-{np.percentile(ratios, 97.5):.2f})")
        print(f"min_ratio_vs_best_peer={worst:.2f}{interval}")
    else:
        print("min_ratio_vs_best_peer=- (shapiq not run)")
    covered = [c for _, c in auto.values() if c is not None]
    print("min_coverage=" + (f"{min(covered):.3f}" if covered else "-"))


if __name__ == "__main__":
    main()
