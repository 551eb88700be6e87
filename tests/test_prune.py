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
