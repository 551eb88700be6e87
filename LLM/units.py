"""Players of a causal LM, read from the model and its config: experts, attention heads, MLP blocks, or whole
attention and MLP sub-layers. Each kind comes with a way to ablate a coalition per batch row.

    players = model_players(model, "heads")          # SmolLM2-135M: 30 layers x 9 heads = 270 players
    with players.ablated(keep):                      # keep: (rows, n) bool, True = intact; row r of every batch
        model.generate(...)                          #   (and every decoding step) uses keep[r]

| kind    | a player is                                       | its location (common.lesion.Unit)        | label     |
| experts | a (layer, expert) of a mixture of experts        | excluded in the MoE block's routing      | (3, 5)    |
| heads   | one attention head's output, before o_proj mixes | model.layers.3.self_attn.o_proj[in 128:192] | L3.H2  |
| mlp     | an MLP block's output                             | model.layers.3.mlp[0:576]                | L3.MLP    |
| layers  | the attention and the MLP sub-layer of each layer | ...o_proj[0:576] and ...mlp[0:576]       | L3.ATTN   |
"""
import re
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from common.lesion import Unit, lesioned, unit_means

from .moe import excluded_experts, expert_players, has_experts

UNIT_KINDS = ("auto", "experts", "heads", "mlp", "layers")
ABLATIONS = ("zero", "mean")


@dataclass
class Players:
    kind: str
    labels: list                   # what results call the players
    layer: np.ndarray              # each player's layer, for figures
    units: list = field(default_factory=list)  # locations (empty for experts)
    ablate: object = None          # keep rows -> context manager

    def ablated(self, keep):
        return self.ablate(keep)

    def __len__(self):
        return len(self.labels)


def decoder_layers(model) -> list[str]:
    """Names of the decoder layers in order (e.g. model.layers.0 ... model.layers.29)."""
    found = {}
    for name, module in model.named_modules():
        match = re.fullmatch(r"(.*\.)?layers\.(\d+)", name)
        if match and hasattr(module, "self_attn"):
            found[int(match.group(2))] = name
    if not found:
        raise ValueError(f"{type(model).__name__} has no decoder layers named '...layers.N' with a self_attn: "
                         "cannot find heads or sub-layers to lesion")
    return [found[i] for i in sorted(found)]


def _mlp_name(model, layer: str) -> str:
    modules = dict(model.named_modules())
    for child in ("mlp", "block_sparse_moe", "feed_forward"):
        if f"{layer}.{child}" in modules:
            return f"{layer}.{child}"
    raise ValueError(f"{layer} has no mlp (or block_sparse_moe) module")


def unit_players(model, kind: str) -> tuple[list[Unit], list[str], np.ndarray]:
    config = model.config
    hidden = config.hidden_size
    units, labels, layer_of = [], [], []
    for l, layer in enumerate(decoder_layers(model)):
        o_proj = f"{layer}.self_attn.o_proj"
        if kind == "heads":
            n_heads = config.num_attention_heads
            d = getattr(config, "head_dim", None) or hidden // n_heads
            for h in range(n_heads):
                units.append(Unit(o_proj, h * d, (h + 1) * d, "in"))
                labels.append(f"L{l}.H{h}")
        if kind == "layers":
            units.append(Unit(o_proj, 0, hidden))
            labels.append(f"L{l}.ATTN")
        if kind in ("mlp", "layers"):
            units.append(Unit(_mlp_name(model, layer), 0, hidden))
            labels.append(f"L{l}.MLP")
        layer_of += [l] * (len(units) - len(layer_of))
    return units, labels, np.array(layer_of)


def parse_layers(text: str) -> range:
    """'3' -> range(3, 4); '0:4' -> range(0, 4) (a Python slice of the decoder layers: the stop is excluded)."""
    parts = text.split(":")
    try:
        start, stop = (int(parts[0]), int(parts[0]) + 1) if len(parts) == 1 else map(int, parts)
    except ValueError:
        raise ValueError(f"layers must be N or START:STOP (decoder layer indices), got {text!r}") from None
    if len(parts) > 2 or not 0 <= start < stop:
        raise ValueError(f"layers must be N or START:STOP with 0 <= START < STOP, got {text!r}")
    return range(start, stop)


def model_players(model, kind: str = "auto", ablation: str = "zero", exclusion: str = "paper",
                  reference=None, layers: range | None = None) -> Players:
    """The players of `kind` (auto: experts for a mixture of experts, heads otherwise).

    ablation: zero, or mean (each unit's mean activation over `reference()`, which runs the reference prompts);
    experts are excluded from the routing instead (`exclusion`: paper or reroute).
    layers: only the units of these decoder layers are players; the others stay intact."""
    players = _all_players(model, kind, ablation, exclusion, reference)
    if layers is None:
        return players
    n_layers = int(players.layer.max()) + 1
    if layers.stop > n_layers:
        raise ValueError(f"layers {layers.start}:{layers.stop}: the model has {n_layers} layers (0..{n_layers - 1})")
    picked = np.flatnonzero(np.isin(players.layer, layers))

    def ablate(keep):  # the chosen players' columns in a mask where every other player is intact
        keep = np.asarray(keep)
        full = np.ones((len(keep), len(players)), bool)
        full[:, picked] = keep
        return players.ablate(full)
    return Players(players.kind, [players.labels[i] for i in picked], players.layer[picked],
                   [players.units[i] for i in picked] if players.units else [], ablate)


def _all_players(model, kind, ablation, exclusion, reference) -> Players:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown units {kind!r}; choose one of {UNIT_KINDS}")
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {ABLATIONS}")
    if kind == "auto":
        kind = "experts" if has_experts(model) else "heads"
    if kind == "experts":
        if ablation != "zero":
            raise ValueError("experts are excluded from the routing (--exclusion); --ablation mean is for heads, mlp "
                             "and layers")
        pairs = expert_players(model)
        return Players("experts", pairs, np.array([l for l, _ in pairs]),
                       ablate=lambda keep: excluded_experts(model, keep, exclusion))
    units, labels, layer = unit_players(model, kind)
    means = None
    if ablation == "mean":
        if reference is None:
            raise ValueError("mean ablation needs reference prompts to average the activations over")
        means = unit_means(model, units, reference, dim=-1)
    return Players(kind, labels, layer, units,
                   ablate=partial(_ablated_units, model, units, means))


def _ablated_units(model, units, means, keep):
    return lesioned(model, units, keep, dim=-1, per_row=True, means=means)
