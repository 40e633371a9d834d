"""Depthwise backward: both gradients against a NumPy reference written here.

Depthwise layers at stride 1 run both gradients in one pass over the planes
(`_direct.depthwise_backward`); other strides and channel multipliers run
the general loops. The shapes cross the kernel's edges: widths around the
vector widths of _rowblock.h (4/8/16 float32, 2/4/8 float64 lanes at the
SSE2/AVX2/AVX-512 levels),
1-pixel images, batches 1..5, paddings 0..2 (and past the kernel's extent),
dilations, multipliers 1 and 2, strides 1 and 2, both float dtypes, one and
two threads (each thread sums its own planes' weight gradient).
"""
import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

import cyconv
from cyconv._threads import thread_limit

from _reference import TOL

FLOATS = (np.float32, np.float64)


def depthwise_grads_ref(x, w, gy, stride, padding, dilation):
    """(grad_input, grad_weight) of a depthwise-style conv2d (K = m*C, groups = C), float64.

    ``grad_weight[k, 0, p, q] = sum_{n,i,j} gy[n,k,i,j] * xpad[n, k//m, i*sh + p*dh, j*sw + q*dw]``;
    grad_input scatters ``gy * w`` back over the same windows of the padded
    image and crops the padding.
    """
    x, w, gy = (np.asarray(a, np.float64) for a in (x, w, gy))
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    m = k // c
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_xp = np.zeros_like(xp)
    grad_w = np.zeros(w.shape)
    for kk, p, q in itertools.product(range(k), range(kh), range(kw)):
        rows = slice(p * dh, p * dh + (ho - 1) * sh + 1, sh)
        cols = slice(q * dw, q * dw + (wo - 1) * sw + 1, sw)
        grad_w[kk, 0, p, q] = np.sum(gy[:, kk] * xp[:, kk // m, rows, cols])
        grad_xp[:, kk // m, rows, cols] += gy[:, kk] * w[kk, 0, p, q]
    return grad_xp[:, :, ph:ph + h, pw:pw + wd], grad_w


def _case(rng, dtype, batch, channels, size, kernel, multiplier, stride, padding, dilation):
    h, w = size
    kh, kw = kernel
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if ho < 1 or wo < 1:
        return None
    x = rng.standard_normal((batch, channels, h, w)).astype(dtype)
    wt = rng.standard_normal((channels * multiplier, 1, kh, kw)).astype(dtype)
    gy = rng.standard_normal((batch, channels * multiplier, ho, wo)).astype(dtype)
    return x, wt, gy


def _check(x, w, gy, stride, padding, dilation, method, mask=(True, True, False)):
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=x.shape[1])
    gi, gw, gb = cyconv.conv2d_backward(gy, x, w, **params, method=method, output_mask=mask)
    ref_gi, ref_gw = depthwise_grads_ref(x, w, gy, stride, padding, dilation)
    tol = TOL[np.dtype(x.dtype)]
    if mask[0]:
        assert gi.dtype == x.dtype and gi.shape == x.shape
        assert_allclose(gi, ref_gi, **tol)
    else:
        assert gi is None
    if mask[1]:
        assert gw.dtype == x.dtype and gw.shape == w.shape
        # A sum over N*ho*wo terms: scale the tolerance with the sum's size.
        scale = max(1.0, np.sqrt(gy[:, :1].size) / 8)
        assert_allclose(gw, ref_gw, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)
    else:
        assert gw is None
    assert gb is None


WIDTHS = (1, 2, 3, 5, 7, 9, 15, 16, 17, 33)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_stride1_3x3_every_width(dtype, padding, threads):
    rng = np.random.default_rng(100 + padding)
    seen = 0
    with thread_limit(threads):
        for width, batch in zip(WIDTHS, itertools.cycle(range(1, 6))):
            for height in (1, 3, 6):
                case = _case(rng, dtype, batch, 3, (height, width), (3, 3), 1, (1, 1),
                             (padding, padding), (1, 1))
                if case is None:
                    continue
                for method in ("auto", "direct"):
                    _check(*case, (1, 1), (padding, padding), (1, 1), method)
                seen += 1
    assert seen >= 10


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("multiplier,stride", [(1, 2), (2, 1), (2, 2), (1, (1, 2))])
def test_strided_and_multiplied(dtype, multiplier, stride):
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    rng = np.random.default_rng(7)
    for width, batch, padding in zip((1, 5, 16, 17, 30), range(1, 6), (0, 1, 2, 1, 0)):
        case = _case(rng, dtype, batch, 4, (6, width), (3, 3), multiplier, stride,
                     (padding, padding), (1, 1))
        if case is not None:
            for method in ("auto", "direct"):
                _check(*case, stride, (padding, padding), (1, 1), method)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kernel,padding,dilation", [
    ((3, 3), (2, 2), (2, 2)),   # dilated, 'same'
    ((2, 5), (0, 3), (1, 2)),   # even kernel rows, dilated columns
    ((3, 3), (3, 0), (1, 1)),   # row padding past the kernel's extent
    ((1, 1), (1, 1), (1, 1)),   # 1x1 with padding: the input gradient's general loops
    ((5, 5), (2, 2), (1, 1)),
])
def test_other_kernels(dtype, kernel, padding, dilation):
    rng = np.random.default_rng(11)
    for width in (1, 9, 17, 40):
        case = _case(rng, dtype, 3, 5, (7, width), kernel, 1, (1, 1), padding, dilation)
        if case is not None:
            _check(*case, (1, 1), padding, dilation, "direct")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False)])
