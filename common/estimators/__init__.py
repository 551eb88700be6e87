"""Estimators: one small class per method behind the interface of base.py, and the registry the API and the
command lines read their names, choices and descriptions from. Adding an estimator: its file, and one entry in
ESTIMATORS."""
import math

from .base import Estimator
from .chain_kernel import ChainKernelModes
from .chain_mean import ChainMeanModes
from .chain_walk import unfit
from .kadd import MAX_ORDER_2_PARAMETERS, KAddModes, parameters
from .surrogate import SurrogateModes

__all__ = ["ChainKernelModes", "ChainMeanModes", "ESTIMATORS", "Estimator", "KAddModes", "SurrogateModes"]

# shapley_modes(estimator=...): the estimators of first-order modes, by name
ESTIMATORS = {cls.name: cls for cls in (ChainMeanModes, ChainKernelModes, SurrogateModes, KAddModes)}
AUTO = "auto"      # a rule on players, sampler groups, output size and memory (first_order_estimator)
MSAPY = "msapy"    # msapy's own lazy walk, one coalition per call: the parity oracle (common/runners/msapy.py)
ESTIMATOR_CHOICES = (AUTO, *ESTIMATORS, MSAPY)
ABOUT = {AUTO: "kadd from min(n/2, 1.6 sqrt(n)) orderings' worth where its state fits, the game is slow enough "
               "to pay for its fit and no target SE is set; else the surrogate where it applies, the output has at "
               "most 1024 elements and the game pays for its fits; chain-kernel where it applies; else chain",
         **{name: cls.about for name, cls in ESTIMATORS.items()},
         MSAPY: "msapy's lazy interface, one coalition per call: the chain estimate with msapy's own walk (no error "
                "bars, checkpoints, Ray or target)"}

AUTO_MAX_BYTES = 2 * 2 ** 30  # estimator="auto" takes an estimator only where its state fits in this
AUTO_MAX_SURROGATE_OUTPUT = 1024  # and the surrogate only for outputs up to this many elements (measured there)
# and only where a group's game evaluations take 10x its fits: about a second per group (0.7-6 s measured at
# 10-200 units); a game that declares `cost_per_coalition` (seconds) is compared, one that does not is assumed slow
SURROGATE_SECONDS_PER_GROUP = 1.0
# kadd: from min(n/2, KADD_MIN_ORDERINGS_PER_ROOT_N sqrt(n)) orderings' worth (its first-order fit overtook
# antithetic orderings at 4, 6, 9 and 11 on MLPs of 12, 20, 32 and 60 units), the order-2 game's coefficients at
# most kadd.MAX_ORDER_2_PARAMETERS, and a fit costing about this much per coalition and squared coefficient (2-9e-10
# s measured on one CPU core at 20-64 units)
KADD_MIN_ORDERINGS_PER_ROOT_N = 1.6
KADD_SECONDS_PER_ROW_PARAMETER2 = 1e-9


def surrogate_pays(n_players: int, group: int, cost_per_coalition: float | None) -> bool:
    """Whether the surrogate's fits cost less than a tenth of the game's evaluations: a rule on the game's declared
    cost, never on a clock, so that the same run picks the same estimator everywhere."""
    if cost_per_coalition is None:
        return True
    return group * (n_players - 3) * cost_per_coalition >= 10 * SURROGATE_SECONDS_PER_GROUP


def kadd_applies(n_players: int, n_orderings: int, output_size: int, cost_per_coalition: float | None) -> bool:
    """Whether auto takes kadd: min(n/2, KADD_MIN_ORDERINGS_PER_ROOT_N sqrt(n)) orderings' worth or more, at most
    MAX_ORDER_2_PARAMETERS coefficients of the order-2 game, a state that fits, and a fit that costs less than a
    tenth of the game's evaluations (by the game's declared cost, never a clock)."""
    enough = min(n_players / 2, KADD_MIN_ORDERINGS_PER_ROOT_N * math.sqrt(n_players))
    if n_orderings < enough or KAddModes.refuses(n_players, 1, n_orderings) or \
            parameters(n_players, 2) > MAX_ORDER_2_PARAMETERS:
        return False
    p = parameters(n_players, KAddModes.order_for(n_players, n_orderings))
    every = KAddModes.most_orderings(n_players)
    fits = KAddModes.state_bytes(n_players, output_size, min(n_orderings, every or n_orderings)) <= AUTO_MAX_BYTES
    pays = cost_per_coalition is None or 10 * KADD_SECONDS_PER_ROW_PARAMETER2 * p * p <= cost_per_coalition
    return bool(fits and pays)


def first_order_estimator(name: str, group: int, n_players: int, output_size: int, itemsize: int,
                          cost_per_coalition: float | None = None, *, n_orderings: int | None = None,
                          target: bool = False):
    """The estimator class for shapley_modes(estimator=name), given the sampler's group size and the run's
    orderings. auto: kadd where `kadd_applies` (the best measured where it fits: docs/estimators.md) and no target
    SE asks to stop early; else, where chain-kernel applies (`unfit`: groups of at least n orderings, 4 players or
    more), the surrogate estimator for outputs of up to AUTO_MAX_SURROGATE_OUTPUT elements (scores, accuracies;
    each fit costs a network on every output element) whose evaluations cost far more than its fits
    (`surrogate_pays`), else chain-kernel, each where its state fits in AUTO_MAX_BYTES; else the plain chain mean
    (iid or antithetic orderings). msapy: the chain mean, which msapy's walk computes."""
    if name == MSAPY:
        return ChainMeanModes
    if name == AUTO:
        name = ChainMeanModes.name
        if n_orderings is not None and not target and \
                kadd_applies(n_players, n_orderings, output_size, cost_per_coalition):
            name = KAddModes.name
        elif not unfit(n_players, group):
            if output_size <= AUTO_MAX_SURROGATE_OUTPUT and surrogate_pays(n_players, group, cost_per_coalition) \
                    and SurrogateModes.state_bytes(n_players, output_size, group) <= AUTO_MAX_BYTES:
                name = SurrogateModes.name
            elif ChainKernelModes.state_bytes(n_players, output_size, itemsize) <= AUTO_MAX_BYTES:
                name = ChainKernelModes.name
    return ESTIMATORS[name]


def help_text() -> str:
    """Every estimator's name and description, for a command line's --help."""
    return "; ".join(f"{name}: {about}" for name, about in ABOUT.items())
