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


def reference_backward(gy, x, w, pad):
    """Input and weight gradients of ``reference`` in plain NumPy: the weight
    gradient sums over the zero-padded input (inf * 0 is NaN there); the input
    gradient sums over the real outputs only, then drops the padding."""
    kh, kw = w.shape[2:]
    ho, wo = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    gxp = np.zeros(xp.shape)
    gw = np.empty(w.shape)
    with np.errstate(invalid="ignore"):
        for i in range(kh):
            for j in range(kw):
                win = xp[:, :, i:i + ho, j:j + wo]
                gw[:, :, i, j] = np.einsum("nkhw,nchw->kc", gy, win)
                gxp[:, :, i:i + ho, j:j + wo] += np.einsum("nkhw,kc->nchw", gy, w[:, :, i, j])
    return gxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], gw


@pytest.mark.parametrize("kernels", [1, 4])
@pytest.mark.parametrize("method", ["auto", "direct", "im2col"])
@pytest.mark.parametrize("where", ["weight", "grad_output", "input"])
def test_backward_non_finite_meets_padding(kernels, method, where):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((kernels, 3, 3, 3))
    gy = rng.standard_normal((2, kernels, 6, 7))
    {"weight": w, "grad_output": gy, "input": x}[where][0, 0, 0, 0] = np.inf
    gx, gw, _ = cyconv.conv2d_backward(gy, x, w, padding=1, method=method)
    ref_gx, ref_gw = reference_backward(gy, x, w, 1)
    for got, ref in ((gx, ref_gx), (gw, ref_gw)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("ksize", [1, 3])
@pytest.mark.parametrize("method", ["auto", "direct", "im2col"])
@pytest.mark.parametrize("where", ["weight", "grad_output", "input"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_backward_non_finite_without_padding(ksize, method, where, bad):
    # No padding for a NaN or inf to meet: every tap is data, and the
    # gradients are the plain sums (the 1x1 case skips the finiteness pass).
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, ksize, ksize))
    gy = rng.standard_normal((2, 4, 7 - ksize, 8 - ksize))
    a = {"weight": w, "grad_output": gy, "input": x}[where]
    a[1, 2, a.shape[2] // 2, a.shape[3] // 2] = bad
    gx, gw, _ = cyconv.conv2d_backward(gy, x, w, method=method)
    ref_gx, ref_gw = reference_backward(gy, x, w, 0)
    for got, ref in ((gx, ref_gx), (gw, ref_gw)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, equal_nan=True)
