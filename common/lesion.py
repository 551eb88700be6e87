"""Lesion units of any PyTorch model through hooks.

A unit is named by where it lives: a module's name in `model.named_modules()` and its features along one
dimension, on the module's output (a forward hook) or on its input (a forward pre-hook):

    fc1[17]                                      output feature 17 (a neuron, a conv channel)
    model.layers.3.mlp[0:576]                    output features 0..575: the whole MLP block's output
    model.layers.3.self_attn.o_proj[in 128:192]  input features 128..191 of o_proj: attention head 2 (d = 64)

A unit's features lie on the axis its module defines: the one it declares (a `unit_axis` attribute: an activation
after a convolution says 1), the last for linear layers, layer norms and embeddings (TransformerLens' (batch,
position, d)), the channels (axis 1) for convolutions and batch norms, the last for any module whose output has two
axes; for another module (a transformer block) give `dim`, or the axis is refused with the choices named.

`lesioned(model, units, mask)` ablates the units whose mask entry is False (True = intact, everywhere) and
removes its hooks on exit, even on error. Ablation is zero by default, or the unit's mean activation over a
reference batch (`means`, from `unit_means`: TransformerLens' mean ablation). Two batch layouts:
- expand (default): a (C, n) mask runs C coalitions in one forward pass; the first lesioned module sees the B
  inputs once and expands them to C x B rows, so the work before it is not repeated C times;
- per_row=True: the caller made the rows (coalitions x prompts, for generation with caches); row r of every
  batch, at every site and every step, uses mask[r].
"""
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

SIDES = ("out", "in")


@dataclass(frozen=True, order=True)
class Unit:
    module: str
    index: int                # the (first) feature
    stop: int | None = None   # one past the last feature of a slice; None: the single feature `index`
    side: str = "out"         # "out": the module's output; "in": its input

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"unit side must be one of {SIDES}, got {self.side!r}")
        if self.index < 0 or (self.stop is not None and self.stop <= self.index):
            raise ValueError(f"bad feature range [{self.index}:{self.stop}] for a unit of {self.module}")

    @property
    def features(self) -> slice:
        return slice(self.index, self.index + 1 if self.stop is None else self.stop)

    def __str__(self):
        where = "in " if self.side == "in" else ""
        span = str(self.index) if self.stop is None else f"{self.index}:{self.stop}"
        return f"{self.module}[{where}{span}]"

    @classmethod
    def parse(cls, label: str) -> "Unit":
        """The inverse of str(): "blocks.2.act[17]", "mlp[0:576]", "attn.o_proj[in 128:192]"."""
        match = re.fullmatch(r"(.+)\[(in )?(\d+)(?::(\d+))?\]", label.strip())
        if match is None:
            raise ValueError(f"{label!r} is not a unit label like 'module.name[3]', 'module[0:64]' or "
                             "'module[in 64:128]'")
        module, side, start, stop = match.groups()
        return cls(module, int(start), None if stop is None else int(stop), "in" if side else "out")


def module_named(model: torch.nn.Module, name: str) -> torch.nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        near = [m for m in modules if m and (name in m or m in name)][:5]
        raise KeyError(f"model has no module named {name!r}" + (f"; did you mean one of {near}?" if near else ""))
    return modules[name]


def _first_tensor(value):
    return value[0] if isinstance(value, (tuple, list)) else value


_CHANNELS = (torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._BatchNorm,
             torch.nn.modules.instancenorm._InstanceNorm, torch.nn.GroupNorm)
