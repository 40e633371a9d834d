"""method='winograd': the F(m, 3) transforms, and conv2d/conv2d_backward through them."""
import itertools
from fractions import Fraction

import numpy as np
import pytest

import cyconv
import cyconv._winograd_gemm as wg
from cyconv._openmp import max_threads
from cyconv._threads import thread_limit
from cyconv import _winograd_transforms as wt
from _reference import TOL, conv2d_api_ref, conv2d_ref


def _matvec(mat, vec):
    return [sum((a * b for a, b in zip(row, vec)), Fraction(0)) for row in mat]


@pytest.mark.parametrize("m, r, points", [
    (4, 3, wt.POINTS_F4),
    (2, 3, (0, 1, -1)),
    (4, 3, (0, 1, -1, 2, -2)),
])
def test_1d_transform_exact_in_rationals(m, r, points):
    at, g_mat, bt = wt.exact_transforms(m, r, points)
    n = m + r - 1
    assert (len(at), len(at[0]), len(g_mat), len(g_mat[0]), len(bt)) == (m, n, n, r, n)
    # Exact on a basis of (d, g) pairs, hence on every pair (bilinear).
    for t, k in itertools.product(range(n), range(r)):
        d = [Fraction(int(i == t)) for i in range(n)]
        g = [Fraction(int(i == k)) for i in range(r)]
        y = _matvec(at, [a * b for a, b in zip(_matvec(g_mat, g), _matvec(bt, d))])
        assert y == [Fraction(int(t == i + k)) for i in range(m)]


def test_input_transform_is_integer():
    _, _, bt = wt.exact_transforms(4, 3, wt.POINTS_F4)
    assert all(v.denominator == 1 for row in bt for v in row)


def test_bad_points():
    with pytest.raises(ValueError, match="points"):
        wt.exact_transforms(4, 3, (0, 1, 1, 2, -2))
    with pytest.raises(ValueError, match="points"):
        wt.exact_transforms(4, 3, (0, 1, 2))


