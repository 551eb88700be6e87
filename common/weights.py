"""Saved weights, safely: torch.load with weights_only=True and an error that names the file; writes that a killed
run never leaves half done (a temporary file or folder beside the target, then a rename)."""
import os
import shutil
import tempfile
from pathlib import Path


def load_weights(path, what: str = "model file", map_location="cpu"):
    """The saved dict at `path`. A missing, damaged or foreign file is a ValueError naming it; we never fall
    back to (or suggest) unsafe unpickling, which could run code from the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch's own message suggests weights_only=False: not repeated here
        raise ValueError(f"cannot read the {what} {path} ({type(error).__name__}): it is damaged, truncated, or "
                         "not a file this project wrote. Write it again (train it again) or restore a copy") from None


def save_weights(path, saved: dict) -> None:
    """torch.save(saved) to a temporary file beside `path`, then rename over it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(saved, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_folder(path, write) -> None:
    """write(folder) into a temporary folder beside `path`, which then takes its place; an older `path` is removed
    only once the new one is whole. A crash leaves the old folder or the new one at `path`, except between the two
    renames, when the old one waits beside it in a '.old' folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp"))
    try:
        write(tmp)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".", suffix=".old"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
