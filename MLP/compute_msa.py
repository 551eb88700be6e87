"""Shapley modes of every hidden unit of every trained MLP, for per-digit accuracy (recall) on the test set.

Writes one .npz per model (readable with `common.load`): modes (N, 10), standard errors, intact
accuracy, each unit's mean absolute weight, the accuracy after lesioning the top-k and the bottom N-k units
(by digit-averaged contribution; k = N/5, so 40 of 200 as in the paper), and metadata (config, seed,
versions, timing). Models whose result already exists are skipped, and the model in progress is
checkpointed (every --checkpoint-every seconds and on Ctrl-C), so `--resume` loses at most one interval.

    python compute_msa.py                           # models/ -> results/, 1000 orderings per model
    python compute_msa.py --n-permutations 200 --sampler antithetic
"""
import argparse
import platform
import time
from functools import partial
from pathlib import Path

import msapy
import numpy as np
import torch
from tqdm.auto import tqdm

from common import shapley_modes
from common.checkpoint import fingerprint, remove_checkpoint
from common.cli import add_long_run_arguments, long_run_options
from common.device import pick_device
from common.mnist import DATASETS, load_mnist
from MLP.analysis import lesion_ranking, mean_abs_weight, top_k
from MLP.game import METRICS, MLPGame, generic_game
from MLP.model import to_inputs
from MLP.train import load_model
from MLP import DATA, HERE


def lesioned_accuracy(game, n_hidden: int, lesion: np.ndarray) -> np.ndarray:
    """Per-digit accuracy with the given units lesioned."""
    keep = np.ones((1, n_hidden), bool)
    keep[0, lesion] = False
    return np.asarray(game(keep))[0]


def test_set(dataset="mnist5k", data_dir="data", test_images=None):
    """Test inputs and labels; test_images=N keeps the first N (the authors used the first 1024)."""
    _, _, x, y = load_mnist(dataset, data_dir)
    return to_inputs(x[:test_images]), torch.as_tensor(y[:test_images])


def make_game(path, dataset="mnist5k", data_dir="data", game_kind="fast", device="auto", data=None,
              metric="recall", test_images=None):
    """The lesion game of one saved model; picklable as a partial, so each Ray worker builds its own."""
    model, _ = load_model(path)
    x_test, y_test = data if data is not None else test_set(dataset, data_dir, test_images)
    if game_kind == "fast":
        return MLPGame(model, x_test, y_test, metric=metric)
    device = pick_device(device)  # forward hooks on the model: slower, works for any architecture and on a GPU
    return generic_game(model.to(device), x_test.to(device), y_test.to(device), metric=metric)


