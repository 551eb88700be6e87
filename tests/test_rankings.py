"""Rankings of units and removal curves, on a network whose right order is known (tests/games.RoleNetwork)."""
import itertools

import numpy as np
import pytest
import torch

from common import rankings as R
from common import shapley_modes
from common.removal import default_ks, removal_curve, removal_masks
from games import Counting, RoleNetwork

DEAD, PAIR, ALONE, WEAK = map(list, (RoleNetwork.DEAD, RoleNetwork.PAIR, RoleNetwork.ALONE, RoleNetwork.WEAK))


@pytest.fixture(scope="module")
def net():
    return RoleNetwork()


@pytest.fixture(scope="module")
def exact(net):
    """Shapley modes from every coalition (a budget of all 2^8: the exact values)."""
    result = shapley_modes(net.game(), net.units, 2 ** 8, seed=0, progress=False)
    assert result.metadata["estimator"] == "exact"
    np.testing.assert_allclose(result.modes, net.truth(), atol=1e-12)
    ranking = R.shapley(result)
    assert ranking.evaluations == result.evaluations == 2 ** 8
    return ranking


def test_shapley_puts_dead_then_weak_then_the_pair_then_the_lone_carrier(exact):
    order = exact.order()
    assert set(order[:2]) == set(DEAD) and set(order[2:5]) == set(WEAK)
    assert set(order[5:7]) == set(PAIR) and order[7] == ALONE[0]
    assert exact.seconds > 0
    assert exact.order(target=0)[-2:].tolist() == PAIR and exact.order(target=1)[-1] == ALONE[0]


def test_leave_one_out_cannot_tell_a_redundant_pair_from_dead_units(net):
    game = Counting(net.game())
    loo = R.leave_one_out(game, 8)
    assert game.coalitions == loo.evaluations == 9
    np.testing.assert_allclose(loo.scores[PAIR + DEAD], 0, atol=1e-12)
    np.testing.assert_allclose(loo.scores[ALONE[0], 1], net.truth()[ALONE[0], 1], atol=1e-12)
    np.testing.assert_allclose(loo.scores[WEAK, 2], 0.1, atol=1e-12)
    assert set(loo.order()[:4]) == set(PAIR + DEAD)  # the pair ranked with the dead units


def test_leave_one_in_overrates_redundant_units(net):
    game = Counting(net.game())
    loi = R.leave_one_in(game, 8)
    assert game.coalitions == loi.evaluations == 9
    np.testing.assert_allclose(loi.scores[PAIR, 0], 1.0, atol=1e-12)  # each alone does the pair's whole job
    assert set(loi.order()[-2:]) == set(PAIR)  # above the lone carrier, whose Shapley value is higher


def test_weight_norm_ranks_a_unit_that_never_fires_first(net):
    w = R.weight_norm(net.model, net.units, consumers={"act": "fc2"})
    np.testing.assert_allclose(w.scores, [np.sqrt(12), 0, 1, 1, 0.6, 0.1, 0.1, 0.1], atol=1e-12)
    assert w.order()[-1] == DEAD[0] and w.evaluations == 0
    with pytest.raises(ValueError, match="consumers"):
        R.weight_norm(net.model, net.units)


def test_weight_norm_reads_the_input_axis_of_every_layer_kind():
    from common.lesion import Unit
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Conv2d(4, 5, 1), torch.nn.ConvTranspose2d(5, 2, 3))
    units = [Unit("0", 1), Unit("1", 2), Unit("2", 0, 2, side="in")]
    scores = R.weight_norm(model, units, consumers={"0": "1", "1": "2"}).scores
    expected = [model[1].weight[:, 1].norm(), model[2].weight[2].norm(), model[2].weight[0:2].norm()]
    np.testing.assert_allclose(scores, [float(e.detach()) for e in expected], rtol=1e-6)


def test_activation_magnitude_ranks_a_unit_nothing_reads_first(net):
    a = R.activation_magnitude(net.model, net.units, lambda: net.model(net.inputs))
    hidden = torch.relu(net.model.fc1(net.inputs)).abs().mean(0)
    np.testing.assert_allclose(a.scores, hidden.detach().numpy(), atol=1e-12)
    assert a.order()[-1] == DEAD[1] and a.scores[DEAD[0]] == 0


def test_gradient_times_activation_is_leave_one_out_where_the_network_is_linear_and_blind_where_it_saturates(net):
    g = R.gradient_times_activation(net.model, net.units, net.objective)
    loo = R.leave_one_out(net.game(), 8)
    assert g.scores.shape == (8, 3) and g.evaluations == 0
    np.testing.assert_allclose(g.scores[:, 1:], loo.scores[:, 1:], atol=1e-12)  # outputs 1, 2: linear in the units
    np.testing.assert_allclose(g.scores[PAIR, 0], 0, atol=1e-12)  # output 0 saturated: no gradient
    assert not any(p.grad is not None for p in net.model.parameters())  # the model is left as it was
    assert not net.model.act._forward_hooks
    with pytest.raises(ValueError, match="never reached"):  # and its hooks go, errors included
        R.gradient_times_activation(net.model, net.units, lambda m: m.fc1(net.inputs).sum(0))
    assert not net.model.act._forward_hooks


