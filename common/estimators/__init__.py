"""Estimators: one small class per method behind the interface of base.py."""
from .base import Estimator
from .chain_kernel import ChainKernelModes, state_bytes, unfit
from .shapley import ShapleyModes

__all__ = ["ChainKernelModes", "Estimator", "ShapleyModes"]

# shapley_modes(estimator=...): the estimators of first-order modes, by name
FIRST_ORDER = {"chain": ShapleyModes, "chain-kernel": ChainKernelModes}
AUTO_MAX_BYTES = 2 * 2 ** 30  # estimator="auto" takes chain-kernel only where its state fits in this


def first_order_estimator(name: str, group: int, engine: str, n_players: int, output_size: int, itemsize: int):
    """The estimator class for shapley_modes(estimator=name), given the sampler's group size. auto: chain-kernel
    (the best measured, with the orthogonal sampler) where it applies (`unfit`: groups of at least n orderings,
    4 players or more) on the batched engine and its state fits in AUTO_MAX_BYTES; else the plain chain mean
    (iid or antithetic orderings, msapy's engine)."""
    if name == "auto":
        fits = state_bytes(n_players, output_size, itemsize) <= AUTO_MAX_BYTES
        name = "chain-kernel" if engine == "batched" and not unfit(n_players, group) and fits else "chain"
    return FIRST_ORDER[name]
