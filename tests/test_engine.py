"""The engine against truth: analytic games, brute-force exact values of a real lesion game, msapy parity."""
import tracemalloc
from functools import partial

import numpy as np
import pytest
import torch
from games import Counting, additive, exact_shapley, network_game, pairwise, unanimity
from msapy import msa

from common import Budget, Compute, Method, load, shapley_modes
from common.estimators.base import chain_coalitions
from common.orderings import sample_orderings

CHAIN = dict(method=Method(estimator="chain", sampler="iid"))  # msapy's estimator on msapy's orderings


def distinct_chain_coalitions(orderings) -> int:
    """The coalitions k chains visit, the intact and empty ones included, each counted once."""
    rows = np.concatenate([chain_coalitions(orderings), np.ones((1, orderings.shape[1]), bool)])
    return len(np.unique(np.packbits(rows, axis=1), axis=0))


def test_additive_vector_game_is_exact_for_any_ordering():
    w = np.random.default_rng(0).normal(size=(7, 4))
    r = shapley_modes(additive(w), 7, Budget(orderings=5), seed=3, progress=False, **CHAIN)
    np.testing.assert_allclose(r.modes, w, atol=1e-12)
    np.testing.assert_allclose(r.se, 0, atol=1e-12)
    assert r.modes.shape == (7, 4) and r.output_shape == (4,)


def test_pairwise_interaction_splits_evenly():
    r = shapley_modes(pairwise(6), 6, Budget(orderings=400), seed=1, progress=False, **CHAIN)
    truth = np.array([1.5, 1.5, 1, 1, 1, 1])
    assert np.all(np.abs(r.modes - truth) <= 4 * r.se + 1e-12)
    assert r.se[0] > 0 and np.all(r.se[2:] < r.se[0] / 10)  # exact players: only the pooled prior's share
    assert abs(r.modes[0] - 1.5) < 0.3


def test_unanimity_vector_game():
    game, truth = unanimity([(0, 1, 2), (3,), (1, 4)], 5)
    r = shapley_modes(game, 5, Budget(orderings=600), seed=2, progress=False, **CHAIN)
    assert np.all(np.abs(r.modes - truth) < 4 * r.se + 1e-12)
    np.testing.assert_allclose(r.modes[3], truth[3])  # player 3 (a unanimity game of its own) is always exact
    assert r.efficiency_gap() < 1e-12


def test_matches_brute_force_on_real_lesion_game_and_converges():
    game = network_game()
    truth = exact_shapley(game, 10)
    small = shapley_modes(game, 10, Budget(orderings=100), seed=0, progress=False, **CHAIN)
    large = shapley_modes(game, 10, Budget(orderings=1600), seed=0, progress=False, **CHAIN)
    for r in (small, large):
        inside = np.abs(r.modes - truth) <= 4 * r.se
        assert inside.mean() >= 0.95, inside.mean()
        assert r.efficiency_gap() < 1e-10  # every ordering telescopes to V(intact) - V(lesioned)
    rmse = lambda r: np.sqrt(np.mean((r.modes - truth) ** 2))
    assert rmse(large) < 0.5 * rmse(small)  # 16x the orderings: about 4x smaller error
    # the standard error is honest: it predicts the actual error within a factor of ~2
    assert 0.5 < rmse(large) / np.sqrt(np.mean(large.se ** 2)) < 2


def test_parity_with_msapy_interface_on_same_orderings():
    game = network_game(n_hidden=12, seed=1)
    n, seed, perms = 12, 7, 60
    space = msa.make_permutation_space(elements=list(range(n)), n_permutations=perms, rng=np.random.default_rng(seed))
    assert len(set(space)) == perms  # msapy walks distinct orderings only; make sure none repeat
    table = msa.interface(n_permutations=perms, elements=list(range(n)), rng=np.random.default_rng(seed), lazy=True,
                          objective_function=lambda lesioned: game(np.isin(np.arange(n), lesioned, invert=True)[None])[0].numpy(),
                          dual_progress_bars=False)
    theirs = np.array(table.to_numpy()).T.reshape(n, 3)
    ours = shapley_modes(game, n, Budget(orderings=perms), seed=seed, progress=False, **CHAIN)
    np.testing.assert_allclose(ours.modes, theirs, atol=1e-9, rtol=0)
    via_engine = shapley_modes(game, [(0, i) for i in range(n)], Budget(orderings=perms), seed=seed, runner="msapy",
                               progress=False, **CHAIN)
    np.testing.assert_allclose(via_engine.modes, theirs, atol=1e-9, rtol=0)
    np.testing.assert_allclose(via_engine.to_msapy().get_shapley_mode((0, 3)), ours.modes[3], atol=1e-9)


