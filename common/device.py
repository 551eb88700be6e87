"""Device selection shared by every script: --device auto picks CUDA when present, else the CPU."""
import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for CUDA, but torch sees no GPU here; use --device cpu or auto")
    return device
