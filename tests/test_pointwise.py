"""The packed GEMM (_wgemm.h, cyconv._pointwise) that 'auto' runs for 1x1 layers.

Forward, input gradient and weight gradient of 1x1 stride-1 layers without
padding. The shapes cross every edge of its blocking: columns (pixels)
below one vector, at and past a vector and a panel of 3 vectors (48 float32
/ 24 float64 with AVX-512, shared evenly between panels), a last partial
vector; channels around a chunk (128) and past two; kernels around the tile
(8 with AVX-512, 4 otherwise); groups; batches 1..9; both dtypes; chunks
taken panel by panel or chunk by chunk (more channels than columns). CI runs
this file at every SIMD level. References: tests/_reference.py and NumPy
einsum in float64 (no cyconv code).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import cyconv
from cyconv import _backward, _conv, _scratch
from cyconv._dispatch import _pointwise
from cyconv._threads import thread_limit

from _reference import TOL, conv2d_api_ref

FLOATS = (np.float32, np.float64)

# (batch, channels, height, width, kernels, groups)
SHAPES = [
    (1, 1, 1, 1, 1, 1), (2, 3, 1, 5, 7, 1), (1, 5, 4, 4, 8, 1), (3, 4, 1, 17, 9, 1),
    (2, 16, 6, 8, 16, 2), (1, 9, 7, 7, 12, 3), (9, 6, 5, 10, 4, 2), (1, 127, 10, 10, 17, 1),
    (2, 128, 3, 16, 8, 1), (1, 129, 2, 3, 5, 1), (2, 300, 4, 25, 33, 1), (1, 20, 28, 28, 24, 4),
    (1, 260, 1, 2, 130, 2), (2, 40, 11, 13, 64, 1),
]


def _data(shape, dtype, seed=0):
    n, c, h, w, k, groups = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    gy = rng.standard_normal((n, k, h, w)).astype(dtype)
    return x, wt, b, gy


def pointwise_forward(x, w, b, groups):
    """conv2d through the packed GEMM, whatever 'auto' would pick."""
    geom = _conv.geometry("conv2d", x.shape, w.shape, 1, 0, 1, groups)
    return _conv.run_forward("conv2d", x, w, b, geom, 0, 0, "pointwise")


def gradients_ref(gy, x, w, groups):
    """(grad_input, grad_weight) of a 1x1 layer by einsum, in float64, group by group."""
    n, k, h, wd = gy.shape
    c, kg, cg = x.shape[1], k // groups, x.shape[1] // groups
    gy3 = gy.reshape(n, k, -1).astype(np.float64)
    x3 = x.reshape(n, c, -1).astype(np.float64)
    w2 = w.reshape(k, cg).astype(np.float64)
    gi = np.empty((n, c, h * wd))
    gw = np.empty((k, cg))
    for g in range(groups):
        rows, cols = slice(g * kg, (g + 1) * kg), slice(g * cg, (g + 1) * cg)
        gi[:, cols] = np.einsum("kc,nkp->ncp", w2[rows], gy3[:, rows])
        gw[rows] = np.einsum("nkp,ncp->kc", gy3[:, rows], x3[:, cols])
    return gi.reshape(x.shape), gw.reshape(w.shape)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_forward_matches_the_definition(shape, dtype, with_bias):
    x, w, b, _ = _data(shape, dtype)
    b = b if with_bias else None
    got = pointwise_forward(x, w, b, shape[-1])
    assert got.dtype == dtype and got.shape == (shape[0], shape[4]) + shape[2:4]
    assert_allclose(got, conv2d_api_ref(x, w, b, groups=shape[-1]), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_match_the_definition(shape, dtype):
    x, w, _, gy = _data(shape, dtype)
    groups = shape[-1]
    gi = _backward._pointwise_grad_input(gy, w, x.shape, groups)
    gw = _backward._pointwise_grad_weight("test", x, gy, w.shape, groups)
    gi_ref, gw_ref = gradients_ref(gy, x, w, groups)
    tol = TOL[np.dtype(dtype)]
    assert gi.dtype == gw.dtype == dtype
    assert_allclose(gi, gi_ref, **tol)
    # The weight gradient sums over every pixel of every image.
    assert_allclose(gw, gw_ref, rtol=tol["rtol"], atol=tol["atol"] * np.abs(gw_ref).max())


def _spy(monkeypatch):
    """Names of the _pointwise kernels called from now on."""
    calls = []
    for name in ("products", "weight_products"):
        real = getattr(_pointwise, name)

        def spy(*args, real=real, name=name):
            calls.append(name)
            return real(*args)

        monkeypatch.setattr(_pointwise, name, spy)
    return calls


@pytest.mark.parametrize("dtype", FLOATS)
def test_auto_runs_it_on_1x1_layers(monkeypatch, dtype):
    calls = _spy(monkeypatch)
    # 10x10 = 100 pixels (POINTWISE_MIN_PIXELS), more kernels than channels.
    x, w, b, gy = _data((3, 24, 10, 10, 40, 1), dtype)
    out = cyconv.conv2d(x, w, b)
    assert calls == ["products"]
    assert_allclose(out, conv2d_api_ref(x, w, b), **TOL[np.dtype(dtype)])
    gi, gw, gb = cyconv.conv2d_backward(gy, x, w)
    assert calls == ["products", "products", "weight_products"]
    gi_ref, gw_ref = gradients_ref(gy, x, w, 1)
    tol = TOL[np.dtype(dtype)]
    assert_allclose(gi, gi_ref, **tol)
    assert_allclose(gw, gw_ref, rtol=tol["rtol"], atol=tol["atol"] * np.abs(gw_ref).max())
    assert_allclose(gb, gy.astype(np.float64).sum(axis=(0, 2, 3)), **tol)


@pytest.mark.parametrize("case", [
    dict(size=7),  # 49 pixels: below POINTWISE_MIN_PIXELS
    dict(padding=1),
    dict(stride=2),
    dict(kernels=2),  # fewer than 4 kernels per group: the direct loops
])
def test_auto_leaves_other_layers_to_the_other_methods(monkeypatch, case):
    calls = _spy(monkeypatch)
    size = case.get("size", 10)
    x, w, b, _ = _data((2, 8, size, size, case.get("kernels", 16), 1), np.float32)
    params = dict(stride=case.get("stride", 1), padding=case.get("padding", 0))
    out = cyconv.conv2d(x, w, **params)
    assert calls == []
    assert_allclose(out, conv2d_api_ref(x, w, **params), rtol=2e-4, atol=2e-4)


def test_backward_with_more_channels_than_kernels_takes_blas(monkeypatch):
    # The forward still runs the packed GEMM; the gradients im2col's GEMMs.
    calls = _spy(monkeypatch)
    x, w, _, gy = _data((2, 40, 10, 10, 16, 1), np.float64)
    cyconv.conv2d(x, w)
    gi, gw, _ = cyconv.conv2d_backward(gy, x, w)
    assert calls == ["products"]
    gi_ref, gw_ref = gradients_ref(gy, x, w, 1)
    assert_allclose(gi, gi_ref, **TOL[np.dtype(np.float64)])
    assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-10 * np.abs(gw_ref).max())


def test_a_nan_stays_in_its_pixel():
    # Padded columns and lanes past the last pixel must not carry a NaN or
    # inf over to other pixels, nor zeros times inf into them.
    x, w, b, gy = _data((2, 130, 10, 11, 20, 1), np.float32)
    x[1, 3, 9, 10] = np.nan  # the last pixel: the last, partial vector
    x[0, 129, 0, 0] = np.inf  # the second chunk of channels
    out = pointwise_forward(x, w, b, 1)
    bad = ~np.isfinite(out)
    assert bad[1, :, 9, 10].all() and bad[0, :, 0, 0].all()
    assert bad.sum() == 2 * 20
    gy[0, 5, 3, 4] = np.nan
    gi = _backward._pointwise_grad_input(gy, w, x.shape, 1)
    assert (~np.isfinite(gi)).sum() == 130 and np.isnan(gi[0, :, 3, 4]).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_results_do_not_depend_on_the_thread_count(dtype):
    # Each output element's sum runs in the same order on any thread split.
    x, w, b, _ = _data((3, 150, 12, 12, 20, 1), dtype)
    with thread_limit(1):
        one = cyconv.conv2d(x, w, b)
    with thread_limit(2):
        two = cyconv.conv2d(x, w, b)
    np.testing.assert_array_equal(one, two)


def test_outputs_start_on_a_cache_line():
    x, w, _, gy = _data((2, 16, 10, 10, 24, 1), np.float32)
    for _ in range(3):
        assert cyconv.conv2d(x, w).ctypes.data % _scratch.ALIGN == 0
        assert cyconv.conv2d_backward(gy, x, w)[0].ctypes.data % _scratch.ALIGN == 0
    a = _scratch.aligned_empty((3, 5, 7), np.float64)
    assert a.shape == (3, 5, 7) and a.dtype == np.float64 and a.flags.c_contiguous
    assert a.ctypes.data % _scratch.ALIGN == 0


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 16, 16), (2, 17, 35), (1, 48, 130),
                                   (3, 64, 8), (1, 512, 256)])
def test_transpose(shape, dtype):
    src = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    dst = np.empty((shape[0], shape[2], shape[1]), dtype)
    _pointwise.transpose(src, dst)
    np.testing.assert_array_equal(dst, src.transpose(0, 2, 1))
