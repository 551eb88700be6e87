"""What every figure here keeps to, written once: a heatmap of signed values is symmetric around 0 and carries a
labelled colourbar, a picture (a generated image, not values) says so, a legend sits where it covers no data, and a
panel with nothing to show says why. The experiments' figure functions draw with these; tests/test_figures.py
checks every figure against the same rules."""
import numpy as np

PICTURE = "picture"  # the gid of an image that is a picture (a face, a digit), which needs no colour scale


def signed_heatmap(ax, values, *, label: str, cmap: str = "RdBu_r", colorbar: bool = True, **imshow):
    """values (rows, columns) drawn around 0 (red up, blue down), with a colourbar saying what they are."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    lim = lim if lim > 0 else 1.0
    image = ax.imshow(values, cmap=cmap, vmin=-lim, vmax=lim, **{"aspect": "auto", "interpolation": "nearest",
                                                                  **imshow})
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
    return image


def shared_colorbar(fig, image, axes, *, label: str):
    """One colourbar for several panels drawn on the same scale (the image's)."""
    return fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, label=label)


def picture(ax, image, *, title: str | None = None, cmap: str | None = None):
    """A generated image (H, W, 3) in [0, 1] or (H, W) grey: no ticks, no colour scale; an all-black one says so."""
    image = np.asarray(image)
    shown = ax.imshow(np.clip(image, 0, 1), cmap=cmap or ("gray" if image.ndim == 2 else None), vmin=0, vmax=1)
    shown.set_gid(PICTURE)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    if float(np.max(image)) <= 0:
        note(ax, "all black")
    return shown


def note(ax, text: str):
    """A short note in the middle of a panel: why it looks empty, or what it cannot show."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7, color="0.3",
            bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))


def legend_below(ax, **kwargs):
    """A legend under the panel, outside its data."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False,
                     ncol=kwargs.pop("ncol", 3), fontsize=kwargs.pop("fontsize", 8), **kwargs)


def legend_beside(ax, **kwargs):
    """A legend to the right of the panel, outside its data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                     fontsize=kwargs.pop("fontsize", 8), **kwargs)
