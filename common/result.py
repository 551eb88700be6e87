"""The result of a Shapley-mode estimation, and its .npz file format."""
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULT_ARRAYS = {"modes", "se", "intact", "lesioned", "players", "info"}  # the format's own arrays


def _label_to_json(label):
    return list(map(_label_to_json, label)) if isinstance(label, (tuple, list)) else (
        label.item() if isinstance(label, np.generic) else label)


def _label_from_json(label):
    return tuple(map(_label_from_json, label)) if isinstance(label, list) else label


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_folder(folder) -> None:
    """Make a rename in `folder` durable (a crash right after it cannot bring back the old file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_savez(path, **arrays) -> Path:
    """np.savez to a temporary file beside `path`, then rename: a crash never leaves a half-written file.

    The file gets the permissions of a normal new file (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


@dataclass
class ShapleyResult:
    """Shapley modes of n players: modes[i] says how much player i adds to each element of the output."""
    modes: np.ndarray            # (n, *output_shape)
    se: np.ndarray               # (n, *output_shape), Monte Carlo standard error; NaN where unknown
    players: list                # n labels
    orderings: int | None        # orderings walked; None for estimators that walk none (kadd, exact)
    intact: np.ndarray           # V(all players intact), output_shape
    lesioned: np.ndarray         # V(all players lesioned), output_shape
    seed: int
    sampler: str
    engine: str = "batched"
    metadata: dict = field(default_factory=dict)

    @property
    def evaluations(self) -> int | None:
        """The distinct game evaluations the run spent."""
        return self.metadata.get("evaluations", self.metadata.get("coalitions"))

    @property
    def output_shape(self) -> tuple:
        return tuple(self.modes.shape[1:])

    def mode(self, player) -> np.ndarray:
        """The Shapley mode of one player, by label."""
        return self.modes[self.players.index(player)]

    def margin(self, level: float = 0.95) -> np.ndarray:
        """Half-width of each mode element's two-sided confidence interval at `level`: se times the t quantile for
        the standard errors' degrees of freedom (metadata["se_dof"]: 3 for four sampler groups, where 95% is
        3.18 se, not 2). Results saved without se_dof use the normal quantile."""
        return self.se * quantile(level, self.metadata.get("se_dof"))

    def efficiency_gap(self) -> float:
        """max |sum of modes - (V(intact) - V(lesioned))|: 0 up to rounding for a deterministic game."""
        return float(np.max(np.abs(self.modes.sum(0) - (self.intact - self.lesioned))))

    def save(self, path, **extra_arrays) -> Path:
        """Write an .npz (atomically); `extra_arrays` are stored beside the result (e.g. intact images)."""
        info = dict(players=_label_to_json(list(self.players)), orderings=self.orderings,
                    seed=self.seed, sampler=self.sampler, engine=self.engine, metadata=self.metadata)
        clash = set(extra_arrays) & RESULT_ARRAYS
        if clash:
            raise ValueError(f"extra array names {sorted(clash)} are reserved by the result format")
        return atomic_savez(path, modes=self.modes, se=self.se, intact=np.asarray(self.intact),
                            lesioned=np.asarray(self.lesioned), players=np.array([str(p) for p in self.players]),
                            info=np.array(json.dumps(info, default=str)), **extra_arrays)

    def to_shapiq(self, element=()):
        """shapiq's InteractionValues (index "SV", order 1) of one output element (an index into the output shape;
        () for a scalar game), with the empty coalition's value as its baseline."""
        at = output_element(self.output_shape, element)
        n = len(self.players)
        lookup = {(): 0, **{(i,): i + 1 for i in range(n)}}
        baseline = float(np.asarray(self.lesioned)[at])
        values = np.concatenate([[baseline], self.modes[(slice(None), *at)]])
        estimated = self.metadata.get("estimator") != "exact"
        return shapiq_values(values, lookup, index="SV", n_players=n, baseline=baseline,
                             evaluations=self.evaluations, estimated=estimated)

    def to_msapy(self):
        """msapy's ShapleyModeND: rows = flattened output elements, columns = players."""
        import pandas as pd
        from msapy.datastructures import ShapleyModeND
        table = pd.DataFrame(self.modes.reshape(len(self.players), -1).T.copy(), columns=list(self.players))
        return ShapleyModeND(table, list(self.output_shape))


def output_element(shape: tuple, element) -> tuple:
    """An index into an output of `shape`, checked: shapiq holds one value per interaction, so one element at a
    time."""
    element = tuple(np.atleast_1d(element).tolist()) if element != () else ()
    if len(element) != len(shape) or not all(isinstance(k, int) and 0 <= k < size for k, size in zip(element, shape)):
        raise ValueError(f"element must index one value of the output, whose shape is {tuple(shape)}: "
                         + ("give element=() for a scalar game" if not shape else
                            f"e.g. element={tuple(0 for _ in shape)}") + f"; got {element!r}")
    return element


def shapiq_values(values, lookup: dict, *, index: str, n_players: int, baseline: float, evaluations, estimated: bool):
    """shapiq's InteractionValues (the optional 'bench' packages: shapiq 1.4.1)."""
    try:
        import shapiq
    except ImportError as error:
        raise ImportError("to_shapiq needs shapiq: pip install -e '.[bench]'") from error
    orders = [len(k) for k in lookup]
    return shapiq.InteractionValues(np.asarray(values, np.float64), index=index, max_order=max(orders),
                                    min_order=min(orders), n_players=n_players, interaction_lookup=lookup,
                                    estimated=estimated, estimation_budget=evaluations, baseline_value=float(baseline))


def load(path) -> ShapleyResult:
    """Read a result written by ShapleyResult.save."""
    with np.load(path, allow_pickle=False) as f:
        missing = sorted(RESULT_ARRAYS - set(f.files))
        if missing:
            raise ValueError(f"{path} is not a Shapley result written by ShapleyResult.save: it lacks "
                             f"{', '.join(missing)} (it holds {', '.join(sorted(f.files)) or 'no arrays'})")
        info = json.loads(str(f["info"]))
        return ShapleyResult(modes=f["modes"], se=f["se"], players=[_label_from_json(p) for p in info["players"]],
                             orderings=info.get("orderings", info.get("n_permutations")), intact=f["intact"], lesioned=f["lesioned"],
                             seed=info["seed"], sampler=info["sampler"], engine=info["engine"],
                             metadata=info["metadata"])


def load_extra(path) -> dict:
    """The arrays stored beside the result in an .npz written by ShapleyResult.save."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k not in RESULT_ARRAYS}


def quantile(level: float, dof: float | None) -> float:
    """The two-sided `level` interval's half-width in standard errors: Student's t with `dof` degrees of freedom
    (any positive number: Satterthwaite's need not be whole), the normal's for None, infinite for none."""
    from scipy import stats
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    if dof is None:
        return float(stats.norm.ppf(0.5 + level / 2))
    return float(stats.t.ppf(0.5 + level / 2, dof)) if dof > 0 else float("inf")
