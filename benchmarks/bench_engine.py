"""Benchmark: the MLP lesion game (784-200-10, 1,000 test images) three ways, on the same orderings.

1. msapy's lazy `interface`, objective = a full forward pass per coalition (the authors' way);
2. msapy's lazy `interface`, objective = cached hidden activations, one masked output layer per coalition;
3. our batched engine with the MLP game (chains of coalitions, one rank-1 update per step).
All three compute per-digit accuracy in float64. The full-forward run is slow, so it walks only the first
--naive-permutations orderings; the others are compared with it on exactly those orderings.

    python benchmarks/bench_engine.py                    # about 2-3 minutes on 2 CPU cores
"""
import argparse
import contextlib
import io
import time

import numpy as np
import torch
from msapy import msa

from common import Budget, shapley_modes
from common.lesion import find_units, lesioned
from common.mnist import load_mnist5k
from MLP.game import MLPGame, per_digit_accuracy
from MLP.model import to_inputs
from MLP.train import train_mlp


CHAIN = dict(estimator="chain", sampler="iid", progress=False)  # msapy's estimator on msapy's orderings


def run_msapy(objective, n, n_permutations, seed):
    """msapy.interface, lazy, serial, seeded the way our iid sampler is; returns (modes (n, 10), seconds)."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        table = msa.interface(n_permutations=n_permutations, elements=list(range(n)), objective_function=objective,
                              rng=np.random.default_rng(seed), lazy=True, dual_progress_bars=False)
    return np.array(table.to_numpy()).T.reshape(n, -1), time.perf_counter() - started


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-hidden", type=int, default=200)
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--n-permutations", type=int, default=100, help="orderings for the cached and batched runs")
    p.add_argument("--naive-permutations", type=int, default=5, help="orderings for the full-forward msapy run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    x_train, y_train, x_test, y_test = load_mnist5k()
    model = train_mlp(args.n_hidden, "l2", to_inputs(x_train), torch.as_tensor(y_train), epochs=2).double()
    x, y = to_inputs(x_test[:args.n_images]).double(), torch.as_tensor(y_test[:args.n_images])
    n = args.n_hidden
    units = find_units(model, ["act"], x[:1])

    @torch.no_grad()
    def naive(lesioned_units):  # the authors' objective: lesion, run the whole network
        keep = np.ones(n, bool)
        keep[list(lesioned_units)] = False
        with lesioned(model, units, keep):
            return per_digit_accuracy(model(x)[None], y)[0].numpy()

    with torch.no_grad():
        hidden = model.act(model.fc1(x))

    @torch.no_grad()
    def cached(lesioned_units):  # hidden activations computed once; only the output layer per coalition
        h = hidden.clone()
        h[:, list(lesioned_units)] = 0
        return per_digit_accuracy(model.fc2(h)[None], y)[0].numpy()

    game = MLPGame(model, x, y)
    print(f"MLP 784-{n}-10, {len(x)} test images, {args.threads} threads, seed {args.seed}")
    results = {}
    for name, perms, run in [
        ("msapy_naive", args.naive_permutations, lambda P: run_msapy(naive, n, P, args.seed)),
        ("msapy_cached", args.n_permutations, lambda P: run_msapy(cached, n, P, args.seed)),
        ("batched", args.n_permutations, lambda P: (lambda r: (r.modes, r.metadata["seconds"]))(
            shapley_modes(game, n, Budget(orderings=P), seed=args.seed, **CHAIN))),
        ("batched_short", args.naive_permutations, lambda P: (lambda r: (r.modes, r.metadata["seconds"]))(
            shapley_modes(game, n, Budget(orderings=P), seed=args.seed, **CHAIN))),
    ]:
        modes, seconds = run(perms)
        rate = perms * n / seconds
        results[name] = (modes, rate)
        print(f"{name:>14}: {perms:4d} orderings, {perms * n:6d} coalitions in {seconds:7.2f} s = {rate:9.0f} coalitions/s")
    diff = max(np.abs(results["batched"][0] - results["msapy_cached"][0]).max(),
               np.abs(results["batched_short"][0] - results["msapy_naive"][0]).max())
    x_naive = results["batched"][1] / results["msapy_naive"][1]
    y_cached = results["batched"][1] / results["msapy_cached"][1]
    print(f"speedup_vs_msapy_naive={x_naive:.1f} speedup_vs_msapy_cached={y_cached:.1f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    main()
