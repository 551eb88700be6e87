"""Lesion units of any PyTorch model through forward hooks.

A unit is named by where it lives: the module's name in `model.named_modules()` and an index along one
dimension of that module's output (features of a Linear, channels of a conv), printed "fc1[17]".
`lesioned(model, units, mask)` zeroes the units whose mask entry is False and removes its hooks on exit,
even on error. With a (C, n) mask, C coalitions run in one forward pass: the first lesioned module sees the
B inputs once and expands its output to C x B rows, so the work before it is not repeated C times.
"""
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, order=True)
class Unit:
    module: str
    index: int

    def __str__(self):
        return f"{self.module}[{self.index}]"

    @classmethod
    def parse(cls, label: str) -> "Unit":
        """The inverse of str(): "blocks.2.act[17]" -> Unit("blocks.2.act", 17)."""
        match = re.fullmatch(r"(.+)\[(\d+)\]", label.strip())
        if match is None:
            raise ValueError(f"{label!r} is not a unit label like 'module.name[3]'")
        return cls(match.group(1), int(match.group(2)))


def _module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        near = [m for m in modules if m and (name in m or m in name)][:5]
        raise KeyError(f"model has no module named {name!r}" + (f"; did you mean one of {near}?" if near else ""))
    return modules[name]


def find_units(model: torch.nn.Module, module_names, example_input, dim: int = 1) -> list[Unit]:
    """Every unit along `dim` of the outputs of the named modules, found by one forward pass."""
    sizes = {}

    def record(name):
        def hook(module, args, out):
            sizes.setdefault(name, out.shape[dim])
        return hook
    handles = [_module(model, name).register_forward_hook(record(name)) for name in module_names]
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
def lesioned(model: torch.nn.Module, units, mask, dim: int = 1):
    """Zero the units whose entry in `mask` is False while the context is open.

    mask: (n,) for one coalition or (C, n) for C coalitions (True = intact), numpy or torch.
    Inputs of batch size B then give outputs of batch size C x B, coalition-major (row c * B + b).
    """
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    if mask.ndim == 1:
        mask = mask[None]
    if mask.ndim != 2 or mask.shape[1] != len(units):
        raise ValueError(f"mask must have shape (n,) or (C, n) with n = {len(units)} units, got {tuple(mask.shape)}")
    n_coalitions = mask.shape[0]
    by_module = {}
    for column, unit in enumerate(units):
        by_module.setdefault(unit.module, ([], []))
        by_module[unit.module][0].append(column)
        by_module[unit.module][1].append(unit.index)
    state = {"inputs": None}  # batch size B of the current forward pass, once the first site has expanded it

    def reset(module, args):
        state["inputs"] = None

    def make_hook(columns, indices):
        cache = {}

        def hook(module, args, out):
            d = dim % out.ndim
            key = (out.device, out.dtype, out.shape[d])
            if key not in cache:
                keep = torch.ones(n_coalitions, out.shape[d], dtype=out.dtype, device=out.device)
                keep[:, indices] = mask[:, columns].to(device=out.device, dtype=out.dtype)
                cache[key] = keep
            keep = cache[key]
            if state["inputs"] is None:
                state["inputs"] = out.shape[0]
                out = out.unsqueeze(0).expand(n_coalitions, *out.shape)
            elif out.shape[0] == n_coalitions * state["inputs"]:
                out = out.reshape(n_coalitions, state["inputs"], *out.shape[1:])
            else:
                raise RuntimeError(f"lesion site {type(module).__name__} saw batch {out.shape[0]}, expected "
                                   f"{n_coalitions} coalitions x {state['inputs']} inputs")
            shape = [n_coalitions] + [1] * (out.ndim - 1)
            shape[d + 1] = keep.shape[1]
            return (out * keep.reshape(shape)).reshape(-1, *out.shape[2:])
        return hook

    handles = [model.register_forward_pre_hook(reset)]
    try:
        for name, (columns, indices) in by_module.items():
            handles.append(_module(model, name).register_forward_hook(make_hook(columns, indices)))
        yield model
    finally:
        for h in handles:
            h.remove()


class LesionGame:
    """A game over units of a torch model: per coalition, lesion the units, run `inputs`, score with `value_fn`.

    value_fn(outputs) receives the model's outputs shaped (C, B, ...) and returns (C, *output_shape).
    `batch_size` (coalitions per engine call) is read by the engine; `max_rows` caps C x B per forward pass.
    """

    def __init__(self, model, units, inputs, value_fn, dim: int = 1, batch_size: int = 64, max_rows: int = 65536):
        self.model, self.units, self.inputs, self.value_fn = model, list(units), inputs, value_fn
        self.dim, self.batch_size = dim, batch_size
        self.chunk = max(1, max_rows // len(inputs))

    @torch.no_grad()
    def __call__(self, coalitions):
        device = next(self.model.parameters()).device
        values = []
        for start in range(0, len(coalitions), self.chunk):
            mask = torch.as_tensor(np.asarray(coalitions[start:start + self.chunk]), device=device)
            with lesioned(self.model, self.units, mask, self.dim):
                out = self.model(self.inputs)
            values.append(self.value_fn(out.reshape(len(mask), len(self.inputs), *out.shape[1:])))
        return torch.cat(values) if torch.is_tensor(values[0]) else np.concatenate(values)
