"""Figure 1 of the paper (panels A-F, plus the error bars of our estimates) from compute_msa.py's results.

    python figures.py --results results --out figures      # writes figures/figure1.png
The notebook notebooks/mlp_figures.ipynb draws the same panels with these functions.
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if __name__ == "__main__" else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.figures import legend_below, signed_heatmap  # noqa: E402
from MLP import HERE  # noqa: E402
from MLP.analysis import CHANCE, claims, digit_correlation, format_claims, load_results  # noqa: E402

COLORS = {"none": "#4C72B0", "l1": "#DD8452", "l2": "#55A868"}
NAMES = {"none": "no regularisation", "l1": "L1", "l2": "L2"}


def _closest(df, n):
    return int(df.N.iloc[(df.N - n).abs().argmin()])


def _trend(ax, df, column, reg, label=None, color=None):
    g = df[df.reg == reg].groupby("N")[column]
    mean, sd = g.mean(), g.std().fillna(0)
    ax.plot(mean.index, mean.values, "o-", ms=3, color=color or COLORS[reg], label=label or NAMES[reg])
    ax.fill_between(mean.index, mean - sd, mean + sd, color=color or COLORS[reg], alpha=0.2, lw=0)


def panel_a(ax, df):
    for reg in COLORS:
        if reg in set(df.reg):
            _trend(ax, df, "D", reg)
    ax.set(xlabel="hidden units N", ylabel="index of distributed computation D", title="A  D falls with N")
    legend_below(ax)


def panel_b(ax, df, reg="l2"):
    sub = df[df.reg == reg] if reg in set(df.reg) else df
    for d in range(10):
        if d not in (1, 9):
            g = sub.groupby("N")[f"D_digit{d}"].mean()
            ax.plot(g.index, g.values, color="0.8", lw=1, zorder=1)
    for d, color in ((1, "#8172B3"), (9, "#C44E52")):
        _trend(ax, sub.assign(reg=reg), f"D_digit{d}", reg, label=f"digit {d}", color=color)
    ax.set(xlabel="hidden units N", ylabel="D per digit",
           title=f"B  digit complexity ({NAMES.get(reg, reg)}; grey: the other digits)")
    legend_below(ax, ncol=2)


def panel_c(ax, df):
    n = int(df.N.max())
    big = df[df.N == n].groupby("reg")[["accuracy", "acc_without_top", "acc_without_bottom"]].agg(["mean", "std"])
    k = int(df[df.N == n].k_top.iloc[0])
    regs = [r for r in COLORS if r in big.index]
    x = np.arange(len(regs))
    for i, (col, label, hatch) in enumerate([("accuracy", "intact", ""), ("acc_without_top", f"top {k} removed", "//"),
                                             ("acc_without_bottom", f"bottom {n - k} removed", "..")]):
        ax.bar(x + (i - 1) * 0.27, big[col]["mean"][regs], 0.27, yerr=big[col]["std"][regs].fillna(0), label=label,
               color=[COLORS[r] for r in regs], hatch=hatch, edgecolor="white", alpha=1 - 0.25 * i)
    ax.axhline(CHANCE, color="k", ls=":", lw=1)
    ax.text(x[-1] + 0.45, CHANCE, "chance", va="bottom", ha="right", fontsize=8)
    ax.set_xticks(x, [NAMES[r] for r in regs])
    ax.set(ylim=(0, 1), ylabel="test accuracy (fraction correct)", xlabel="regularisation",
           title=f"C  lesioning the top / bottom units (N={n})")
    from matplotlib.patches import Patch
    legend_below(ax, handles=[Patch(facecolor="0.5", alpha=1 - 0.25 * i, hatch=h, edgecolor="white", label=l)
                              for i, (h, l) in enumerate([("", "intact"), ("//", f"top {k} removed"),
                                                          ("..", f"bottom {n - k} removed")])])


def panel_d(axes, df, results, n=100):
    n = _closest(df, n)
    for i, (ax, reg) in enumerate(zip(axes, [r for r in COLORS if r in set(df.reg)])):
        name = df[(df.N == n) & (df.reg == reg)].sort_values("trial").name.iloc[0]
        modes = results[name].modes
        modes = modes[np.argsort(-modes.mean(1))]
        signed_heatmap(ax, modes.T, label="contribution to the digit's accuracy")
        ax.set(xlabel="unit (sorted by mean contribution)", ylabel="digit", yticks=range(10),
               title=f"D{i + 1}  {NAMES[reg]}, N={n}")


def panel_e(ax, df):
    for reg in COLORS:
        if reg in set(df.reg):
            _trend(ax, df, "weight_corr", reg)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="hidden units N", ylabel="Pearson r (|weight| vs contribution)", title="E  do large weights matter?")
    legend_below(ax)


def panel_f(ax, df, results, n=50):
    n = _closest(df, n)
    corr = np.mean([digit_correlation(results[name].modes) for name in df[df.N == n].name], axis=0)
    corr[np.eye(10, dtype=bool)] = np.nan  # a digit with itself (1): left out, so the scale shows the pairs
    signed_heatmap(ax, corr, label="Pearson r of two digits' contributions", aspect="equal")
    ax.set(xticks=range(10), yticks=range(10), xlabel="digit", ylabel="digit",
           title=f"F  digit correlation of contributions (N={n})")


def panel_error_bars(ax, df, results, digit=1, show=20):
    """Our addition: each contribution comes with a Monte Carlo standard error."""
    row = df[df.N == df.N.max()].sort_values(["reg", "trial"]).iloc[0]
    result = results[row["name"]]
    order = np.argsort(-result.modes[:, digit])[:show]
    show = min(show, len(order))
    ax.errorbar(np.arange(1, show + 1), result.modes[order, digit], yerr=2 * result.se[order, digit], fmt="o", ms=3,
                capsize=2, color=COLORS.get(row["reg"], "k"))
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel=f"rank among units, by contribution to digit {digit}",
           ylabel=f"contribution to digit {digit}'s accuracy ± 2 SE",
           title=f"G  our error bars: N={row['N']}, {NAMES.get(row['reg'], row['reg'])}, "
                 f"{result.metadata.get('evaluations', '?'):,} evaluations ({result.metadata.get('estimator', '?')})")


def figure1(results_dir):
    df, results = load_results(results_dir)
    fig = plt.figure(figsize=(17, 15), layout="constrained")
    grid = fig.add_gridspec(3, 3)
    panel_a(fig.add_subplot(grid[0, 0]), df)
    panel_b(fig.add_subplot(grid[0, 1]), df)
    panel_c(fig.add_subplot(grid[0, 2]), df)
    panel_d([fig.add_subplot(grid[1, i]) for i in range(3)], df, results)
    panel_e(fig.add_subplot(grid[2, 0]), df)
    panel_f(fig.add_subplot(grid[2, 1]), df, results)
    panel_error_bars(fig.add_subplot(grid[2, 2]), df, results)
    trials = df.groupby(["N", "reg"]).size().max()
    fig.suptitle(f"Shapley modes of MLP hidden units on MNIST ({len(df)} models, up to {trials} trials per setting; "
                 "bands: ±1 SD over trials)", fontsize=13)
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(HERE / "results"), help="folder of compute_msa.py's .npz files")
    p.add_argument("--out", default=str(HERE / "figures"), help="folder for figure1.png")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = figure1(args.results)
    fig.savefig(out / "figure1.png", dpi=110)
    plt.close(fig)
    print(f"wrote {(out / 'figure1.png').resolve()}")
    df, results = load_results(args.results)
    print(f"\nthe paper's section 2.1 claims, measured on {len(df)} models in {args.results}:\n")
    print(format_claims(claims(df, results)))


if __name__ == "__main__":
    main()
