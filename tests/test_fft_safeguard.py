"""method='auto' of the drop-ins: finite and accurate where the direct sum is."""
import numpy as np
import pytest
import scipy.signal

import cyconv


@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("k", [15, 31])
def test_one_huge_float32_value_stays_finite(func, k):
    img = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    img[0, 0] = 3e38
    ker = np.full((k, k), 1 / k**2, np.float32)
    got = getattr(cyconv, func)(img, ker, mode="same")
    want = getattr(scipy.signal, func)(img, ker, mode="same")
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4)


def test_huge_float64_value_stays_finite():
    img = np.random.default_rng(1).random((200, 200))
    img[5, 7] = 1.7e308
    ker = np.full((31, 31), 1 / 961)
    got = cyconv.correlate2d(img, ker, mode="same")
    want = cyconv.correlate2d(img, ker, mode="same", method="direct")
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-10)


def test_uniform_large_float32_mean_filter():
    img = np.full((256, 256), 1e34, np.float32)
    ker = np.full((31, 31), 1 / 961, np.float32)
    got = cyconv.correlate2d(img, ker, mode="valid")
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, 1e34, rtol=1e-4)


@pytest.mark.parametrize("dtype, peak", [(np.float32, 1e8), (np.float64, 1e14)])
def test_high_dynamic_range_background(dtype, peak):
    rng = np.random.default_rng(2)
    img = (1 + 0.1 * rng.random((512, 512))).astype(dtype)
    img[256, 256] = peak
    ker = np.full((31, 31), 1 / 961, dtype)
    got = cyconv.correlate2d(img, ker, mode="same")
    want = scipy.signal.correlate2d(img.astype(np.float64), ker.astype(np.float64), mode="same")
    background = np.ones(img.shape, bool)
    background[256 - 15:256 + 16, 256 - 15:256 + 16] = False
    rel = np.abs(got[background] - want[background]) / np.abs(want[background])
    assert rel.max() <= 1e-4
