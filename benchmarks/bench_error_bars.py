"""Do the 95% error bars cover 95%, for the quiet units and the loud ones alike? Coverage of mode elements per
variance class (the quiet half of the units, the middle 40%, the loudest tenth, by the variance of one
ordering's marginal contribution) for the estimators whose error bars come from the spread of their samples
(the chains and chain-kernel: what auto runs from 30 units up), under two priors for that spread:

    pooled     each unit's variance shrunk toward the mean over the units with the weight of one sample, at
               the t quantile of the samples less one (the default, common/moments.py)
    moderated  Smyth's empirical Bayes (limma's squeezeVar): the prior's strength d0 and variance s0^2
               estimated from the spread of the units' log variances, at the t quantile of the samples less
               one plus d0

Games: hub games with analytic values at 12, 200 and 1,000 units (a few hub units interact with a third of the
others, in pairs and triples: their marginal contributions vary most), and the 12-unit games of
bench_paper_sizes.py against their exact values. The same coalitions serve both priors (a run per seed, its
game values kept), so their coverages differ by the prior alone.

    python benchmarks/bench_error_bars.py --out docs/results/error_bars.json      # 3.5 minutes on 2 cores

benchmarks/rankings_tables.py makes docs/estimators.md's table from the JSON.
"""
import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import Budget, Method, shapley_modes  # noqa: E402
from common.cli import UsageError, check_output_file, positive_int  # noqa: E402
from common.moments import Moments, Prior  # noqa: E402
import bench_paper_sizes as sizes  # noqa: E402  (its 12-unit games, their exact references, the variance classes)
from journal import Journal, write_json  # noqa: E402

METHODS = {"iid": Method(sampler="iid", estimator="chain"),
           "antithetic": Method(sampler="antithetic", estimator="chain"),
           "chain-kernel": Method(sampler="orthogonal", estimator="chain-kernel")}
PRIORS = ("pooled", "moderated")
CLASSES = ("quiet", "middle", "loud")
BUDGETS = (5, 10, 30, 100)
FLOOR = 1e-5  # a zero variance, relative to the element's mean over the units (limma floors at 1e-5 x the median)


# ---------------------------------------------------------------- games
def hub_game(n, outputs=4, hubs=2, seed=0):
    """(game, exact modes): v_k(S) = sum_i w_ik [i in S] + sum_h [h in S] (a_h m_h + b_h m_h (m_h - 1) / 2 / g_h),
    m_h the members of hub h's group G_h (a third of the units, g_h of them) in S. Each pair {h, j} splits a_h
    evenly and each triple {h, j, l} splits b_h / g_h in three, so phi_h = a_h g_h / 2 + b_h (g_h - 1) / 6 and a
    member's share is a_h / 2 + b_h (g_h - 1) / (3 g_h)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, outputs)) * 0.1
    hub = np.stack([rng.choice(n, hubs, replace=False) for _ in range(outputs)])
    groups = rng.random((outputs, hubs, n)) < 1 / 3
    a, b = rng.uniform(0.5, 1.5, (outputs, hubs)), rng.uniform(0.5, 1.5, (outputs, hubs))
    truth = w.copy()
    for k in range(outputs):
        for j in range(hubs):
            groups[k, j, hub[k, j]] = False
            g = groups[k, j].sum()
            truth[hub[k, j], k] += a[k, j] * g / 2 + b[k, j] * (g - 1) / 6
            truth[groups[k, j], k] += a[k, j] / 2 + b[k, j] * (g - 1) / (3 * g)

    def game(c):
        c = c.astype(float)
        out = c @ w
        for k in range(outputs):
            for j in range(hubs):
                m, g = c @ groups[k, j], groups[k, j].sum()
                out[:, k] += c[:, hub[k, j]] * (a[k, j] * m + b[k, j] * m * (m - 1) / 2 / g)
        return out
    return game, truth


def hub_spread(game, n, orderings=400):
    """Each unit's variance of one ordering's marginal contribution (up to a common factor, which does not change
    the ranking): the squared SE of a run of `orderings` iid orderings."""
    return shapley_modes(game, n, Budget(orderings=orderings), seed=123, method=METHODS["iid"], progress=False).se ** 2


def build(name):
    """(game, n, truth, spread, what)."""
    if name.startswith("hub-"):
        n = int(name[4:])
        game, truth = hub_game(n)
        return game, n, truth, hub_spread(game, n), f"hub game of {n} units, 4 outputs, analytic values"
    game, what = sizes.small_game(name)
    n = sizes.GAMES[name]["n"]
    modes, _, spread = sizes.reference(name, game, n, "exact")
    return game, n, modes[:, :-1], spread[:, :-1], what + " (exact values)"


GAMES = ("hub-12", "hub-200", "hub-1000", "mlp-accuracy", "mlp-softprob", "generator-12")


# ---------------------------------------------------------------- the moderated prior
def moderated_prior(moments, weights=None) -> Prior:
    """limma's prior from every row with two samples or more: log s^2 has mean log s0^2 + digamma(d/2) - log(d/2)
    - (digamma(d0/2) - log(d0/2)) and variance trigamma(d/2) + trigamma(d0/2); d0 pooled over the elements."""
    rows = np.flatnonzero(moments.count >= 2)
    shape = moments.mean.shape[2:]
    if len(rows) < 2:
        return Prior(float("inf"), np.zeros(shape))
    dof = moments.count[rows] - 1
    variances = np.stack([moments._m2(row, weights) / d for row, d in zip(rows, dof)])
    pooled = variances.mean(0)
    alive = pooled > 0
    e = np.log(np.maximum(variances, FLOOR * pooled) + ~alive) - (special.digamma(dof / 2) -
                                                                    np.log(dof / 2)).reshape(-1, *[1] * len(shape))
    excess = float(np.mean(e.var(0, ddof=1)[alive])) - float(np.mean(special.polygamma(1, dof / 2))) \
        if alive.any() else 0.0
    d0 = 2 * trigamma_inverse(excess) if excess > 0 else float("inf")
    offset = 0.0 if np.isinf(d0) else special.digamma(d0 / 2) - np.log(d0 / 2)
    return Prior(d0, np.where(alive, np.exp(e.mean(0) + offset), 0.0))


def trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by Newton's method from 1/2 + 1/x (limma's trigammaInverse)."""
    if x > 1e7:
        return 1 / np.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = special.polygamma(1, y)
        step = tri * (1 - tri / x) / special.polygamma(2, y)
        y += step
        if -step / y < 1e-8:
            break
    return float(y)


