"""Checkpoints of a running estimation: the estimator's state arrays, the number of orderings walked, and the
configuration they belong to. Orderings are regenerated from the seed, so the position is one number.

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


class CheckpointError(RuntimeError):
    pass


def _bytes(a: np.ndarray) -> memoryview:
    """The array's bytes without a copy (the state arrays are C-contiguous)."""
    return memoryview(np.ascontiguousarray(a)).cast("B")


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


def load_checkpoint(path, config: dict, arrays: dict) -> int:
    """Read the checkpoint's state into `arrays` (the estimator's own buffers, same names and shapes) and return
    the number of orderings already walked. Refuses (CheckpointError) a damaged file, or one written for another
    configuration or model; a refused file is left as it is."""
    path = Path(path)
    differ = {}
    try:
        with zipfile.ZipFile(path) as archive:
            with np.load(path, allow_pickle=False) as f:
                saved, done, expected = json.loads(str(f["config"])), int(f["done"]), str(f["digest"])
            differ = {k: (saved.get(k), config.get(k)) for k in sorted(set(saved) | set(config))
                      if saved.get(k) != config.get(k)}
            for name, out in arrays.items() if not differ else ():
                _read_into(archive, f"state_{name}", out)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"checkpoint {path} is damaged ({type(error).__name__}: {error}); it was not used. "
                              f"The previous one, if any, is {path.name}.prev: rename it to {path.name} to resume "
                              "from there, or delete both to start over") from error
    if differ:
        lines = "; ".join(f"{k}: checkpoint has {old!r}, this run has {new!r}" for k, (old, new) in differ.items())
        raise CheckpointError(f"checkpoint {path} belongs to another run ({lines}). Use the same settings, or "
                              "delete it to start over")
    if digest(done, arrays) != expected:
        raise CheckpointError(f"checkpoint {path} is damaged (its contents do not match their checksum); it was "
                              f"not used. The previous one, if any, is {path.name}.prev")
    return done


def remove_checkpoint(path) -> None:
    for p in (Path(path), Path(str(path) + ".prev")):
        p.unlink(missing_ok=True)


class Checkpointer:
    """Saves an estimator's state to `path` every `every` seconds (0: after every block) and when asked."""

    def __init__(self, path, every: float, config: dict):
        self.path, self.every, self.config = Path(path), float(every), config
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def save(self, done: int, estimator) -> None:
        save_checkpoint(self.path, self.config, done, estimator.state())
        self.last = time.monotonic()

    def resume(self, estimator) -> int:
        return load_checkpoint(self.path, self.config, estimator.state())
