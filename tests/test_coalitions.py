"""The engine's budget and coalition cache (common/coalitions.py, common/budget.py): keys that tell every coalition
apart, a run that never sends the game a coalition twice and spends at most its budget, a cache that keeps only
what it is given, orderings drawn as far as asked, and the estimator contract: every estimator merges shards to
its straight walk, and refuses a budget below its least before the game is asked anything."""
import numpy as np
import pytest
from games import Counting, ShardedRunner, network_game, problem_for, saturating

from common import Budget, Compute, Method, shapley_modes
from common.budget import parse_budget
from common.coalitions import coalition_keys
from common.estimators import ESTIMATORS, PairInteractions
from common.estimators.base import chain_coalitions
from common.estimators.walking import OrderingStream
from common.orderings import SAMPLERS, sample, sample_orderings


@pytest.mark.parametrize("n", [10, 64, 128, 129, 200, 1987])
def test_keys_tell_apart_every_coalition_one_or_two_flips_away(n):
    """Up to 128 players the key is the packed bits; beyond, a hash that no pattern of flipped bits (in one word,
    across words, in the words' top bits) makes collide."""
    rng = np.random.default_rng(n)
    eye = np.eye(n, dtype=bool)
    i, j = rng.integers(0, n, (2, 3000))
    top_i, top_j = rng.integers(0, -(-n // 8), (2, 3000)) * 8  # the same bit of two bytes, within or across words
    flips = np.concatenate([eye, eye[i] | eye[j], eye[top_i] | eye[top_j]])
    flips = flips[flips.sum(1) > 0]
    base = rng.random((2, n)) < 0.5
    rows = np.concatenate([base, base[0] ^ flips, base[1] ^ flips])
    distinct = len(np.unique(np.packbits(rows, axis=1), axis=0))
    assert len(np.unique(coalition_keys(rows))) == distinct
    np.testing.assert_array_equal(coalition_keys(rows[:5]), coalition_keys(rows[:5].copy()))  # same rows, same keys


def test_ten_units_thirty_orderings_plan_302_coalitions_and_send_199():
    game = Counting(network_game())
    r = shapley_modes(game, 10, Budget(orderings=30), seed=1, method=Method(estimator="chain", sampler="iid"),
                      progress=False)
    planned = np.concatenate([chain_coalitions(sample_orderings(10, 30, 1)), np.ones((2, 10), bool)])
    assert len(planned) == 302 and game.coalitions == game.distinct == r.evaluations == 199


@pytest.mark.parametrize("estimator, sampler", [("chain", "iid"), ("chain", "antithetic"), ("chain", "orthogonal"),
                                                ("chain-kernel", "orthogonal"), ("surrogate", "orthogonal"),
                                                ("kadd", "auto"), ("auto", "auto")])
@pytest.mark.parametrize("budget", [150, 400, 1000])
def test_every_estimator_spends_at_most_its_budget_each_coalition_once(estimator, sampler, budget):
    """Less than one unit of work (a coalition; a group of 1, 2 or 2(n - 1) orderings) is left unspent."""
    n = 12
    game = Counting(saturating)
    try:
        r = shapley_modes(game, n, budget, method=Method(estimator=estimator, sampler=sampler), seed=3, progress=False)
    except ValueError as error:  # below the estimator's least: said before the game is asked anything
        assert "needs a budget of at least" in str(error) and game.calls == 0
        assert budget == 150 and sampler == "orthogonal"  # a group of 22 orderings costs more
        return
    assert game.coalitions == game.distinct == r.evaluations <= budget
    group = SAMPLERS[sampler].group(n) if sampler != "auto" else 1
    unit = n * group if estimator != "kadd" else 1
    assert budget - r.evaluations < unit or r.metadata["estimator"] == "kadd" and r.evaluations == budget


def test_a_budget_that_buys_every_coalition_gets_the_exact_values_each_once():
    from common.exact import exact_shapley_modes
    truth = exact_shapley_modes(saturating, 9)
    for estimator in ("chain", "chain-kernel", "kadd", "auto"):
        game = Counting(saturating)
        r = shapley_modes(game, 9, 600, method=Method(estimator=estimator), progress=False)
        assert r.metadata["estimator"] == "exact" and game.coalitions == game.distinct == 512
        np.testing.assert_allclose(r.modes, truth, atol=1e-12)
    walked = shapley_modes(saturating, 9, Budget(orderings=100), method=Method(estimator="chain", sampler="iid"),
                           progress=False)
    assert walked.metadata["estimator"] == "chain" and walked.orderings == 100  # orderings asked: orderings walked


def test_the_cache_keeps_what_it_is_given_and_the_numbers_do_not_change():
    """cache_bytes=0 keeps nothing between segments: repeated coalitions are evaluated again (counted, within the
    budget), and on a deterministic game the estimate is the same."""
    run = dict(method=Method(estimator="chain", sampler="iid"), seed=2, progress=False)
    counted, bare = Counting(saturating), Counting(saturating)
    kept = shapley_modes(counted, 10, Budget(orderings=40), compute=Compute(batch_size=20), **run)
    none = shapley_modes(bare, 10, Budget(orderings=40), compute=Compute(batch_size=20, cache_bytes=0), **run)
    assert counted.coalitions == counted.distinct < bare.coalitions == none.evaluations
    assert bare.distinct == counted.distinct
    np.testing.assert_array_equal(kept.modes, none.modes)
    np.testing.assert_array_equal(kept.se, none.se)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_orderings_are_drawn_as_far_as_asked_and_a_longer_draw_begins_with_a_shorter(sampler):
    n = 7
    group = SAMPLERS[sampler].group(n)
    stream = OrderingStream(sampler, n, seed=5)
    first = stream.get(0, 3 * group).copy()
    later = stream.get(2 * group, 9 * group)
    np.testing.assert_array_equal(first, sample(sampler, n, 3 * group, 5).orderings)
    np.testing.assert_array_equal(later, sample(sampler, n, 9 * group, 5).orderings[2 * group:])


def test_the_command_lines_budget():
    assert parse_budget("20000") == Budget(evaluations=20000) and parse_budget("2e4") == Budget(evaluations=20000)
    assert parse_budget("1000n") == Budget(orderings=1000) and parse_budget("1000n").as_text() == "1000n"
    for bad in ("0", "1.5", "n", "12x", "-3"):
        with pytest.raises(ValueError, match="must be"):
            parse_budget(bad)


CONTRACT = [(name, ESTIMATORS[name], {"sampler": "orthogonal"} if ESTIMATORS[name].walks_orderings else {})
            for name in ("chain", "chain-kernel", "surrogate", "kadd", "exact")] + \
    [("pairs", PairInteractions, dict(pairs=[(0, 1), (2, 5)], sampler="antithetic"))]


@pytest.mark.parametrize("name, cls, settings", CONTRACT, ids=[c[0] for c in CONTRACT])
def test_every_estimator_merges_shards_to_its_straight_walk(name, cls, settings):
    """What the Ray runner relies on: units walked in shards, each on a copy of the estimator, merge to the
    straight walk (groups left without a partner pair up when merged: the surrogate)."""
    n = 13 if name == "exact" else 8  # exact: two units of 4,096 coalitions
    budget = 2 ** n if name == "exact" else Budget(orderings=4 * 2 * (n - 1)) if name != "kadd" else 120
    problem = problem_for(saturating, n, budget, seed=4)
    straight = cls(problem, **settings).run(ShardedRunner(saturating))
    units, step = cls(problem, **settings).units, cls.shard_multiple
    inside = list(range(step, units, step))  # shard boundaries the estimator allows
    cuts = sorted({inside[0], inside[len(inside) // 2]}) if inside else []
    assert cuts, "no shard boundary to test"
    sharded = cls(problem, **settings).run(ShardedRunner(saturating, cuts))
    for key in ("modes", "se", "pair_modes", "pair_se"):
        if key in straight:
            np.testing.assert_allclose(sharded[key], straight[key], atol=1e-10, err_msg=key)


@pytest.mark.parametrize("name", [*ESTIMATORS])
def test_a_budget_below_an_estimators_least_is_refused_before_any_evaluation(name):
    game = Counting(saturating)
    sampler = "orthogonal" if ESTIMATORS[name].walks_orderings else "auto"
    with pytest.raises(ValueError, match=r"needs a budget of at least [\d,]+ evaluations on 10 players|"
                                         r"evaluates every coalition: 2\^10"):
        shapley_modes(game, 10, 21, method=Method(estimator=name, sampler=sampler), progress=False)
    assert game.calls == 0


def test_exact_marginal_variance_is_the_spread_over_every_ordering():
    """Against all 7! orderings of a 7-unit game, each one's marginal contributions taken apart."""
    import itertools

    from common.exact import exact_marginal_variance, exact_shapley_modes
    n = 7
    samples = []
    for order in itertools.permutations(range(n)):
        chain = np.zeros((n + 1, n), bool)
        for step, unit in enumerate(order):
            chain[step + 1:, unit] = True
        values = saturating(chain)
        marginal = np.empty((n, values.shape[1]))
        marginal[list(order)] = values[1:] - values[:-1]
        samples.append(marginal)
    samples = np.array(samples)
    np.testing.assert_allclose(exact_marginal_variance(saturating, n), samples.var(0), atol=1e-14)
    np.testing.assert_allclose(exact_shapley_modes(saturating, n), samples.mean(0), atol=1e-14)
    assert samples.var(0).min() > 0
    with pytest.raises(ValueError, match="not feasible"):
        exact_marginal_variance(saturating, 23)
