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


def free_cores() -> int:
    """The cores this process may use that no other process keeps busy: the cores it is allowed, less the load
    average of the last minute (a core kept busy adds about 1), at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = int(os.getloadavg()[0] + 0.25)  # a core kept busy, not a moment's noise
    except (AttributeError, OSError):  # no load average here (Windows)
        busy = 0
    return max(1, cores - busy)


def set_cpu_threads(threads: int | None = None) -> int:
    """Torch's CPU threads and numpy's BLAS threads: by default the free cores (`free_cores`). Two threads fighting
    a third process for two cores make each step many times slower, as the threads wait on each other."""
    threads = free_cores() if threads is None else threads
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)  # numpy's BLAS (the MLP game's products)
    except ImportError:
        pass
    return threads
