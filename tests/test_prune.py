"""Pruned models equal their zero-lesioned originals, for MLP neurons and DCGAN filters."""
import numpy as np
import pytest
import torch

from common.lesion import Unit, find_units, lesioned
from common.prune import Wiring, parameter_count, pruned
from DCGAN.model import Generator, make_config
from MLP.model import MLP


def masked_and_pruned(model, units, keep, wiring, x):
    with torch.no_grad(), lesioned(model, units, keep):
        masked = model(x)
    small = pruned(model, units, keep, wiring)
    with torch.no_grad():
        return masked, small(x), small


def test_mlp_without_neurons_equals_the_masked_mlp():
    torch.manual_seed(0)
    model, x = MLP(20).double().eval(), torch.rand(16, 784, dtype=torch.float64)
    units = find_units(model, ["act"], x[:1])
    keep = np.random.default_rng(1).random(20) > 0.4
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masked, small_out, small = masked_and_pruned(model, units, keep, {"act": Wiring("fc1", "fc2")}, x)
    torch.testing.assert_close(small_out, masked, rtol=0, atol=1e-12)
    assert small.fc1.out_features == small.fc2.in_features == keep.sum()
    assert parameter_count(model) - parameter_count(small) == (~keep).sum() * (784 + 1 + 10)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched


def test_generator_without_filters_equals_the_masked_generator():
    torch.manual_seed(0)
    g = Generator(make_config("tiny32")).eval()
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics that are not the identity
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    z = torch.randn(4, 100)
    units = [u for u in find_units(g, g.lesion_sites(), z[:1]) if u.module != "out.act"]
    keep = np.random.default_rng(2).random(len(units)) > 0.3
    wiring = {f"blocks.{i}.act": Wiring(f"blocks.{i}.conv", f"blocks.{i + 1}.conv" if i < 2 else "out.conv",
                                        (f"blocks.{i}.bn",)) for i in range(3)}
    masked, small_out, small = masked_and_pruned(g, units, keep, wiring, z)
    torch.testing.assert_close(small_out, masked, rtol=1e-5, atol=1e-6)
    assert small.blocks[1].bn.num_features == small.blocks[2].conv.in_channels == small.blocks[1].conv.out_channels
    assert parameter_count(small) < parameter_count(g)


def test_bad_wiring_and_masks_are_refused_by_name():
    model = MLP(5)
    units = [Unit("act", i) for i in range(5)]
    with pytest.raises(ValueError, match=r"no Wiring for \['act'\]"):
        pruned(model, units, np.ones(5, bool), {})
    with pytest.raises(ValueError, match="one entry per unit"):
        pruned(model, units, np.ones(4, bool), {"act": Wiring("fc1", "fc2")})
    with pytest.raises(ValueError, match="every feature of act"):
        pruned(model, units, np.zeros(5, bool), {"act": Wiring("fc1", "fc2")})
    with pytest.raises(ValueError, match="module's output only"):
        pruned(model, [Unit("fc2", 0, 2, side="in")], np.ones(1, bool), {"fc2": Wiring("fc1", "fc2")})
    with pytest.raises(ValueError, match="act is a LeakyReLU"):
        pruned(model, units, np.ones(5, bool), {"act": Wiring("act", "fc2")})


def test_llama_without_heads_equals_the_masked_llama_in_grouped_query_attention():
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    from transformers import LlamaConfig, LlamaForCausalLM

    from common.prune import pruned_heads
    from LLM.units import model_players
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).double().eval()
    players = model_players(model, "heads")  # 12 heads, 3 query heads per key/value head
    keep = np.array([1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1], bool)  # layer 0: 2 + 2 heads left; layer 1: 1 + 3
    ids = torch.randint(0, 64, (3, 10))
    with torch.no_grad(), players.ablated(np.tile(keep, (3, 1))):
        masked = model(ids).logits
    small = pruned_heads(model, players.units, keep)
    with torch.no_grad():
        torch.testing.assert_close(small(ids).logits, masked, rtol=0, atol=1e-10)
    even, uneven = small.model.layers[0].self_attn, small.model.layers[1].self_attn
    assert even.q_proj.out_features == even.o_proj.in_features == 4 * 8
    assert even.k_proj.out_features == even.v_proj.out_features == 2 * 8 and even.num_key_value_groups == 2
    assert uneven.k_proj.out_features == 4 * 8 and uneven.num_key_value_groups == 1  # a head per query head
    assert parameter_count(model) - parameter_count(small) == 2 * 2 * 8 * 48  # layer 1: copies cost what heads save
    with pytest.raises(ValueError, match="every head of model.layers.0.self_attn"):
        pruned_heads(model, players.units, np.r_[np.zeros(6, bool), np.ones(6, bool)])
    with pytest.raises(ValueError, match="is not one attention head"):
        pruned_heads(model, [Unit("model.layers.0.self_attn.o_proj", 0, 4, side="in")], np.ones(1, bool))
