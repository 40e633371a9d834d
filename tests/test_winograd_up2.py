"""conv_transpose2d's 4x4/2 layers by F(4x4, 2x2) (_winograd_up2.pxi, _transpose_winograd)."""
import numpy as np
import pytest

import cyconv
import cyconv._transpose_winograd as up2
import cyconv._winograd_gemm as wg
from cyconv import _threads
from cyconv._winograd_transforms import transforms
from test_transpose import _full_params, _transpose_ref
from test_winograd_s2 import spy_kernel

# conv_transpose2d's docstring: within 64 * eps * max(|input| (*) |weight|)
# (plus eps * max|bias|); measured at most 14 eps (3..1024 channels, scales
# 1e-3..1e3, normal and heavy-tailed values), so 32 here.
UP2_EPS_FACTOR = 32


def _data(shape, kernels, groups, dtype, seed=0, scale=1.0, heavy=False):
    rng = np.random.default_rng(seed)
    draw = (lambda s: rng.standard_t(2, s)) if heavy else rng.standard_normal
    x = (scale * draw(shape)).astype(dtype)
    w = draw((shape[1], kernels // groups, 4, 4)).astype(dtype)
    b = rng.standard_normal(kernels).astype(dtype)
    return x, w, b


def _exact_and_bound(x, w, b, dtype, padding, groups=1, output_padding=0):
    full = _full_params(dict(stride=2, padding=padding, groups=groups,
                             output_padding=output_padding))
    exact = _transpose_ref(x, w, b, **full)
    sums = _transpose_ref(np.abs(x), np.abs(w), None, **full)
    extra = 0 if b is None else np.abs(b).max()
    return exact, UP2_EPS_FACTOR * np.finfo(dtype).eps * (sums.max() + extra)


def _run(x, w, b, padding, groups=1):
    """The kernel itself, whatever 'auto' would choose: (finite, out)."""
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    kernels = w.shape[1] * groups
    out = np.full((x.shape[0], kernels, 2 * x.shape[2] + 2 - 2 * ph,
                   2 * x.shape[3] + 2 - 2 * pw), np.nan, x.dtype)
    has_bias = b is not None
    bias = b if has_bias else np.zeros(kernels, x.dtype)
    return up2.run_up2("test", x, w, bias, has_bias, out, groups, (ph, pw)), out


def test_the_written_out_transforms_are_f42():
    # _wup2trans.h writes BT and AT out; these are its matrices (its comment),
    # and with G they compute the two-tap correlation.
    at, g, bt = transforms(4, 2, up2.POINTS_UP2)
    np.testing.assert_array_equal(bt, [[1, -2, -1, 2, 0], [0, 1, -3, 2, 0], [0, 1, -1, -2, 0],
                                       [0, 1, 0, -1, 0], [0, 1, -2, -1, 2]])
    np.testing.assert_array_equal(at, [[1, 1, 1, 1, 0], [0, -1, 1, 0.5, 0],
                                       [0, 1, 1, 0.25, 0], [0, -1, 1, 0.125, 1]])
    rng = np.random.default_rng(0)
    d, taps = rng.standard_normal(5), rng.standard_normal(2)
    np.testing.assert_allclose(at @ ((g @ taps) * (bt @ d)),
                               [taps[0] * d[i] + taps[1] * d[i + 1] for i in range(4)])
    np.testing.assert_array_equal(up2.G_UP2, g)


# (input shape, kernels, groups, padding): one pixel, images smaller and
# larger than a tile, odd and even sizes, padding 0..3 per axis (tiles shifted
# by its parity), groups, batch 1..9.
CASES = [
    ((1, 1, 1, 1), 1, 1, 0),
    ((1, 2, 1, 1), 3, 1, (0, 1)),
    ((2, 3, 5, 7), 2, 1, 1),
    ((2, 4, 6, 9), 3, 1, (0, 1)),
    ((3, 6, 11, 8), 4, 2, (2, 3)),
    ((1, 5, 3, 2), 7, 1, (1, 0)),
    ((9, 2, 4, 4), 2, 1, 2),
    ((1, 2, 5, 5), 2, 1, (3, 1)),
    ((2, 8, 16, 17), 8, 2, (1, 2)),
    ((4, 9, 7, 12), 6, 3, 1),
    ((1, 4, 2, 30), 4, 1, (1, 0)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernels, groups, padding", CASES)
def test_matches_the_definition(shape, kernels, groups, padding, dtype):
    x, w, b = _data(shape, kernels, groups, dtype)
    finite, got = _run(x, w, b, padding, groups)
    exact, bound = _exact_and_bound(x, w, b, dtype, padding, groups)
    assert finite and got.shape == exact.shape
    assert np.abs(got - exact).max() <= bound
    finite, got = _run(x, w, None, padding, groups)
    exact, bound = _exact_and_bound(x, w, None, dtype, padding, groups)
    assert finite and np.abs(got - exact).max() <= bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 64, 1024])
@pytest.mark.parametrize("scale", [1e-3, 1e3])
@pytest.mark.parametrize("heavy", [False, True])
def test_rounding_within_the_documented_bound(channels, scale, heavy, dtype):
    x, w, _ = _data((1, channels, 9, 9), 4, 1, dtype, seed=channels, scale=scale, heavy=heavy)
    finite, got = _run(x, w, None, 1)
    exact, bound = _exact_and_bound(x, w, None, dtype, 1)
    assert finite and np.abs(got - exact).max() <= bound


@pytest.mark.parametrize("block_bytes", [1, 20000, 100000])
def test_blocks_that_cut_images(monkeypatch, block_bytes):
    # Blocks of the fewest tiles, of part of a row of tiles, of tiles of two images.
    for name, value in (("WINOGRAD_BLOCK_BYTES", block_bytes),
                        ("WINOGRAD_MAX_BLOCK_BYTES", block_bytes), ("WINOGRAD_MIN_TILES", 1)):
        monkeypatch.setattr(wg, name, value)
    x, w, b = _data((3, 4, 13, 21), 5, 1, np.float64)
    finite, got = _run(x, w, b, 1)
    exact, bound = _exact_and_bound(x, w, b, np.float64, 1)
    assert finite and np.abs(got - exact).max() <= bound


def _spy(monkeypatch):
    return spy_kernel(monkeypatch, "up2_conv_transpose")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose2d_takes_it_where_it_pays(monkeypatch, dtype):
    calls = _spy(monkeypatch)
    monkeypatch.setattr(up2, "max_threads", lambda: 2)
    monkeypatch.setattr(up2, "UP2_AUTO_CHANNELS", 16)
    monkeypatch.setattr(up2, "UP2_AUTO_TILES", 32)
    # 16 channels and kernels, at least 32 tiles per thread: 56 x 56 outputs
    # are 8 x 8 tiles (padding 1: from -1), 58 x 54 8 x 7, per image.
    x, w, b = _data((4, 16, 28, 28), 16, 1, dtype)
    for padding in (1, (0, 2)):
        got = cyconv.conv_transpose2d(x, w, b, stride=2, padding=padding)
        exact, bound = _exact_and_bound(x, w, b, dtype, padding)
        assert got.dtype == dtype and np.abs(got - exact).max() <= bound
    # Unbatched input, and groups of 16.
    got = cyconv.conv_transpose2d(x[0], w, b, stride=2, padding=1)
    exact, bound = _exact_and_bound(x[:1], w, b, dtype, 1)
    assert got.shape == exact.shape[1:] and np.abs(got - exact[0]).max() <= bound
    xg = np.concatenate([x, x], axis=1)
    wg = np.concatenate([w, w[::-1]], axis=0)
    bg = np.concatenate([b, b])
    got = cyconv.conv_transpose2d(xg, wg, bg, stride=2, padding=1, groups=2)
    exact, bound = _exact_and_bound(xg, wg, bg, dtype, 1, groups=2)
    assert np.abs(got - exact).max() <= bound
    # output_padding: conv2d_backward's input gradient, the output one row and column larger.
    got = cyconv.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    exact, bound = _exact_and_bound(x, w, b, dtype, 1, output_padding=1)
    assert got.shape == exact.shape and np.abs(got - exact).max() <= bound
    assert len(calls) == 5, calls
    # Fewer channels or kernels, fewer tiles, fewer tiles than channels per
    # thread, another stride, kernel or dilation, or integer data: not.
    x40 = np.concatenate([x[:2]] * 20, axis=1)
    for xi, wi, kwargs in ((x[:, :8], w[:8], dict(stride=2)),
                           (x, w[:, :8], dict(stride=2)),
                           (x[:1, :, :14, :14], w, dict(stride=2)),
                           (x40, np.concatenate([w] * 20), dict(stride=2)),
                           (x, w, dict(stride=1)),
                           (x, w[:, :, :3, :3], dict(stride=2)),
                           (x, w, dict(stride=2, dilation=2)),
                           (x.astype(np.int64), w.astype(np.int64), dict(stride=2))):
        cyconv.conv_transpose2d(xi, wi, **kwargs, padding=1)
    assert len(calls) == 5, calls


@pytest.mark.skipif(_threads.blas_threads.get() is None,
                    reason="no thread control found for SciPy's BLAS")
def test_its_gemms_run_with_blas_on_one_thread(monkeypatch):
    calls = _spy(monkeypatch)
    before = _threads.blas_threads.get()
    x, w, b = _data((2, 16, 12, 12), 16, 1, np.float32)
    _run(x, w, b, 1)
    assert calls == [(cyconv._openmp.max_threads(), 1)]
    assert _threads.blas_threads.get() == before


@pytest.mark.parametrize("where", ["input", "weight", "overflow"])
def test_nonfinite_gives_the_exact_result(monkeypatch, where):
    # A transform would spread NaN or inf over a window's outputs (and turn
    # inf - inf into NaN where the sum has inf): conv_transpose2d then takes
    # the sums of the other paths, as conv2d's Winograd does.
    calls = _spy(monkeypatch)
    monkeypatch.setattr(up2, "up2_pays", lambda *args: True)  # a small case
    x, w, b = _data((2, 16, 11, 10), 16, 1, np.float32)
    if where == "input":
        x[1, 2, 5, 4], x[0, 0, 0, 8], x[0, 3, 6, 6] = np.nan, np.inf, -np.inf
    elif where == "weight":
        w[2, 1, 0, 2] = np.inf
    else:  # BT's 3 * x overflows float32; the sums stay finite
        x[0, 0, 4, 3] = 3e38
        w[0] = 0
    got = cyconv.conv_transpose2d(x, w, b, stride=2, padding=1)
    assert len(calls) == (0 if where == "weight" else 1)
    exact = _transpose_ref(x, w, b, **_full_params(dict(stride=2, padding=1)))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exact))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(exact))
    finite = np.isfinite(exact)
    if where == "overflow":
        assert finite.all()
    np.testing.assert_allclose(got[finite], exact[finite], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, padding", [((2, 6, 9, 11), 1), ((3, 6, 8, 8), (0, 2)),
                                            ((1, 6, 12, 7), (2, 1))])
