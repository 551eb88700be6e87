"""Measures on filter modes for the figures and the claims check (paper sections 2.3-2.4).

modes: (n, B, 3, H, W) Shapley modes; layer: (n,) layer number of each filter (0 = next to the noise).
"""
import numpy as np


def normalise(mode: np.ndarray) -> np.ndarray:
    """A signed mode (3, H, W) -> an RGB image in [0, 1]: 0.5 = no contribution, scaled by its own max |value|
    (the paper's Figure 3 normalises each filter for visibility)."""
    lim = np.abs(mode).max()
    return (0.5 + 0.5 * mode / lim if lim > 0 else np.full_like(mode, 0.5)).transpose(1, 2, 0)


def strength(modes: np.ndarray) -> np.ndarray:
    """Each filter's overall contribution: the root mean square of its mode."""
    flat = modes.reshape(len(modes), -1)
    return np.sqrt(np.array([np.mean(np.square(r, dtype=np.float64)) for r in flat]))


def examples_per_layer(modes, layer, k: int = 3) -> dict:
    """The k strongest filters of each layer (indices into modes): the examples for Figure 3."""
    s = strength(modes)
    return {int(l): [int(i) for i in sorted(np.flatnonzero(layer == l), key=lambda i: -s[i])[:k]]
            for l in np.unique(layer)}


def layer_sums(modes, layer) -> np.ndarray:
    """(L, B, 3, H, W): every layer's filters' modes summed. Their sum over layers is V(intact) - V(lesioned)."""
    return np.stack([modes[layer == l].sum(0) for l in np.unique(layer)])


def rgb_concentration(modes_out: np.ndarray) -> np.ndarray:
    """(k, 3): share of filter i's |mode| in each colour channel; for the output layer's filters the
    diagonal says "filter c is colour channel c"."""
    energy = np.abs(modes_out).sum(axis=(1, 3, 4))  # (k, 3)
    return energy / np.maximum(energy.sum(1, keepdims=True), 1e-300)


def spatial_spread(modes) -> np.ndarray:
    """Per filter: participation ratio of the per-pixel energy, as a fraction of the pixels (1 = spread evenly
    over the whole image, 1/(H*W) = a single pixel), averaged over the B images."""
    e = np.square(modes, dtype=np.float64).sum(2)  # (n, B, H, W)
    e = e.reshape(*e.shape[:2], -1)
    pr = e.sum(-1) ** 2 / np.maximum((e ** 2).sum(-1), 1e-300) / e.shape[-1]
    return np.where(e.sum(-1) > 0, pr, np.nan).mean(1)


def high_frequency_fraction(modes, cutoff: float = 0.5) -> np.ndarray:
    """Per filter: fraction of the mode's spatial power spectrum (mean removed per image and channel) at radial
    frequencies above `cutoff` x Nyquist: high = edges and texture, low = smooth, image-wide structure."""
    n, b, c, h, w = modes.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    high = np.sqrt(fy ** 2 + fx ** 2) > cutoff * 0.5
    out = np.full(n, np.nan)
    for i in range(n):  # one filter at a time: the spectrum of all modes at once would be large
        m = modes[i].astype(np.float64)
        m = m - m.mean(axis=(-2, -1), keepdims=True)
        power = np.abs(np.fft.rfft2(m)) ** 2
        total = power.sum()
        if total > 0:
            out[i] = power[..., high].sum() / total
    return out


def by_layer(values, layer) -> dict:
    """{layer: median over its filters (NaN for dead filters ignored)}."""
    return {int(l): float(np.nanmedian(values[layer == l])) if np.any(np.isfinite(values[layer == l])) else np.nan
            for l in np.unique(layer)}
