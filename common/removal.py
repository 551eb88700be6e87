"""Removal curves: lesion the k units a ranking puts first (top) or last (bottom), and score held-out inputs.

A good ranking of importance makes the top-k curve fall fast and the bottom-k curve stay flat; the area between
them summarises both (in score x fraction of units removed). Error bars are over the held-out inputs.

    curve = removal_curve(score, ranking.order(), ks=default_ks(n))
    curve.summary()   # area, score without the top 10% and 20%, score without the bottom 50%
    mean, se, _ = scored(score, without_groups(labels, [[0], [1, 2]]))   # lesion whole groups (clusters)
"""
from dataclasses import dataclass

import numpy as np

FRACTIONS = {"top_10": ("top", 0.1), "top_20": ("top", 0.2), "bottom_50": ("bottom", 0.5)}


def removal_masks(order, ks) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom): (len(ks), n) coalitions, True = intact, without the k last units of `order` (the most
    important; `order` runs from the least to the most important) or without its k first."""
    order = np.asarray(order)
    n = len(order)
    top, bottom = np.ones((len(ks), n), bool), np.ones((len(ks), n), bool)
    for i, k in enumerate(ks):
        if not 0 <= k <= n:
            raise ValueError(f"cannot remove {k} of {n} units")
        top[i, order[n - k:]] = False
        bottom[i, order[:k]] = False
    return top, bottom


def without_groups(labels, groups) -> np.ndarray:
    """(len(groups), n) coalitions, True = intact: row g without every unit whose label is in groups[g] (e.g. the
    clusters of a clustering lesioned together)."""
    labels = np.asarray(labels)
    return np.stack([~np.isin(labels, list(group)) for group in groups])


def scored(score, coalitions) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, se, distinct): score(coalitions (C, n) bool) -> (C, B) values of B held-out inputs, averaged over the
    inputs, with the standard error of that mean (NaN for one input); every distinct coalition scored once, in one
    call, and how many there were."""
    coalitions = np.asarray(coalitions, bool)
    unique, inverse = np.unique(coalitions, axis=0, return_inverse=True)
    values = np.asarray(score(unique), dtype=np.float64)
    if values.ndim != 2 or len(values) != len(unique):
        raise ValueError(f"score must return (coalitions, inputs) = ({len(unique)}, B) values, got {values.shape}")
    inputs = values.shape[1]
    se = values.std(1, ddof=1) / np.sqrt(inputs) if inputs > 1 else np.full(len(values), np.nan)
    inverse = inverse.reshape(-1)
    return values.mean(1)[inverse], se[inverse], len(unique)


def fraction_k(n: int, fraction: float) -> int:
    return int(round(fraction * n))


def default_ks(n: int, steps: int = 20) -> list[int]:
    """k from 0 to n in `steps` even steps, and the k of every summary fraction (10%, 20%, 50%)."""
    ks = {fraction_k(n, f) for f in np.linspace(0, 1, steps + 1)}
    return sorted(ks | {fraction_k(n, f) for _, f in FRACTIONS.values()})


@dataclass
class RemovalCurve:
    ks: np.ndarray          # units removed
    n: int                  # units in all
    top: np.ndarray         # mean held-out score without the k most important units
    top_se: np.ndarray      # its standard error over the held-out inputs
    bottom: np.ndarray      # ... without the k least important units
    bottom_se: np.ndarray
    evaluations: int        # distinct coalitions scored

    def at(self, which: str, fraction: float) -> float:
        k = fraction_k(self.n, fraction)
        where = np.flatnonzero(self.ks == k)
        if not len(where):
            raise ValueError(f"the curve has no k = {k} ({fraction:.0%} of {self.n}); ks: {self.ks.tolist()}")
        return float(getattr(self, which)[where[0]])

    def area(self) -> float:
        """The area between the bottom-k and the top-k curves over the fraction of units removed."""
        gap, x = self.bottom - self.top, self.ks / self.n
        return float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(x)))

    def summary(self) -> dict:
        """area; top_10, top_20: the score without the top 10% / 20% (lower: a better ranking of what matters);
        bottom_50: without the bottom half (higher: a better ranking of what can go)."""
        return dict(area=self.area(), **{name: self.at(which, f) for name, (which, f) in FRACTIONS.items()})


def removal_curve(score, order, ks) -> RemovalCurve:
    """score(coalitions (C, n) bool) -> (C, B) scores of B held-out inputs (inputs the ranking did not see);
    `order` from the least to the most important unit. Every distinct coalition is scored once, in one call."""
    ks = np.asarray(sorted(set(int(k) for k in ks)))
    top, bottom = removal_masks(order, ks)
    mean, se, distinct = scored(score, np.concatenate([top, bottom]))
    m = len(ks)
    return RemovalCurve(ks, len(order), mean[:m], se[:m], mean[m:], se[m:], distinct)
