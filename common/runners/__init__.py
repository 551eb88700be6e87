"""Runners walk an estimator's units through a game: locally (batched, checkpoints, signals), on Ray (shards on
actors, merged), or through msapy's own lazy interface (the parity oracle)."""
from .local import LocalRunner, Precision, RunInterrupted
from .msapy import MsapyRunner
from .ray import RayRunner

RUNNERS = ("local", "msapy")  # or a common.Ray(...)

__all__ = ["LocalRunner", "MsapyRunner", "Precision", "RUNNERS", "RayRunner", "RunInterrupted"]