@contextlib.contextmanager
def prior_of(kind, strengths):
    """Moments.prior as `kind` says while inside; the moderated prior's d0 appended to `strengths`."""
    default = Moments.prior

    def moderated(self, weights=None):
        prior = moderated_prior(self, weights)
        strengths.append(prior.strength)
        return prior
    Moments.prior = default if kind == "pooled" else moderated
    try:
        yield
    finally:
        Moments.prior = default


class Memo:
    """The game, its values kept by coalition: the second prior's run of a seed asks nothing new."""

    def __init__(self, game):
        self.game, self.values = game, {}

    def __call__(self, coalitions):
        keys = [row.tobytes() for row in coalitions]
        new = [i for i, key in enumerate(keys) if key not in self.values]
        if new:
            self.values.update(zip((keys[i] for i in new), np.asarray(self.game(coalitions[new]), np.float64)))
        return np.stack([self.values[key] for key in keys])


# ---------------------------------------------------------------- the benchmark
def covered(game, n, truth, method, budget, seed):
    """({prior: (n, elements) bool, inside the 95% interval}, the moderated prior's d0) of one seed's run under
    each prior, on the same coalitions; None below the estimator's least budget or without error bars."""
    memo, inside, strengths = Memo(game), {}, []
    rounding = 1e-9 * np.sqrt(np.mean(truth ** 2))
    for prior in PRIORS:
        with prior_of(prior, strengths):
            try:
                r = shapley_modes(memo, n, Budget(orderings=budget), seed=seed, method=METHODS[method],
                                  progress=False)
            except ValueError:  # below the estimator's least (chain-kernel: 2 (n - 1) orderings)
                return None
        if not np.isfinite(r.se).all():  # one sampler group: no spread to judge
            return None
        dof = r.metadata["se_dof"] + (strengths[-1] if prior == "moderated" else 0)
        margin = r.se * (stats.t.ppf(0.975, dof) if dof > 0 else np.inf)
        inside[prior] = np.abs(r.modes.reshape(n, -1) - truth.reshape(n, -1)) <= margin.reshape(n, -1) + rounding
    return inside, strengths[-1]


