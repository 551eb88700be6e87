"""Runners walk the orderings through a game for an estimator: locally (batched, checkpoints, signals), on Ray
(shards on actors, merged), or through msapy's own lazy interface (the parity oracle)."""
from .local import Precision, RunInterrupted, run_local, walk
from .msapy import run_msapy
from .ray import run_ray

__all__ = ["Precision", "RunInterrupted", "run_local", "run_msapy", "run_ray", "walk"]
