"""Expert exclusion on a tiny random Mixtral: the two semantics, per-row masks, batching, and the 4-bit path."""
import copy

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the llm extra is not installed")
from transformers import MixtralConfig, MixtralForCausalLM  # noqa: E402

from LLM.moe import excluded_experts, expert_players, moe_blocks  # noqa: E402

N_LAYERS, N_EXPERTS = 2, 8



def tiny_mixtral(vocab=64, hidden=32, ffn=64, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    config = MixtralConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=N_LAYERS,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=N_EXPERTS,
                           num_experts_per_tok=2, max_position_embeddings=256, sliding_window=None)
    model = MixtralForCausalLM(config).to(dtype).eval()
    with torch.no_grad():  # random init is tiny: give experts and router real weight so exclusions matter
        for block in moe_blocks(model):
            block.gate.weight.mul_(20)
            for expert in block.experts:
                expert.w2.weight.mul_(10)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_mixtral()


@pytest.fixture(scope="module")
def inputs():
    return torch.randint(0, 64, (3, 12), generator=torch.Generator().manual_seed(1))


def keep_without(*players, rows=3):
    keep = np.ones((rows, N_LAYERS * N_EXPERTS), bool)
    for layer, expert in players:
        keep[:, layer * N_EXPERTS + expert] = False
    return keep


@torch.no_grad()
def logits(model, inputs, keep=None, exclusion="paper"):
    if keep is None:
        return model(inputs).logits
    with excluded_experts(model, keep, exclusion):
        return model(inputs).logits


def zeroed_w2(model, *players):
    manual = copy.deepcopy(model)
    with torch.no_grad():
        for layer, expert in players:
            moe_blocks(manual)[layer].experts[expert].w2.weight.zero_()
    return manual


def test_players_are_layer_expert_pairs(model):
    assert expert_players(model) == [(layer, e) for layer in range(N_LAYERS) for e in range(N_EXPERTS)]


@pytest.mark.parametrize("players", [[(0, 3)], [(1, 5)], [(0, 1), (0, 6), (1, 2)]])
def test_paper_exclusion_equals_zeroing_the_expert_output_weights(model, inputs, players):
    intact = logits(model, inputs)
    excluded = logits(model, inputs, keep_without(*players))
    by_hand = logits(zeroed_w2(model, *players), inputs)
    assert not torch.allclose(excluded, intact, atol=1e-6), "excluding the expert changed nothing"
    torch.testing.assert_close(excluded, by_hand, rtol=0, atol=1e-12)


def test_per_row_masks_match_running_each_row_alone(model, inputs):
    choices = [[(0, 3)], [], [(1, 5), (0, 0)]]
    keep = np.stack([keep_without(*p, rows=1)[0] for p in choices])
    batched = logits(model, inputs, keep)
    for row, players in enumerate(choices):
        alone = logits(zeroed_w2(model, *players), inputs)
        torch.testing.assert_close(batched[row], alone[row], rtol=0, atol=1e-12)


def test_reroute_equals_masking_the_router_logit_by_hand(model, inputs):
    layer, expert = 1, 5
    gate = moe_blocks(model)[layer].gate

    def mask_logit(module, args, out):
        out = out.clone()
        out[:, expert] = float("-inf")
        return out

    handle = gate.register_forward_hook(mask_logit)
    try:
        by_hand = logits(model, inputs)
    finally:
        handle.remove()
    rerouted = logits(model, inputs, keep_without((layer, expert)), "reroute")
    paper = logits(model, inputs, keep_without((layer, expert)), "paper")
    torch.testing.assert_close(rerouted, by_hand, rtol=0, atol=1e-12)
    assert not torch.allclose(rerouted, paper, atol=1e-6), "re-routing should differ from dropping the output"


@pytest.mark.parametrize("exclusion", ["paper", "reroute"])
def test_excluding_a_whole_layer_zeroes_its_block_and_stays_finite(model, inputs, exclusion):
    layer0 = [(0, e) for e in range(N_EXPERTS)]
    out = logits(model, inputs, keep_without(*layer0), exclusion)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, logits(zeroed_w2(model, *layer0), inputs), rtol=0, atol=1e-12)
    every = [(layer, e) for layer in range(N_LAYERS) for e in range(N_EXPERTS)]
    assert torch.isfinite(logits(model, inputs, keep_without(*every), exclusion)).all()


def test_reroute_with_one_expert_left_gives_it_all_the_weight(model, inputs):
    layer, left = 0, 4
    out = logits(model, inputs, keep_without(*[(layer, e) for e in range(N_EXPERTS) if e != left]), "reroute")
    manual = zeroed_w2(model, *[(layer, e) for e in range(N_EXPERTS) if e != left])
    block = moe_blocks(manual)[layer]

    def only_left(module, args, out):  # every token goes to expert `left` with weight 1
        hidden = args[0].reshape(-1, args[0].shape[-1])
        return block.experts[left](hidden).reshape(args[0].shape), out[1]

    handle = block.register_forward_hook(only_left)
    try:
        expected = logits(manual, inputs)
    finally:
        handle.remove()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


def test_patch_is_removed_on_exit_even_on_error(model, inputs):
    intact = logits(model, inputs)
    with pytest.raises(RuntimeError, match="boom"):
        with excluded_experts(model, keep_without((0, 3))):
            raise RuntimeError("boom")
    assert all("forward" not in vars(b) for b in moe_blocks(model))
    torch.testing.assert_close(logits(model, inputs), intact, rtol=0, atol=0)


def test_mask_with_wrong_rows_or_width_fails_clearly(model, inputs):
    with pytest.raises(RuntimeError, match="rows"):
        logits(model, inputs, keep_without((0, 3), rows=2))
    with pytest.raises(ValueError, match="keep must have shape"):
        with excluded_experts(model, np.ones((3, 5), bool)):
            pass
    with pytest.raises(ValueError, match="unknown exclusion"):
        with excluded_experts(model, keep_without(), "drop"):
            pass
