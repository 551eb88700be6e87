"""Estimators: one class per file behind the contract of base.py, and the registry that the API and the command
lines read their names, choices and descriptions from. Adding an estimator: its file, and one entry in ESTIMATORS.
"""
from .auto import auto_estimator, describe, named_estimator
from .base import Estimator, Problem
from .chain_kernel import ChainKernel
from .chain_mean import ChainMean
from .exact import Exact
from .kadd import KAdd
from .pair_interactions import PairInteractions
from .surrogate import Surrogate

__all__ = ["ChainKernel", "ChainMean", "ESTIMATORS", "Estimator", "Exact", "KAdd", "PairInteractions", "Problem",
           "Surrogate", "auto_estimator", "named_estimator"]

# shapley_modes(estimator=...): the estimators of first-order modes, by name
ESTIMATORS = {cls.name: cls for cls in (ChainMean, ChainKernel, Surrogate, KAdd, Exact)}
AUTO = "auto"
ESTIMATOR_CHOICES = (AUTO, *ESTIMATORS)
ABOUT = {AUTO: describe(), **{name: cls.about for name, cls in ESTIMATORS.items()}}


def help_text() -> str:
    """Every estimator's name and description, for a command line's --help."""
    return "; ".join(f"{name}: {about}" for name, about in ABOUT.items())
