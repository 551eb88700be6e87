"""Benchmark: finding interacting units, and what a refined pair costs.

1. SPEX on planted sparse lesion games (a small linear part plus 3 planted pairs per output, different pairs for
   each output): the fewest game evaluations at which every planted pair is the top of its output, at n = 64 and
   n = 256 players. Goal: n = 256 recovered within 20,000 evaluations.
2. Refining pairs with error bars: `interaction_modes` (two extra coalitions per pair and ordering, on the
   first-order chain) against msapy's two-dimensional MSA (`network_interaction_2d`: three full MSA runs per
   pair), on the same scalar game and the same number of orderings: evaluations and seconds per pair, and
   their ratio.

    python benchmarks/bench_interactions.py             # ~5 min on 2 CPU cores
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # games with known answers

from common import Budget, interaction_modes  # noqa: E402
from common.spex import spex_interactions  # noqa: E402
from games import planted_game  # noqa: E402


def recovered(found, planted) -> bool:
    pairs = [k for k in found if len(k) == 2]
    return all(sorted(sorted(pairs, key=lambda k: -abs(found[k][d]))[:3]) == truth for d, truth in enumerate(planted))


def spex_recovery(n, n_outputs, budgets):
    game, planted = planted_game(n, n_outputs)
    for budget in budgets:
        started = time.perf_counter()
        try:
            found = spex_interactions(game, n, budget=budget, seed=0)
        except ValueError as error:  # below SPEX's minimum budget for n
            print(f"  n={n} budget {budget}: {str(error).splitlines()[0][:100]}")
            continue
        used, ok = found.evaluations, recovered(found, planted)
        print(f"  n={n} budget {budget:>6}: {used:>6} evaluations, planted pairs recovered: {ok} "
              f"({time.perf_counter() - started:.0f} s for {n_outputs} outputs)", flush=True)
        if ok:
            return used
    return None


def msapy_cost(game, n, pairs, orderings):
    from msapy import msa
    names = [f"u{i}" for i in range(n)]  # not integers: msapy treats element 0 as "nothing lesioned"
    calls = [0]

    def objective(lesioned):
        calls[0] += 1
        keep = np.array([[name not in lesioned for name in names]])
        return float(game(keep)[0, 0])
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        msa.network_interaction_2d(n_permutations=orderings, elements=names, objective_function=objective,
                                   pairs=[(names[i], names[j]) for i, j in pairs], rng=np.random.default_rng(0),
                                   n_parallel_games=1, lazy=True)
    return calls[0], time.perf_counter() - started


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-256", action="store_true", help="only n = 64 (the n = 256 transform needs ~2.5 GB)")
    args = p.parse_args(argv)

    print("1. SPEX recovery of planted pairs (3 per output)")
    at64 = spex_recovery(64, 3, [2000, 4000, 6000, 8000, 12000])
    at256 = None if args.skip_256 else spex_recovery(256, 1, [6000, 10000, 15000, 20000, 30000])

    print("2. refining pairs: interaction_modes vs msapy's network_interaction_2d, same game and orderings")
    n, orderings = 12, 50
    game, planted = planted_game(n, 1, seed=3)
    pairs = [(0, 1), (2, 5), (3, 7), (4, 9), (6, 11), (8, 10)] + [tuple(pair) for pair in planted[0]]
    started = time.perf_counter()
    ours = interaction_modes(game, n, Budget(orderings=orderings), pairs=pairs, seed=0, sampler="iid", progress=False)
    ours_seconds = time.perf_counter() - started
    theirs_evals, theirs_seconds = msapy_cost(game, n, pairs, orderings)
    per_pair = ours.evaluations / len(pairs), theirs_evals / len(pairs)
    print(f"  ours:  {ours.evaluations} evaluations ({per_pair[0]:.0f} per pair), {ours_seconds:.2f} s")
    print(f"  msapy: {theirs_evals} evaluations ({per_pair[1]:.0f} per pair), {theirs_seconds:.2f} s")
    print(f"spex_evaluations_n64={at64} spex_evaluations_n256={at256} "
          f"evaluations_per_pair_ratio={per_pair[1] / per_pair[0]:.1f} seconds_ratio={theirs_seconds / ours_seconds:.1f}")


if __name__ == "__main__":
    main()
