"""Results handed to the field's other tools: shapiq's InteractionValues (order 1 from shapley_modes, order 2 from
interaction_modes) against shapiq's own exact values, and msapy's ShapleyModeND."""
import importlib.util

import numpy as np
import pytest

from common import Budget, interaction_modes, shapley_modes

if importlib.util.find_spec("shapiq") is None:  # skip only when shapiq is not installed; a broken one fails
    pytest.skip("shapiq is not installed (pip install -e '.[bench]')", allow_module_level=True)
import shapiq  # noqa: E402

N = 6
W = np.random.default_rng(0).normal(size=(N, 2))


def vector_game(c):
    c = c.astype(float)
    return np.stack([np.tanh(c @ W[:, 0]) + c[:, 1] * c[:, 2], np.sin(c @ W[:, 1]) - 0.5 * c[:, 0] * c[:, 4]], 1)


def element(k):
    return lambda c: vector_game(c)[:, k]


@pytest.mark.parametrize("k", [0, 1])
def test_shapley_values_equal_shapiqs_exact_ones_element_by_element(k):
    result = shapley_modes(vector_game, N, 2 ** N, progress=False)  # every coalition: the exact values
    values = result.to_shapiq((k,))
    exact = shapiq.ExactComputer(n_players=N, game=element(k))("SV")
    assert values.index == "SV" and values.max_order == 1 and values.n_players == N
    np.testing.assert_allclose([values[(i,)] for i in range(N)], [exact[(i,)] for i in range(N)], atol=1e-12)
    assert values.baseline_value == pytest.approx(float(result.lesioned[k])) and not values.estimated
    assert values.estimation_budget == result.evaluations == 2 ** N


@pytest.mark.parametrize("index", ["SII", "STII"])
def test_pair_interactions_match_shapiqs_exact_ones_within_their_error_bars(index):
    result = interaction_modes(vector_game, N, Budget(orderings=3000), index=index, sampler="antithetic",
                               progress=False)
    for k in (0, 1):
        values = result.to_shapiq((k,))
        exact = shapiq.ExactComputer(n_players=N, game=element(k))(index, order=2)
        assert values.index == index and values.max_order == 2
        pairs = [tuple(p) for p in result.pairs.tolist()]
        ours = np.array([values[p] for p in pairs])
        truth = np.array([exact[p] for p in pairs])
        assert (np.abs(ours - truth) <= 4 * result.se[:, k] + 1e-9).all()
        if index == "SII":  # SII's singletons are the Shapley values, which come with it
            np.testing.assert_allclose([values[(i,)] for i in range(N)], result.first_order.modes[:, k])


def test_one_element_at_a_time_and_msapy_too():
    result = shapley_modes(vector_game, N, 2 ** N, progress=False)
    with pytest.raises(ValueError, match=r"the output, whose shape is \(2,\): e.g. element=\(0,\)"):
        result.to_shapiq()
    with pytest.raises(ValueError, match="whose shape is"):
        result.to_shapiq((2,))
    scalar = shapley_modes(element(0), N, 2 ** N, progress=False)
    np.testing.assert_allclose([scalar.to_shapiq()[(i,)] for i in range(N)], scalar.modes)
    np.testing.assert_allclose(np.asarray(result.to_msapy().get_shapley_mode(3)), result.modes[3])
