"""The Winograd F(3x3, 4x4) weight gradient (cyconv._winograd_wgrad_gemm)."""
import contextlib

import numpy as np
import pytest

import cyconv
import cyconv._backward
import cyconv._winograd_gemm as wg
import cyconv._winograd_wgrad_gemm as wwg
from cyconv._threads import thread_limit
from _reference import TOL
from test_winograd import CASES as FORWARD_CASES, _pads

# The documented bound (conv2d_backward's docstring): |winograd - exact| is at
# most WGRAD_EPS_FACTOR * eps * max(|input| (*) |grad_output|), the largest
# weight gradient of the absolute values. Measured (benchmarks/wgrad_accuracy.py):
# at most 12 eps in float32 for channels 3..512, scales 1e-3..1e3, normal,
# uniform and heavy-tailed values (im2col: 7 eps).
WGRAD_EPS_FACTOR = 64


def test_1d_transforms():
    """AT @ ((G @ g) * (BT @ d)) is the 3-output correlation of 6 inputs with 4 taps."""
    at, g_mat, bt = wwg.wgrad_transforms()
    assert at.shape == (3, 6) and g_mat.shape == (6, 4) and bt.shape == (6, 6)
    # The tile transforms multiply by integers only (exact in floating point).
    assert np.array_equal(g_mat, np.round(g_mat)) and np.array_equal(bt, np.round(bt))
    rng = np.random.default_rng(0)
    for _ in range(20):
        g, d = rng.standard_normal(4), rng.standard_normal(6)
        expected = [g @ d[p:p + 4] for p in range(3)]
        np.testing.assert_allclose(at @ ((g_mat @ g) * (bt @ d)), expected,
                                   rtol=1e-12, atol=1e-12)


def test_2d_tile():
    """The 2-D form on one tile: AT [(G gy G.T) * (BT d BT.T)] AT.T."""
    at, g_mat, bt = wwg.wgrad_transforms()
    rng = np.random.default_rng(1)
    gy, d = rng.standard_normal((4, 4)), rng.standard_normal((6, 6))
    expected = [[np.sum(gy * d[p:p + 4, q:q + 4]) for q in range(3)] for p in range(3)]
    got = at @ ((g_mat @ gy @ g_mat.T) * (bt @ d @ bt.T)) @ at.T
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [1, 6, 13, 40])
def test_written_out_tile_transforms_are_the_derived_ones(dtype, t):
    # _wtrans.h writes BT and G out: on the identity (padded to t columns,
    # random beyond) they give the derived matrices exactly (small integers),
    # at every column count (vector bodies and remainders).
    from cyconv._dispatch import _winograd_wgrad
    _, g_mat, bt = wwg.wgrad_transforms()
    rng = np.random.default_rng(t)
    d = rng.standard_normal((6, t)).astype(dtype)
    d[:, :min(6, t)] = np.eye(6, dtype=dtype)[:, :min(6, t)]
    v, u = np.full((6, t), np.nan, dtype), np.full((6, t), np.nan, dtype)
    _winograd_wgrad._tile_transforms(d, v, u)
    np.testing.assert_array_equal(v[:, :min(6, t)], bt[:, :min(6, t)])
    np.testing.assert_array_equal(u[:, :min(4, t)], g_mat[:, :min(4, t)])
    d64 = d.astype(np.float64)
    atol = 32 * np.finfo(dtype).eps * np.abs(d64).max()
    np.testing.assert_allclose(v, bt @ d64, rtol=0, atol=atol)
    np.testing.assert_allclose(u, g_mat @ d64[:4], rtol=0, atol=atol)


def _wgrad_ref(gy, x, pads, groups):
    """grad_weight of a stride-1 3x3 conv2d by the definition, in float64."""
    gy, x = gy.astype(np.float64), x.astype(np.float64)
    n, k, ho, wo = gy.shape
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    cg, kg = x.shape[1] // groups, k // groups
    out = np.zeros((k, cg, 3, 3))
    for g in range(groups):
        ks, cs = slice(g * kg, (g + 1) * kg), slice(g * cg, (g + 1) * cg)
        for p in range(3):
            for q in range(3):
                out[ks, :, p, q] = np.einsum("nkhw,nchw->kc", gy[:, ks],
                                             xp[:, cs, p:p + ho, q:q + wo])
    return out


