"""The real 4-bit path: a tiny Mixtral saved to disk, loaded with bitsandbytes NF4, experts verified, one excluded.

bitsandbytes >= 0.45 runs 4-bit layers on the CPU, so this runs here; it is skipped (with the reason) only when
bitsandbytes cannot run a 4-bit layer on this machine at all.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed")



def _bnb_cpu_reason():
    try:
        import bitsandbytes as bnb
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float16, quant_type="nf4")
        layer = layer.to("cpu")
        layer.weight = bnb.nn.Params4bit(torch.randn(64, 64), requires_grad=False, quant_type="nf4").to("cpu")
        layer.weight.quant_state  # noqa: B018
        out = layer(torch.randn(2, 64, dtype=torch.float16))
        if not torch.isfinite(out).all():
            return "bitsandbytes' 4-bit CPU matmul returned non-finite values"
    except Exception as error:  # any failure means this machine cannot test the 4-bit path
        return f"bitsandbytes cannot run a 4-bit layer on this CPU: {type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="module")
def saved_tiny_mixtral(tmp_path_factory):
    from transformers import MixtralConfig, MixtralForCausalLM

    from LLM.train_tiny_moe import build_tokenizer

    reason = _bnb_cpu_reason()
    if reason:
        pytest.skip(reason)
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = MixtralConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                           max_position_embeddings=256, sliding_window=None, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = MixtralForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            for expert in layer.block_sparse_moe.experts:
                expert.w2.weight.mul_(20)  # make experts matter, so excluding one visibly changes the logits
    path = tmp_path_factory.mktemp("tiny_mixtral")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def loaded_4bit(saved_tiny_mixtral):
    from LLM.moe import load_model
    return load_model(str(saved_tiny_mixtral), load_in_4bit=True, device="cpu")


def test_experts_are_really_4bit(loaded_4bit):
    import bitsandbytes as bnb

    from LLM.moe import moe_blocks, verify_4bit
    model, _, _ = loaded_4bit
    for block in moe_blocks(model):
        for expert in block.experts:
            for proj in (expert.w1, expert.w2, expert.w3):
                assert isinstance(proj, bnb.nn.Linear4bit) and proj.weight.dtype == torch.uint8
    verify_4bit(model)


def test_verify_4bit_fails_loudly_on_full_precision_experts(saved_tiny_mixtral):
    from LLM.moe import load_model, verify_4bit
    model, _, _ = load_model(str(saved_tiny_mixtral), device="cpu")
    with pytest.raises(RuntimeError, match="not 4-bit"):
        verify_4bit(model)


@pytest.mark.parametrize("exclusion", ["paper", "reroute"])
def test_excluding_an_expert_in_4bit_changes_only_its_row(loaded_4bit, exclusion):
    from LLM.moe import excluded_experts
    model, _, _ = loaded_4bit
    inputs = torch.randint(0, 500, (2, 9), generator=torch.Generator().manual_seed(0))
    keep = np.ones((2, 16), bool)
    with torch.no_grad():
        intact = model(inputs).logits.float()
        for expert in range(8):  # exclude a whole layer's experts one call at a time: each must change row 0
            keep[0] = True
            keep[0, expert] = False
            with excluded_experts(model, keep, exclusion):
                out = model(inputs).logits.float()
            assert torch.isfinite(out).all()
            torch.testing.assert_close(out[1], intact[1], rtol=1e-3, atol=1e-3)  # row 1 keeps every expert
        keep[0] = False
        with excluded_experts(model, keep, exclusion):
            none_left = model(inputs).logits.float()
    assert torch.isfinite(none_left).all()
    assert (none_left[0] - intact[0]).abs().max() > 1e-2


def test_batched_generation_in_4bit(loaded_4bit):
    from LLM import tasks as T
    from LLM.generate import ExpertGame
    model, tokenizer, _ = loaded_4bit
    tasks = [T.Task(t.name, t.items[:1], 3) for t in T.make_tasks(T.TINY)]
    game = ExpertGame(model, tokenizer, tasks, coalitions_per_call=3)
    coalitions = np.ones((3, 16), bool)
    coalitions[1, :8] = False
    coalitions[2, 8:] = False
    scores = game(coalitions)
    assert scores.shape == (3, 9) and np.isfinite(scores).all()