def test_gradient_times_activation_estimates_small_lesions_of_a_smooth_network():
    from games import network_game
    game = network_game(n_hidden=6, seed=1)
    small = game.model  # tanh MLP: scale the output layer down so one lesion is a small step
    with torch.no_grad():
        small[2].weight.mul_(0.01)
    g = R.gradient_times_activation(small, game.units, lambda m: m(game.inputs).softmax(-1).mean(0))
    loo = R.leave_one_out(game, 6)
    np.testing.assert_allclose(g.scores, loo.scores, atol=0.02 * np.abs(loo.scores).max())


def test_random_is_seeded():
    assert np.array_equal(R.random_scores(8, 3).scores, R.random_scores(8, 3).scores)
    assert not np.array_equal(R.random_scores(8, 3).order(), R.random_scores(8, 4).order())
    assert np.array_equal(R.random_scores(8, 3).order(target=2), R.random_scores(8, 3).order())  # one score a unit


def test_removal_masks_remove_the_most_and_the_least_important():
    top, bottom = removal_masks([2, 0, 1, 3], [0, 1, 3])
    assert top.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 0]]
    assert bottom.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1], [0, 0, 0, 1]]
    with pytest.raises(ValueError, match="remove 5 of 4"):
        removal_masks([0, 1, 2, 3], [5])


def test_removal_curve_scores_held_out_inputs_with_error_bars(net, exact):
    held_out = 0.5 + 0.5 * torch.rand(50, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    score = Counting(net.per_input(held_out))
    curve = removal_curve(score, exact.order(), default_ks(8))
    assert curve.ks.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8] and curve.evaluations == score.coalitions
    x1 = held_out[:, 1].numpy()
    lone = 0.6 * (0.5 + x1)
    # top 2 by Shapley: unit 4 and one of the pair; the other keeps output 0 saturated
    assert curve.at("top", 0.2) == pytest.approx((1 + 0 + 0.3) / 3, abs=1e-12)
    assert curve.top_se[curve.ks.tolist().index(2)] == pytest.approx(0, abs=1e-12)
    # bottom half: the dead units and two weak ones
    assert curve.at("bottom", 0.5) == pytest.approx(np.mean((1 + lone + 0.1) / 3), abs=1e-12)
    assert curve.bottom_se[4] == pytest.approx(np.std(lone / 3, ddof=1) / np.sqrt(50), rel=1e-9)
    assert curve.top[0] == curve.bottom[0] and curve.top[-1] == curve.bottom[-1] == 0
    summary = curve.summary()
    assert set(summary) == {"area", "top_10", "top_20", "bottom_50"} and summary["area"] > 0


def test_shapley_beats_leave_one_out_on_the_curves_but_is_not_the_best_two_to_remove(net, exact):
    held_out = 0.5 + 0.5 * torch.rand(40, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    score = net.per_input(held_out)
    ks = default_ks(8)
    shapley_curve = removal_curve(score, exact.order(), ks)
    loo_curve = removal_curve(score, R.leave_one_out(net.game(), 8).order(), ks)
    assert shapley_curve.area() > loo_curve.area() + 0.05
    # the worst two units to lose are the redundant pair (output 0 falls to 0), not Shapley's top two
    worst = min(score(np.array([[u not in pair for u in range(8)]]))[0].mean()
                for pair in itertools.combinations(range(8), 2))
    assert worst < shapley_curve.at("top", 0.2) - 0.05


def test_removal_curve_refuses_a_score_of_the_wrong_shape():
    with pytest.raises(ValueError, match="coalitions, inputs"):
        removal_curve(lambda c: np.zeros(len(c)), [0, 1, 2], [0, 1])


def test_a_unit_that_never_runs_scores_zero_like_an_expert_no_token_reaches():
    class TwoBranches(torch.nn.Module):  # branch b never runs, as an expert without routed tokens
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
            self.act_a, self.act_b = torch.nn.Tanh(), torch.nn.Tanh()

        def forward(self, x):
            return self.act_a(self.a(x))

    from common.lesion import Unit
    torch.manual_seed(0)
    model, x = TwoBranches(), torch.randn(5, 3)
    units = [Unit("act_a", 0), Unit("act_a", 1), Unit("act_b", 0), Unit("act_b", 1)]
    hidden = torch.tanh(model.a(x)).detach()
    a = R.activation_magnitude(model, units, lambda: model(x))
    np.testing.assert_allclose(a.scores, [*hidden.abs().mean(0).numpy(), 0, 0], atol=1e-7)
    g = R.gradient_times_activation(model, units, lambda m: m(x).sum())
    np.testing.assert_allclose(g.scores, [*hidden.sum(0).numpy(), 0, 0], atol=1e-6)  # d sum / d act = 1
    from common.lesion import unit_means
    with pytest.raises(ValueError, match="never reached"):  # mean ablation has nothing to ablate with
        unit_means(model, units, lambda: model(x))
