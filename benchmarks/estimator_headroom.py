"""Where the variance of permutation-sampled Shapley modes lives, and what each remedy could remove at best.

For games small enough to enumerate (bench_estimators.py's 12- and 16-unit games from real networks), every
marginal contribution v(S + i) - v(S) is known. Its variance splits into a part between coalition sizes (what
stratified orderings such as `latin` remove) and a part within sizes (which other units are intact). This script
prints, as RMSE(iid) / RMSE(remedy) at equal evaluations, what each remedy gives on its own with perfect knowledge:

  size-stratified   one marginal per coalition size and unit (Latin orderings, ignoring correlations)
  + neyman          and, on top, samples per size in proportion to its spread (Neyman allocation)
  + cv degree d     and, on top, an oracle control variate: the least-squares fit of the game by all interactions
                    up to order d (fitted on every coalition, so it is a bound, not an estimator); its Shapley
                    values are known exactly. Degree 1 (leave-one-out effects, a first-order Taylor model, the
                    logits of a one-layer MLP) is additive: its marginals do not vary, so it removes nothing.

Orderings that are negatively correlated (antithetic, orthogonal) can beat the stratified line; the remedies'
lines show how much of the variance within sizes any surrogate of a given order can explain.

    python benchmarks/estimator_headroom.py                       # the three 12-unit games (~1 min)
    python benchmarks/estimator_headroom.py --games dcgan-layer --degrees 1 2
"""
import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.exact import coalitions_of  # noqa: E402


def all_values(game, n, batch_size=4096):
    """Values of every coalition, row c for the coalition with integer code c (see common.exact)."""
    rows = []
    for start in range(0, 2 ** n, batch_size):
        values = game(coalitions_of(np.arange(start, min(start + batch_size, 2 ** n)), n))
        values = values.detach().cpu().numpy() if hasattr(values, "detach") else values
        rows.append(np.asarray(values, np.float64).reshape(len(values), -1))
    return np.concatenate(rows)


def interaction_fit(values, n, degree):
    """The game minus its weighted least-squares fit by products of up to `degree` players. Each coalition is
    weighted by how often orderings visit it (1 / C(n, |S|)), so every coalition size counts the same."""
    coalitions = coalitions_of(np.arange(2 ** n), n)
    columns = [np.ones(2 ** n)] + [coalitions[:, list(t)].all(1).astype(float)
                                   for d in range(1, degree + 1) for t in itertools.combinations(range(n), d)]
    basis = np.stack(columns, 1)
    root_w = np.sqrt(1.0 / np.array([math.comb(n, s) for s in coalitions.sum(1)]))[:, None]
    coef, *_ = np.linalg.lstsq(basis * root_w, values * root_w, rcond=None)
    return values - basis @ coef


def size_variances(values, n):
    """(n units, n sizes, output) variance and mean of unit i's marginal contribution over coalitions of size k."""
    coalitions = coalitions_of(np.arange(2 ** n), n)
    sizes = coalitions.sum(1)
    var = np.zeros((n, n, values.shape[1]))
    mean = np.zeros_like(var)
    for i in range(n):
        bit = 1 << (n - 1 - i)
        without = np.nonzero(~coalitions[:, i])[0]
        marginal = values[without + bit] - values[without]
        for k in range(n):
            at_k = marginal[sizes[without] == k]
            var[i, k], mean[i, k] = at_k.var(0), at_k.mean(0)
    return var, mean


def headroom(values, n, degrees=(1, 2, 3)):
    """{remedy: RMSE(iid) / RMSE(remedy)}, with every unit and output element pooled."""
    var, mean = size_variances(values, n)
    within = var.mean(1)                              # (n, output): one sample per size
    iid = within + mean.var(1)                        # a uniform size, then a uniform coalition of it
    neyman = np.sqrt(var).mean(1) ** 2
    out = {"size-stratified": _ratio(iid, within), "+ neyman": _ratio(iid, neyman)}
    for d in degrees:
        out[f"+ cv degree {d}"] = _ratio(iid, size_variances(interaction_fit(values, n, d), n)[0].mean(1))
    return out


def _ratio(iid_var, remedy_var, tiny=1e-24):
    """sqrt of the pooled variance ratio; inf where the remedy leaves no variance (up to rounding)."""
    return math.inf if remedy_var.sum() <= tiny * max(iid_var.sum(), 1.0) else float(np.sqrt(iid_var.sum() / remedy_var.sum()))


def main(argv=None):
    import bench_estimators as bench
    exact_games = [g for g in bench.GAMES if g not in bench.REFERENCE_ONLY]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=exact_games, default=["mlp-accuracy", "mlp-softprob", "generator-12"])
    p.add_argument("--degrees", nargs="+", type=int, choices=(1, 2, 3), default=[1, 2, 3],
                   help="orders of the oracle control variates (default: 1 2 3)")
    args = p.parse_args(argv)
    rows = {}
    for name in args.games:
        build, n = bench.GAMES[name]
        rows[name] = headroom(all_values(build(), n), n, args.degrees)
    remedies = list(next(iter(rows.values())))
    print("RMSE(iid) / RMSE(remedy) at equal evaluations, each remedy with perfect knowledge of the game")
    print(f"{'game':<14}" + "".join(f"{r:>17}" for r in remedies))
    for name, row in rows.items():
        print(f"{name:<14}" + "".join(f"{row[r]:>17.2f}" for r in remedies))
    for r in remedies:
        print(f"min_ratio_vs_iid[{r}]={min(row[r] for row in rows.values()):.2f}")


if __name__ == "__main__":
    main()
