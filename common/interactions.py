"""Pairwise interaction modes of lesion games: `interaction_modes` (sampled orderings, error bars, any output
shape), and its result format. SPEX screening lives in common/spex.py.

For a pair of units (i, j) the interaction mode says, per output element, how much more (or less) the two add
together than apart, averaged the Shapley way: the Shapley interaction index (SII) or the Shapley-Taylor
interaction index of order 2 (STII). See common/estimators/interactions.py for the estimator.
"""
import json
from dataclasses import dataclass, field

import numpy as np

from .estimators.pair_interactions import INDICES, PairInteractions, check_pairs
from .game import player_labels
from .options import Checkpoint, Compute, RunOptions, TargetSE
from .result import ShapleyResult, _label_from_json, _label_to_json, atomic_savez
from .shapley import estimate, refuse_renamed


@dataclass
class InteractionResult:
    pairs: np.ndarray        # (P, 2) player indices, i < j
    modes: np.ndarray        # (P, *output_shape): the interaction of each pair, per output element
    se: np.ndarray           # (P, *output_shape) Monte Carlo standard errors
    index: str               # "SII" or "STII"
    first_order: ShapleyResult  # the Shapley modes of the same run
    metadata: dict = field(default_factory=dict)

    @property
    def players(self) -> list:
        return self.first_order.players

    @property
    def evaluations(self) -> int | None:
        """The distinct game evaluations the run spent."""
        return self.metadata.get("evaluations")

    def pair(self, a, b) -> np.ndarray:
        """The interaction mode of two players, by label."""
        i, j = sorted((self.players.index(a), self.players.index(b)))
        hit = np.flatnonzero((self.pairs[:, 0] == i) & (self.pairs[:, 1] == j))
        if len(hit) == 0:
            raise KeyError(f"the pair ({a!r}, {b!r}) was not estimated")
        return self.modes[hit[0]]

    def to_shapiq(self, element=()):
        """shapiq's InteractionValues of one output element, order 2: for SII the players' Shapley values (SII's
        own singletons) and the pairs estimated; for STII the pairs alone (its singletons are other numbers)."""
        from .result import output_element, shapiq_values
        at = output_element(self.first_order.output_shape, element)
        n = len(self.players)
        pairs = [(int(i), int(j)) for i, j in self.pairs]
        singles = [(i,) for i in range(n)] if self.index == "SII" else []
        lookup = {k: position for position, k in enumerate(singles + pairs)}
        values = np.concatenate([self.first_order.modes[(slice(None), *at)] if singles else np.zeros(0),
                                 self.modes[(slice(None), *at)]])
        baseline = float(np.asarray(self.first_order.lesioned)[at])
        return shapiq_values(values, lookup, index=self.index, n_players=n, baseline=baseline,
                             evaluations=self.evaluations, estimated=True)

    def table(self, reduce=None):
        """A pandas DataFrame of the pairs ranked by |interaction| (reduced over the output by `reduce`, default
        the mean), with the standard error of that reduction where it is a mean."""
        import pandas as pd
        flat, se = self.modes.reshape(len(self.pairs), -1), self.se.reshape(len(self.pairs), -1)
        value = flat.mean(1) if reduce is None else np.asarray([reduce(row) for row in self.modes])
        spread = np.sqrt((se ** 2).sum(1)) / flat.shape[1] if reduce is None else np.full(len(value), np.nan)
        labels = self.players
        df = pd.DataFrame(dict(a=[labels[i] for i in self.pairs[:, 0]], b=[labels[j] for j in self.pairs[:, 1]],
                               interaction=value, se=spread))
        return df.reindex(df.interaction.abs().sort_values(ascending=False).index).reset_index(drop=True)

    def save(self, path, **extra_arrays):
        info = dict(index=self.index, metadata=self.metadata, players=_label_to_json(list(self.players)),
                    orderings=self.first_order.orderings, seed=self.first_order.seed,
                    sampler=self.first_order.sampler)
        return atomic_savez(path, kind=np.array("interactions"), pairs=self.pairs, modes=self.modes, se=self.se,
                            first_modes=self.first_order.modes, first_se=self.first_order.se,
                            intact=np.asarray(self.first_order.intact), lesioned=np.asarray(self.first_order.lesioned),
                            info=np.array(json.dumps(info, default=str)), **extra_arrays)


def load_interactions(path) -> InteractionResult:
    with np.load(path, allow_pickle=False) as f:
        if "kind" not in f.files or str(f["kind"]) != "interactions":
            raise ValueError(f"{path} is not an interaction result written by InteractionResult.save")
        info = json.loads(str(f["info"]))
        players = [_label_from_json(p) for p in info["players"]]
        first = ShapleyResult(modes=f["first_modes"], se=f["first_se"], players=players,
                              orderings=info.get("orderings", info.get("n_permutations")), intact=f["intact"],
                              lesioned=f["lesioned"],
                              seed=info["seed"], sampler=info["sampler"], metadata=info["metadata"])
        return InteractionResult(pairs=f["pairs"], modes=f["modes"], se=f["se"], index=info["index"],
                                 first_order=first, metadata=info["metadata"])


def interaction_modes(game, players, budget, pairs=None, *, index: str = "SII", seed: int = 1, sampler: str = "auto",
                      progress: bool = True, compute: Compute = Compute(), checkpoint: Checkpoint | None = None,
                      runner="local", target: TargetSE | None = None, **renamed) -> InteractionResult:
    """Pairwise interaction modes (and the first-order modes) of `game` within `budget` distinct evaluations.

    pairs: (P, 2) player indices (any order within a pair); None: all n (n - 1) / 2 pairs. Each pair costs two
        coalitions per ordering on top of the n of the chain (before the coalition cache).
    index: "SII" (Shapley interaction index) or "STII" (Shapley-Taylor, order 2).
    The other options are shapley_modes' (msapy estimates pairs with three full runs each: see
    tests/test_interactions.py for the parity), but runner="msapy".
    """
    refuse_renamed("interaction_modes", renamed)
    if index not in INDICES:
        raise ValueError(f"unknown interaction index {index!r}; choose one of {INDICES}")
    if runner == "msapy":
        raise ValueError("runner='msapy' computes first-order modes only; interaction modes run locally or on Ray")
    options = RunOptions(budget=budget, seed=seed, sampler=sampler, estimator=PairInteractions, compute=compute,
                         progress=progress, checkpoint=checkpoint, runner=runner, target=target)
    labels = player_labels(players)
    pairs = check_pairs(pairs, len(labels))
    estimates, run = estimate(game, labels, options, settings=dict(pairs=pairs, index=index), enumerate_all=False,
                              desc="interaction modes")
    first = ShapleyResult(modes=estimates["modes"], se=estimates["se"], players=run["labels"],
                          orderings=run["orderings"], intact=run["intact"], lesioned=run["lesioned"],
                          seed=run["seed"], sampler=run["sampler"], metadata=run["metadata"])
    return InteractionResult(pairs=estimates["pairs"], modes=estimates["pair_modes"], se=estimates["pair_se"],
                             index=index, first_order=first, metadata=dict(run["metadata"], index=index))
