"""Figure 2 (paper section 2.2) and its companions, as functions of results: notebooks/llm_figures.ipynb draws
them, tests/test_figures.py renders each on a tiny result. Error bars are 1 SE, from the modes' standard errors
(elements taken as independent: a sum's SE is the root of its squared SEs)."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

from common.figures import legend_beside, legend_below, note, shared_colorbar, signed_heatmap
from LLM.tasks import DOMAINS

COLOURS = {"arithmetic": "tab:red", "language": "tab:blue", "knowledge": "tab:green"}


def expert_grid(result, extra):
    """(tasks, n_layers, n_experts) of an experts run, checking that the players are layer-major."""
    tasks = [str(t) for t in extra["task_names"]]
    layer_expert = np.asarray(extra["layer_expert"])
    n_layers, n_experts = int(layer_expert[:, 0].max()) + 1, int(layer_expert[:, 1].max()) + 1
    if not (layer_expert[:, 0] * n_experts + layer_expert[:, 1] == np.arange(len(layer_expert))).all():
        raise ValueError("the players are not layer-major (layer, expert) pairs")
    return tasks, n_layers, n_experts


def domain_contributions(modes, se, tasks):
    """{domain: (value, se)} per expert: the mean mode over the domain's tasks, normalised by its sum over the
    experts (Fig. 2A); a run where nothing matters is left unnormalised."""
    out = {}
    for domain, names in DOMAINS.items():
        columns = [tasks.index(t) for t in names]
        value = modes[:, columns].mean(1)
        spread = np.sqrt((se[:, columns] ** 2).sum(1)) / len(columns)
        total = value.sum()
        scale = abs(total) if abs(total) > 1e-12 else 1.0
        out[domain] = (value / (total if abs(total) > 1e-12 else 1.0), spread / scale)
    return out


def layer_split(n_layers: int):
    """The paper's early layers 0-5 of 32, scaled to this model; the rest."""
    early = list(range(max(1, round(6 / 32 * n_layers))))
    return early, list(range(len(early), n_layers))


def span(layers) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"


def task_correlation(modes, n_layers, n_experts, layers):
    rows = modes.reshape(n_layers, n_experts, -1)[layers].reshape(-1, modes.shape[1]).T  # tasks x experts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(rows)


