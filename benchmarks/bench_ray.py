"""Benchmark: throughput of the Ray backend with 1 and 2 workers on the MLP lesion game (784-200-10).

Each worker builds its own game from the saved model; the orderings are sharded and the accumulators
merged. Prints evaluations/s for each and their ratio on the last line. On a 2-core machine the ideal
ratio is 2; the driver and Ray's own processes share those cores.

    python benchmarks/bench_ray.py --budget 40000
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch

from common import Ray, shapley_modes
from common.mnist import load_mnist5k
from MLP.compute_msa import GameSettings
from MLP.model import to_inputs
from MLP.train import save_model, train_mlp


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-hidden", type=int, default=200)
    p.add_argument("--budget", type=int, default=40_000, help="game evaluations (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    x_train, y_train, _, _ = load_mnist5k()
    model = train_mlp(args.n_hidden, "l2", to_inputs(x_train), torch.as_tensor(y_train), epochs=1)
    path = Path(tempfile.mkdtemp()) / "mlp.pt"
    save_model(path, model, dict(n_hidden=args.n_hidden, reg="l2", trial=0, dataset="mnist5k"))
    factory = GameSettings(model=str(path)).build
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rates, modes = {}, {}
    for workers in (1, 2):
        started = time.perf_counter()
        r = shapley_modes(None, args.n_hidden, args.budget, seed=args.seed, runner=Ray(factory, workers=workers),
                          progress=False)
        seconds = time.perf_counter() - started
        rates[workers], modes[workers] = r.evaluations / seconds, r.modes
        print(f"{workers} worker(s): {r.evaluations} evaluations ({r.metadata['estimator']}) in {seconds:.1f} s = "
              f"{rates[workers]:.0f} evaluations/s")
    diff = np.abs(modes[1] - modes[2]).max()
    print(f"ray_1_worker={rates[1]:.0f}/s ray_2_workers={rates[2]:.0f}/s ratio={rates[2] / rates[1]:.2f} max_abs_diff={diff:.1e}")


if __name__ == "__main__":
    main()
