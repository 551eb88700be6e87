"""Estimators: one small class per method behind the interface of base.py."""
from .base import Estimator
from .chain_kernel import MIN_PLAYERS, ChainKernelModes, state_bytes
from .shapley import ShapleyModes

__all__ = ["ChainKernelModes", "Estimator", "ShapleyModes"]

# shapley_modes(estimator=...): the estimators of first-order modes, by name
FIRST_ORDER = {"chain": ShapleyModes, "chain-kernel": ChainKernelModes}
AUTO_MAX_BYTES = 2 * 2 ** 30  # estimator="auto" takes chain-kernel only where its state fits in this


def first_order_estimator(name: str, sampler: str, engine: str, n_players: int, output_size: int, itemsize: int):
    """The estimator class for shapley_modes(estimator=name). auto: chain-kernel (the best measured, with the
    orthogonal sampler) unless the orderings are msapy's or ungrouped (iid, or the msapy engine), there are fewer
    than MIN_PLAYERS players, or its state would take more than AUTO_MAX_BYTES; then the plain chain mean."""
    if name == "auto":
        fits = state_bytes(n_players, output_size, itemsize) <= AUTO_MAX_BYTES
        name = "chain-kernel" if engine == "batched" and sampler != "iid" and n_players >= MIN_PLAYERS and fits \
            else "chain"
    return FIRST_ORDER[name]
