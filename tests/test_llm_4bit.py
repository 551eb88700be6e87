"""The real 4-bit path: a tiny Mixtral saved to disk, loaded with bitsandbytes NF4, experts verified, one excluded.

bitsandbytes >= 0.45 runs 4-bit layers on the CPU, with one kernel on CPUs with AVX512-BF16 and another on the
rest, so this runs on both; it is skipped (naming the CPU feature) only when a 4-bit layer of a shape this test
quantises cannot run on this machine.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed")



def _cpu_feature() -> str:
    from bitsandbytes.functional import has_avx512bf16
    return "with AVX512-BF16 (bitsandbytes' packed bf16 kernel)" if has_avx512bf16() else \
        "without AVX512-BF16 (bitsandbytes' generic CPU kernel)"


def _bnb_cpu_reason(model, skip) -> str | None:
    """Why this CPU cannot run the 4-bit layers this test loads, or None: every (in, out) shape that
    load_model quantises here is run once through a real Linear4bit."""
    import bitsandbytes as bnb

    skip = skip or ["lm_head"]
    shapes = sorted({(m.in_features, m.out_features) for name, m in model.named_modules()
                     if isinstance(m, torch.nn.Linear) and not any(s in name for s in skip)})
    for n_in, n_out in shapes:
        try:
            layer = bnb.nn.Linear4bit(n_in, n_out, bias=False, compute_dtype=torch.float16, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(torch.randn(n_out, n_in), requires_grad=False, quant_type="nf4").to("cpu")  # quantises
            out = layer.eval()(torch.randn(2, n_in, dtype=torch.float16))
        except Exception as error:  # a kernel this CPU lacks: name the CPU feature and the shape
            return (f"bitsandbytes {bnb.__version__} cannot run a {n_in}->{n_out} 4-bit layer on this CPU "
                    f"{_cpu_feature()}: {type(error).__name__}: {error}")
        if not torch.isfinite(out).all():
            return f"bitsandbytes' 4-bit {n_in}->{n_out} layer returned non-finite values on this CPU {_cpu_feature()}"
    return None


@pytest.fixture(scope="module")
def saved_tiny_mixtral(tmp_path_factory):
    from games import tiny_tokenizer_mixtral
    model, tokenizer = tiny_tokenizer_mixtral(hidden_size=64, intermediate_size=128, experts=8, max_positions=256)
    with torch.no_grad():
        for layer in model.model.layers:
            for expert in layer.block_sparse_moe.experts:
                expert.w2.weight.mul_(20)  # make experts matter, so excluding one visibly changes the logits
    path = tmp_path_factory.mktemp("tiny_mixtral")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    from LLM.load import cpu_4bit_skip_modules
    reason = _bnb_cpu_reason(model, cpu_4bit_skip_modules(str(path)))
    if reason:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def loaded_4bit(saved_tiny_mixtral):
    from LLM.load import load_model
    return load_model(str(saved_tiny_mixtral), load_in_4bit=True, device="cpu")


def test_experts_are_really_4bit(loaded_4bit):
    import bitsandbytes as bnb

    from LLM.load import verify_4bit
    from LLM.moe import moe_blocks
    model, _, _ = loaded_4bit
    for block in moe_blocks(model):
        for expert in block.experts:
            for proj in (expert.w1, expert.w2, expert.w3):
                assert isinstance(proj, bnb.nn.Linear4bit) and proj.weight.dtype == torch.uint8
    verify_4bit(model)


def test_verify_4bit_fails_loudly_on_full_precision_experts(saved_tiny_mixtral):
    from LLM.load import load_model, verify_4bit
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


def test_only_what_this_cpu_cannot_run_stays_16bit(saved_tiny_mixtral, loaded_4bit):
    import bitsandbytes as bnb
    from bitsandbytes.functional import has_avx512bf16

    from LLM.load import cpu_4bit_skip_modules
    from LLM.moe import moe_blocks
    skip = cpu_4bit_skip_modules(str(saved_tiny_mixtral))
    gates = [block.gate for block in moe_blocks(loaded_4bit[0])]
    if has_avx512bf16():  # the packed kernel needs 32 | out_features: the 8-way router gates stay float16
        assert skip == ["lm_head", "model.layers.0.block_sparse_moe.gate", "model.layers.1.block_sparse_moe.gate"]
        assert not any(isinstance(g, bnb.nn.Linear4bit) for g in gates)
    else:  # as on CUDA: everything but the LM head is 4-bit, the paper's setup
        assert skip is None
        assert all(isinstance(g, bnb.nn.Linear4bit) for g in gates)
