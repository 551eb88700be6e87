"""A run's budget: the distinct game evaluations it may spend (an int), or k orderings (`Budget(orderings=k)`).

An evaluation budget is what a user pays: forward passes. Every estimator spends at most it, and leaves unspent
less than one of its own units of work (a sampler group of orderings, a coalition). The engine's coalition cache
(common/coalitions.py) means a coalition is evaluated once however often a run needs it, so the chains walk as
many orderings as their distinct coalitions fit.

`Budget(orderings=k)` asks for k orderings where orderings are the method: the estimators that walk orderings walk
exactly k (whole sampler groups, rounded down), as msapy would, and spend what those need (the chain mean at
most 2 + k (n - 1) evaluations); the others spend k x n, "k orderings' worth" (n evaluations an ordering, the plain
chain's cost).
"""
import math
import re
from dataclasses import dataclass

import numpy as np


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 1


@dataclass(frozen=True)
class Budget:
    evaluations: int | None = None
    orderings: int | None = None

    def __post_init__(self):
        given = [name for name in ("evaluations", "orderings") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a Budget takes evaluations=N or orderings=K, one of the two")
        value = getattr(self, given[0])
        if not _whole(value):
            raise ValueError(f"budget {given[0]} must be a positive integer, got {value!r}")
        object.__setattr__(self, given[0], int(value))

    def evaluations_for(self, n_players: int) -> int:
        """The evaluations this budget allows on n players (k orderings: k x n)."""
        return self.evaluations if self.evaluations is not None else self.orderings * n_players

    def orderings_worth(self, n_players: int) -> float:
        """The orderings this budget buys at the plain chain's n evaluations an ordering."""
        return self.orderings if self.orderings is not None else self.evaluations / n_players

    def __str__(self):
        if self.evaluations is not None:
            return f"{self.evaluations:,} evaluation{'s' * (self.evaluations != 1)}"
        return f"{self.orderings:,} ordering{'s' * (self.orderings != 1)}"

    def as_text(self) -> str:
        """What parse_budget reads back: "20000" or "1000n"."""
        return str(self.evaluations) if self.evaluations is not None else f"{self.orderings}n"

    def to_json(self) -> dict:
        return {"evaluations": self.evaluations} if self.evaluations is not None else {"orderings": self.orderings}


def as_budget(value) -> Budget:
    """A Budget from an int (evaluations) or a Budget; ValueError naming what a budget is otherwise."""
    if isinstance(value, Budget):
        return value
    if _whole(value):
        return Budget(evaluations=int(value))
    raise ValueError(f"budget must be a positive integer (distinct game evaluations) or common.Budget(orderings=K), "
                     f"got {value!r}")


def parse_budget(text: str) -> Budget:
    """The command lines' --budget: N evaluations ("20000", "2e4") or K orderings ("1000n": 1000 x n)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*(n?)\s*", str(text).lower())
    if match is None:
        raise ValueError(f"must be a number of evaluations (20000) or of orderings (1000n), got {text!r}")
    number = float(match.group(1))
    if number < 1 or number != math.floor(number):
        raise ValueError(f"must be a whole number of evaluations (20000) or of orderings (1000n), got {text!r}")
    return Budget(orderings=int(number)) if match.group(2) else Budget(evaluations=int(number))