def figure2_abc(result, extra, layer: int = 1):
    """(figure, panels): A the experts' mean contribution per layer and domain, B the experts of one layer, C1 the
    tasks' layer profiles, C2 and C3 the tasks' correlations over early and later layers' experts. `panels` holds
    what the claims are checked on."""
    tasks, n_layers, n_experts = expert_grid(result, extra)
    modes, se = np.asarray(result.modes, float), np.nan_to_num(np.asarray(result.se, float))
    domains = domain_contributions(modes, se, tasks)
    per_layer = {d: v.reshape(n_layers, n_experts).mean(1) for d, (v, _) in domains.items()}
    per_layer_se = {d: np.sqrt((s.reshape(n_layers, n_experts) ** 2).sum(1)) / n_experts
                    for d, (_, s) in domains.items()}
    early, late = layer_split(n_layers)
    layer = min(layer, n_layers - 1)
    ticks = range(0, n_layers, max(1, n_layers // 16))

    fig = plt.figure(figsize=(16, 10), layout="constrained")
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, :2])
    for d, v in per_layer.items():
        ax.errorbar(range(n_layers), v, yerr=per_layer_se[d], fmt="o-", color=COLOURS[d], capsize=2, label=d)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="layer", ylabel="mean normalised contribution (share of the domain's total)",
           title="A  the experts' mean contribution, per layer", xticks=ticks)
    legend_beside(ax)

    ax = fig.add_subplot(grid[0, 2:])
    width = 0.8 / len(domains)
    for i, (d, (v, s)) in enumerate(domains.items()):
        ax.bar(np.arange(n_experts) + (i - 1) * width, v.reshape(n_layers, n_experts)[layer], width,
               yerr=s.reshape(n_layers, n_experts)[layer], capsize=2, color=COLOURS[d], label=d)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel=f"expert of layer {layer}", ylabel="normalised contribution (share of the domain's total)",
           title=f"B  the experts of layer {layer}", xticks=range(n_experts))
    legend_beside(ax)

    ax = fig.add_subplot(grid[1, :2])
    profile = np.stack([modes[:, k].reshape(n_layers, n_experts).mean(1) for k in range(len(tasks))])
    sums = profile.sum(1, keepdims=True)
    profile = profile / np.where(np.abs(sums) > 1e-12, sums, 1)
    signed_heatmap(ax, profile, label="share of the task's total contribution")
    ax.set(yticks=range(len(tasks)), yticklabels=tasks, xlabel="layer", xticks=ticks,
           title="C1  each task's contribution, per layer")

    correlations, axes, image, scale = {}, [], None, Normalize(-1, 1)
    for col, (name, layers) in enumerate((("early", early), ("late", late))):
        ax = fig.add_subplot(grid[1, 2 + col])
        axes.append(ax)
        correlations[name] = task_correlation(modes, n_layers, n_experts, layers) if layers else None
        if correlations[name] is None:
            note(ax, "no later layers in this model")
            ax.set(title=f"C{2 + col}  task correlation, no layers", xticks=[], yticks=[])
            continue
        image = ax.imshow(correlations[name], norm=scale, cmap="RdBu_r")
        ax.set(xticks=range(len(tasks)), yticks=range(len(tasks)),
               title=f"C{2 + col}  task correlation, {span(layers)}")
        ax.set_xticklabels(tasks, rotation=90, fontsize=7)
        ax.set_yticklabels(tasks, fontsize=7)
    if image is not None:
        shared_colorbar(fig, image, axes, label="Pearson r of two tasks' modes")
    panels = dict(tasks=tasks, n_layers=n_layers, n_experts=n_experts, domains={d: v for d, (v, _) in domains.items()},
                  per_layer=per_layer, layer=layer, early=early, late=late, correlations=correlations)
    return fig, panels


def removal_values(removal):
    """(metric, lowest, highest, their SEs) of a removal-curves file: GSM8K's accuracy, or the tiny model's own
    arithmetic score (a Levenshtein ratio: it rarely gets every digit right, and exact accuracy would be a flat
    line near zero)."""
    metric = "accuracy" if str(removal["data"]) == "gsm8k" else "score"
    low, high = np.asarray(removal[f"{metric}_lowest"]), np.asarray(removal[f"{metric}_highest"])
    se = [np.asarray(removal.get(f"{metric}_{side}_se", np.full_like(low, np.nan))) for side in ("lowest", "highest")]
    return metric, low, high, se


def figure2_d(removal):
    """D: the held-out score after removing the k lowest- or highest-contributing experts (by arithmetic)."""
    metric, low, high, (low_se, high_se) = removal_values(removal)
    ks = np.asarray(removal["ks"])
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.errorbar(ks, 100 * low, yerr=100 * low_se, fmt="o-", capsize=2, label="remove the lowest-contributing")
    ax.errorbar(ks, 100 * high, yerr=100 * high_se, fmt="s-", capsize=2, label="remove the highest-contributing")
    data = "GSM8K 3-shot" if str(removal["data"]) == "gsm8k" else "held-out arithmetic"
    ax.set(xlabel="experts removed (ranked by their arithmetic contribution)", ylabel=f"{metric} (%)",
           title=f"D  {data}, {int(removal['n_items'])} items (error bars: 1 SE over items)")
    legend_below(ax, ncol=2)
    return fig


