"""Estimators: one small class per method behind the interface of base.py, and the registry the API and the
command lines read their names, choices and descriptions from. Adding an estimator: its file, and one entry in
ESTIMATORS."""
from .base import Estimator
from .chain_kernel import ChainKernelModes, state_bytes, unfit
from .chain_mean import ChainMeanModes
from .surrogate import SurrogateModes
from .surrogate import state_bytes as surrogate_state_bytes

__all__ = ["ChainKernelModes", "ChainMeanModes", "ESTIMATORS", "Estimator", "SurrogateModes"]

# shapley_modes(estimator=...): the estimators of first-order modes, by name
ESTIMATORS = {cls.name: cls for cls in (ChainMeanModes, ChainKernelModes, SurrogateModes)}
AUTO = "auto"      # a rule on players, sampler groups, output size and memory (first_order_estimator)
MSAPY = "msapy"    # msapy's own lazy walk, one coalition per call: the parity oracle (common/runners/msapy.py)
ESTIMATOR_CHOICES = (AUTO, *ESTIMATORS, MSAPY)
ABOUT = {AUTO: "surrogate where it applies and the output has at most 1024 elements, chain-kernel for larger "
               "outputs, else chain",
         **{name: cls.about for name, cls in ESTIMATORS.items()},
         MSAPY: "msapy's lazy interface, one coalition per call: the chain estimate with msapy's own walk (no error "
                "bars, checkpoints, Ray or target)"}

AUTO_MAX_BYTES = 2 * 2 ** 30  # estimator="auto" takes chain-kernel only where its state fits in this
AUTO_MAX_SURROGATE_OUTPUT = 1024  # and the surrogate only for outputs up to this many elements (measured there)


def first_order_estimator(name: str, group: int, n_players: int, output_size: int, itemsize: int):
    """The estimator class for shapley_modes(estimator=name), given the sampler's group size. auto: where
    chain-kernel applies (`unfit`: groups of at least n orderings, 4 players or more), the surrogate estimator (the
    best measured) for outputs of up to AUTO_MAX_SURROGATE_OUTPUT elements (scores, accuracies; each fit costs a
    network on every output element), else chain-kernel, each where its state fits in AUTO_MAX_BYTES; else the
    plain chain mean (iid or antithetic orderings). msapy: the chain mean, which msapy's walk computes."""
    if name == MSAPY:
        return ChainMeanModes
    if name == AUTO:
        name = ChainMeanModes.name
        if not unfit(n_players, group):
            if output_size <= AUTO_MAX_SURROGATE_OUTPUT and \
                    surrogate_state_bytes(n_players, output_size, group) <= AUTO_MAX_BYTES:
                name = SurrogateModes.name
            elif state_bytes(n_players, output_size, itemsize) <= AUTO_MAX_BYTES:
                name = ChainKernelModes.name
    return ESTIMATORS[name]


def help_text() -> str:
    """Every estimator's name and description, for a command line's --help."""
    return "; ".join(f"{name}: {about}" for name, about in ABOUT.items())
