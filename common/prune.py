"""Remove units physically: a smaller model whose outputs equal the zero-lesioned original's.

A unit on a module's output (an MLP's hidden neuron "act[17]", a generator's filter "blocks.2.act[5]") is made by
one layer's weights and read by the next one's. `Wiring` names them, and the per-feature layers in between
(BatchNorm); `pruned` drops the unit's rows from the producer and those layers and its columns from the consumer:

    small = pruned(model, units, keep, {"act": Wiring(producer="fc1", consumer="fc2")})
    small = pruned(generator, units, keep, {"blocks.2.act": Wiring("blocks.2.conv", "blocks.3.conv", ("blocks.2.bn",))})

Attention heads (units at o_proj's input, as LLM's "heads" players) go with `pruned_heads`: their rows of q_proj
and columns of o_proj, in grouped-query attention without ever copying a key/value head. Removal is exactly a
zero lesion (zero ablation); routed experts keep the mask (docs/rankings.md says why).
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from common.lesion import module_named

_CONV_T = nn.modules.conv._ConvTransposeNd
_CONV = nn.modules.conv._ConvNd
_NORM = nn.modules.batchnorm._NormBase


@dataclass(frozen=True)
class Wiring:
    producer: str                  # the layer whose output features the units are (Linear, Conv, ConvTranspose)
    consumer: str                  # the layer that reads them
    between: tuple[str, ...] = ()  # per-feature layers on the way (BatchNorm)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _keep_along(param: torch.Tensor, axis: int, kept: torch.Tensor) -> nn.Parameter | torch.Tensor:
    data = param.data.index_select(axis, kept.to(param.device)).clone()
    return nn.Parameter(data, requires_grad=param.requires_grad) if isinstance(param, nn.Parameter) else data


def output_axis(layer) -> int:
    """The axis of a layer's weight that runs over its output features."""
    return 1 if isinstance(layer, _CONV_T) else 0


def input_axis(layer) -> int:
    """The axis of a layer's weight that runs over its input features."""
    return 0 if isinstance(layer, _CONV_T) else 1


def _check_layer(name, layer):
    if not isinstance(layer, (nn.Linear, _CONV)) or getattr(layer, "groups", 1) != 1:
        raise ValueError(f"{name} is a {type(layer).__name__}: pruned removes features of Linear and ungrouped "
                         "convolution layers only")


def _shrink_producer(layer, kept):
    layer.weight = _keep_along(layer.weight, output_axis(layer), kept)
    if layer.bias is not None:
        layer.bias = _keep_along(layer.bias, 0, kept)
    if isinstance(layer, nn.Linear):
        layer.out_features = len(kept)
    else:
        layer.out_channels = len(kept)


def _shrink_between(name, layer, kept):
    if not isinstance(layer, _NORM):
        raise ValueError(f"{name} is a {type(layer).__name__}: only per-feature norms (BatchNorm) may sit between "
                         "a producer and its consumer")
    for attr in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(layer, attr)
        if value is not None:
            setattr(layer, attr, _keep_along(value, 0, kept))
    layer.num_features = len(kept)


def _shrink_consumer(layer, kept):
    layer.weight = _keep_along(layer.weight, input_axis(layer), kept)
    if isinstance(layer, nn.Linear):
        layer.in_features = len(kept)
    else:
        layer.in_channels = len(kept)


def pruned(model: nn.Module, units, keep, wiring: dict) -> nn.Module:
    """A copy of `model` without the units whose `keep` entry is False (True = intact, as a coalition); the
    original is not changed. wiring = {unit's module: Wiring(producer, consumer, between)}."""
    units, keep = list(units), np.asarray(keep, dtype=bool)
    if keep.shape != (len(units),):
        raise ValueError(f"keep must have one entry per unit ({len(units)}), got shape {keep.shape}")
    if any(u.side != "out" for u in units):
        raise ValueError("pruned removes units on a module's output only; a unit on a module's input (an attention "
                         "head at o_proj) keeps its lesion mask")
    unwired = sorted({u.module for u in units} - set(wiring))
    if unwired:
        raise ValueError(f"no Wiring for {unwired}: say which layers make and read their features")
    small = copy.deepcopy(model)
    for site, wire in wiring.items():
        members = [(u, k) for u, k in zip(units, keep) if u.module == site]
        producer = module_named(small, wire.producer)
        _check_layer(wire.producer, producer)
        _check_layer(wire.consumer, module_named(small, wire.consumer))
        width = producer.weight.shape[output_axis(producer)]
        dropped = {f for u, k in members if not k for f in range(u.features.start, u.features.stop)}
        if any(f >= width for f in dropped):
            raise ValueError(f"{site} has {width} features; a unit to remove lies beyond them")
        kept = torch.tensor([f for f in range(width) if f not in dropped], dtype=torch.long)
        if not len(kept):
            raise ValueError(f"every feature of {site} would go: a model without the layer is not a smaller model")
        _shrink_producer(producer, kept)
        for name in wire.between:
            _shrink_between(name, module_named(small, name), kept)
        _shrink_consumer(module_named(small, wire.consumer), kept)
    return small


