"""Reading saved weights safely: torch.load with weights_only=True, and an error that names the file."""
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
