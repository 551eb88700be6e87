"""common.moments: the one running-moments helper every estimator keeps its spread with, against numpy."""
import numpy as np

from common.moments import Moments


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
    np.testing.assert_allclose(whole.standard_error(2, w), combined[:, 2].std(0, ddof=1) / np.sqrt(30))
    assert whole.max_standard_error(w) == max(whole.standard_error(r, w).max() for r in range(4))


def test_rows_arrive_apart_with_their_own_counts():
    m = Moments(1, 3, (2,))
    m.add(np.ones((1, 2, 2)), np.array([0, 2]))
    m.add(3 * np.ones((1, 1, 2)), np.array([2]))
    assert m.count.tolist() == [1, 0, 2]
    np.testing.assert_allclose(m.mean[0, 2], 2.0)
    assert np.isnan(m.standard_error(1)).all() and np.isnan(m.standard_error(0)).all()
    np.testing.assert_allclose(m.standard_error(2), 1.0)  # values 1 and 3: sd sqrt(2), over sqrt(2) samples
