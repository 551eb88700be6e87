"""Checkpoints of a running estimation: the estimator's state arrays, the coalition cache's values, the number of
units walked, and the configuration they belong to. Orderings and plans are regenerated from the seed, so the
position is one number.

A checkpoint is written atomically (temporary file, fsync, rename, fsync of the folder) and the one it replaces
is kept as `<name>.prev`, so a crash or a damaged file never costs more than one checkpoint interval. Saving
streams the arrays to disk and hashes them in place; loading reads them straight into the estimator's own
buffers: neither makes a second copy of the accumulators.
"""
import hashlib
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np

from .result import atomic_savez, fsync_folder

CHUNK = 1 << 24  # bytes read per step when loading
ENGINE = 3  # budgets in evaluations and the coalition cache; a checkpoint of another engine is refused


class CheckpointError(RuntimeError):
    pass


def _bytes(a: np.ndarray) -> memoryview:
    """The array's bytes without a copy (the state arrays are C-contiguous)."""
    a = np.ascontiguousarray(a)
    return memoryview(a.view(np.uint8).reshape(-1)) if a.size else memoryview(b"")


def digest(done: int, arrays: dict) -> str:
    h = hashlib.sha256(str(int(done)).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(_bytes(arrays[name]))
    return h.hexdigest()


def clean_stale(path) -> list:
    """Remove temporary files that a run killed while saving left beside `path`; returns what was removed."""
    path = Path(path)
    stale = [p for p in path.parent.glob(f"{path.name}.*.tmp")] + [p for p in path.parent.glob(f"{path.name}.prev.*.tmp")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _keep_previous(path: Path) -> None:
    """The current checkpoint becomes `.prev`: a hard link where the file system has them, else a copy."""
    staged = path.with_name(f"{path.name}.prev.{os.getpid()}.tmp")
    staged.unlink(missing_ok=True)
    try:
        os.link(path, staged)
    except OSError:  # no hard links here (some network and FUSE file systems)
        shutil.copyfile(path, staged)
    os.replace(staged, path.with_name(path.name + ".prev"))


def save_checkpoint(path, config: dict, done: int, arrays: dict) -> None:
    path = Path(path)
    if path.exists():
        _keep_previous(path)
    config = dict(config, engine=ENGINE)
    atomic_savez(path, done=np.int64(done), config=np.array(json.dumps(config, sort_keys=True)),
                 digest=np.array(digest(done, arrays)), **{f"state_{k}": v for k, v in arrays.items()})
    fsync_folder(path.parent)


def _read_into(archive: zipfile.ZipFile, member: str, out: np.ndarray) -> None:
    with archive.open(member + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if tuple(shape) != out.shape or np.dtype(dtype) != out.dtype or fortran:
            raise CheckpointError(f"checkpoint {archive.filename} holds {member} of shape {tuple(shape)} "
                                  f"{np.dtype(dtype)}, this run needs {out.shape} {out.dtype}; it was not used")
        view, filled = _bytes(out), 0
        while filled < len(view):
            chunk = f.read(min(CHUNK, len(view) - filled))
            if not chunk:
                raise EOFError(f"{member} ends after {filled} of {len(view)} bytes")
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)


def _damaged(path: Path, error) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is damaged ({type(error).__name__}: {error}); it was not used. "
                           f"The previous one, if any, is {path.name}.prev: rename it to {path.name} to resume "
                           "from there, or delete both to start over")


def _check_config(path: Path, saved: dict, config: dict) -> None:
    if saved.get("engine") != ENGINE:
        raise CheckpointError(f"checkpoint {path} was written by another version of the engine (engine "
                              f"{saved.get('engine', '2 or older')}, this is {ENGINE}: budgets in evaluations, the "
                              "coalition cache), whose state this one cannot continue; delete it to start over")
    differ = {k: (saved.get(k), config.get(k)) for k in sorted(set(saved) | set(config))
              if saved.get(k) != config.get(k)}
    if differ:
        lines = "; ".join(f"{k}: checkpoint has {old!r}, this run has {new!r}" for k, (old, new) in differ.items())
        raise CheckpointError(f"checkpoint {path} belongs to another run ({lines}). Use the same settings, or "
                              "delete it to start over")


def read_checkpoint_arrays(path, config: dict, names) -> dict:
    """Some arrays of a checkpoint, as new arrays, once its configuration matches `config` (a part of what it was
    saved with: the run's, before the estimator is built). The checksum is verified when all is loaded."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            saved = json.loads(str(f["config"]))
            _check_config(path, {k: saved.get(k) for k in config} | {"engine": saved.get("engine")},
                          dict(config, engine=ENGINE))
            return {name: f[f"state_{name}"] for name in names}
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise _damaged(path, error) from error


def load_checkpoint(path, config: dict, arrays: dict, fresh=()) -> tuple:
    """Read the checkpoint's state into `arrays` (the estimator's own buffers, same names and shapes), and the
    arrays named in `fresh` as new ones; returns (units walked, the fresh arrays). Refuses (CheckpointError) a
    damaged file, or one written for another configuration, model or engine; a refused file is left as it is."""
    path = Path(path)
    config = dict(config, engine=ENGINE)
    loaded = {}
    try:
        with zipfile.ZipFile(path) as archive:
            with np.load(path, allow_pickle=False) as f:
                saved, done, expected = json.loads(str(f["config"])), int(f["done"]), str(f["digest"])
                _check_config(path, saved, config)
                loaded = {name: f[f"state_{name}"] for name in fresh}
            for name, out in arrays.items():
                _read_into(archive, f"state_{name}", out)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise _damaged(path, error) from error
    if digest(done, {**arrays, **loaded}) != expected:
        raise CheckpointError(f"checkpoint {path} is damaged (its contents do not match their checksum); it was "
                              f"not used. The previous one, if any, is {path.name}.prev")
    return done, loaded


def remove_checkpoint(path) -> None:
    for p in (Path(path), Path(str(path) + ".prev")):
        p.unlink(missing_ok=True)


class Checkpointer:
    """Saves named arrays to `path` every `every` seconds (0: after every block) and when asked."""

    def __init__(self, path, every: float, config: dict):
        self.path, self.every, self.config = Path(path), float(every), config
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def save(self, done: int, arrays: dict) -> None:
        save_checkpoint(self.path, self.config, done, arrays)
        self.last = time.monotonic()
