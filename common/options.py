"""The options of a Shapley run as small objects that check themselves, and `RunOptions`, which holds them all
with the rules between them. Every rule is written here once: `shapley_modes` and `interaction_modes` build a
RunOptions from their arguments, and the scripts build the same objects from their command lines (a ValueError
becomes a usage error there, before anything loads).

    shapley_modes(game, units, 20_000, checkpoint=Checkpoint("run.ckpt", resume=True))
    shapley_modes(None, units, 20_000, runner=Ray(make_game, workers=8))
    shapley_modes(game, units, 100_000, target=TargetSE(0.005))
    shapley_modes(game, units, Budget(orderings=1000), compute=Compute(batch_size=64, dtype=np.float32))
"""
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .budget import as_budget
from .estimators import ESTIMATOR_CHOICES, ESTIMATORS
from .orderings import SAMPLERS

# the API's and the scripts' defaults, one set: the estimator and sampler auto picks, and the checkpoint interval
# (runs take hours and their states can be GBs)
DEFAULT_ESTIMATOR = "auto"
DEFAULT_SAMPLER = "auto"
DEFAULT_CHECKPOINT_EVERY = 300.0  # seconds
DEFAULT_CACHE_BYTES = 2 ** 30


def _positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _number(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class Checkpoint:
    """Save the run's state to `path` every `every` seconds (0: after every block) and on SIGINT, SIGTERM or SIGHUP;
    with resume=True an existing checkpoint is continued, bit-identically. It must match the run's configuration
    and `fingerprint` (e.g. common.fingerprint.model_fingerprint(model)), or it is refused."""
    path: str | os.PathLike
    every: float = DEFAULT_CHECKPOINT_EVERY
    resume: bool = False
    fingerprint: str | None = None

    def __post_init__(self):
        if not isinstance(self.path, (str, os.PathLike)) or not str(self.path):
            raise ValueError(f"Checkpoint path must be a file name, got {self.path!r}")
        object.__setattr__(self, "path", Path(self.path))
        if not _number(self.every) or not 0 <= self.every < float("inf"):
            raise ValueError(f"checkpoint every must be a number of seconds >= 0, got {self.every!r}")
        object.__setattr__(self, "resume", _flag("resume", self.resume))
        if self.fingerprint is not None and not isinstance(self.fingerprint, str):
            raise ValueError(f"fingerprint must be a string, got {self.fingerprint!r}")


@dataclass(frozen=True)
class Ray:
    """Shard the orderings over Ray actors: `workers` of them (default: one per GPU, else per CPU) on the cluster at
    `address` (default: a local one), each building its own game, and model, with `game_factory()` (picklable)."""
    game_factory: object = None
    workers: int | None = None
    address: str | None = None

    def __post_init__(self):
        if self.game_factory is not None and not callable(self.game_factory):
            raise ValueError(f"game_factory must be a picklable callable that builds the game, got "
                             f"{type(self.game_factory).__name__}")
        if self.workers is not None:
            object.__setattr__(self, "workers", _positive_int("workers", self.workers))
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"address must be a string like 'host:6379', got {self.address!r}")


@dataclass(frozen=True)
class TargetSE:
    """Stop at the first check point (every ~2% of the orderings, whole sampler groups) where every mode element's
    standard error is at or below `se`; relative=True: `se` is a fraction of the modes' range (max - min). The
    stopping point depends only on the seed and the batch size."""
    se: float
    relative: bool = False

    def __post_init__(self):
        if not _number(self.se) or not 0 < self.se < float("inf"):
            raise ValueError(f"a target needs se, the standard error to stop at, a positive number; got {self.se!r}")
        object.__setattr__(self, "se", float(self.se))
        object.__setattr__(self, "relative", _flag("relative", self.relative))


@dataclass(frozen=True)
class Method:
    """What runs: `estimator` (a name in ESTIMATOR_CHOICES, "auto" by default, or an estimator class), the
    orderings' `sampler` for the estimators that walk them, and a named estimator's own `settings` (its class's
    `settings`, e.g. dict(max_order=2) for "kadd"). Checked with the other options (RunOptions)."""
    estimator: object = "auto"
    sampler: str = "auto"
    settings: dict | None = None