_FEATURES = (torch.nn.Linear, torch.nn.Bilinear, torch.nn.LayerNorm, torch.nn.Embedding, torch.nn.EmbeddingBag,
             *((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ()))


def unit_axis(module: torch.nn.Module, x: torch.Tensor, dim: int | None = None, name: str = "") -> int:
    """The axis of `x` (a module's output, or its input for units on the input side) that holds the units: `dim`
    if given, else the module's own (its `unit_axis` attribute; channels for convolutions and batch norms, the last
    for linear layers, norms and embeddings, the last for any output of two axes); ValueError naming the choices
    otherwise."""
    if dim is None:
        dim = getattr(module, "unit_axis", None)
    if dim is not None:
        return dim % x.ndim
    if isinstance(module, _CHANNELS):
        return 1
    if isinstance(module, _FEATURES) or x.ndim <= 2:
        return x.ndim - 1
    raise ValueError(f"which axis of {name or type(module).__name__}'s tensor of shape {tuple(x.shape)} holds its "
                     f"units cannot be told from a {type(module).__name__}: give dim=1 (channels, as after a "
                     "convolution) or dim=-1 (features, as in a transformer's (batch, position, d))")


def find_units(model: torch.nn.Module, module_names, example_input, dim: int | None = None) -> list[Unit]:
    """Every single-feature unit of the outputs of the named modules, on the axis each module defines (or `dim`),
    found by one forward pass."""
    sizes = {}

    def record(name):
        def hook(module, args, out):
            out = _first_tensor(out)
            sizes.setdefault(name, out.shape[unit_axis(module, out, dim, name)])
        return hook
    handles = [module_named(model, name).register_forward_hook(record(name)) for name in module_names]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    missing = [name for name in module_names if name not in sizes]
    if missing:
        raise ValueError(f"modules {missing} did not run in the forward pass, so they have no units to lesion")
    return [Unit(name, i) for name in module_names for i in range(sizes[name])]


@contextmanager
def watching(model: torch.nn.Module, units, take):
    """Call take((module, side), tensor) with every tensor that reaches the units' sites (a module's output, or its
    input for side "in") while the context is open; the hooks are removed on exit, errors included. The tensor is
    the one in the forward pass, not a copy: gradients flow through it."""
    handles = []
    try:
        for module, side in sorted({(u.module, u.side) for u in units}):
            key = (module, side)
            if side == "in":
                handles.append(module_named(model, module).register_forward_pre_hook(
                    lambda m, args, key=key: take(key, _first_tensor(args))))
            else:
                handles.append(module_named(model, module).register_forward_hook(
                    lambda m, args, out, key=key: take(key, _first_tensor(out))))
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def unit_means(model: torch.nn.Module, units, run, dim: int | None = None, *, absolute: bool = False,
               unreached_zero: bool = False) -> dict:
    """Each unit's mean activation over a reference batch, for mean ablation: {unit: tensor of its features}.

    `run()` makes the reference forward passes (e.g. over unpadded prompts); the mean is over every position
    but the units' axis (the module's own, or `dim`). absolute=True: the mean of |activation| instead.
    A site the run never reaches (an expert no token was routed to) is an error, or zeros with unreached_zero
    (as long as the run reached some site)."""
    sums, counts = {}, {}

    def take(key, x):
        d = unit_axis(module_named(model, key[0]), x, dim, key[0])
        x = x.detach().double()  # float64 sums: long reference runs lose no precision
        x = (x.abs() if absolute else x).movedim(d, -1).reshape(-1, x.shape[d])
        sums[key] = sums.get(key, 0) + x.sum(0)
        counts[key] = counts.get(key, 0) + len(x)
    with watching(model, units, take):
        run()
    missing = sorted({f"{u.module} ({u.side})" for u in units if (u.module, u.side) not in counts})
    if missing and not (unreached_zero and counts):
        raise ValueError(f"the reference run never reached {missing}: no means to ablate with")
    return {u: (sums[(u.module, u.side)] / counts[(u.module, u.side)])[u.features] if (u.module, u.side) in counts
            else torch.zeros(len(range(u.features.start, u.features.stop)), dtype=torch.float64) for u in units}


class _Layout:
    """How the rows of a forward pass map to coalitions. Expanded (default): the first lesion site of a pass turns a
    batch of B inputs into C x B rows, coalition-major (row c * B + b), and later sites see C x B rows. Per row:
    every batch at every site has exactly C rows and row r is coalition r (generation with caches)."""

    def __init__(self, n_coalitions: int, per_row: bool):
        self.n, self.per_row, self.inputs = n_coalitions, per_row, None  # inputs: B, once the first site expanded

    def reset(self, module, args):  # a pre-hook on the model: each pass starts unexpanded
        self.inputs = None

    def split(self, module, x: torch.Tensor) -> torch.Tensor:
        """x as (C, ...) rows of coalitions: the per-row batch itself, or (C, B, ...) for the expanded layout."""
        if self.per_row:
            if x.shape[0] != self.n:
                raise RuntimeError(f"lesion site {type(module).__name__} saw a batch of {x.shape[0]} rows; the "
                                   f"per-row mask has {self.n}")
            return x
        if self.inputs is None:
            self.inputs = x.shape[0]
            return x.unsqueeze(0).expand(self.n, *x.shape)
        if x.shape[0] == self.n * self.inputs:
            return x.reshape(self.n, self.inputs, *x.shape[1:])
        raise RuntimeError(f"lesion site {type(module).__name__} saw batch {x.shape[0]}, expected {self.n} "
                           f"coalitions x {self.inputs} inputs")

    def join(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rows if self.per_row else rows.reshape(-1, *x.shape[1:])


class _SiteAblation:
    """The units of one site (a module's input or output): x -> x * keep + fill per coalition and feature, with
    keep (and fill, for mean ablation) built once per device, dtype and width."""

    def __init__(self, members, mask: torch.Tensor, means, dim: int | None, layout: _Layout):
        self.members, self.mask, self.means, self.dim, self.layout = members, mask, means, dim, layout
        self.factors = {}

    def _factors(self, x: torch.Tensor, d: int):
        keep = torch.ones(self.layout.n, x.shape[d], dtype=x.dtype, device=x.device)
        fill = torch.zeros_like(keep) if self.means is not None else None
        for column, unit in self.members:
            intact = self.mask[:, column].to(device=x.device, dtype=x.dtype)[:, None]
            keep[:, unit.features] = intact
            if fill is not None:
                fill[:, unit.features] = (1 - intact) * self.means[unit].to(device=x.device, dtype=x.dtype)[None]
        return keep, fill

    def __call__(self, module, x: torch.Tensor) -> torch.Tensor:
        d = unit_axis(module, x, self.dim)
        key = (x.device, x.dtype, x.shape[d])
        if key not in self.factors:
            self.factors[key] = self._factors(x, d)
        keep, fill = self.factors[key]
        rows = self.layout.split(module, x)
        shape = [self.layout.n] + [1] * (rows.ndim - 1)
        shape[d + (0 if self.layout.per_row else 1)] = keep.shape[1]
        out = rows * keep.reshape(shape)
        if fill is not None:
            out = out + fill.reshape(shape)
        return self.layout.join(out, x)

    def input_hook(self, module, args):
        return (self(module, args[0]), *args[1:])

    def output_hook(self, module, args, out):
        if isinstance(out, (tuple, list)):  # e.g. attention modules return (output, weights)
            return type(out)((self(module, out[0]), *out[1:]))
        return self(module, out)


@contextmanager
def lesioned(model: torch.nn.Module, units, mask, dim: int | None = None, per_row: bool = False,
             means: dict | None = None):
    """Ablate the units whose entry in `mask` is False while the context is open; the hooks are removed on exit,
    errors included. The units lie on each module's own axis (unit_axis), or on `dim`.

    mask: (n,) for one coalition or (C, n) for C coalitions (True = intact), numpy or torch.
    Expand layout: inputs of batch size B give outputs of batch size C x B, coalition-major (row c * B + b).
    per_row=True: every batch at every site has exactly C rows and row r uses mask[r].
    means: {unit: mean features} from unit_means; lesioned units take their mean instead of 0.
    """
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    if mask.ndim == 1:
        mask = mask[None]
    if mask.ndim != 2 or mask.shape[1] != len(units):
        raise ValueError(f"mask must have shape (n,) or (C, n) with n = {len(units)} units, got {tuple(mask.shape)}")
    if means is not None and set(means) != set(units):
        raise ValueError("means must hold one entry per unit (from common.lesion.unit_means)")
    sites = {}
    for column, unit in enumerate(units):
        sites.setdefault((unit.module, unit.side), []).append((column, unit))
    layout = _Layout(mask.shape[0], per_row)
    handles = [] if per_row else [model.register_forward_pre_hook(layout.reset)]
    try:
        for (name, side), members in sites.items():
            ablation = _SiteAblation(members, mask, means, dim, layout)
            module = module_named(model, name)
            handles.append(module.register_forward_pre_hook(ablation.input_hook) if side == "in"
                           else module.register_forward_hook(ablation.output_hook))
        yield model
    finally:
        for h in handles:
            h.remove()


class LesionGame:
    """A game over units of a torch model: per coalition, lesion the units, run `inputs`, score with `value_fn`.

    value_fn(outputs) receives the model's outputs shaped (C, B, ...) and returns (C, *output_shape).
    `batch_size` (coalitions per engine call) is read by the engine; `max_rows` caps C x B per forward pass.
    """

    def __init__(self, model, units, inputs, value_fn, *, dim: int | None = None, batch_size: int = 64,
                 max_rows: int = 65536,
                 means: dict | None = None):
        self.model, self.units, self.inputs, self.value_fn = model, list(units), inputs, value_fn
        self.dim, self.batch_size, self.means = dim, batch_size, means
        self.chunk = max(1, max_rows // len(inputs))

    @torch.no_grad()
    def __call__(self, coalitions):
        device = next(self.model.parameters()).device
        values = []
        for start in range(0, len(coalitions), self.chunk):
            mask = torch.as_tensor(np.ascontiguousarray(coalitions[start:start + self.chunk]), device=device)
            with lesioned(self.model, self.units, mask, self.dim, means=self.means):
                out = self.model(self.inputs)
            values.append(self.value_fn(out.reshape(len(mask), len(self.inputs), *out.shape[1:])))
        return torch.cat(values) if torch.is_tensor(values[0]) else np.concatenate(values)
