"""Estimators: one small class per method behind the interface of base.py."""
from .base import Estimator
from .shapley import ShapleyModes

__all__ = ["Estimator", "ShapleyModes"]
