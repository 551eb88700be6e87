"""SPEX on lesion games: planted sparse interactions recovered within 8,000 evaluations, one evaluation per mask
whatever the number of outputs, every index, seeded; then the top pairs refined with error bars."""
import importlib.util

import numpy as np
import pytest
from games import Counting, exact_interactions, planted_game

if importlib.util.find_spec("spectralexplain") is None:
    pytest.skip("SPEX is not installed (pip install -e '.[interactions]')", allow_module_level=True)

from common import Budget  # noqa: E402
from common.spex import INDICES, sparse_interactions, spex_interactions  # noqa: E402


def test_planted_pairs_of_every_output_are_recovered_within_8000_evaluations():
    game, planted = planted_game(64, 3)
    counted = Counting(game)
    found = spex_interactions(counted, 64, budget=8000, seed=0)
    assert counted.coalitions <= 8000 + 1  # + the intact probe; three outputs do not cost three times as much
    assert found.evaluations == counted.coalitions - 1  # distinct masks, each evaluated once
    pairs = [k for k in found if len(k) == 2]
    for d, truth in enumerate(planted):
        assert sorted(sorted(pairs, key=lambda k: -abs(found[k][d]))[:3]) == truth
        for k, pair in enumerate(truth):  # a pure pair of weight w has interaction w under every index
            assert found[pair][d] == pytest.approx(2 + k, abs=0.05)


def test_every_index_seeded_and_checked():
    game, planted = planted_game(12, 1, seed=1)
    first = spex_interactions(game, 12, budget=3000, index="sii", seed=3)
    again = spex_interactions(game, 12, budget=3000, index="sii", seed=3)
    assert list(first) == list(again) and all(np.array_equal(first[k], again[k]) for k in first)
    state = np.random.get_state()[1].copy()
    for index in INDICES:
        found = spex_interactions(lambda c: game(c)[:, 0], 12, budget=3000, index=index, seed=0)
        assert isinstance(next(iter(found.values())), float)  # a scalar game gives floats
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global random state is left as it was
    with pytest.raises(ValueError, match="unknown SPEX index"):
        spex_interactions(game, 12, budget=3000, index="shapley")
    with pytest.raises(ValueError, match="budget"):
        spex_interactions(game, 12, budget=10)
    with pytest.raises(ValueError, match="reduce="):
        spex_interactions(lambda c: np.zeros((len(c), 100)), 12, budget=3000)


def test_screen_with_spex_then_refine_the_top_pairs_with_error_bars():
    game, planted = planted_game(10, 1, seed=2)
    result = sparse_interactions(lambda c: game(c)[:, 0], 10, Budget(orderings=400), spex_budget=3000, top=4, seed=0,
                                 progress=False)
    table = result.table()
    assert sorted(tuple(sorted(p)) for p in result.pairs.tolist()[:3]) == planted[0]
    assert list(table.columns) == ["a", "b", "interaction", "se"] and 3 <= len(table) <= 4  # SPEX may find only 3
    truth = exact_interactions(lambda c: game(c)[:, 0], 10, "SII")
    order = {(i, j): k for k, (i, j) in enumerate((i, j) for i in range(10) for j in range(i + 1, 10))}
    expected = truth[[order[tuple(p)] for p in result.pairs.tolist()]]
    assert (np.abs(result.modes - expected) <= 4 * result.se + 1e-9).all()
    assert result.metadata["spex"]["evaluations"] <= 3000