@dataclass(frozen=True)
class Compute:
    """How the game is asked and its values kept: `batch_size` coalitions per game call (default: the game's own
    `batch_size` attribute, else by output size), accumulated in `dtype`, float64 or float32 (half the memory of
    very large outputs); the coalition cache keeps at most `cache_bytes` of values that the walk needs again."""
    batch_size: int | None = None
    dtype: object = np.float64
    cache_bytes: int = DEFAULT_CACHE_BYTES

    def __post_init__(self):
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", _positive_int("batch_size", self.batch_size))
        if isinstance(self.cache_bytes, (bool, np.bool_)) or not isinstance(self.cache_bytes, (int, np.integer)) \
                or self.cache_bytes < 0:
            raise ValueError(f"cache_bytes must be a whole number of bytes >= 0, got {self.cache_bytes!r}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as error:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}") from error
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64 (the accumulators' precision), got {dtype}")
        object.__setattr__(self, "dtype", dtype)


@dataclass(frozen=True)
class RunOptions:
    """Every option of a run, checked together. budget: distinct game evaluations, or a common.Budget; estimator:
    a name in ESTIMATOR_CHOICES, or an estimator class (interaction_modes passes its own); runner: "local",
    "msapy" (msapy's own lazy walk, the parity oracle) or a common.Ray(...)."""
    budget: object
    seed: int = 1
    sampler: str = DEFAULT_SAMPLER
    estimator: object = DEFAULT_ESTIMATOR
    compute: Compute = Compute()
    progress: bool = True
    checkpoint: Checkpoint | None = None
    runner: object = "local"
    target: TargetSE | None = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (a frozen dataclass)
        set_("budget", as_budget(self.budget))
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        set_("seed", int(self.seed))
        if self.sampler != "auto" and self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {('auto', *SAMPLERS)}")
        if self.estimator == "msapy":
            raise ValueError("msapy's own walk is now a runner: runner='msapy' (with estimator='chain', the estimate "
                             "it computes)")
        if isinstance(self.estimator, str) and self.estimator not in ESTIMATOR_CHOICES:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose one of {ESTIMATOR_CHOICES}")
        set_("progress", _flag("progress", self.progress))
        if not isinstance(self.compute, Compute):
            raise ValueError(f"compute must be a common.Compute(...), got {self.compute!r}")
        for name, kind in (("checkpoint", Checkpoint), ("target", TargetSE)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be a common.{kind.__name__}(...), got {value!r}")
        if not isinstance(self.runner, Ray) and self.runner not in ("local", "msapy"):
            raise ValueError(f"runner must be 'local', 'msapy' or a common.Ray(...), got {self.runner!r}")
        named = ESTIMATORS.get(self.estimator) if isinstance(self.estimator, str) else self.estimator
        if named is not None and not named.walks_orderings and self.sampler != "auto":
            raise ValueError(f"the {named.name} estimator walks no orderings: sampler={self.sampler!r} does not "
                             "apply (leave it 'auto')")
        if self.ray is not None:
            if self.checkpoint is not None:
                raise ValueError("checkpoints are written by the local runner; on Ray, failed shards are run again "
                                 "instead: give checkpoint or a Ray runner, not both")
            if self.target is not None:
                raise ValueError("a target SE stops a local walk at a block boundary; on Ray the shards run to the "
                                 "end: give a budget instead")
        if self.target is not None and named is not None and not named.stops_early:
            raise ValueError(f"the {named.name} estimator fits once its whole plan is in, so it cannot stop at a "
                             "target SE: use estimator='auto' or 'chain-kernel' with a target")
        if self.msapy:
            refused = [name for name, given in (("a checkpoint", self.checkpoint),
                                                ("a target SE (msapy keeps no spread)", self.target)) if given]
            if refused:
                raise ValueError(f"runner='msapy' runs msapy's own lazy walk, which cannot honour "
                                 f"{', '.join(refused)}: use the local runner for the same estimate")
            if named is not None and not named.msapy_parity:
                raise ValueError(f"msapy's walk computes the chain mean only: runner='msapy' takes estimator='chain' "
                                 f"(or 'auto', which then means it), not {named.name!r}")

    batch_size = property(lambda self: self.compute.batch_size)
    dtype = property(lambda self: self.compute.dtype)

    @property
    def msapy(self) -> bool:
        return self.runner == "msapy"

    @property
    def ray(self):
        return self.runner if isinstance(self.runner, Ray) else None