def test_one_gradient_alone(dtype, mask):
    rng = np.random.default_rng(12)
    x, w, gy = _case(rng, dtype, 3, 6, (9, 20), (3, 3), 1, (1, 1), (1, 1), (1, 1))
    _check(x, w, gy, (1, 1), (1, 1), (1, 1), "auto", mask)


def test_matches_finite_differences():
    # The loss sum(gy * conv2d(x, w)) is linear in x and in w: central
    # differences are exact up to rounding.
    rng = np.random.default_rng(13)
    x, w, gy = _case(rng, np.float64, 2, 3, (5, 18), (3, 3), 1, (1, 1), (1, 1), (1, 1))
    params = dict(padding=1, groups=3)
    gi, gw, _ = cyconv.conv2d_backward(gy, x, w, **params, output_mask=(True, True, False))

    def loss(xx, ww):
        return np.sum(gy * cyconv.conv2d(xx, ww, **params))

    eps = 1e-3
    for index in [(0, 0, 0, 0), (1, 2, 4, 17), (0, 1, 2, 9), (1, 0, 0, 16)]:
        step = np.zeros_like(x)
        step[index] = eps
        numeric = (loss(x + step, w) - loss(x - step, w)) / (2 * eps)
        assert_allclose(gi[index], numeric, rtol=1e-8, atol=1e-8)
    for index in [(0, 0, 0, 0), (2, 0, 2, 1), (1, 0, 1, 2)]:
        step = np.zeros_like(w)
        step[index] = eps
        numeric = (loss(x, w + step) - loss(x, w - step)) / (2 * eps)
        assert_allclose(gw[index], numeric, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("where", ["input-edge", "grad-output", "weight"])
def test_nonfinite_values_stay_where_the_definition_puts_them(dtype, where):
    # An inf in the input's first column meets only the taps that reach it;
    # an inf in grad_output meets the zero padding (inf * 0 = NaN), as in
    # the definition and PyTorch.
    rng = np.random.default_rng(14)
    x, w, gy = _case(rng, dtype, 2, 3, (6, 20), (3, 3), 1, (1, 1), (1, 1), (1, 1))
    if where == "input-edge":
        x[0, 1, 2, 0] = np.inf
        x[1, 2, 3, 19] = -np.inf
    elif where == "grad-output":
        gy[1, 0, 0, 5] = np.inf
    else:
        w[2, 0, 1, 1] = np.nan
    gi, gw, _ = cyconv.conv2d_backward(gy, x, w, padding=1, groups=3,
                                       output_mask=(True, True, False))
    with np.errstate(invalid="ignore"):
        ref_gi, ref_gw = depthwise_grads_ref(x, w, gy, (1, 1), (1, 1), (1, 1))
    for got, ref in ((gi, ref_gi), (gw, ref_gw)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
        finite = np.isfinite(ref)
        assert_allclose(got[finite], ref[finite], rtol=1e-3, atol=1e-3)
    touched = ref_gi if where == "weight" else ref_gw  # the case is not vacuous
    assert np.isfinite(touched).any() and not np.isfinite(touched).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_threads_split_the_planes(dtype):
    # Enough work for the kernel's parallel loop (the cases above are too
    # small for it): each thread's partial weight gradient is added at the end.
    rng = np.random.default_rng(15)
    x, w, gy = _case(rng, dtype, 5, 7, (20, 37), (3, 3), 1, (1, 1), (1, 1), (1, 1))
    results = []
    for threads in (1, 2):
        with thread_limit(threads):
            _check(x, w, gy, (1, 1), (1, 1), (1, 1), "auto")
            results.append(cyconv.conv2d_backward(gy, x, w, padding=1, groups=7,
                                                   output_mask=(True, True, False)))
    assert_allclose(results[0][0], results[1][0], **TOL[np.dtype(dtype)])
