"""Experts of a mixture-of-experts causal LM as players: exclude experts per batch row.

Players are (layer, expert) pairs: 32 x 8 = 256 for Mixtral-8x7B. `excluded_experts(model, keep)` patches the
forward of every sparse MoE block while the context is open; `keep` says, for each row of the batch, which
experts are intact, so different rows of one `generate` call can run different coalitions. Nothing global is
changed and the patch is removed on exit, even on error.

Two ways to exclude an expert (docs/paper_setup.md#mixtral):
- "paper": routing unchanged (softmax over the 8 router logits, top 2, renormalised to sum 1); an excluded
  expert's output is dropped and the other expert keeps its weight (no renormalisation); a token whose two
  experts are both excluded gets zero from that block.
- "reroute": the excluded experts' router logits are set to -inf before the top 2 are chosen, so the token
  goes to the best intact experts. With one intact expert left it gets all the weight; with none, zero.
"""
import types
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

EXCLUSIONS = ("paper", "reroute")


# ---------------------------------------------------------------- experts as players
def _is_moe_block(module) -> bool:
    return hasattr(module, "gate") and isinstance(getattr(module, "experts", None), torch.nn.ModuleList) \
        and hasattr(module, "top_k")


def has_experts(model) -> bool:
    return any(_is_moe_block(m) for m in model.modules())


def moe_blocks(model) -> list[torch.nn.Module]:
    """The Mixtral-style sparse MoE blocks (a `gate` router, an `experts` list, `top_k`), in layer order."""
    blocks = [m for m in model.modules() if _is_moe_block(m)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no Mixtral-style sparse MoE blocks (modules with a `gate`, "
                         f"an `experts` ModuleList and `top_k`): there are no experts to exclude")
    return blocks


def expert_players(model) -> list[tuple[int, int]]:
    """(layer, expert) for every expert, layer-major: player index = layer * n_experts + expert."""
    return [(layer, e) for layer, block in enumerate(moe_blocks(model)) for e in range(len(block.experts))]


def _masked_forward(self, hidden_states, *, keep: torch.Tensor, reroute: bool):
    """MixtralSparseMoeBlock.forward (transformers 4.57) with per-row exclusion; `keep` is (rows, n_experts)."""
    batch_size, sequence_length, hidden_dim = hidden_states.shape
    if keep.shape[0] != batch_size:
        raise RuntimeError(f"the exclusion mask has {keep.shape[0]} rows but the batch has {batch_size}: build the "
                           f"mask for exactly the rows of the batch you run")
    if self.training and self.jitter_noise > 0:
        hidden_states *= torch.empty_like(hidden_states).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
    hidden_states = hidden_states.view(-1, hidden_dim)
    router_logits = self.gate(hidden_states)
    token_keep = keep[:, None, :].expand(batch_size, sequence_length, -1).reshape(-1, keep.shape[1])

    logits = router_logits
    if reroute:
        # rows with no intact expert keep finite logits (softmax of all -inf is NaN); their weights are zeroed below
        none_left = ~token_keep.any(dim=1, keepdim=True)
        logits = router_logits.masked_fill(~token_keep & ~none_left, float("-inf"))
    routing_weights = F.softmax(logits, dim=1, dtype=torch.float)
    routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
    routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
    # paper semantics: drop the excluded expert's share, no renormalisation (also catches reroute's leftovers)
    selected_keep = token_keep.gather(1, selected_experts)
    routing_weights = (routing_weights * selected_keep).to(hidden_states.dtype)

    final_hidden_states = torch.zeros((batch_size * sequence_length, hidden_dim), dtype=hidden_states.dtype,
                                      device=hidden_states.device)
    # only (token, slot) pairs whose expert is intact: excluded experts are not computed at all
    expert_mask = (F.one_hot(selected_experts, num_classes=self.num_experts) * selected_keep[..., None]).permute(2, 1, 0)
    expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
    for expert_idx in expert_hit:
        expert_layer = self.experts[expert_idx]
        idx, top_x = torch.where(expert_mask[expert_idx].squeeze(0))
        current_state = hidden_states[None, top_x].reshape(-1, hidden_dim)
        current_hidden_states = expert_layer(current_state) * routing_weights[top_x, idx, None]
        final_hidden_states.index_add_(0, top_x, current_hidden_states.to(hidden_states.dtype))
    final_hidden_states = final_hidden_states.reshape(batch_size, sequence_length, hidden_dim)
    return final_hidden_states, router_logits


def as_keep(keep, n_layers: int, n_experts: int, device) -> torch.Tensor:
    """A (rows, n_layers, n_experts) bool tensor from (rows, n_layers * n_experts) or (rows, L, E), numpy or torch."""
    keep = torch.as_tensor(np.asarray(keep) if not torch.is_tensor(keep) else keep)
    if keep.ndim == 1:
        keep = keep[None]
    if keep.ndim == 2 and keep.shape[1] == n_layers * n_experts:
        keep = keep.reshape(len(keep), n_layers, n_experts)
    if keep.ndim != 3 or tuple(keep.shape[1:]) != (n_layers, n_experts):
        raise ValueError(f"keep must have shape (rows, {n_layers * n_experts}) or (rows, {n_layers}, {n_experts}), "
                         f"got {tuple(keep.shape)}")
    return keep.to(device=device, dtype=torch.bool)


@contextmanager
def excluded_experts(model, keep, exclusion: str = "paper"):
    """Exclude experts while the context is open. keep: (rows, n_players) or (rows, n_layers, n_experts),
    True = intact; row r of every forward pass (and of every step of `generate`) uses keep[r]."""
    if exclusion not in EXCLUSIONS:
        raise ValueError(f"unknown exclusion {exclusion!r}; choose one of {EXCLUSIONS}")
    blocks = moe_blocks(model)
    n_experts = len(blocks[0].experts)
    device = next(blocks[0].gate.parameters()).device
    keep = as_keep(keep, len(blocks), n_experts, device)
    patched = []
    try:
        for layer, block in enumerate(blocks):
            forward = types.MethodType(
                lambda self, h, *a, _keep=keep[:, layer], **k: _masked_forward(self, h, keep=_keep,
                                                                             reroute=exclusion == "reroute"), block)
            # accelerate's dispatch hooks wrap `forward` and call `_old_forward`: patch that one when present
            attr = "_old_forward" if hasattr(block, "_hf_hook") and hasattr(block, "_old_forward") else "forward"
            patched.append((block, attr, attr in vars(block), vars(block).get(attr)))
            setattr(block, attr, forward)
        yield model
    finally:
        for block, attr, had, old in reversed(patched):
            if had:
                setattr(block, attr, old)
            else:
                delattr(block, attr)
