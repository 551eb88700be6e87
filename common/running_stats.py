"""Per-player running mean and variance of marginal contributions: common.moments.Moments for one estimate,
with the arrays as (n, *output) views (the chain estimator's checkpoint format)."""
import numpy as np

from .moments import Moments


class RunningModes:
    """Accumulates samples of each player's contribution array; never stores the samples themselves.

    A "sample" is one ordering's marginal contribution (iid) or the mean over a sampler group (antithetic,
    Latin, orthogonal). Updates take a set of distinct players and one sample for each.
    """

    def __init__(self, n_players: int, output_shape: tuple, dtype=np.float64):
        self.moments = Moments(1, n_players, output_shape, dtype)

    # views made on each access, not kept: a copy of the estimator (a Ray shard's) must not lose them
    count = property(lambda self: self.moments.count)
    mean = property(lambda self: self.moments.mean[0])
    m2 = property(lambda self: self.moments.m2[0, 0])

    def update(self, players: np.ndarray, samples: np.ndarray) -> None:
        """players: distinct indices (k,); samples: (k, *output_shape)."""
        self.moments.add(samples[None], players)

    def load(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        self.moments.load(count, np.asarray(mean)[None], np.asarray(m2)[None, None])

    def merge(self, other: "RunningModes") -> None:
        self.moments.merge(other.moments)

    def standard_error(self, consume: bool = False) -> np.ndarray:
        """Standard error of each mean element; NaN for players with fewer than two samples. consume=True writes it
        over the M2 buffer (the accumulator is then finished), so that the mean and its standard error together
        need no more memory than the accumulator itself."""
        out = self.m2 if consume else np.empty_like(self.m2)
        for i, se in enumerate(self.moments.standard_errors()):  # one player at a time: no full-size temporaries
            out[i] = se  # row i's M2 has been read by now
        return out

    def max_standard_error(self) -> float:
        return self.moments.max_standard_error()

    def value_range(self) -> float:
        return self.moments.value_range()
