"""Estimators: one small class per method behind the interface of base.py."""
from .base import Estimator
from .chain_kernel import ChainKernelModes, state_bytes, unfit
from .shapley import ShapleyModes
from .surrogate import SurrogateModes
from .surrogate import state_bytes as surrogate_state_bytes

__all__ = ["ChainKernelModes", "Estimator", "ShapleyModes", "SurrogateModes"]

# shapley_modes(estimator=...): the estimators of first-order modes, by name
FIRST_ORDER = {"chain": ShapleyModes, "chain-kernel": ChainKernelModes, "surrogate": SurrogateModes}
AUTO_MAX_BYTES = 2 * 2 ** 30  # estimator="auto" takes chain-kernel only where its state fits in this
AUTO_MAX_SURROGATE_OUTPUT = 1024  # and the surrogate only for outputs up to this many elements (measured there)


def first_order_estimator(name: str, group: int, engine: str, n_players: int, output_size: int, itemsize: int):
    """The estimator class for shapley_modes(estimator=name), given the sampler's group size. auto: where
    chain-kernel applies (`unfit`: groups of at least n orderings, 4 players or more) on the batched engine, the
    surrogate estimator (the best measured) for outputs of up to AUTO_MAX_SURROGATE_OUTPUT elements (scores,
    accuracies; each fit costs a network on every output element), else chain-kernel, each where its state fits
    in AUTO_MAX_BYTES; else the plain chain mean (iid or antithetic orderings, msapy's engine)."""
    if name == "auto":
        name = "chain"
        if engine == "batched" and not unfit(n_players, group):
            if output_size <= AUTO_MAX_SURROGATE_OUTPUT and \
                    surrogate_state_bytes(n_players, output_size, group) <= AUTO_MAX_BYTES:
                name = "surrogate"
            elif state_bytes(n_players, output_size, itemsize) <= AUTO_MAX_BYTES:
                name = "chain-kernel"
    return FIRST_ORDER[name]
