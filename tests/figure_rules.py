"""The rules every figure keeps, checked where matplotlib lets a test see them (common/figures.py draws by them):
every panel titled, no two titles alike or overlapping; every axis labelled (a label, or tick labels that name things); every
heatmap or image of values with a colourbar, symmetric around 0 for a diverging colour map; no legend over data;
no blank or all-black panel without a note saying why."""
import numpy as np

from common.figures import PICTURE

DIVERGING = {"RdBu_r", "RdBu", "bwr", "coolwarm", "seismic", "PiYG", "PRGn", "BrBG", "PuOr", "RdGy"}


def _colorbar_axes(fig):
    found = set()
    for ax in fig.axes:
        for artist in [*ax.images, *ax.collections]:
            if getattr(artist, "colorbar", None) is not None:
                found.add(artist.colorbar.ax)
    return found


def _pictures_only(ax):
    return ax.images and all(im.get_gid() == PICTURE for im in ax.images) and not ax.lines and not ax.patches


def _has_data(ax):
    return bool(ax.lines or ax.images or ax.patches or ax.collections)


def _named(ticks) -> bool:
    """Tick labels that name things (tasks, digits as categories, units) rather than print numbers."""
    texts = [t.get_text().replace("\u2212", "-") for t in ticks if t.get_text()]
    if not texts:
        return False
    def numeric(text):
        try:
            float(text)
            return True
        except ValueError:
            return False
    return not all(numeric(t) for t in texts)


def _labelled(ax, which) -> bool:
    axis = ax.xaxis if which == "x" else ax.yaxis
    if not axis.get_visible() or not ax.axison:
        return True
    label = ax.get_xlabel() if which == "x" else ax.get_ylabel()
    ticks = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    shared = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    siblings = [other for other in shared.get_siblings(ax) if other is not ax]
    return bool(label) or _named(ticks) or any((o.get_xlabel() if which == "x" else o.get_ylabel()) for o in siblings) \
        or not any(t.get_text() for t in ticks)  # no ticks shown: the panel beside it carries the scale


def _data_points(ax):
    """Display coordinates of what a legend must not cover: line vertices and bar tops."""
    points = []
    for line in ax.lines:
        xy = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
        xy = xy[np.isfinite(xy).all(1)]
        if len(xy):
            points.append(ax.transData.transform(xy))
    for patch in ax.patches:
        if hasattr(patch, "get_x") and hasattr(patch, "get_height"):
            top = (patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height())
            points.append(ax.transData.transform([top]))
    return np.concatenate(points) if points else np.zeros((0, 2))


def problems(fig) -> list:
    """What breaks the rules, as sentences (empty: none). Heatmaps drawn on one scale (one Normalize, as a grid of
    images is) share one colourbar and one title among them."""
    fig.canvas.draw()
    found = []
    bars = _colorbar_axes(fig)
    panels = [ax for ax in fig.axes if ax not in bars and ax.get_visible() and _has_data(ax)]
    scales = {}  # id(norm) -> (has a colourbar, has a title)
    for ax in panels:
        for image in ax.images:
            if image.get_gid() != PICTURE:
                bar, titled = scales.get(id(image.norm), (False, False))
                scales[id(image.norm)] = (bar or getattr(image, "colorbar", None) is not None,
                                          titled or bool(ax.get_title() or ax.get_title(loc="left")))
    titles = []
    for ax in panels:
        title = ax.get_title() or ax.get_title(loc="left")
        gridded = [scales[id(im.norm)] for im in ax.images if im.get_gid() != PICTURE]
        if _pictures_only(ax) or (not title and gridded and all(t for _, t in gridded)):
            pass  # a picture, or one image of a titled grid on one scale
        elif not title:
            found.append(f"a panel without a title (x label {ax.get_xlabel()!r})")
        else:
            titles.append(title)
            for which in "xy":
                if not _labelled(ax, which):
                    found.append(f"{title!r}: its {which} axis has no label")
        for image in ax.images:
            data = np.asarray(image.get_array(), dtype=float)
            if image.get_gid() == PICTURE:
                if np.nanmax(data) <= 0 and not ax.texts:
                    found.append(f"{title or 'a picture'!r}: all black and nothing says why")
                continue
            if data.ndim == 3:
                found.append(f"{title!r}: an RGB image of values has no colour scale; draw a heatmap")
                continue
            if not scales[id(image.norm)][0]:
                found.append(f"{title!r}: a heatmap without a colourbar")
            cmap = image.get_cmap().name
            low, high = image.get_clim()
            if cmap in DIVERGING and not np.isclose(low, -high):
                found.append(f"{title!r}: a diverging colour map not centred on 0 ({low:.3g} to {high:.3g})")
            finite = data[np.isfinite(data)]
            if finite.size and np.ptp(finite) == 0 and not ax.texts:
                found.append(f"{title!r}: a blank heatmap and nothing says why")
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            box = legend.get_window_extent()
            inside = [box.contains(x, y) for x, y in _data_points(ax)]
            if any(inside):
                found.append(f"{title!r}: its legend covers {sum(inside)} data points")
    repeated = sorted({t for t in titles if titles.count(t) > 1})
    found += [f"two panels titled {t!r}" for t in repeated]
    shown = [(ax.title, ax.title.get_window_extent()) for ax in panels if ax.get_title()]
    for i, (a, box_a) in enumerate(shown):
        for b, box_b in shown[i + 1:]:
            if box_a.overlaps(box_b):
                found.append(f"the titles {a.get_text()!r} and {b.get_text()!r} overlap")
    return found


def assert_readable(fig):
    trouble = problems(fig)
    assert not trouble, "\n".join(trouble)