def test_scalar_game_parity_with_msapy_engine():
    game = lambda c: (c[:, 0] & c[:, 1]) * 2.0 + c[:, 2] * c[:, 3] - 0.5 * c[:, 4]
    a = shapley_modes(game, 8, Budget(orderings=40), seed=0, progress=False, **CHAIN)
    b = shapley_modes(game, 8, Budget(orderings=40), seed=0, runner="msapy", progress=False, **CHAIN)
    assert a.modes.shape == (8,)
    np.testing.assert_allclose(a.modes, b.modes, atol=1e-12)


def test_same_seed_same_numbers_and_seed_zero_is_a_seed():
    game = network_game()
    a = shapley_modes(game, 10, Budget(orderings=20), seed=0, progress=False, **CHAIN)
    b = shapley_modes(game, 10, Budget(orderings=20), seed=0, progress=False, **CHAIN)
    np.testing.assert_array_equal(a.modes, b.modes)
    np.testing.assert_array_equal(a.se, b.se)
    # seed 0 gives msapy's orderings for default_rng(0), not fresh entropy (msapy's own random_seed=0 would)
    theirs = msa.make_permutation_space(elements=list(range(10)), n_permutations=5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(sample_orderings(10, 5, 0), np.array(theirs))
    # another seed walks other orderings; both runs' estimates agree with the truth within their error bars
    c = shapley_modes(game, 10, Budget(orderings=20), seed=1, progress=False, **CHAIN)
    assert (sample_orderings(10, 20, 0) != sample_orderings(10, 20, 1)).any(axis=1).all()
    truth = exact_shapley(game, 10)
    for r in (a, c):
        assert (np.abs(r.modes - truth) <= 4 * r.se + 1e-12).mean() >= 0.9


@pytest.mark.parametrize("sampler", ["iid", "antithetic"])
def test_batch_size_does_not_change_the_result_and_each_coalition_is_evaluated_once(sampler):
    game = network_game()
    runs = []
    distinct = distinct_chain_coalitions(sample_orderings(10, 8, 4, sampler))
    assert distinct < 2 + 8 * 10  # every chain ends at the empty coalition: 7 of the 80 repeat
    for batch in (1, 7, 10, 1000):
        counted = Counting(game)
        runs.append(shapley_modes(counted, 10, Budget(orderings=8), seed=4,
                                  method=Method(sampler=sampler, estimator="chain"),
                                  progress=False, compute=Compute(batch_size=batch)))
        assert max(counted.sizes[1:]) <= batch
        assert runs[-1].metadata["evaluations"] == counted.coalitions == counted.distinct == distinct
    for r in runs[1:]:
        np.testing.assert_allclose(r.modes, runs[0].modes, atol=1e-14)
        np.testing.assert_allclose(r.se, runs[0].se, atol=1e-14)


def test_antithetic_is_exact_on_pairwise_games_and_counts_orderings():
    w = np.random.default_rng(1).normal(size=(6, 6))
    w = w + w.T
    game = lambda c: 0.5 * np.einsum("ci,ij,cj->c", c.astype(float), w, c.astype(float)) + c @ np.arange(6.0)
    truth = exact_shapley(game, 6)
    antithetic = dict(seed=5, method=Method(sampler="antithetic", estimator="chain"), progress=False)
    r = shapley_modes(game, 6, Budget(orderings=2), **antithetic)
    np.testing.assert_allclose(r.modes, truth, atol=1e-12)
    r = shapley_modes(game, 6, Budget(orderings=6), **antithetic)
    np.testing.assert_allclose(r.modes, truth, atol=1e-12)
    np.testing.assert_allclose(r.se, 0, atol=1e-12)  # standard error over pairs: every pair is exact
    counted = Counting(game)
    r = shapley_modes(counted, 6, Budget(orderings=6), **antithetic)
    assert r.metadata["evaluations"] == counted.coalitions == counted.distinct == \
        distinct_chain_coalitions(sample_orderings(6, 6, 5, "antithetic"))
    assert r.orderings == 6
    o = sample_orderings(6, 4, 5, "antithetic")
    np.testing.assert_array_equal(o[1], o[0][::-1])


def test_antithetic_error_bars_on_a_real_game():
    game = network_game()
    truth = exact_shapley(game, 10)
    r = shapley_modes(game, 10, Budget(orderings=400), seed=3, method=Method(sampler="antithetic", estimator="chain"),
                      progress=False)
    assert (np.abs(r.modes - truth) <= 4 * r.se).mean() >= 0.95


def test_float32_accumulators():
    game = network_game()
    a = shapley_modes(game, 10, Budget(orderings=30), seed=0, progress=False, **CHAIN)
    b = shapley_modes(game, 10, Budget(orderings=30), seed=0, progress=False, compute=Compute(dtype=np.float32),
                      **CHAIN)
    assert b.modes.dtype == np.float32 and b.se.dtype == np.float32
    np.testing.assert_allclose(a.modes, b.modes, atol=1e-5)


def test_memory_does_not_grow_with_orderings():
    out = 2000
    w = np.random.default_rng(0).normal(size=(20, out))
    game = lambda c: np.tanh(c.astype(float) @ w)  # nonlinear: contributions vary

    def peak(perms, cache_bytes=0):
        tracemalloc.start()
        shapley_modes(game, 20, Budget(orderings=perms), seed=0, progress=False, **CHAIN,
                      compute=Compute(batch_size=40, cache_bytes=cache_bytes))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top
    peak(2)  # first call imports and caches; measure after it
    small, big = peak(5), peak(200)
    batch_bytes, row = 40 * out * 8, out * 8
    assert big < small * 1.1 + batch_bytes, (small, big)  # 40x the orderings, no more memory
    assert big < 2 * 20 * out * 8 + 8 * batch_bytes, big  # accumulators + a few batch-sized buffers
    cached = peak(200, cache_bytes=50 * row)  # the coalition cache keeps at most what it is given
    assert cached < big + 50 * row + batch_bytes, (cached, big)


def test_torch_outputs_and_labels_and_roundtrip(tmp_path):
    players = [(layer, e) for layer in range(2) for e in range(3)]
    w = torch.arange(6, dtype=torch.float64)
    game = lambda c: torch.as_tensor(c, dtype=torch.float64) * w
    r = shapley_modes(game, players, Budget(orderings=4), seed=0, progress=False, **CHAIN)
    np.testing.assert_allclose(r.mode((1, 2)), np.eye(6)[5] * 5)
    path = r.save(tmp_path / "r.npz", extra=np.arange(3))
    back = load(path)
    assert back.players == players and back.sampler == "iid" and back.seed == 0
    np.testing.assert_array_equal(back.modes, r.modes)
    np.testing.assert_array_equal(back.intact, r.intact)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(budget=0), "budget must be a positive integer"),
    (dict(budget=2.5), "budget must be a positive integer"),
    (dict(budget=partial(Budget, orderings=0)), "budget orderings must be a positive integer"),
    (dict(players=1), "at least 2 players"),
    (dict(method=Method(sampler="sobol")), "unknown sampler"),
    (dict(method=Method(estimator="fast")), "unknown estimator"),
    (dict(method=Method(sampler="antithetic", estimator="chain"), budget=partial(Budget, orderings=1)),
     r"groups of 2 \(antithetic sampler\): Budget\(orderings=1\) holds none; give at least 2"),
    (dict(method=Method(estimator="chain"), budget=4), "needs a budget of at least 5 evaluations on 4 players"),
    (dict(method=Method(estimator="kadd"), budget=9), "needs a budget of at least 10 evaluations"),
    (dict(compute=partial(Compute, batch_size=0)), "batch_size"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = dict(game=additive(np.eye(4)), players=4, budget=12, progress=False) | kwargs
    with pytest.raises(ValueError, match=message):  # the option object checks itself as it is made
        shapley_modes(**{k: v() if isinstance(v, partial) else v for k, v in args.items()})


def test_bad_game_outputs_are_named():
    with pytest.raises(ValueError, match="one row per coalition"):
        shapley_modes(lambda c: np.zeros(3), 4, 12, progress=False)

    def nan_when_2_lesioned(c):
        out = c.sum(1).astype(float)
        out[~c[:, 2] & (c.sum(1) < 3)] = np.nan
        return out
    with pytest.raises(ValueError, match=r"NaN or inf for the coalition with .* lesioned player\(s\) \[.*2"):
        shapley_modes(nan_when_2_lesioned, 4, 12, progress=False)

    calls = []

    def changing_shape(c):
        calls.append(1)
        return np.zeros((len(c), 2 if len(calls) == 1 else 3))
    with pytest.raises(ValueError, match="earlier calls"):
        shapley_modes(changing_shape, 4, 12, progress=False)
    with pytest.raises(TypeError, match="callable"):
        shapley_modes("not a game", 4, 12, progress=False)


@pytest.mark.parametrize("sampler, estimator, k, dof", [("iid", "chain", 30, 29), ("antithetic", "chain", 30, 14),
                                                        ("orthogonal", "chain-kernel", 4 * 10, 3)])
def test_error_bars_carry_their_degrees_of_freedom(tmp_path, sampler, estimator, k, dof):
    """se_dof: samples of the spread less one (orderings, antithetic pairs, sampler groups); margin() widens the
    interval by the t quantile, and a result saved without se_dof falls back to the normal one."""
    from scipy import stats
    r = shapley_modes(pairwise(6), 6, Budget(orderings=k), seed=1, method=Method(sampler=sampler, estimator=estimator),
                      progress=False)
    assert r.metadata["se_dof"] == dof
    np.testing.assert_allclose(r.margin(0.95), stats.t.ppf(0.975, dof) * r.se)
    assert load(r.save(tmp_path / "r.npz")).metadata["se_dof"] == dof
    del r.metadata["se_dof"]
    np.testing.assert_allclose(r.margin(0.9), stats.norm.ppf(0.95) * r.se)
    with pytest.raises(ValueError, match="level"):
        r.margin(95)
