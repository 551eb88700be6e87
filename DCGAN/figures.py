"""The DCGAN's figures (paper sections 2.3-2.5) as functions of results: notebooks/dcgan_figures.ipynb draws them,
tests/test_figures.py renders each on a tiny result. A mode is shown as what the filter adds to each pixel (the
mean over R, G and B), red where it brightens, blue where it darkens, on a scale around 0."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

from common.figures import note, picture, shared_colorbar, signed_heatmap
from DCGAN import analysis

ADDED = "added to the pixel (mean of R, G, B)"


def rgb(image) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3); one channel -> (H, W)."""
    image = np.asarray(image)
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def example_filters(modes, layer, players, intact, face: int = 0, k: int = 3):
    """Figure 3: the k strongest filters of each layer, what each adds to one image, each on its own scale (they
    differ by orders of magnitude between layers), beside the image."""
    examples = analysis.examples_per_layer(modes, layer, k=k)
    fig, axes = plt.subplots(len(examples), k + 1, figsize=(2.6 * (k + 1), 2.2 * len(examples)), squeeze=False,
                             layout="constrained")
    for r, (l, idx) in enumerate(examples.items()):
        for c in range(k):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(idx):
                signed_heatmap(ax, modes[idx[c], face].mean(0), label="", aspect="equal")
                ax.set_title(f"layer {l}: {players[idx[c]]}" if c == 0 else str(players[idx[c]]), fontsize=7)
        picture(axes[r, k], rgb(intact[face]), title=f"image {face}" if r == 0 else None)
    fig.suptitle(f"Figure 3: each layer's {k} strongest filters; colour: what each adds to a pixel of image {face} "
                 "(mean of R, G, B), on its own scale", fontsize=9)
    return fig


def layer_sums_figure(modes, layer, intact, n_show: int = 6):
    """Every layer's filters together (their modes summed: efficiency makes the layers' sums add up to the image
    less the fully lesioned one), image by image, each layer on one scale."""
    sums = analysis.layer_sums(modes, layer)[:, :n_show].mean(2)  # (L, B, H, W)
    n_show = sums.shape[1]
    fig, axes = plt.subplots(n_show, len(sums) + 1, figsize=(2.2 * (len(sums) + 1), 2.0 * n_show), squeeze=False,
                             layout="constrained")
    for l in range(len(sums)):
        lim = max(float(np.abs(sums[l]).max()), 1e-12)
        norm, image = Normalize(-lim, lim), None
        for j in range(n_show):
            ax = axes[j, l]
            image = ax.imshow(sums[l, j], cmap="RdBu_r", norm=norm)
            ax.axis("off")
        axes[0, l].set_title(f"layer {l}, its filters summed", fontsize=7)
        shared_colorbar(fig, image, axes[:, l], label="")
    for j in range(n_show):
        picture(axes[j, -1], rgb(intact[j]), title="image" if j == 0 else None)
    fig.suptitle(f"each layer's filters summed; colour: {ADDED}, one scale a layer", fontsize=9)
    return fig


def claims_by_layer(high_frequency: dict, spread: dict):
    """The two measures the claims are checked on, per layer."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    axes[0].plot(list(high_frequency), list(high_frequency.values()), "o-")
    axes[0].set(xlabel="layer (0: next to the noise)", ylabel="high-frequency share of the power",
                title="the modes' fine detail, per layer")
    axes[1].plot(list(spread), list(spread.values()), "o-")
    axes[1].set(xlabel="layer (0: next to the noise)", ylabel="spatial spread (share of the pixels)",
                title="the modes' extent, per layer")
    return fig


def filter_pairs_figure(pairs, show: int = 6):
    """The strongest filter pairs' interaction modes on the first image, each on its own scale."""
    show = min(show, len(pairs.pairs))
    names = [str(p) for p in pairs.players]
    fig, axes = plt.subplots(1, show, figsize=(2.6 * show, 2.8), squeeze=False, layout="constrained")
    for k in range(show):
        ax = axes[0, k]
        signed_heatmap(ax, pairs.modes[k, 0].mean(0), label="interaction" if k == show - 1 else "", aspect="equal")
        i, j = pairs.pairs[k]
        ax.set_title(f"{names[i]}\n{names[j]}", fontsize=6)
        ax.axis("off")
    fig.suptitle(f"{pairs.index} of the top filter pairs, image 0 ({pairs.evaluations:,} evaluations)", fontsize=9)
    if show == 0:
        note(axes[0, 0], "no pairs")
    return fig