def _winograd_conv_numpy(x, w, pad, dtype):
    """Reference stride-1 3x3 correlation through F(4x4, 3x3) tiles in NumPy."""
    at, g_mat, bt = (a.astype(dtype) for a in wt.transforms())
    n, c, h, wd = x.shape
    k = w.shape[0]
    ho, wo = h + 2 * pad - 2, wd + 2 * pad - 2
    th, tw = -(-ho // 4), -(-wo // 4)
    xp = np.zeros((n, c, th * 4 + 2, tw * 4 + 2), dtype)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    u = np.einsum("ai,kcij,bj->abkc", g_mat, w.astype(dtype), g_mat)
    tiles = np.lib.stride_tricks.sliding_window_view(xp, (6, 6), axis=(2, 3))[:, :, ::4, ::4]
    v = np.einsum("ai,nctsij,bj->abcnts", bt, tiles, bt)
    mprod = np.einsum("abkc,abcnts->abknts", u, v)
    y = np.einsum("ia,abknts,jb->nktisj", at, mprod, at)
    return y.reshape(n, k, th * 4, tw * 4)[:, :, :ho, :wo]


def _direct64(x, w, pad):
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    return np.einsum("ncijpq,kcpq->nkij", win, w.astype(np.float64))


@pytest.mark.parametrize("shape, pad", [
    ((1, 2, 3, 3), 0), ((2, 3, 7, 9), 1), ((3, 4, 10, 5), 2), ((9, 1, 6, 6), 0),
])
def test_tiled_algorithm_float64(shape, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((5, shape[1], 3, 3))
    np.testing.assert_allclose(_winograd_conv_numpy(x, w, pad, np.float64),
                               _direct64(x, w, pad), rtol=1e-12, atol=1e-12)


# Measured float32 error of F(4x4, 3x3) with these points, relative to the
# largest |output| of the float64 reference: well below this bound for
# channel counts 3..1024 and value scales 1e-3..1e3 (see the test below).
F32_REL_BOUND = 2e-5


@pytest.mark.parametrize("c", [3, 64, 1024])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_float32_error_bound(c, scale):
    rng = np.random.default_rng(c)
    x = (rng.standard_normal((1, c, 9, 9)) * scale).astype(np.float32)
    w = (rng.standard_normal((2, c, 3, 3)) * scale).astype(np.float32)
    ref = _direct64(x, w, 1)
    got = _winograd_conv_numpy(x, w, 1, np.float32)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < F32_REL_BOUND


# --- method='winograd' (_winograd.pyx) against NumPy references -------------

# The documented bound (conv2d's docstring): |winograd - exact| is at most
# WINOGRAD_EPS_FACTOR * eps * max(|input| (*) |weight|), the largest output of
# the convolution of the absolute values (plus eps * max|bias|). Measured: at
# most 29 eps for F(4x4, 3x3) and 6 eps for F(2x2, 3x3), float32 and float64,
# channels 3..1024, value scales 1e-3..1e3 (normal, uniform, heavy-tailed).
WINOGRAD_EPS_FACTOR = 64


def _adjoint_ref(gy, w, pads, groups, in_hw):
    """grad_input of a stride-1 3x3 conv2d by the definition, in float64."""
    gy, w = gy.astype(np.float64), w.astype(np.float64)
    n, k, ho, wo = gy.shape
    cg, kg = w.shape[1], k // groups
    top, _, left, _ = pads
    gxp = np.zeros((n, cg * groups, ho + 2, wo + 2))
    for g in range(groups):
        ks, cs = slice(g * kg, (g + 1) * kg), slice(g * cg, (g + 1) * cg)
        for p in range(3):
            for q in range(3):
                gxp[:, cs, p:p + ho, q:q + wo] += np.einsum(
                    "nkhw,kc->nchw", gy[:, ks], w[ks, :, p, q])
    h, wd = in_hw
    out = np.zeros((n, cg * groups, h, wd))
    # Padded rows/columns beyond the input (and input rows no window reads) drop out.
    rows, cols = min(h, ho + 2 - top), min(wd, wo + 2 - left)
    out[:, :, :rows, :cols] = gxp[:, :, top:top + rows, left:left + cols]
    return out


def _pads(padding):
    if padding == "same":
        return (1, 1, 1, 1)
    ph, pw = (padding, padding) if np.ndim(padding) == 0 else padding
    return (ph, ph, pw, pw)


def _tol(dtype, sums, bias=None):
    extra = 0 if bias is None else np.abs(bias).max()
    return WINOGRAD_EPS_FACTOR * np.finfo(dtype).eps * (np.abs(sums).max() + extra)


# (input shape, kernels, groups, padding): outputs of 1x1, sizes that are not
# multiples of either tile, padding 0/1/2 and uneven, groups, batch 1..9,
# rows of few and of many tiles.
CASES = [
    ((1, 1, 3, 3), 1, 1, 0),
    ((1, 2, 1, 1), 3, 1, 1),
    ((2, 3, 7, 9), 4, 1, 1),
    ((3, 4, 10, 5), 6, 2, 2),
    ((9, 2, 6, 6), 2, 1, 0),
    ((5, 6, 13, 17), 6, 3, 1),
    ((4, 3, 12, 11), 5, 1, (0, 2)),
    ((1, 8, 23, 19), 16, 1, "same"),
    ((2, 5, 9, 37), 7, 1, 1),   # rows of 10 and 19 tiles: the long runs' gather too
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_kernel_matches_matmul(dtype):
    # _wgemm.h's register tiles: kernel counts past every block size (1..13)
    # and column counts that end inside a vector, on a chunk or past one.
    from cyconv import _winograd
    rng = np.random.default_rng(2)
    lanes = _winograd.max_lanes()
    for kg, cg, nt in itertools.product(range(1, 14), (1, 5, 33), (1, 7, 16, 17, 50, 130)):
        ld = -(-nt // lanes) * lanes
        u = rng.standard_normal((kg, cg)).astype(dtype)
        v = rng.standard_normal((cg, ld)).astype(dtype)
        out = np.full((kg, ld), np.nan, dtype)
        _winograd._products(u, v, out, nt)
        ref = u.astype(np.float64) @ v[:, :nt].astype(np.float64)
        sums = np.abs(u).astype(np.float64) @ np.abs(v[:, :nt]).astype(np.float64)
        assert np.all(np.abs(out[:, :nt] - ref) <= 4 * cg * np.finfo(dtype).eps * sums), \
            (kg, cg, nt)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [1, 6, 13, 40])
def test_written_out_transforms_are_the_derived_ones(m, dtype, t):
    # _wtrans.h writes BT and AT out: on d = the identity (padded to t
    # columns, random beyond) they give BT and AT, exactly (small integers
    # and powers of 2), at every column count (vector bodies and remainders).
    from cyconv import _winograd
    at, _, bt = wt.transforms(m, 3, wt.POINTS[m])
    n = m + 2
    rng = np.random.default_rng(t)
    d = rng.standard_normal((n, t)).astype(dtype)
    d[:, :min(n, t)] = np.eye(n, dtype=dtype)[:, :min(n, t)]
    v, y = np.full((n, t), np.nan, dtype), np.full((m, t), np.nan, dtype)
    _winograd._tile_transforms(d, v, y, m)
    np.testing.assert_array_equal(v[:, :min(n, t)], bt[:, :min(n, t)])
    np.testing.assert_array_equal(y[:, :min(n, t)], at[:, :min(n, t)])
    d64 = d.astype(np.float64)
    np.testing.assert_allclose(v, bt @ d64, rtol=0, atol=32 * np.finfo(dtype).eps * np.abs(d64).max())
    np.testing.assert_allclose(y, at @ d64, rtol=0, atol=32 * np.finfo(dtype).eps * np.abs(d64).max())


@pytest.fixture(params=["chosen", 2, 4])
def tile(request, monkeypatch):
    """Each case under the tile size the method picks, and under F(2x2) and F(4x4)."""
    if request.param != "chosen":
        monkeypatch.setattr(wg, "tile_size", lambda ho, wo: request.param)
    return request.param


@pytest.fixture(params=["default", "tiny"])
def blocks(request, monkeypatch):
    """Default blocks, or blocks of 3 tiles: many tasks, blocks across images."""
    if request.param == "tiny":
        monkeypatch.setattr(wg, "WINOGRAD_BLOCK_BYTES", 1)
        monkeypatch.setattr(wg, "WINOGRAD_MAX_BLOCK_BYTES", 1)
        monkeypatch.setattr(wg, "WINOGRAD_MIN_TILES", 3)
    return request.param


def _case_data(shape, k, groups, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((k, shape[1] // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, groups, padding", CASES)
def test_forward_matches_reference(tile, blocks, shape, k, groups, padding, dtype):
    x, w, b = _case_data(shape, k, groups, dtype)
    pads = _pads(padding)
    got = cyconv.conv2d(x, w, b, padding=padding, groups=groups, method="winograd")
    assert got.dtype == dtype
    ref = conv2d_ref(x, w, b, pads=pads, groups=groups)
    sums = conv2d_ref(np.abs(x), np.abs(w), pads=pads, groups=groups)
    np.testing.assert_allclose(got, ref, rtol=0, atol=_tol(dtype, sums, b))
    direct = cyconv.conv2d(x, w, b, padding=padding, groups=groups, method="direct")
    np.testing.assert_allclose(got, direct, rtol=0, atol=2 * _tol(dtype, sums, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, groups, padding", CASES)
def test_input_gradient_matches_reference(tile, blocks, shape, k, groups, padding, dtype):
    x, w, _ = _case_data(shape, k, groups, dtype)
    out_shape = cyconv.output_shape(x.shape, w.shape, padding=padding, groups=groups)
    gy = np.random.default_rng(1).standard_normal(out_shape).astype(dtype)
    gx, gw, gb = cyconv.conv2d_backward(gy, x, w, padding=padding, groups=groups,
                                        method="winograd")
    assert gx.dtype == dtype
    pads = _pads(padding)
    ref = _adjoint_ref(gy, w, pads, groups, shape[2:])
    sums = _adjoint_ref(np.abs(gy), np.abs(w), pads, groups, shape[2:])
    np.testing.assert_allclose(gx, ref, rtol=0, atol=_tol(dtype, sums))
    # The bias gradient is im2col's (the weight gradient: test_winograd_wgrad.py).
    expected = cyconv.conv2d_backward(gy, x, w, padding=padding, groups=groups,
                                      method="im2col")
    np.testing.assert_array_equal(gb, expected[2])


@pytest.mark.parametrize("padding_mode", ["reflect", "circular"])
def test_padding_modes(padding_mode):
    x, w, b = _case_data((2, 3, 9, 10), 4, 1, np.float64)
    got = cyconv.conv2d(x, w, b, padding=2, padding_mode=padding_mode, method="winograd")
    ref = conv2d_api_ref(x, w, b, padding=2, padding_mode=padding_mode)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("c", [3, 64, 1024])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_documented_error_bound(monkeypatch, m, c, scale):
    """float32 within the docstring's bound of the exact (long double) sums."""
    monkeypatch.setattr(wg, "tile_size", lambda ho, wo: m)
    rng = np.random.default_rng(c)
    x = (rng.random((2, c, 9, 9)) * scale).astype(np.float32)
    w = (rng.standard_normal((3, c, 3, 3)) * scale).astype(np.float32)
    xp = np.pad(x.astype(np.longdouble), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    exact = np.einsum("ncijpq,kcpq->nkij", win, w.astype(np.longdouble))
    sums = np.einsum("ncijpq,kcpq->nkij", np.abs(win), np.abs(w.astype(np.longdouble)))
    got = cyconv.conv2d(x, w, padding=1, method="winograd")
    err = np.abs(got - exact).max() / sums.max()
    assert err <= WINOGRAD_EPS_FACTOR * np.finfo(np.float32).eps


def test_tile_size_has_fewer_products():
    for ho in range(1, 30):
        for wo in range(1, 30):
            counts = {m: (m + 2) ** 2 * -(-ho // m) * -(-wo // m) for m in (2, 4)}
            assert counts[wg.tile_size(ho, wo)] == min(counts.values())


@pytest.mark.parametrize("kwargs, weight_shape", [
    (dict(), (2, 3, 5, 5)),
    (dict(), (2, 3, 3, 1)),
    (dict(stride=2), (2, 3, 3, 3)),
    (dict(stride=(1, 2)), (2, 3, 3, 3)),
    (dict(dilation=2), (2, 3, 3, 3)),
])
def test_not_eligible(kwargs, weight_shape):
    x = np.zeros((1, 3, 12, 12))
    w = np.zeros(weight_shape)
    if kwargs == dict(stride=2):  # the forward's F(2, 3) along rows (test_winograd_s2.py)
        assert not cyconv.conv2d(x, w, **kwargs, method="winograd").any()
    else:
        with pytest.raises(ValueError,
                           match="method='winograd' needs 3x3 kernels at stride 1 or 2"):
            cyconv.conv2d(x, w, **kwargs, method="winograd")
    gy = np.zeros(cyconv.output_shape(x.shape, w.shape, **kwargs))
    with pytest.raises(ValueError, match="method='winograd' needs 3x3 kernels at stride 1"):
        cyconv.conv2d_backward(gy, x, w, **kwargs, method="winograd")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["input", "weight"])
def test_nonfinite_gives_the_direct_result(where, dtype):
    """A NaN or inf would spread over a whole tile: such inputs take an exact path."""
    x, w, b = _case_data((2, 3, 11, 10), 4, 1, dtype)
    if where == "input":
        x[1, 2, 5, 4], x[0, 0, 0, 9] = np.nan, np.inf
    else:
        w[2, 1, 0, 2] = np.inf
    got = cyconv.conv2d(x, w, b, padding=1, method="winograd")
    expected = cyconv.conv2d(x, w, b, padding=1, method="direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, **TOL[np.dtype(dtype)])
    gy = np.random.default_rng(2).standard_normal(got.shape).astype(dtype)
    if where == "input":
        gy[0, 1, 3, 3] = np.nan
    gx = cyconv.conv2d_backward(gy, x, w, padding=1, method="winograd")[0]
    gx_direct = cyconv.conv2d_backward(gy, x, w, padding=1, method="direct")[0]
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(gx_direct))
    np.testing.assert_allclose(gx, gx_direct, **TOL[np.dtype(dtype)])


@pytest.mark.skipif(cyconv._threads.blas_threads.get() is None,
                    reason="no thread control found for SciPy's BLAS")
def test_runs_on_the_kernel_threads_with_blas_on_one(monkeypatch):
    # As the other GEMM paths (test_thread_ownership): the kernels' thread
    # count, BLAS held at one thread during the call, its setting back after.
    from cyconv import _openmp, _threads, _winograd
    seen = []
    real = _winograd.conv2d_forward

    def spy(*args):
        seen.append((args[-1], _threads.blas_threads.get()))
        return real(*args)

    monkeypatch.setattr(_winograd, "conv2d_forward", spy)
    x, w, _ = _case_data((2, 4, 12, 12), 8, 1, np.float64)
    before = _threads.blas_threads.get()
    y = cyconv.conv2d(x, w, padding=1, method="winograd")
    cyconv.conv2d_backward(y, x, w, padding=1, method="winograd")
    assert len(seen) == 2
    assert all(threads == _openmp.max_threads() and blas == 1 for threads, blas in seen)
    assert _threads.blas_threads.get() == before


@pytest.mark.parametrize("channels, batch", [(8, 64), (512, 64)])
def test_scratch_per_thread_is_bounded(monkeypatch, channels, batch):
    # The block scratch stays within WINOGRAD_MAX_BLOCK_BYTES per thread
    # (or 16 tiles), whatever the batch; results still match the direct sum.
    from cyconv import _winograd
    seen = []
    real = _winograd.conv2d_forward

    def spy(*args):
        seen.append(args[-2].shape[1] * args[-2].itemsize)
        return real(*args)

    monkeypatch.setattr(_winograd, "conv2d_forward", spy)
    x, w, b = _case_data((batch, channels, 8, 8), channels, 1, np.float32)
    got = cyconv.conv2d(x, w, b, padding=1, method="winograd")
    row = 36 * (2 * channels + 2) * 4
    assert seen and seen[0] <= max(wg.WINOGRAD_MAX_BLOCK_BYTES, wg.WINOGRAD_MIN_TILES * row)
    sums = conv2d_ref(np.abs(x[:2]), np.abs(w), pads=(1, 1, 1, 1))
    np.testing.assert_allclose(got[:2], conv2d_ref(x[:2], w, b, pads=(1, 1, 1, 1)),
                               rtol=0, atol=_tol(np.float32, sums, b))


@pytest.mark.parametrize("x_shape, k, kernel, stride, groups, dtype, picked", [
    ((4, 16, 32, 32), 16, 3, 1, 1, np.float32, True),     # the rule's smallest groups
    ((4, 32, 33, 31), 32, 3, 1, 2, np.float64, True),     # 16 channels and kernels per group
    ((2, 16, 10, 10), 16, 3, 1, 1, np.float32, False),    # too little work: 18 tiles of 16
    ((4, 8, 32, 32), 16, 3, 1, 1, np.float32, False),     # too few channels: the transforms dominate
    ((4, 16, 32, 32), 8, 3, 1, 1, np.float32, False),     # too few kernels
    ((4, 16, 32, 32), 16, 3, 2, 1, np.float32, False),    # stride 2
    ((4, 16, 32, 32), 16, 5, 1, 1, np.float32, False),    # 5x5
    ((4, 16, 32, 32), 16, 3, 1, 1, np.int64, False),      # integer data stays exact
])
def test_auto_picks_winograd_by_the_rule(monkeypatch, x_shape, k, kernel, stride, groups,
                                         dtype, picked):
    from cyconv import _winograd
    calls = []
    real = _winograd.conv2d_forward
    monkeypatch.setattr(_winograd, "conv2d_forward",
                        lambda *args: calls.append(1) or real(*args))
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, x_shape).astype(dtype)
    w = rng.integers(-3, 4, (k, x_shape[1] // groups, kernel, kernel)).astype(dtype)
    with thread_limit(2):  # the work per thread that the rule asks for, on any machine
        got = cyconv.conv2d(x, w, stride=stride, padding=1, groups=groups)
    assert bool(calls) == picked
    want = conv2d_api_ref(x.astype(np.float64), w.astype(np.float64), None, stride=stride,
                          padding=1, groups=groups)
    if dtype == np.int64:
        np.testing.assert_array_equal(got, want)  # exact, as the direct sums are
    else:
        bound = 64 * np.finfo(dtype).eps * 27 * 9 * x_shape[1]  # max|x|*|w| sums
        np.testing.assert_allclose(got, want, rtol=0, atol=bound)


@pytest.mark.parametrize("method", ["auto", "winograd"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_input_falls_back_to_the_direct_result(monkeypatch, method, value, dtype):
    # A NaN or inf would spread over its tile: the kernel reports it as it
    # transforms the input (no pass over the input before), and the call
    # recomputes by the direct sums, which keep it to the windows that hold it.
    monkeypatch.setattr(wg, "WINOGRAD_AUTO_WORK", 0)  # 'auto' takes Winograd on a small case
    from cyconv import _winograd
    reports = []
    real = _winograd.conv2d_forward
    monkeypatch.setattr(_winograd, "conv2d_forward",
                        lambda *args: reports.append(real(*args)) or reports[-1])
    x = np.ones((1, 16, 12, 12), dtype)
    x[0, 3, 5, 5] = value
    w = np.ones((16, 16, 3, 3), dtype)
    y = cyconv.conv2d(x, w, padding=1, method=method)
    assert reports == [False]
    want = conv2d_api_ref(x, w, None, padding=1)
    assert (np.isnan(y) == np.isnan(want)).all() and np.isnan(y).sum() == 16 * 9 * (value != np.inf)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_input_fallback_keeps_the_finite_outputs(monkeypatch, dtype):
    # One NaN in image 1, group 0: the fallback's outputs away from it are the
    # reference's to rounding, NaN exactly where a window holds it.
    monkeypatch.setattr(wg, "WINOGRAD_AUTO_WORK", 0)  # 'auto' takes Winograd on a small case
    from cyconv import _winograd
    reports = []
    real = _winograd.conv2d_forward
    monkeypatch.setattr(_winograd, "conv2d_forward",
                        lambda *args: reports.append(real(*args)) or reports[-1])
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 32, 13, 11)).astype(dtype)
    w = rng.standard_normal((32, 16, 3, 3)).astype(dtype)
    x[1, 2, 4, 7] = np.nan
    want = conv2d_api_ref(x.astype(np.float64), w.astype(np.float64), None, padding=1,
                          groups=2)
    y = cyconv.conv2d(x, w, padding=1, groups=2)
    assert reports == [False]
    assert (np.isnan(y) == np.isnan(want)).all() and np.isnan(y).sum() == 16 * 9
    finite = ~np.isnan(want)
    np.testing.assert_allclose(y[finite], want[finite], rtol=0,
                               atol=100 * np.finfo(dtype).eps * np.abs(want[finite]).max())


@pytest.mark.parametrize(("shape", "channels", "one_thread", "two_threads"), [
    ((4, 7), 512, False, False),   # 38 MB of transformed kernels on 16 tiles
    ((8, 7), 512, True, False),    # 32 tiles: enough for one thread, not two
    ((8, 28), 512, True, True),    # 392 tiles
    ((4, 7), 256, False, False),   # 9.4 MB on 16 tiles
    ((4, 7), 128, True, False),    # 2.4 MB on 16 tiles
    ((2, 14), 128, True, True),    # 32 tiles
    ((1, 14), 64, True, False),    # 0.6 MB: the work floor (16 tiles x 64 channels)
])
def test_auto_rule_on_large_transformed_kernels(shape, channels, one_thread, two_threads):
    # benchmarks/winograd_rule.py: each thread reads all of them once per call.
    from cyconv._conv import array_geometry
    n, h = shape
    geom = array_geometry("conv2d", (n, channels, h, h), (channels, channels, 3, 3),
                          1, 1, 1, 1)
    with thread_limit(1):
        assert wg.winograd_pays(geom, np.dtype(np.float32)) == one_thread
    with thread_limit(2):
        if max_threads() == 2:  # two cores usable
            assert wg.winograd_pays(geom, np.dtype(np.float32)) == two_threads


def test_auto_rule_asks_work_per_thread():
    from cyconv._conv import array_geometry
    # 16 tiles of 192 channels and kernels: 3072, enough for one thread, not two.
    geom = array_geometry("conv2d", (1, 192, 16, 16), (192, 192, 3, 3), 1, 1, 1, 1)
    with thread_limit(1):
        assert wg.winograd_pays(geom, np.dtype(np.float32))
    with thread_limit(2):
        if max_threads() == 2:  # two cores usable
            assert not wg.winograd_pays(geom, np.dtype(np.float32))


def _overflow_case(monkeypatch):
    """Values near float32's overflow whose transformed tiles overflow (rows of
    alternating sign add up in the transform) while the sums do not, small
    weights, and the list of what the forward kernel reports."""
    from cyconv import _winograd
    reports = []
    real = _winograd.conv2d_forward
    monkeypatch.setattr(_winograd, "conv2d_forward",
                        lambda *args: reports.append(real(*args)) or reports[-1])
    big = np.full((1, 16, 8, 8), 3e37, np.float32)
    big[0, :, ::2] *= -1
    return big, np.full((16, 16, 3, 3), 1e-3, np.float32), reports


def _assert_finite_close(got, want):
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_overflowing_transform_falls_back(monkeypatch):
    # The kernel reports the overflow and the call recomputes without Winograd.
    x, w, reports = _overflow_case(monkeypatch)
    y = cyconv.conv2d(x, w, padding=1, method="winograd")
    assert reports == [False]
    _assert_finite_close(y, conv2d_api_ref(x.astype(np.float64), w.astype(np.float64),
                                           None, padding=1))


def test_overflowing_input_gradient_falls_back(monkeypatch):
    # The stride-1 input gradient is Winograd's forward of grad_output: an
    # overflowing transform there is recomputed by the shifted GEMMs too.
    gy, w, reports = _overflow_case(monkeypatch)
    x = np.ones_like(gy)
    mask = (True, False, False)
    gx, _, _ = cyconv.conv2d_backward(gy, x, w, padding=1, method="winograd", output_mask=mask)
    assert reports == [False]
    want, _, _ = cyconv.conv2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                        w.astype(np.float64), padding=1, method="direct",
                                        output_mask=mask)
    _assert_finite_close(gx, want)
