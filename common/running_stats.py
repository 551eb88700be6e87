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

    def merge(self, other: "RunningModes") -> None:
        """Fold in another accumulator over disjoint samples (Chan et al.'s parallel update)."""
        total = self.count + other.count
        safe = np.maximum(total, 1)
        shape = (-1, *([1] * (self.mean.ndim - 1)))
        w_other = (other.count / safe).reshape(shape)
        delta = other.mean - self.mean
        self.mean += delta * w_other.astype(self.mean.dtype)
        self.m2 += other.m2 + delta ** 2 * (self.count * other.count / safe).reshape(shape).astype(self.m2.dtype)
        self.count = total

    def standard_error(self, consume: bool = False) -> np.ndarray:
        """Standard error of each mean element; NaN for players with fewer than two samples.

        consume=True writes it over the M2 buffer (the accumulator is then finished), so that the mean and
        its standard error together need no more memory than the accumulator itself.
        """
        out = self.m2 if consume else np.empty_like(self.m2)
        for i, k in enumerate(self.count):  # one player at a time: no full-size temporaries
            out[i] = np.sqrt(np.maximum(self.m2[i], 0) / (k * (k - 1))) if k > 1 else np.nan
        return out
