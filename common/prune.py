"""Remove units physically: a smaller model whose outputs equal the zero-lesioned original's.

A unit on a module's output (an MLP's hidden neuron "act[17]", a generator's filter "blocks.2.act[5]") is made by
one layer's weights and read by the next one's. `Wiring` names them, and the per-feature layers in between
(BatchNorm); `pruned` drops the unit's rows from the producer and those layers and its columns from the consumer:

    small = pruned(model, units, keep, {"act": Wiring(producer="fc1", consumer="fc2")})
    small = pruned(generator, units, keep, {"blocks.2.act": Wiring("blocks.2.conv", "blocks.3.conv", ("blocks.2.bn",))})

Only where removal is exactly a zero lesion: units on a module's output, zero ablation. Attention heads of models
whose key/value heads are shared (grouped-query attention) and routed experts keep the mask instead
(docs/rankings.md says why).
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


def _out_axis(layer) -> int:
    return 1 if isinstance(layer, _CONV_T) else 0


def _in_axis(layer) -> int:
    return 0 if isinstance(layer, _CONV_T) else 1


def _check_layer(name, layer):
    if not isinstance(layer, (nn.Linear, _CONV)) or getattr(layer, "groups", 1) != 1:
        raise ValueError(f"{name} is a {type(layer).__name__}: pruned removes features of Linear and ungrouped "
                         "convolution layers only")


def _shrink_producer(layer, kept):
    layer.weight = _keep_along(layer.weight, _out_axis(layer), kept)
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
    layer.weight = _keep_along(layer.weight, _in_axis(layer), kept)
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
        width = producer.weight.shape[_out_axis(producer)]
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