def pairs_figure(pairs, tasks, top: int = 10):
    """The `top` expert pairs' interaction modes on each task."""
    order = np.argsort(-np.abs(pairs.modes).max(1))[:top]
    names = [str(p) for p in pairs.players]
    fig, ax = plt.subplots(figsize=(10, 4.8), layout="constrained")
    signed_heatmap(ax, pairs.modes[order], label="interaction (task score)")
    ax.set(xticks=range(len(tasks)), yticks=range(len(order)), xlabel="task",
           yticklabels=[f"{names[i]} + {names[j]}" for i, j in pairs.pairs[order]],
           title=f"{pairs.index} of the {len(order)} strongest expert pairs ({pairs.evaluations:,} evaluations)")
    ax.set_xticklabels(tasks, rotation=45, ha="right")
    return fig


def unit_layers(units, extra):
    """Labels of the decoder layers the units live in, and each unit's layer."""
    layer_of = np.asarray(extra["player_layer"])
    return np.unique(layer_of), layer_of


def units_figure(units, extra):
    """Any units of a Hugging Face model (heads, MLP blocks, attention and MLP sub-layers) on the nine tasks: the
    modes, one column a unit grouped by layer, and each domain's total per layer with its SE."""
    tasks = [str(t) for t in extra["task_names"]]
    layers, layer_of = unit_layers(units, extra)
    m, se = np.asarray(units.modes, float), np.nan_to_num(np.asarray(units.se, float))
    kind = units.metadata.get("units", "units")
    per_layer = len(m) // max(len(layers), 1)
    what = {"layers": "(attention, MLP)", "heads": "heads", "mlp": "(MLP)"}.get(kind, kind)
    fig, axes = plt.subplots(1, 2, figsize=(16, 6), gridspec_kw=dict(width_ratios=[2, 1]), layout="constrained")
    signed_heatmap(axes[0], m.T, label="Shapley mode (score units)")
    first = [int(np.flatnonzero(layer_of == layer)[0]) for layer in layers]
    middle = [f + (np.sum(layer_of == layer) - 1) / 2 for f, layer in zip(first, layers)]
    step = max(1, len(layers) // 15)
    axes[0].set_xticks(middle[::step], [f"L{int(layer)}" for layer in layers[::step]])
    for f in first[1:]:
        axes[0].axvline(f - 0.5, color="0.85", lw=0.4)
    axes[0].set(yticks=range(len(tasks)), yticklabels=tasks, xlabel="decoder layer (its units side by side)",
                title=f"{units.metadata.get('model', 'model')}: {len(layers)} layers x {what} = {len(m)} units, "
                      f"{units.metadata.get('score', '')} score, {units.evaluations:,} evaluations")
    for domain, members in DOMAINS.items():
        cols = [tasks.index(t) for t in members]
        total = [m[layer_of == layer][:, cols].mean(1).sum() for layer in layers]
        spread = [np.sqrt((se[layer_of == layer][:, cols] ** 2).sum(1).sum()) / len(cols) for layer in layers]
        axes[1].errorbar(layers, total, yerr=spread, fmt="o-", capsize=2, color=COLOURS[domain], label=domain)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].set(xlabel="decoder layer", ylabel="summed mode (mean over the domain's tasks)",
                title=f"each layer's {per_layer} units together, per domain (1 SE)")
    legend_below(axes[1])
    return fig


def units_removal_figure(curve):
    """The held-out task's score after removing the k units with the lowest or highest mode for it."""
    ks = np.asarray(curve["ks"])
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for side, marker in (("lowest", "o-"), ("highest", "s-")):
        se = np.asarray(curve.get(f"score_{side}_se", np.full(len(ks), np.nan)))
        ax.errorbar(ks, curve[f"score_{side}"], yerr=se, fmt=marker, capsize=2, label=f"remove the {side}-mode units")
    ax.set(xlabel=f"units removed (ranked by their {curve['task']} mode)", ylabel=f"{curve['score']} score",
           title=f"held-out {curve['task']}, {int(curve['n_items'])} items (error bars: 1 SE over items)")
    legend_below(ax, ncol=2)
    return fig