def _tol(dtype, sums):
    return WGRAD_EPS_FACTOR * np.finfo(dtype).eps * np.abs(sums).max()


# test_winograd's cases (every tile edge, padding 0/1/2 and uneven, groups,
# batch 1..9) and two more whose sizes are multiples of the 4x4 tile.
CASES = FORWARD_CASES + [((2, 4, 8, 8), 4, 1, 0), ((2, 5, 4, 4), 3, 1, 2)]


@pytest.fixture(params=["default", "tiny", "kernels"])
def blocks(request, monkeypatch):
    """Default blocks, blocks of 3 tiles (many tasks, blocks across images), or
    (with several threads) the kernels split among the threads, in blocks of 3 tiles."""
    if request.param == "kernels":
        monkeypatch.setattr(wwg, "WGRAD_SPLIT_KERNELS", 1)
        monkeypatch.setattr(wwg, "WGRAD_SPLIT_RATIO", 0)
    if request.param != "default":
        monkeypatch.setattr(wwg, "WGRAD_BLOCK_BYTES", 1)
        monkeypatch.setattr(wwg, "WGRAD_MAX_BLOCK_BYTES", 1)
        monkeypatch.setattr(wwg, "WGRAD_MIN_TILES", 3)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, groups, padding", CASES)
def test_weight_gradient_matches_reference(blocks, shape, k, groups, padding, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((k, shape[1] // groups, 3, 3)).astype(dtype)
    gy = rng.standard_normal(cyconv.output_shape(x.shape, w.shape, padding=padding,
                                                 groups=groups)).astype(dtype)
    gx, gw, gb = cyconv.conv2d_backward(gy, x, w, padding=padding, groups=groups,
                                        method="winograd")
    assert gw.dtype == dtype and gw.shape == w.shape and gw.flags.c_contiguous
    pads = _pads(padding)
    ref = _wgrad_ref(gy, x, pads, groups)
    sums = _wgrad_ref(np.abs(gy), np.abs(x), pads, groups)
    np.testing.assert_allclose(gw, ref, rtol=0, atol=_tol(dtype, sums))
    direct = cyconv.conv2d_backward(gy, x, w, padding=padding, groups=groups,
                                    method="direct")
    np.testing.assert_allclose(gw, direct[1], rtol=0, atol=2 * _tol(dtype, sums))
    np.testing.assert_allclose(gb, direct[2], **TOL[np.dtype(dtype)])


@pytest.fixture
def nan_scratch(monkeypatch):
    """The weight gradient's reused buffers handed out full of NaN (as stale data could be)."""
    real = wwg.scratch

    @contextlib.contextmanager
    def poisoned(shape, dtype):
        with real(shape, dtype) as array:
            array.fill(np.nan)
            yield array

    monkeypatch.setattr(wwg, "scratch", poisoned)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n, c, size, k, groups, padding", [
    (1, 2, 5, 2, 1, 1),        # one task: a second thread's sums never written
    (3, 4, 7, 6, 2, 0),        # groups, few tiles
    (2, 32, 18, 32, 2, 2),     # enough work for both threads, blocks of 3 tiles
    (9, 8, 13, 16, 1, 1),
])
def test_stale_buffers_do_not_leak(nan_scratch, monkeypatch, threads, n, c, size, k, groups,
                                   padding):
    """Every thread's first task writes its sums (no zeroing) and the kernels read the
    planes in place, zero beyond: nothing of the buffers' old contents reaches the result."""
    monkeypatch.setattr(wwg, "WGRAD_BLOCK_BYTES", 1)
    monkeypatch.setattr(wwg, "WGRAD_MAX_BLOCK_BYTES", 1)
    monkeypatch.setattr(wwg, "WGRAD_MIN_TILES", 3)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((n, c, size, size))
    w = rng.standard_normal((k, c // groups, 3, 3))
    gy = rng.standard_normal(cyconv.output_shape(x.shape, w.shape, padding=padding,
                                                 groups=groups))
    with thread_limit(threads):
        gw = wwg.run_winograd_grad_weight("f", x, gy, w.shape, groups, padding, padding)
    assert gw is not None  # no NaN showed (else conv2d_backward would take im2col's)
    pads = _pads(padding)
    sums = _wgrad_ref(np.abs(gy), np.abs(x), pads, groups)
    np.testing.assert_allclose(gw, _wgrad_ref(gy, x, pads, groups), rtol=0,
                               atol=_tol(np.float64, sums))


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_padding_modes(padding_mode):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 10))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 11, 12))
    got = cyconv.conv2d_backward(gy, x, w, padding=2, padding_mode=padding_mode,
                                 method="winograd")
    expected = cyconv.conv2d_backward(gy, x, w, padding=2, padding_mode=padding_mode,
                                      method="direct")
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [3, 64, 512])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_documented_error_bound(c, scale):
    """float32 within the docstring's bound of the exact (long double) sums."""
    rng = np.random.default_rng(c)
    x = (rng.random((2, c, 15, 13)) * scale).astype(np.float32)
    gy = (rng.standard_normal((2, 3, 15, 13)) * scale).astype(np.float32)
    w = np.zeros((3, c, 3, 3), np.float32)
    xp = np.pad(x.astype(np.longdouble), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (15, 13), axis=(2, 3))
    exact = np.einsum("ncpqij,nkij->kcpq", win, gy.astype(np.longdouble))
    sums = np.einsum("ncpqij,nkij->kcpq", np.abs(win), np.abs(gy.astype(np.longdouble)))
    got = cyconv.conv2d_backward(gy, x, w, padding=1, method="winograd",
                                 output_mask=(False, True, False))[1]
    err = np.abs(got - exact).max() / sums.max()
    assert err <= WGRAD_EPS_FACTOR * np.finfo(np.float32).eps


