"""Checkpoints of a running estimation: the accumulators, the number of orderings walked, and the
configuration they belong to. Orderings are regenerated from the seed, so the position is one number.

A checkpoint is written atomically (temporary file, then rename) and the one it replaces is kept as
`<name>.prev`, so a crash or a damaged file never costs more than one checkpoint interval.
"""
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from .result import atomic_savez
from .running_stats import RunningModes


def fingerprint(model) -> str:
    """A hash of a torch model's weights (and buffers): a checkpoint refuses to resume on another model."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path, config: dict, done: int, stats: RunningModes) -> None:
    path = Path(path)
    if path.exists():  # keep the last good one as .prev; `path` itself is always a complete file
        staged = path.with_name(path.name + ".prev.tmp")
        staged.unlink(missing_ok=True)
        os.link(path, staged)
        os.replace(staged, path.with_name(path.name + ".prev"))
    atomic_savez(path, count=stats.count, mean=stats.mean, m2=stats.m2, done=np.int64(done),
                 config=np.array(json.dumps(config, sort_keys=True)),
                 digest=np.array(_digest(stats.count, stats.mean, stats.m2, np.int64(done))))


def load_checkpoint(path, config: dict, stats: RunningModes) -> int:
    """Fill `stats` from the checkpoint and return the number of orderings already walked.

    Refuses (CheckpointError) a damaged file, or one written for another configuration or model."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            saved = json.loads(str(f["config"]))
            count, mean, m2, done = f["count"], f["mean"], f["m2"], f["done"]
            intact = _digest(count, mean, m2, done) == str(f["digest"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"checkpoint {path} is damaged ({type(error).__name__}: {error}); it was not used. "
                              f"The previous one, if any, is {path.name}.prev: rename it to {path.name} to resume "
                              "from there, or delete both to start over") from error
    if not intact:
        raise CheckpointError(f"checkpoint {path} is damaged (its contents do not match their checksum); it was "
                              f"not used. The previous one, if any, is {path.name}.prev")
    differ = {k: (saved.get(k), config.get(k)) for k in sorted(set(saved) | set(config)) if saved.get(k) != config.get(k)}
    if differ:
        lines = "; ".join(f"{k}: checkpoint has {old!r}, this run has {new!r}" for k, (old, new) in differ.items())
        raise CheckpointError(f"checkpoint {path} belongs to another run ({lines}). Use the same settings, or "
                              "delete it to start over")
    if mean.shape != stats.mean.shape or mean.dtype != stats.mean.dtype:
        raise CheckpointError(f"checkpoint {path} holds accumulators of shape {mean.shape} {mean.dtype}, "
                              f"expected {stats.mean.shape} {stats.mean.dtype}")
    stats.count[:], stats.mean[:], stats.m2[:] = count, mean, m2
    return int(done)


def remove_checkpoint(path) -> None:
    for p in (Path(path), Path(str(path) + ".prev")):
        p.unlink(missing_ok=True)