def test_conv2d_backward_input_gradient_of_4x4_stride_2(monkeypatch, shape, padding, dtype):
    # The input gradient of a 4x4 stride-2 conv2d is conv_transpose2d of
    # grad_output cut to the input's size: F(4x4, 2x2) where 'auto' takes it,
    # checked against the direct sums in float64.
    calls = _spy(monkeypatch)
    monkeypatch.setattr(up2, "up2_pays", lambda *args: True)  # small cases
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((8, shape[1] // 2, 4, 4)).astype(dtype)
    gy = rng.standard_normal(cyconv.output_shape(x.shape, w.shape, stride=2, padding=padding,
                                                 groups=2)).astype(dtype)
    gx, gw, gb = cyconv.conv2d_backward(gy, x, w, stride=2, padding=padding, groups=2)
    assert len(calls) == 1
    exact = cyconv.conv2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                   w.astype(np.float64), stride=2, padding=padding, groups=2,
                                   method="direct")
    assert len(calls) == 1  # not for 'direct'
    canvas = np.zeros(x.shape[:2] + (x.shape[2] + 8, x.shape[3] + 8))
    for g in range(2):
        for p in range(4):
            for q in range(4):
                canvas[:, 3 * g:3 * g + 3, p:p + 2 * gy.shape[2]:2, q:q + 2 * gy.shape[3]:2] \
                    += np.einsum("nkhw,kc->nchw", np.abs(gy[:, 4 * g:4 * g + 4]),
                                 np.abs(w[4 * g:4 * g + 4, :, p, q]))
    bound = UP2_EPS_FACTOR * np.finfo(dtype).eps * canvas.max()
    assert gx.dtype == dtype and np.abs(gx - exact[0]).max() <= bound
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(gw, exact[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(gb, exact[2], rtol=tol, atol=tol)
    # A NaN in grad_output: the GEMM path's result, NaN where the sum has it.
    gy[0, 1, 1, 1] = np.nan
    gx = cyconv.conv2d_backward(gy, x, w, stride=2, padding=padding, groups=2,
                                output_mask=(True, False, False))[0]
    ref = cyconv.conv2d_backward(gy, x, w, stride=2, padding=padding, groups=2,
                                 method="im2col", output_mask=(True, False, False))[0]
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(ref))
    assert np.isnan(gx).any()


@pytest.mark.parametrize("where", ["weight", "products"])
def test_overflow_past_the_input_check_gives_the_exact_result(monkeypatch, where):
    # The transformed kernels (G has 8/3) or the products can overflow while
    # every input value and transformed input value is finite: the output
    # transform's check sends such a call to the sums too.
    calls = _spy(monkeypatch)
    monkeypatch.setattr(up2, "up2_pays", lambda *args: True)
    rng = np.random.default_rng(0)
    if where == "weight":
        x = (1e-3 * rng.standard_normal((2, 16, 12, 12))).astype(np.float32)
        w = (3e37 * rng.choice([-1, 1], (16, 16, 4, 4))).astype(np.float32)
    else:  # 64 channels of +-1e35: V finite, their sums in M not
        x = np.tile(1e35 * rng.choice([-1, 1], (2, 1, 12, 12)), (1, 64, 1, 1)).astype(np.float32)
        w = np.tile(rng.choice([-1, 1], (1, 16, 4, 4)), (64, 1, 1, 1)).astype(np.float32)
    got = cyconv.conv_transpose2d(x, w, stride=2, padding=1)
    assert len(calls) == 1
    exact = _transpose_ref(x, w, None, **_full_params(dict(stride=2, padding=1)))
    finite = np.isfinite(exact)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], exact[finite], rtol=1e-5,
                               atol=1e-5 * np.abs(exact[finite]).max())


def test_float_bias_sets_the_dtype_on_every_path():
    # float32 data with a float64 bias: float64, whichever path runs.
    x, w, _ = _data((2, 16, 32, 32), 16, 1, np.float32)
    b = np.ones(16)
    for xi in (x, x[:1, :, :4, :4]):
        got = cyconv.conv_transpose2d(xi, w, b, stride=2, padding=1)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, _transpose_ref(xi, w, b, **_full_params(
            dict(stride=2, padding=1))), rtol=1e-4, atol=1e-4)
    assert cyconv.conv_transpose2d(x[:1], w, b, stride=1, padding=1).dtype == np.float64