def analyse_model(path, x_test, y_test, *, n_permutations, seed, sampler, game_kind="fast", device="auto",
                  progress=True, dataset="mnist5k", data_dir="data", metric="recall", test_images=None,
                  long_run=None, checkpoint=None):
    """Shapley modes of one model plus what the figures need from the model itself.

    long_run: the parsed common.cli options (checkpoints to `checkpoint`, or the Ray backend)."""
    model, config = load_model(path)
    n = config["n_hidden"]
    game = make_game(path, game_kind=game_kind, device=device, data=(x_test, y_test), metric=metric)
    factory = partial(make_game, path, dataset, data_dir, game_kind, device, None, metric, test_images)
    options = {} if long_run is None else long_run_options(
        long_run, checkpoint, factory, fingerprint(model) + f"/{game_kind}/{metric}/{len(x_test)}")
    result = shapley_modes(game, n, n_permutations=n_permutations, seed=seed, sampler=sampler, progress=progress,
                           **options)
    top, bottom = lesion_ranking(result.modes, top_k(n))
    if metric != "recall":  # the lesion analysis reports plain accuracy, whatever the modes were computed for
        game = make_game(path, game_kind=game_kind, device=device, data=(x_test, y_test))
    weights = mean_abs_weight(model.fc1.weight.detach().numpy(), model.fc2.weight.detach().numpy())
    extra = dict(
        intact_accuracy=np.float64((model(x_test.to("cpu")).argmax(-1) == y_test.cpu()).double().mean()),
        mean_abs_weight=weights, k_top=np.int64(len(top)),
        per_digit_without_top=lesioned_accuracy(game, n, top),
        per_digit_without_bottom=lesioned_accuracy(game, n, bottom))
    counts = np.bincount(y_test.cpu().numpy(), minlength=10)
    for which in ("top", "bottom"):  # overall accuracy = per-digit recall weighted by digit frequency
        extra[f"accuracy_without_{which}"] = np.float64(extra[f"per_digit_without_{which}"] @ counts / counts.sum())
    result.metadata.update(config=config, game=game_kind, metric=metric, test_images=len(x_test), versions=dict(
        torch=str(torch.__version__), numpy=np.__version__, msapy=getattr(msapy, "__version__", "1.7.3"),
        python=platform.python_version()))
    return result, extra


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=str(HERE / "models"), help="folder of models written by train.py")
    p.add_argument("--out", default=str(HERE / "results"), help="folder for the .npz results")
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k",
                   help="test set: must be the data set the models were trained on")
    p.add_argument("--data-dir", default=str(DATA))
    p.add_argument("--n-permutations", type=int, default=1000, help="orderings per model (the paper: 1000)")
    p.add_argument("--sampler", choices=("iid", "antithetic"), default="iid")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--game", choices=("fast", "generic"), default="fast",
                   help="fast: rank-1 updates of the output layer on the CPU; generic: forward hooks, any device")
    p.add_argument("--device", default="auto", help="for --game generic: auto, cpu or cuda")
    p.add_argument("--metric", choices=METRICS, default="recall",
                   help="per-digit recall (correct); precision reproduces the authors' bug, for comparison")
    p.add_argument("--test-images", type=int, default=None,
                   help="use only the first N test images (the authors used 1024); default: all")
    p.add_argument("--overwrite", action="store_true", help="recompute results that already exist")
    add_long_run_arguments(p, checkpoint_every=60.0)
    args = p.parse_args(argv)
    if args.n_permutations < 1:
        p.error("--n-permutations must be at least 1")

    models = sorted(Path(args.models).glob("mlp_*.pt"))
    if not models:
        raise SystemExit(f"no models (mlp_*.pt) in {Path(args.models).resolve()}; run train.py first")
    x_test, y_test = test_set(args.dataset, args.data_dir, args.test_images)
    out = Path(args.out)
    todo = [m for m in models if args.overwrite or not (out / f"{m.stem}.npz").exists()]
    print(f"{len(models)} models, {len(models) - len(todo)} done, {len(todo)} to compute: "
          f"{args.n_permutations} {args.sampler} orderings each, {len(x_test)} test images ({args.dataset})")
    bar = tqdm(todo, unit="model")
    for path in bar:
        _, config = load_model(path)
        if config["dataset"] != args.dataset:
            raise SystemExit(f"{path.name} was trained on {config['dataset']}, but --dataset is {args.dataset}")
        started = time.perf_counter()
        checkpoint = out / f"{path.stem}.ckpt"
        result, extra = analyse_model(path, x_test, y_test, n_permutations=args.n_permutations, seed=args.seed,
                                      sampler=args.sampler, game_kind=args.game, device=args.device, progress=False,
                                      dataset=args.dataset, data_dir=args.data_dir, metric=args.metric,
                                      test_images=args.test_images, long_run=args, checkpoint=checkpoint)
        result.metadata["total_seconds"] = time.perf_counter() - started
        result.save(out / f"{path.stem}.npz", **extra)
        remove_checkpoint(checkpoint)
        bar.set_postfix(model=path.stem, coal_per_s=f"{result.metadata['coalitions_per_s']:.0f}")
    print(f"results in {out.resolve()}")


if __name__ == "__main__":
    main()
