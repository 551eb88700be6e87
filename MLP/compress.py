"""Rank, compress, evaluate: each MLP without its least important hidden units, as a smaller model.

For every model of --models with a Shapley result in --results, rank the hidden units (--ranking), remove the
--remove fraction that ranks last physically (common.prune: fc1's rows and fc2's columns go), check that the
smaller model's logits equal the masked model's, and report parameters and test accuracy before and after.

    python MLP/compress.py                                    # MLP/models + MLP/results -> MLP/compressed
    python MLP/compress.py --ranking weight-norm --remove 0.7

The ranking saw the test images (the Shapley game scores them); benchmarks/bench_rankings.py compares rankings on
held-out images.
"""
import argparse
from pathlib import Path

import torch

from common import cli, load, rankings
from common.cli import entry, open_fraction
from common.lesion import Unit, lesioned
from common.mnist import DATASETS
from common.prune import Wiring, parameter_count, pruned
from common.removal import removal_masks
from MLP import HERE
from MLP.compute_msa import test_set
from MLP.game import MLPGame
from MLP.train import accuracy, load_model, save_model

RANKINGS = ("shapley", "leave-one-out", "weight-norm", "mean-activation")


def rank(name, model, units, result, x, y) -> rankings.Ranking:
    if name == "shapley":
        return rankings.shapley(result)
    if name == "leave-one-out":
        return rankings.leave_one_out(MLPGame(model, x, y), len(units))
    if name == "weight-norm":
        return rankings.weight_norm(model, units, consumers={"act": "fc2"})
    return rankings.activation_magnitude(model, units, lambda: model(x))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=HERE / "models", help="models written by MLP/train.py")
    p.add_argument("--results", type=Path, default=HERE / "results", help="results written by MLP/compute_msa.py")
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k", help="the models' data set")
    p.add_argument("--ranking", choices=RANKINGS, default="shapley",
                   help="shapley: the digit-averaged modes of --results (default)")
    p.add_argument("--remove", type=open_fraction, default=0.5, help="fraction of hidden units to remove (0.5)")
    p.add_argument("--out", type=Path, default=HERE / "compressed", help="folder for the smaller models")
    args = p.parse_args(argv)
    try:
        cli.check_output_folder(args.out)
    except cli.UsageError as error:
        p.error(str(error))
    models = sorted(m for m in args.models.glob("mlp_*.pt") if (args.results / f"{m.stem}.npz").is_file())
    if not models:
        p.error(f"no model in {args.models} has a result in {args.results}; run MLP/compute_msa.py first")

    x, y = test_set(args.dataset)
    print(f"{'model':<22}{'units':>12}{'parameters':>22}{'accuracy':>18}   ranking: {args.ranking}")
    for path in models:
        model, config = load_model(path)
        result = load(args.results / f"{path.stem}.npz")
        n = model.fc1.out_features
        if len(result.players) != n:
            raise SystemExit(f"{path.name} has {n} hidden units, its result {len(result.players)}")
        units = [Unit("act", i) for i in range(n)]
        order = rank(args.ranking, model, units, result, x, y).order()
        keep = removal_masks(order, [int(round(args.remove * n))])[1][0]  # without the bottom fraction
        small = pruned(model, units, keep, {"act": Wiring("fc1", "fc2")})
        with torch.no_grad():
            with lesioned(model, units, keep):
                masked = model(x)
            gap = float((small(x) - masked).abs().max())
        if gap > 1e-4:
            raise SystemExit(f"{path.name}: the smaller model's logits differ from the masked model's by {gap:.2g}")
        save_model(args.out / path.name, small, dict(config, n_hidden=int(keep.sum()), compressed_from=n,
                                                     ranking=args.ranking, removed_fraction=args.remove))
        print(f"{path.stem:<22}{n:>5} -> {keep.sum():<5}{parameter_count(model):>9,} -> {parameter_count(small):<9,}"
              f"{accuracy(model, x, y):>8.3f} -> {accuracy(small, x, y):.3f}")
    print(f"smaller models in {args.out.resolve()} (MLP.train.load_model reads them)")


if __name__ == "__main__":
    entry(main)
