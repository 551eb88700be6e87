"""Device selection shared by every script: --device auto picks CUDA when present, else the CPU."""
import os
import time

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for CUDA, but torch sees no GPU here; use --device cpu or auto")
    return device


def busy_cores(interval: float = 0.3) -> float:
    """How many cores other processes keep busy now: the machine's busy time over `interval` seconds, less this
    process's own (/proc/stat); where that cannot be read, the load average of the last minute."""
    def snapshot():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:8]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        return sum(fields), fields[3] + fields[4], int(own[11]) + int(own[12])  # all, idle + iowait, ours
    try:
        total0, idle0, own0 = snapshot()
        time.sleep(interval)
        total1, idle1, own1 = snapshot()
        share = ((total1 - total0) - (idle1 - idle0) - (own1 - own0)) / max(total1 - total0, 1)
        return max(share, 0.0) * (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average here (Windows)
            return 0.0


def free_cores() -> int:
    """The cores this process may use that no other process keeps busy (a core busy most of the time counts),
    at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - int(busy_cores() + 0.4))


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
