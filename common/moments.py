"""Running means and co-moments, in O(rows x output) memory for any number of samples: Welford's update one
sample at a time, Chan et al.'s to merge shards. Every estimator keeps its spread with this one helper.

`Moments(k, rows, shape)` follows k estimates of a (rows, *shape) array (a chain-kernel group gives two: the chain
mean and the regression); each row has its own count, because a chain's players come in one at a time. Beside
the means it keeps the centred co-moment sums of every pair of estimates, so the variance of any weighted
combination of them is known: what an estimator needs to choose its weights and its error bars.

Error bars shrink each row's variance toward the mean variance over the rows (per element), with the weight of
PRIOR_SAMPLES samples (`prior`): with few samples a row's own spread is often zero by chance (a unit that did not
matter in the few orderings drawn), and its interval then covers nothing. A prior whose strength is estimated
from the data (moderated variances, as in limma) covered less, above all among the units of most variance:
benchmarks/bench_error_bars.py measures both per variance class (docs/estimators.md).
"""
from typing import NamedTuple

import numpy as np

PRIOR_SAMPLES = 1


class Prior(NamedTuple):
    """What each row's variance is shrunk toward (*shape), and with the weight of how many samples."""
    strength: float
    variance: np.ndarray


class Moments:
    def __init__(self, k: int, rows: int, shape: tuple = (), dtype=np.float64):
        self.count = np.zeros(rows, dtype=np.int64)
        self.mean = np.zeros((k, rows, *shape), dtype=dtype)
        self.m2 = np.zeros((k, k, rows, *shape), dtype=dtype)  # sum of (x_i - mean_i)(x_j - mean_j)

    def add(self, samples: np.ndarray, rows=slice(None)) -> None:
        """One sample of each estimate for `rows` (distinct indices, or a slice): samples (k, len(rows), *shape)."""
        self.count[rows] += 1
        scale = (1.0 / self.count[rows]).reshape(1, -1, *([1] * (self.mean.ndim - 2))).astype(self.mean.dtype)
        mean = self.mean[:, rows]  # a view for a slice, a copy for indices (written back below)
        delta = samples - mean
        mean += delta * scale
        self.m2[:, :, rows] += delta[:, None] * (samples - mean)[None]
        self.mean[:, rows] = mean

    def merge(self, other: "Moments") -> None:
        """Fold in the moments of disjoint samples, one row at a time (no full-size temporaries)."""
        for i in np.flatnonzero(other.count):
            a, b = int(self.count[i]), int(other.count[i])
            if a == 0:
                self.mean[:, i], self.m2[:, :, i] = other.mean[:, i], other.m2[:, :, i]
                continue
            delta = other.mean[:, i] - self.mean[:, i]
            self.m2[:, :, i] += other.m2[:, :, i] + delta[:, None] * delta[None] * self.m2.dtype.type(a * b / (a + b))
            self.mean[:, i] += delta * self.mean.dtype.type(b / (a + b))
        self.count += other.count

    def load(self, count, mean, m2) -> None:
        """Copy saved moments into these buffers (same shapes)."""
        for name, mine, theirs in (("count", self.count, count), ("mean", self.mean, mean), ("m2", self.m2, m2)):
            if mine.shape != np.shape(theirs):
                raise ValueError(f"saved {name} has shape {np.shape(theirs)}, expected {mine.shape}")
            if mine is not theirs:
                mine[...] = theirs

    def combined_mean(self, weights=None) -> np.ndarray:
        """sum_i w_i mean_i, (rows, *shape); the first estimate alone without weights."""
        return self.mean[0] if weights is None else np.einsum("i,i...->...", weights, self.mean)

    def covariance_sums(self) -> np.ndarray:
        """(k, k): the co-moment sums over every row and element, for weights that minimise the summed variance."""
        return self.m2.reshape(*self.m2.shape[:2], -1).sum(-1)

    def _m2(self, row: int, weights) -> np.ndarray:
        m2 = self.m2[0, 0, row] if weights is None else np.einsum("i,j,ij...->...", weights, weights, self.m2[:, :, row])
        return np.maximum(m2, 0)

    def pooled_variance(self, weights=None) -> np.ndarray:
        """The per-sample variance of each element of sum_i w_i estimate_i, averaged over the rows with two samples
        or more, (*shape); zeros where no row has two."""
        total, rows = np.zeros(self.mean.shape[2:], dtype=self.mean.dtype), 0
        for row in np.flatnonzero(self.count >= 2):
            total += self._m2(row, weights) / (self.count[row] - 1)
            rows += 1
        return total / max(rows, 1)

    def prior(self, weights=None) -> Prior:
        """The error bars' prior: the pooled variance, with the weight of PRIOR_SAMPLES samples."""
        return Prior(PRIOR_SAMPLES, self.pooled_variance(weights))

    def standard_errors(self, weights=None):
        """Each row's standard error of the mean of sum_i w_i estimate_i, (*shape), one row at a time (no temporary
        larger than a row but the prior's): its variance shrunk toward the prior's, (m2 + d0 s0^2) / (n - 1 + d0)
        over n samples (s0^2 alone where d0 is infinite); NaN with fewer than two samples."""
        prior = self.prior(weights)
        for row in range(len(self.count)):
            n = int(self.count[row])
            m2 = self._m2(row, weights)
            if n < 2:
                yield np.full_like(m2, np.nan)
            elif np.isinf(prior.strength):
                yield np.sqrt(prior.variance / n)
            else:
                yield np.sqrt((m2 + prior.strength * prior.variance) / ((n - 1 + prior.strength) * n))

    def standard_error_array(self, weights=None) -> np.ndarray:
        """standard_errors() stacked: (rows, *shape)."""
        out = np.empty(self.mean.shape[1:], dtype=self.mean.dtype)
        for row, se in enumerate(self.standard_errors(weights)):
            out[row] = se
        return out

    def max_standard_error(self, weights=None) -> float:
        """The largest standard error of any element (inf while a row has fewer than two samples)."""
        if len(self.count) == 0 or self.count.min() < 2:
            return float("inf")
        return max(float(se.max()) for se in self.standard_errors(weights))

    def value_range(self, weights=None) -> float:
        """max - min over every element of the (combined) means: the scale of a relative standard error."""
        mean = self.combined_mean(weights)
        return float(mean.max() - mean.min())