def game_cells(name, args):
    game, n, truth, spread, what = build(name)
    print(f"\n{name}: {what}", flush=True)
    classes = sizes.variance_classes(spread)
    cells = []
    for method in args.methods:
        for budget in args.budgets:
            runs = [covered(game, n, truth, method, budget, seed) for seed in range(args.seeds)]
            if any(r is None for r in runs):
                continue
            inside = {prior: [r[0][prior] for r in runs] for prior in PRIORS}
            strengths = [r[1] for r in runs]
            for prior in PRIORS:
                c = dict(game=name, n=n, method=method, budget=budget, prior=prior,
                         all=float(np.mean(inside[prior])),
                         **{k: float(np.mean([x[units].mean() for x in inside[prior]])) for k, units in
                            classes.items()},
                         d0=float(np.median(strengths)) if prior == "moderated" else 1.0)
                cells.append(c)
                print(f"  {method:<13}{budget:>4}  {prior:<10} all {c['all']:.3f}  quiet {c['quiet']:.3f}  "
                      f"middle {c['middle']:.3f}  loud {c['loud']:.3f}  d0 {c['d0']:.3g}", flush=True)
    return dict(what=what, n=n, cells=cells)


def markdown(results, games=None) -> str:
    """One row per game, method and budget: each prior's coverage, all / quiet half / middle / loudest tenth."""
    cells = [c for name in (games or results["games"]) for c in results["games"][name]["cells"]]
    at = {(c["game"], c["method"], c["budget"], c["prior"]): c for c in cells}
    rows = list(dict.fromkeys((c["game"], c["method"], c["budget"]) for c in cells))
    lines = [f"{results['seeds']} seeds per cell; coverage of 95% intervals: all / quiet half / middle 40% / "
             "loudest tenth of the units (by the variance of one ordering's marginal contribution).", "",
             "| game | method | budget | pooled (default) | moderated | moderated's d0 |", "|" + " --- |" * 6]
    for game, method, budget in rows:
        text = {p: " / ".join(f"{at[game, method, budget, p][k]:.2f}" for k in ("all", *CLASSES)) for p in PRIORS}
        lines.append(f"| {game} | {method} | {budget} | {text['pooled']} | {text['moderated']} | "
                     f"{at[game, method, budget, 'moderated']['d0']:.3g} |")
    return "\n".join(lines)


def summary_markdown(results) -> str:
    """One row per game: each prior's least coverage over the methods and budgets, per class."""
    budgets = ", ".join(str(b) for b in results["budgets"])
    lines = [f"The least coverage of 95% intervals over each game's cells ({budgets} orderings' worth;\n"
             f"{results['seeds']} seeds each): all / quiet half / middle 40% / loudest tenth.", "",
             "| game | pooled (default) | moderated | moderated's d0 |", "| --- | --- | --- | --- |"]
    for name, game in results["games"].items():
        least = {p: " / ".join(f"{min(c[k] for c in game['cells'] if c['prior'] == p):.2f}" for k in ("all", *CLASSES))
                 for p in PRIORS}
        d0 = [c["d0"] for c in game["cells"] if c["prior"] == "moderated"]
        lines.append(f"| {name} ({game['n']} units) | {least['pooled']} | {least['moderated']} | "
                     f"{min(d0):.2g}-{max(d0):.2g} |")
    return "\n".join(lines)


def summary(results) -> dict:
    """Each prior's smallest coverage per class over every cell."""
    cells = [c for g in results["games"].values() for c in g["cells"]]
    return {f"min_{k}_{p}": f"{min(c[k] for c in cells if c['prior'] == p):.3f}"
            for p in PRIORS for k in ("all", *CLASSES)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=GAMES, default=list(GAMES))
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS))
    p.add_argument("--budgets", type=positive_int, nargs="+", default=list(BUDGETS),
                   help="orderings' worth of n evaluations (default: %(default)s)")
    p.add_argument("--seeds", type=positive_int, default=20, help="runs per game, method and budget (default: 20)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "error_bars.json",
                   help="the results (JSON); finished games are kept in OUT.partial, so the same command resumes")
    args = p.parse_args(argv)
    try:
        check_output_file(args.out)
    except UsageError as error:
        p.error(str(error))
    started = time.perf_counter()
    journal = Journal(args.out, dict(vars(args), out=None))
    games = {name: journal.run(name, lambda: game_cells(name, args)) for name in args.games}
    results = dict(games=games, budgets=args.budgets, seeds=args.seeds,
                   seconds=time.perf_counter() - started + journal.reused_seconds(),
                   argv=sys.argv[1:] if argv is None else list(argv))
    write_json(args.out, results)
    journal.finish()
    print(f"\n{markdown(results)}\n\nwrote {args.out} ({results['seconds']:.0f} s)")
    for key, value in summary(results).items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
