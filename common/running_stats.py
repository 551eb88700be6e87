"""Per-player running mean and variance of marginal contributions (Welford), O(n x output size) memory."""
import numpy as np


class RunningModes:
    """Accumulates samples of each player's contribution array; never stores the samples themselves.

    A "sample" is one ordering's marginal contribution (iid) or the mean over an (ordering, reverse) pair
    (antithetic). Updates take a set of distinct players and one sample for each.
    """

    def __init__(self, n_players: int, output_shape: tuple, dtype=np.float64):
        self.count = np.zeros(n_players, dtype=np.int64)
        self.mean = np.zeros((n_players, *output_shape), dtype=dtype)
        self.m2 = np.zeros((n_players, *output_shape), dtype=dtype)

    def update(self, players: np.ndarray, samples: np.ndarray) -> None:
        """players: distinct indices (k,); samples: (k, *output_shape)."""
        self.count[players] += 1
        scale = (1.0 / self.count[players]).reshape(-1, *([1] * (samples.ndim - 1)))
        mean = self.mean[players]
        delta = samples - mean
        mean += delta * scale.astype(mean.dtype)
        self.m2[players] += delta * (samples - mean)
        self.mean[players] = mean

    def load(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Copy saved accumulators into these (same shapes), keeping these buffers."""
        for name, mine, theirs in (("count", self.count, count), ("mean", self.mean, mean), ("m2", self.m2, m2)):
            if mine.shape != theirs.shape:
                raise ValueError(f"saved {name} has shape {theirs.shape}, expected {mine.shape}")
            if mine is not theirs:
                mine[...] = theirs

    def merge(self, other: "RunningModes") -> None:
        """Fold in another accumulator over disjoint samples (Chan et al.'s parallel update), one player at a
        time so that no full-size temporary is made."""
        for i in np.flatnonzero(other.count):
            a, b = int(self.count[i]), int(other.count[i])
            if a == 0:
                self.mean[i], self.m2[i] = other.mean[i], other.m2[i]
                continue
            delta = other.mean[i] - self.mean[i]
            self.mean[i] += delta * self.mean.dtype.type(b / (a + b))
            self.m2[i] += other.m2[i] + delta ** 2 * self.m2.dtype.type(a * b / (a + b))
        self.count += other.count

    def standard_error(self, consume: bool = False) -> np.ndarray:
        """Standard error of each mean element; NaN for players with fewer than two samples.

        consume=True writes it over the M2 buffer (the accumulator is then finished), so that the mean and
        its standard error together need no more memory than the accumulator itself.
        """
        out = self.m2 if consume else np.empty_like(self.m2)
        for i, k in enumerate(self.count):  # one player at a time: no full-size temporaries
            out[i] = np.sqrt(np.maximum(self.m2[i], 0) / (k * (k - 1))) if k > 1 else np.nan
        return out

    def max_standard_error(self) -> float:
        """The largest standard error of any element (inf while some player has fewer than two samples)."""
        if self.count.min() < 2:
            return float("inf")
        return float(max(np.sqrt(np.maximum(self.m2[i], 0).max() / (k * (k - 1))) for i, k in enumerate(self.count)))

    def value_range(self) -> float:
        """max - min over every element of the means: the scale a relative standard error is measured against."""
        return float(self.mean.max() - self.mean.min())