def pruned_heads(model: nn.Module, units, keep) -> nn.Module:
    """A copy of a Llama-style model (attention modules with q_proj, k_proj, v_proj, o_proj, head_dim and
    num_key_value_groups; a config with num_attention_heads and num_key_value_heads) without the heads whose
    `keep` entry is False; units are o_proj[in h*d:(h+1)*d]. Its logits equal the zero-lesioned original's.

    In grouped-query attention several query heads read one key/value head, in equal groups, and every layer has
    the config's shape. So the copy keeps, in every layer, as many key/value heads as the layer with the most
    groups left needs, and per key/value head as many query slots as the fullest group left needs; the slots
    without a head are zero (their o_proj columns are zero, so they add nothing). A key/value head is never
    copied, so the copy never has more parameters than the original; it shrinks where the removals leave every
    group of every layer with fewer heads (remove the same number per group for that). It saves with
    save_pretrained and loads with from_pretrained."""
    units, keep = list(units), np.asarray(keep, dtype=bool)
    if keep.shape != (len(units),):
        raise ValueError(f"keep must have one entry per unit ({len(units)}), got shape {keep.shape}")
    small = copy.deepcopy(model)
    attentions = {}
    for name, module in small.named_modules():
        if all(hasattr(module, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim")):
            attentions[name] = module
    dropped = {name: set() for name in attentions}
    for unit, k in zip(units, keep):
        attention_name = unit.module.rpartition(".")[0]
        d = getattr(attentions.get(attention_name), "head_dim", None)
        if unit.side != "in" or not unit.module.endswith("o_proj") or d is None or \
                unit.index % d or unit.features.stop - unit.index != d:
            raise ValueError(f"{unit} is not one attention head at o_proj's input (o_proj[in h*d:(h+1)*d])")
        if not k:
            dropped[attention_name].add(unit.index // d)
    # per layer: the heads left in each key/value group, groups without a head left dropped
    layout = {}
    for name, attention in attentions.items():
        d = attention.head_dim
        n_heads, n_kv = attention.q_proj.out_features // d, attention.k_proj.out_features // d
        per_group = n_heads // n_kv
        left = [[h for h in range(j * per_group, (j + 1) * per_group) if h not in dropped[name]] for j in range(n_kv)]
        layout[name] = [(j, heads) for j, heads in enumerate(left) if heads]
        if not layout[name]:
            raise ValueError(f"every head of {name} would go: a model without the layer's attention is not a "
                             "smaller model of the same kind")
    n_kv = max(len(groups) for groups in layout.values())
    slots = max(len(heads) for groups in layout.values() for _, heads in groups)
    for name, attention in attentions.items():
        _reslot(attention, layout[name], n_kv, slots)
    d = next(iter(attentions.values())).head_dim
    small.config.num_attention_heads, small.config.num_key_value_heads, small.config.head_dim = n_kv * slots, n_kv, d
    return small


def _reslot(attention, groups, n_kv: int, slots: int) -> None:
    """Rebuild one attention module with n_kv key/value heads of `slots` query slots each: group s reads key/value
    head groups[s][0] and holds its query heads groups[s][1]; the slots and groups beyond them are zero."""
    d = attention.head_dim
    q_rows, kv_rows = torch.zeros(n_kv * slots * d, dtype=torch.long), torch.zeros(n_kv * d, dtype=torch.long)
    q_real, kv_real = torch.zeros(n_kv * slots * d, dtype=torch.bool), torch.zeros(n_kv * d, dtype=torch.bool)
    for s, (j, heads) in enumerate(groups):
        kv_rows[s * d:(s + 1) * d], kv_real[s * d:(s + 1) * d] = torch.arange(j * d, (j + 1) * d), True
        for t, h in enumerate(heads):
            at = (s * slots + t) * d
            q_rows[at:at + d], q_real[at:at + d] = torch.arange(h * d, (h + 1) * d), True

    def gathered(param, axis, index, real):
        data = param.data.index_select(axis, index.to(param.device)).clone()
        shape = [1] * data.ndim
        shape[axis] = -1
        data *= real.to(data.device).view(shape)  # the zero slots
        return nn.Parameter(data, requires_grad=param.requires_grad)

    for proj, index, real in ((attention.q_proj, q_rows, q_real), (attention.k_proj, kv_rows, kv_real),
                              (attention.v_proj, kv_rows, kv_real)):
        proj.weight = gathered(proj.weight, 0, index, real)
        if proj.bias is not None:
            proj.bias = gathered(proj.bias, 0, index, real)
        proj.out_features = len(index)
    attention.o_proj.weight = gathered(attention.o_proj.weight, 1, q_rows, q_real)
    attention.o_proj.in_features = len(q_rows)
    attention.num_key_value_groups = slots