@pytest.mark.parametrize("method", ["winograd", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["input", "grad_output", "grad_output edge"])
def test_nonfinite_gives_im2cols_result(monkeypatch, method, where, dtype):
    """A NaN or inf would spread over a whole tile: such inputs take im2col's weight gradient."""
    monkeypatch.setattr(cyconv._backward, "winograd_wgrad_pays", lambda geom, dtype: True)
    # im2col's weight gradient on OpenBLAS under 'auto' too, as method='im2col' runs it.
    monkeypatch.setattr(cyconv._backward, "PACKED_IM2COL_WEIGHT_BYTES", -1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 11, 10)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    gy = rng.standard_normal((2, 4, 11, 10)).astype(dtype)
    if where == "input":
        x[1, 2, 5, 4], x[0, 0, 0, 9] = np.nan, np.inf
    elif where == "grad_output":
        gy[0, 1, 3, 3] = np.inf
    else:  # meets the zero padding: inf * 0 = NaN there, as the definition has it
        gy[0, 1, 0, 0] = np.inf
    gw = cyconv.conv2d_backward(gy, x, w, padding=1, method=method)[1]
    expected = cyconv.conv2d_backward(gy, x, w, padding=1, method="im2col")[1]
    np.testing.assert_array_equal(gw, expected)
    if where == "grad_output edge":
        assert np.isnan(gw[1, :, 0, 0]).all()


@pytest.mark.parametrize("n, channels, size, expected", [
    (4, 16, 16, True),
    (1, 16, 28, True),
    (2, 64, 20, True),
    (4, 8, 16, False),    # too few channels
    (3, 16, 14, False),   # too few output pixels
])
def test_auto_takes_winograd_by_the_rule(monkeypatch, n, channels, size, expected):
    calls = []
    real = wwg._winograd_wgrad.transformed_sums
    monkeypatch.setattr(wwg._winograd_wgrad, "transformed_sums",
                        lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    gw = cyconv.conv2d_backward(gy, x, w, padding=1)[1]
    assert bool(calls) == expected
    ref = _wgrad_ref(gy, x, (1, 1, 1, 1), 1)
    sums = _wgrad_ref(np.abs(gy), np.abs(x), (1, 1, 1, 1), 1)
    np.testing.assert_allclose(gw, ref, rtol=0, atol=_tol(np.float32, sums))


@pytest.mark.parametrize("n, size, channels, expected", [
    (2, 16, 64, True),     # 2*4*4 = 32 tiles (times 64 channels: conv2d's work per thread)
    (2, 16, 8, False),     # conv2d's rule: at least 16 channels and kernels
    (1, 16, 128, False),   # 16 tiles (conv2d's rule holds)
])
def test_auto_input_gradient_takes_winograd_where_conv2d_does(monkeypatch, n, size, channels,
                                                              expected):
    calls = []
    real = wg._winograd.conv2d_forward
    monkeypatch.setattr(wg._winograd, "conv2d_forward", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    with thread_limit(1):  # conv2d's rule asks for work per thread
        gx = cyconv.conv2d_backward(gy, x, w, padding=1, output_mask=(True, False, False))[0]
    assert bool(calls) == expected
    expected_gx = cyconv.conv2d_backward(gy, x, w, padding=1, method="direct")[0]
    np.testing.assert_allclose(gx, expected_gx, rtol=0, atol=1e-4 * np.abs(expected_gx).max())
    # A NaN or inf in grad_output would spread over a tile: the kernel notices it
    # (no pass over grad_output before) and the shifted GEMMs compute the result.
    calls.clear()
    gy[-1, 2, 3, 4] = np.inf
    with thread_limit(1):
        gx = cyconv.conv2d_backward(gy, x, w, padding=1, output_mask=(True, False, False))[0]
    assert calls == [1] * expected
    expected_gx = cyconv.conv2d_backward(gy, x, w, padding=1, method="direct")[0]
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(expected_gx))


def test_auto_keeps_integer_data_exact(monkeypatch):
    """As conv2d: integer data never takes Winograd's rounding under 'auto'."""
    calls = []
    for module, name in ((wwg._winograd_wgrad, "transformed_sums"),
                         (wg._winograd, "conv2d_forward")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, real=real: calls.append(1) or real(*a))
    rng = np.random.default_rng(8)
    x = rng.integers(-9, 10, (2, 16, 28, 28))
    w = rng.integers(-9, 10, (16, 16, 3, 3))
    gy = rng.integers(-9, 10, (2, 16, 28, 28))
    got = cyconv.conv2d_backward(gy, x, w, padding=1)
    assert not calls
    np.testing.assert_array_equal(got[0], _grad_input_ref(gy, w))
    np.testing.assert_array_equal(got[1], _wgrad_ref(gy, x, (1, 1, 1, 1), 1))


def _grad_input_ref(gy, w):
    """grad_input of a padding-1 stride-1 3x3 conv2d by the definition, in float64."""
    n, k, ho, wo = gy.shape
    gxp = np.zeros((n, w.shape[1], ho + 2, wo + 2))
    for p in range(3):
        for q in range(3):
            gxp[:, :, p:p + ho, q:q + wo] += np.einsum("nkhw,kc->nchw", gy, w[:, :, p, q])
    return gxp[:, :, 1:-1, 1:-1]


def test_overflowing_transform_takes_im2cols_result(monkeypatch):
    """Finite values whose transformed input tiles overflow (rows of alternating sign near
    float32's limit add up) while the true sums do not: im2col's weight gradient instead."""
    results = []
    real = wwg.run_winograd_grad_weight
    monkeypatch.setattr(cyconv._backward, "run_winograd_grad_weight",
                        lambda *args: results.append(real(*args)) or results[-1])
    x = np.full((1, 16, 8, 8), 3e37, np.float32)
    x[0, :, ::2] *= -1
    gy = np.full((1, 4, 8, 8), 1e-30, np.float32)
    w = np.ones((4, 16, 3, 3), np.float32)
    mask = (False, True, False)
    gw = cyconv.conv2d_backward(gy, x, w, padding=1, method="winograd", output_mask=mask)[1]
    assert len(results) == 1 and results[0] is None
    assert np.isfinite(gw).all()
    want = _wgrad_ref(gy, x, (1, 1, 1, 1), 1)
    np.testing.assert_allclose(gw, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_nonfinite_grad_output_falls_back_with_the_padding_summed(monkeypatch):
    """Where 'auto' falls back to the direct loops (which skip padded taps unless the
    padding is written out), an inf of grad_output on the edge still meets the
    padding's zeros: NaN there, as the definition (and im2col) has it."""
    monkeypatch.setattr(cyconv._backward, "winograd_wgrad_pays", lambda geom, dtype: True)
    monkeypatch.setattr(cyconv._backward, "choose_method", lambda geom, dtype: "direct")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 11, 10))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 11, 10))
    gy[0, 1, 0, 0] = np.inf
    gw = cyconv.conv2d_backward(gy, x, w, padding=1, output_mask=(False, True, False))[1]
    expected = cyconv.conv2d_backward(gy, x, w, padding=1, method="im2col",
                                      output_mask=(False, True, False))[1]
    assert np.isnan(gw[1, :, 0, 0]).all()
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(expected))
    np.testing.assert_allclose(gw, expected, rtol=1e-12, atol=1e-12)
