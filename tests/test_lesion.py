"""Lesion hooks: a hooked lesion equals zeroing the unit by hand; batched coalitions; hooks never leak."""
import copy

import numpy as np
import pytest
import torch

from common.lesion import LesionGame, Unit, find_units, lesioned


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4), torch.nn.Tanh(),
                               torch.nn.Linear(4, 3))


def zeroed_by_hand(model, units, keep):
    """Zero the weights and bias that produce each lesioned unit (relu(0) = tanh(0) = 0)."""
    model = copy.deepcopy(model)
    producer = {"0": model[0], "1": model[0], "3": model[2]}
    with torch.no_grad():
        for unit, intact in zip(units, keep):
            if not intact:
                producer[unit.module].weight[unit.index] = 0
                producer[unit.module].bias[unit.index] = 0
    return model


def test_hooked_lesion_equals_zeroing_weights_for_a_batch_of_coalitions():
    model, x = mlp(), torch.randn(7, 5)
    units = find_units(model, ["1", "3"], x)
    assert [str(u) for u in units[:2]] == ["1[0]", "1[1]"] and len(units) == 12
    mask = np.random.default_rng(0).random((4, 12)) > 0.4
    with torch.no_grad(), lesioned(model, units, mask):
        out = model(x).reshape(4, 7, 3)
    for c in range(4):
        torch.testing.assert_close(out[c], zeroed_by_hand(model, units, mask[c])(x).detach(), atol=1e-6, rtol=0)


def test_single_coalition_mask_and_conv_channels():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
    x = torch.randn(3, 2, 9, 9)
    units = find_units(model, ["0"], x)  # a convolution's units are its channels (relu(0) = 0: the same lesion)
    assert [u.index for u in find_units(model, ["1"], x, dim=1)] == [u.index for u in units] == [0, 1, 2, 3]
    keep = np.array([True, False, True, False])
    with torch.no_grad(), lesioned(model, units, keep):
        out = model(x)
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        by_hand[0].weight[~torch.as_tensor(keep)] = 0
        by_hand[0].bias[~torch.as_tensor(keep)] = 0
        torch.testing.assert_close(out, by_hand(x))


def test_units_lie_on_the_axis_their_module_defines():
    """(batch, position, d) activations: a Linear's units are its d features, never the positions; a module that
    cannot say (an activation on 3 axes) is refused with the choices, unless it declares its axis or dim is given."""
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.LayerNorm(5), torch.nn.Linear(5, 3))
    x = torch.randn(4, 7, 6)
    assert [len(find_units(model, [name], x)) for name in ("0", "2", "3")] == [5, 5, 3]
    with pytest.raises(ValueError, match=r"give dim=1 \(channels, as after a convolution\) or dim=-1 \(features"):
        find_units(model, ["1"], x)
    assert len(find_units(model, ["1"], x, dim=-1)) == 5
    model[1].unit_axis = -1  # a module may declare its units' axis (the DCGAN's activations declare channels)
    units = find_units(model, ["1"], x)
    keep = np.array([True, False, True, True, False])
    with torch.no_grad(), lesioned(model, units, keep):
        out = model(x)
    with torch.no_grad():
        by_hand = model[3](model[2](model[1](model[0](x)) * torch.as_tensor(keep, dtype=torch.float32)))
    torch.testing.assert_close(out, by_hand)


def test_work_before_the_first_site_is_done_once():
    model, x = mlp(), torch.randn(7, 5)
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    units = find_units(model, ["3"], x)
    seen.clear()
    with torch.no_grad(), lesioned(model, units, np.ones((5, 4), bool)):
        out = model(x)
    assert seen == [7] and out.shape == (35, 3)


def test_hooks_are_removed_on_exit_and_on_error():
    model, x = mlp(), torch.randn(2, 5)
    units = [Unit("1", 0), Unit("3", 1)]
    count = lambda: sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    with lesioned(model, units, [False, False]):
        assert count() == 3
    assert count() == 0
    with pytest.raises(RuntimeError, match="boom"):
        with lesioned(model, units, [False, True]):
            raise RuntimeError("boom")
    assert count() == 0
    torch.testing.assert_close(model(x), mlp()(x))


def test_bad_names_and_masks():
    model, x = mlp(), torch.randn(2, 5)
    with pytest.raises(KeyError, match="no module named 'fc9'"):
        find_units(model, ["fc9"], x)
    with pytest.raises(ValueError, match="mask must have shape"):
        with lesioned(model, [Unit("1", 0)], np.ones((2, 3), bool)):
            pass


def test_lesion_game_chunks_coalitions():
    model, x = mlp(), torch.randn(6, 5)
    units = find_units(model, ["1"], x)
    game = LesionGame(model, units, x, lambda out: out.mean(1), max_rows=12)  # 2 coalitions per forward pass
    mask = np.random.default_rng(2).random((5, 8)) > 0.5
    values = game(mask)
    assert values.shape == (5, 3)
    for c in range(5):
        torch.testing.assert_close(values[c], zeroed_by_hand(model, units, mask[c])(x).mean(0).detach())
    # any numpy view is a coalition matrix, also one with negative strides (a reversed or sliced array)
    torch.testing.assert_close(game(mask[:, ::-1]), game(mask[:, ::-1].copy()))
