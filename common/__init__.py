"""Multiperturbation Shapley-value Analysis (MSA) of neural units: the shared engine and lesion hooks.

`import common` is light: torch, msapy and Ray are imported only by the parts that need them."""
from importlib import import_module

_EXPORTS = {"shapley_modes": "shapley", "ShapleyResult": "result", "load": "result", "sample_orderings": "orderings",
            "SAMPLERS": "orderings", "interaction_modes": "interactions", "InteractionResult": "interactions",
            "load_interactions": "interactions", "exact_shapley_modes": "exact", "Checkpoint": "options",
            "Ray": "options", "TargetSE": "options", "Compute": "options", "Method": "options",
            "RunInterrupted": "runners", "Budget": "budget"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'common' has no attribute {name!r}")
