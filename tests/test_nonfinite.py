"""Non-finite weights: padded taps take part as 0 * w on every path."""
import numpy as np
import pytest

import cyconv


def reference(x, w, pad):
    """Zero-pad, then sum every tap (0 * inf is NaN), in plain NumPy."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.empty((n, k, ho, wo))
    with np.errstate(invalid="ignore"):
        for i in range(ho):
            for j in range(wo):
                win = xp[:, None, :, i:i + kh, j:j + kw] * w[None]
                out[:, :, i, j] = win.sum(axis=(2, 3, 4))
    return out


@pytest.mark.parametrize("kernels", [1, 4])
@pytest.mark.parametrize("method", ["auto", "direct", "im2col"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_forward_inf_weight_meets_padding(kernels, method, bad):
    x = np.random.default_rng(0).random((2, 1, 6, 7))
    w = np.ones((kernels, 1, 3, 3))
    w[0, 0, 0, 0] = bad
    got = cyconv.conv2d(x, w, padding=1, method=method)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(reference(x, w, 1)))
    np.testing.assert_allclose(got, reference(x, w, 1), equal_nan=True)


def test_issue_example_agrees_across_kernel_counts():
    x = np.ones((4, 4))
    k = np.ones((3, 3))
    k[0, 0] = np.inf
    one = cyconv.conv2d(x, k, padding=1)
    four = cyconv.conv2d(x[None, None], np.repeat(k[None, None], 4, 0), padding=1)
    want = reference(x[None, None], k[None, None], 1)[0, 0]
    np.testing.assert_array_equal(one, want)
    for i in range(4):
        np.testing.assert_array_equal(four[0, i], want)
