"""Figures of a ranking comparison (one setting of benchmarks/bench_rankings.py's JSON: a model, its trained
networks, each network's rows): the removal curves, and the area against what each ranking cost."""
import textwrap

import numpy as np


def _by_ranking(setting):
    """{name: (networks, ...) arrays}: each network's top and bottom curves and area, Shapley seeds and random
    seeds averaged within a network; also each ranking's mean evaluations and seconds."""
    found = {}
    for network in setting["networks"]:
        seen = {}
        for row in network["rows"]:
            name = "random" if row["family"] == "random" else row["name"]
            seen.setdefault(name, []).append((row["top"], row["bottom"], row["metrics"]["area"][0],
                                              row["evaluations"], row["seconds"]))
        for name, rows in seen.items():
            top, bottom, area, evaluations, seconds = zip(*rows)
            entry = found.setdefault(name, dict(top=[], bottom=[], area=[], evaluations=[], seconds=[]))
            for key, value in zip(entry, (top, bottom, area, evaluations, seconds)):
                entry[key].append(np.mean(np.asarray(value, dtype=np.float64), 0))
    return {name: {k: np.array(v) for k, v in entry.items()} for name, entry in found.items()}


def _mean_and_se(values):
    values = np.asarray(values)
    se = values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros(values.shape[1:])
    return values.mean(0), se


def _style(name, shapley_names):
    if name == "random":
        return dict(color="grey", ls="--", lw=1.2)
    if name in shapley_names:
        shade = 0.35 + 0.65 * shapley_names.index(name) / max(len(shapley_names) - 1, 1)
        return dict(color=(0.75 * (1 - shade), 0.3 * (1 - shade), shade), lw=1 + 1.5 * shade)
    return dict(lw=1.2)


def removal_figure(setting):
    """The held-out score after removing the top k units (left) and the bottom k (right) of every ranking, the
    mean over the trained networks with 2 SE over them (a single network: no error bars)."""
    import matplotlib.pyplot as plt

    from .figures import legend_below
    ranked = _by_ranking(setting)
    shapley = [name for name in ranked if name.startswith("shapley")]
    x = np.asarray(setting["networks"][0]["ks"]) / setting["networks"][0]["n"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True, layout="constrained")
    for name, entry in ranked.items():
        for ax, which in zip(axes, ("top", "bottom")):
            mean, se = _mean_and_se(entry[which])
            ax.errorbar(x, mean, yerr=2 * se, label=name, capsize=0, **_style(name, shapley))
    n = len(setting["networks"])
    bars = f"the mean of {n} networks, error bars: 2 SE over them" if n > 1 else "one network"
    axes[0].set_title(f"{setting['model']}: remove the top k ({bars})", fontsize=9)
    axes[1].set_title(f"{setting['model']}: remove the bottom k", fontsize=9)
    axes[0].set_ylabel(textwrap.fill(f"held-out {setting['score']}", 48))
    for ax in axes:
        ax.set_xlabel("fraction of the units removed")
    legend_below(axes[1], ncol=2, fontsize=7)
    return fig


def cost_figure(setting):
    """Area between the curves (mean over networks, 2 SE) against each ranking's cost: evaluations (left) and
    seconds (right), both on a scale that is linear near 0 so that the free rankings show."""
    import matplotlib.pyplot as plt

    from .figures import legend_beside
    ranked = _by_ranking(setting)
    shapley = [name for name in ranked if name.startswith("shapley")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True, layout="constrained")
    for ax, cost, threshold, unit in zip(axes, ("evaluations", "seconds"), (1, 0.01),
                                         ("evaluations (forward and backward passes for the gradient)",
                                          "seconds")):
        if shapley:
            xs = [ranked[s][cost].mean() for s in shapley]
            means, ses = zip(*(_mean_and_se(ranked[s]["area"]) for s in shapley))
            ax.errorbar(xs, means, yerr=2 * np.asarray(ses), marker="o", color="C3", lw=2,
                        label="shapley at " + ", ".join(s.split("(")[1].split(" ")[0] for s in shapley) +
                        " orderings' worth")
        for i, (name, entry) in enumerate((k, v) for k, v in ranked.items() if k not in shapley):
            mean, se = _mean_and_se(entry["area"])
            ax.errorbar([entry[cost].mean()], [mean], yerr=[2 * se], marker="s", ls="none", label=name,
                        color="grey" if name == "random" else f"C{i % 3}" if i < 3 else f"C{i + 1}")
        ax.set_xscale("symlog", linthresh=threshold)
        ax.set_xlabel(unit)
        ax.set_title(f"area against {cost}", fontsize=9)
    n = len(setting["networks"])
    fig.suptitle(f"{setting['model']}: what each ranking finds against what it costs "
                 f"({f'the mean of {n} networks, error bars: 2 SE over them' if n > 1 else 'one network'})",
                 fontsize=10)
    axes[0].set_ylabel("area between the bottom-k and top-k curves")
    legend_beside(axes[1], fontsize=7)
    return fig
