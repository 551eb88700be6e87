"""Device selection shared by every script: --device auto picks CUDA when present, else the CPU."""
import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for CUDA, but torch sees no GPU here; use --device cpu or auto")
    return device


def set_cpu_threads(threads: int | None = None) -> int:
    """Torch CPU threads: by default every core. On a machine shared with other busy processes, use fewer
    (--threads 1): two threads fighting a third process for two cores make each step tens of times slower,
    as OpenMP threads wait on each other."""
    threads = (os.cpu_count() or 1) if threads is None else threads
    torch.set_num_threads(threads)
    return threads
