"""Multiperturbation Shapley-value Analysis (MSA) of neural units: the shared engine and lesion hooks."""
from .orderings import sample_orderings
from .result import ShapleyResult, load
from .shapley import shapley_modes

__all__ = ["shapley_modes", "ShapleyResult", "load", "sample_orderings"]
