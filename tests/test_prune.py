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


def small_llama(heads, kv_heads, layers=2, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=8 * heads, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=64,
                         attention_bias=seed % 2 == 1)  # q, k, v biases too, on odd seeds
    return LlamaForCausalLM(config).double().eval()


def masked_and_pruned_llama(model, keep, layers=None):
    from common.prune import pruned_heads
    from LLM.units import model_players
    players = model_players(model, "heads", layers=layers)
    ids = torch.randint(0, 64, (3, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), players.ablated(np.tile(keep, (3, 1))):
        masked = model(ids).logits
    small = pruned_heads(model, players.units, keep)
    with torch.no_grad():
        return masked, small(ids).logits, small, ids


@pytest.mark.parametrize("heads, kv_heads", [(6, 2), (6, 3), (4, 4), (6, 1)])  # GQA, SmolLM2's 3 per group, MHA, MQA
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_llama_without_any_heads_equals_the_masked_llama_and_is_never_larger(tmp_path, heads, kv_heads, seed):
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    from transformers import LlamaForCausalLM
    model = small_llama(heads, kv_heads, seed=seed)
    keep = np.random.default_rng(seed).random(2 * heads) > 0.5
    keep[0] = keep[heads] = True  # every layer keeps a head
    masked, out, small, ids = masked_and_pruned_llama(model, keep)
    torch.testing.assert_close(out, masked, rtol=0, atol=1e-10)
    assert parameter_count(small) <= parameter_count(model)
    small.save_pretrained(tmp_path)  # the usual Hugging Face round trip, config included
    again = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float64).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, masked, rtol=0, atol=1e-10)
    assert parameter_count(again) == parameter_count(small)


def test_removing_the_same_number_of_heads_per_group_shrinks_by_exactly_those_heads():
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    model = small_llama(6, 2)  # 3 query heads per key/value head, d = 8, hidden 48
    keep = np.array([1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1], bool)  # one head of every group goes
    masked, out, small, _ = masked_and_pruned_llama(model, keep)
    torch.testing.assert_close(out, masked, rtol=0, atol=1e-10)
    attention = small.model.layers[1].self_attn
    assert attention.q_proj.out_features == attention.o_proj.in_features == 4 * 8
    assert attention.k_proj.out_features == 2 * 8 and attention.num_key_value_groups == 2
    assert small.config.num_attention_heads == 4 and small.config.num_key_value_heads == 2
    assert parameter_count(model) - parameter_count(small) == 2 * 2 * (8 * 48) * 2  # 2 layers x 2 heads x q and o


def test_uneven_removals_keep_the_fullest_group_and_drop_empty_groups():
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    model = small_llama(6, 2)
    keep = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1], bool)  # layer 0: 3 + 0 heads; layer 1: 1 + 1
    masked, out, small, _ = masked_and_pruned_llama(model, keep)
    torch.testing.assert_close(out, masked, rtol=0, atol=1e-10)
    assert small.config.num_key_value_heads == 2 and small.config.num_attention_heads == 6  # layer 1 needs 2 groups,
    assert parameter_count(small) == parameter_count(model)  # layer 0 three slots: nothing shrinks, nothing grows
    only_first = masked_and_pruned_llama(model, np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0], bool))[2]
    assert only_first.config.num_key_value_heads == 1  # the second group's key/value heads go in both layers
    assert parameter_count(model) - parameter_count(only_first) == 2 * 3 * (8 * 48) * 4 // 2 + 2 * 2 * (8 * 48)


def test_heads_of_some_layers_leave_the_others_whole_and_bad_units_are_refused():
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    from common.prune import pruned_heads
    from LLM.units import model_players
    model = small_llama(6, 2, layers=3)
    masked, out, small, _ = masked_and_pruned_llama(model, np.array([1, 0, 1, 0, 1, 1], bool), layers=range(1, 2))
    torch.testing.assert_close(out, masked, rtol=0, atol=1e-10)
    assert parameter_count(small) == parameter_count(model)  # layers 0 and 2 keep every slot
    units = model_players(model, "heads").units
    with pytest.raises(ValueError, match="every head of model.layers.0.self_attn"):
        pruned_heads(model, units, np.r_[np.zeros(6, bool), np.ones(12, bool)])
    with pytest.raises(ValueError, match="is not one attention head"):
        pruned_heads(model, [Unit("model.layers.0.self_attn.o_proj", 0, 4, side="in")], np.ones(1, bool))
    with pytest.raises(ValueError, match="one entry per unit"):
        pruned_heads(model, units, np.ones(5, bool))
