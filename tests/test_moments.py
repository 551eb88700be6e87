"""common.moments: the one running-moments helper every estimator keeps its spread with, against numpy."""
import numpy as np

from common.moments import PRIOR_SAMPLES, Moments


def test_running_moments_equal_numpy_and_merge_like_the_whole():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(30, 2, 4, 3)) + np.array([1.0, -2.0])[None, :, None, None]  # 30 draws of 2 estimates
    whole, first, second = Moments(2, 4, (3,)), Moments(2, 4, (3,)), Moments(2, 4, (3,))
    for i, s in enumerate(samples):
        whole.add(s)
        (first if i < 11 else second).add(s)
    np.testing.assert_allclose(whole.mean, samples.mean(0))
    centred = samples - samples.mean(0)
    np.testing.assert_allclose(whole.m2, np.einsum("sirx,sjrx->ijrx", centred, centred), atol=1e-12)
    first.merge(second)
    np.testing.assert_allclose(first.mean, whole.mean)
    np.testing.assert_allclose(first.m2, whole.m2, atol=1e-12)
    w = np.array([0.3, 0.7])
    combined = np.einsum("sirx,i->srx", samples, w)
    variance = combined.var(0, ddof=1)  # (rows, 3): each row's own spread
    pooled = variance.mean(0)  # shrunk toward the mean over the rows, with the weight of PRIOR_SAMPLES samples
    expected = np.sqrt((29 * variance + PRIOR_SAMPLES * pooled) / ((29 + PRIOR_SAMPLES) * 30))
    np.testing.assert_allclose(whole.standard_error_array(w), expected)
    assert whole.max_standard_error(w) == whole.standard_error_array(w).max()


def test_rows_arrive_apart_with_their_own_counts():
    m = Moments(1, 3, (2,))
    m.add(np.ones((1, 2, 2)), np.array([0, 2]))
    m.add(3 * np.ones((1, 1, 2)), np.array([2]))
    assert m.count.tolist() == [1, 0, 2]
    np.testing.assert_allclose(m.mean[0, 2], 2.0)
    se = m.standard_error_array()
    assert np.isnan(se[:2]).all()
    np.testing.assert_allclose(se[2], 1.0)  # values 1 and 3: sd sqrt(2), over sqrt(2) samples (the only spread)


def test_a_row_without_spread_borrows_the_pooled_one_and_loses_it_as_samples_grow():
    """Few samples: a unit that did the same in every ordering drawn is not known to be exact."""
    m = Moments(1, 2)
    for k in range(4):
        m.add(np.array([[float(k % 2), 5.0]]))  # row 0 varies, row 1 never does
    se = m.standard_error_array()
    pooled = np.var([0, 1, 0, 1], ddof=1) / 2  # row 1 has none: the mean over the two rows
    np.testing.assert_allclose(se[1], np.sqrt(PRIOR_SAMPLES * pooled / ((3 + PRIOR_SAMPLES) * 4)))
    assert 0 < se[1] < se[0]
    for k in range(396):
        m.add(np.array([[float(k % 2), 5.0]]))
    assert m.standard_error_array()[1] < m.standard_error_array()[0] / 20  # about 1/n against 1/sqrt(n)


def test_a_prior_of_infinite_strength_gives_every_row_its_variance(monkeypatch):
    """What a prior estimated from rows that look alike says (bench_error_bars.py's moderated one can)."""
    from common.moments import Prior
    m = Moments(1, 3, (2,))
    for k in range(5):
        m.add(np.random.default_rng(k).normal(size=(1, 3, 2)))
    monkeypatch.setattr(Moments, "prior", lambda self, weights=None: Prior(float("inf"), np.array([4.0, 9.0])))
    np.testing.assert_allclose(m.standard_error_array(), np.tile(np.sqrt(np.array([4.0, 9.0]) / 5), (3, 1)))
