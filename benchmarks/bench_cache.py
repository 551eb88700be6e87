"""What the coalition cache saves: at equal distinct evaluations, the orderings (or sampler groups, or kadd's
coalitions) each estimator walks with the cache against without it (Compute(batch_size=1, cache_bytes=0): every
planned coalition is evaluated where it comes, as msapy does, but the intact and empty ones and kadd's plan,
which are distinct by construction), from 12 units to the paper's 256 experts and 1,987 filters. A cheap vector
game (10 outputs): the count does not depend on the game.

    python benchmarks/bench_cache.py --out docs/results/cache.json      # ~2 minutes on 2 cores

benchmarks/rankings_tables.py makes docs/engine.md's table from the JSON.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import Compute, Method, shapley_modes  # noqa: E402
from common.cli import UsageError, check_output_file, positive_int  # noqa: E402
from journal import write_json  # noqa: E402

METHODS = {"iid chain": Method(sampler="iid", estimator="chain"),
           "antithetic chain": Method(sampler="antithetic", estimator="chain"),
           "orthogonal chain": Method(sampler="orthogonal", estimator="chain"),
           "chain-kernel": Method(estimator="chain-kernel"), "surrogate": Method(estimator="surrogate"),
           "kadd": Method(estimator="kadd")}
SIZES = (12, 25, 200, 256, 1987)
BUDGETS = (10, 100, 1000)
MOST_EVALUATIONS = 30_000  # a game call a coalition without the cache: larger cells take minutes


def walked(result) -> int:
    """What the budget bought: orderings for the walking estimators, coalitions planned for kadd."""
    return result.orderings if result.orderings is not None else int(result.metadata["coalitions_planned"])


def cell(method, n, budget):
    w = np.random.default_rng(n).normal(size=(n, 10))

    def game(c):
        return np.tanh(c @ w / np.sqrt(n))
    evaluations = budget * n + 2
    runs = {}
    for cache, compute in (("on", Compute()), ("off", Compute(batch_size=1, cache_bytes=0))):
        try:
            r = shapley_modes(game, n, evaluations, seed=0, method=METHODS[method], compute=compute, progress=False)
        except ValueError:  # below the estimator's least budget at this size
            return None
        if r.metadata["estimator"] == "exact":  # the budget buys every coalition: nothing to walk
            return None
        runs[cache] = r
    on, off = runs["on"], runs["off"]
    return dict(method=method, n=n, budget=budget, ran=on.metadata["estimator"], walked_on=walked(on),
                walked_off=walked(off), evaluations_on=on.evaluations, evaluations_off=off.evaluations,
                saving=walked(on) / walked(off))


def markdown(results) -> str:
    """Per estimator and size: what the cache's run walks over what the cacheless one does, at each budget."""
    cells = results["cells"]
    budgets = results["budgets"]
    at = {(c["method"], c["n"], c["budget"]): c for c in cells}
    rows = list(dict.fromkeys((c["method"], c["n"]) for c in cells))

    def text(c):
        return "-" if c is None else f"{c['saving']:.2f} ({c['walked_on']:,} / {c['walked_off']:,})"
    lines = ["Orderings walked (coalitions planned, for kadd) with the cache over without it, at equal distinct "
             "evaluations (the budget in orderings' worth of n evaluations; - : the estimator does not run there or "
             "the cell was not run).", "",
             "| estimator | units | " + " | ".join(f"{b} orderings' worth" for b in budgets) + " |",
             "| --- | --- |" + " --- |" * len(budgets)]
    for method, n in rows:
        lines.append(f"| {method} | {n:,} | " + " | ".join(text(at.get((method, n, b))) for b in budgets) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS))
    p.add_argument("--sizes", type=positive_int, nargs="+", default=list(SIZES), help="units (default: %(default)s)")
    p.add_argument("--budgets", type=positive_int, nargs="+", default=list(BUDGETS),
                   help="orderings' worth of n evaluations (default: %(default)s); cells past "
                        f"{MOST_EVALUATIONS:,} evaluations are left out")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "cache.json", help="the results (JSON)")
    args = p.parse_args(argv)
    if min(args.sizes) < 2:
        p.error("--sizes: a game needs at least 2 units")
    try:
        check_output_file(args.out)
    except UsageError as error:
        p.error(str(error))
    started = time.perf_counter()
    cells = []
    for method in args.methods:
        for n in args.sizes:
            for budget in args.budgets:
                if budget * n > MOST_EVALUATIONS:
                    continue
                c = cell(method, n, budget)
                if c is not None:
                    cells.append(c)
                    print(f"{method:<18}{n:>6}{budget:>6}  {c['ran']:<13} walked {c['walked_on']:>8,} with the cache, "
                          f"{c['walked_off']:>8,} without: {c['saving']:.3f}x", flush=True)
    results = dict(cells=cells, budgets=args.budgets, seconds=time.perf_counter() - started,
                   argv=sys.argv[1:] if argv is None else list(argv))
    write_json(args.out, results)
    print(f"\n{markdown(results)}\n\nwrote {args.out} ({results['seconds']:.0f} s)")
    savings = [c["saving"] for c in cells]
    if savings:
        print(f"saving={min(savings):.3f}-{max(savings):.3f}")


if __name__ == "__main__":
    main()
