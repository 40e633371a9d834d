"""conv2d(method='winograd') at stride 2: F(2, 3) along the rows (_winograd_s2.pxi)."""
import numpy as np
import pytest

import cyconv
import cyconv._winograd_s2_gemm as s2
from cyconv import _threads
from cyconv._conv import array_geometry
from _reference import conv2d_api_ref, conv2d_ref
from test_winograd import CASES as STRIDE1_CASES

# conv2d's docstring: |result - exact| stays within the stride-1 bound,
# 64 * eps * max(|input| (*) |weight|) (plus eps * max|bias|); measured at
# most 7.5 eps (float64, 1024 heavy-tailed channels), so 16 here.
S2_EPS_FACTOR = 16


def _data(shape, kernels, groups, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    w = rng.standard_normal((kernels, shape[1] // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(kernels).astype(dtype)
    return x, w, b


def _bound(x, w, b, dtype, **kwargs):
    sums = conv2d_api_ref(np.abs(x), np.abs(w), **kwargs)
    extra = 0 if b is None else np.abs(b).max()
    return S2_EPS_FACTOR * np.finfo(dtype).eps * (np.abs(sums).max() + extra)


# (input shape, kernels, groups, padding): stride 1's cases (1x1 outputs,
# padding 0/1/2 and uneven, groups, batch 1..9; here odd and even output
# widths, a last tile with one output) and images of many rows; products
# deeper than the packed GEMM's chunk of 128 (3 * 50 rows, 300 for the
# pairs) with a last, partial block of kernels.
CASES = [case for case in STRIDE1_CASES if case[3] != "same"] + [
    ((2, 5, 9, 37), 7, 1, (2, 0)),
    ((1, 8, 28, 28), 16, 1, 1),
    ((2, 16, 15, 8), 16, 2, 1),
    ((2, 50, 13, 11), 9, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernels, groups, padding", CASES)
def test_matches_the_exact_sum(shape, kernels, groups, padding, dtype):
    x, w, b = _data(shape, kernels, groups, dtype)
    kwargs = dict(stride=2, padding=padding, groups=groups)
    got = cyconv.conv2d(x, w, b, **kwargs, method="winograd")
    exact = conv2d_api_ref(x, w, b, **kwargs)
    assert got.dtype == dtype and got.shape == exact.shape
    assert np.abs(got - exact).max() <= _bound(x, w, b, dtype, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 64, 1024])
@pytest.mark.parametrize("scale", [1e-3, 1e3])
@pytest.mark.parametrize("heavy", [False, True])
def test_rounding_within_the_documented_bound(channels, scale, heavy, dtype):
    x, w, _ = _data((1, channels, 9, 9), 4, 1, dtype, seed=channels, scale=scale)
    if heavy:  # Student's t with 2 degrees of freedom: a few large values
        rng = np.random.default_rng(channels)
        x = (scale * rng.standard_t(2, x.shape)).astype(dtype)
        w = rng.standard_t(2, w.shape).astype(dtype)
    got = cyconv.conv2d(x, w, stride=2, padding=1, method="winograd")
    exact = conv2d_api_ref(x, w, stride=2, padding=1)
    assert np.abs(got - exact).max() <= _bound(x, w, None, dtype, stride=2, padding=1)


@pytest.mark.parametrize("block_bytes", [1, 5000, 40000])
def test_blocks_that_cut_images(monkeypatch, block_bytes):
    # Blocks of one row, of a few rows and of rows from two images: each
    # block's segments (its rows of one image) go through the same sums.
    monkeypatch.setattr(s2, "S2_BLOCK_BYTES", block_bytes)
    x, w, b = _data((3, 4, 11, 14), 5, 1, np.float64)
    got = cyconv.conv2d(x, w, b, stride=2, padding=1, method="winograd")
    exact = conv2d_api_ref(x, w, b, stride=2, padding=1)
    np.testing.assert_allclose(got, exact, rtol=0, atol=_bound(x, w, b, np.float64,
                                                                stride=2, padding=1))


@pytest.mark.parametrize("kh, stride, dilation, pads", [
    (1, (1, 2), (1, 1), (0, 1)),
    (2, (3, 2), (1, 1), (1, 0)),
    (3, (1, 2), (2, 1), (2, 1)),
    (5, (2, 2), (1, 1), (2, 2)),
])
def test_the_kernel_takes_any_rows(kh, stride, dilation, pads):
    # The kernel's rows run at any height, stride and dilation (one row of
    # three taps per kernel row); conv2d only sends 3x3 at stride 2 to it.
    rng = np.random.default_rng(kh)
    x = rng.standard_normal((2, 3, 13, 12))
    w = rng.standard_normal((4, 3, kh, 3))
    b = rng.standard_normal(4)
    geom = array_geometry("conv2d", x.shape, w.shape, stride, pads, dilation, 1)
    out = np.full(geom.output_shape(), np.nan)
    assert s2.run_winograd_s2_forward("conv2d", x, w, b, True, out, geom, *pads)
    exact = conv2d_ref(x, w, b, stride, (pads[0], pads[0], pads[1], pads[1]), dilation)
    np.testing.assert_allclose(out, exact, rtol=0, atol=1e-12 * np.abs(exact).max())


def spy_kernel(monkeypatch, name):
    """Calls of _winograd's kernel ``name`` from now on: (its n_threads, BLAS's threads then)."""
    calls = []
    real = getattr(s2._winograd, name)

    def spy(*args):
        calls.append((args[-1], _threads.blas_threads.get()))
        return real(*args)

    monkeypatch.setattr(s2._winograd, name, spy)
    return calls


def _spy(monkeypatch):
    return spy_kernel(monkeypatch, "s2_conv2d_forward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_takes_it_for_many_channels_and_columns(monkeypatch, dtype):
    calls = _spy(monkeypatch)
    # 32 channels and kernels; 8*14*7 = 784 columns of two outputs each.
    monkeypatch.setattr(s2, "max_threads", lambda: 2)
    x, w, b = _data((8, 32, 28, 28), 32, 1, dtype)
    got = cyconv.conv2d(x, w, b, stride=2, padding=1)
    assert len(calls) == 1
    exact = conv2d_api_ref(x, w, b, stride=2, padding=1)
    assert np.abs(got - exact).max() <= _bound(x, w, b, dtype, stride=2, padding=1)
    # Fewer channels or kernels per group, fewer columns, another stride or
    # integer data: not.
    for xi, wi, kwargs in ((x[:, :16], w[:, :16], dict(stride=2)),
                           (x, w[:16], dict(stride=2)),
                           (x[:4], w, dict(stride=2)),
                           (x, w, dict(stride=(2, 1))),
                           (x.astype(np.int64), w.astype(np.int64), dict(stride=2))):
        cyconv.conv2d(xi, wi, **kwargs, padding=1)
    assert len(calls) == 1
    # 64 channels and kernels take it from 8*7*4 = 224 columns (112 per
    # thread, S2_WIDE_COLUMNS); 32 channels do not.
    x, w, b = _data((8, 64, 14, 14), 64, 1, dtype)
    got = cyconv.conv2d(x, w, b, stride=2, padding=1)
    assert len(calls) == 2
    exact = conv2d_api_ref(x, w, b, stride=2, padding=1)
    assert np.abs(got - exact).max() <= _bound(x, w, b, dtype, stride=2, padding=1)
    cyconv.conv2d(x[:, :32], w[:32, :32], stride=2, padding=1)
    cyconv.conv2d(x[:4], w, stride=2, padding=1)  # 56 per thread
    assert len(calls) == 2


def test_it_runs_on_the_kernel_threads_and_leaves_blas_alone(monkeypatch):
    # Its products run on _wgemm.h's packed GEMM: BLAS keeps its setting, and
    # the kernel threads run whether or not BLAS's threads can be held.
    calls = _spy(monkeypatch)
    before = _threads.blas_threads.get()
    x, w, _ = _data((2, 16, 12, 12), 16, 1, np.float32)
    cyconv.conv2d(x, w, stride=2, padding=1, method="winograd")
    assert calls == [(cyconv._openmp.max_threads(), before)]

    class Unknown:  # a BLAS whose threads cannot be held (GEMM paths go to 1 thread)
        controlled = False

        def get(self):
            return "unknown"

    monkeypatch.setattr(_threads, "blas_threads", Unknown())
    cyconv.conv2d(x, w, stride=2, padding=1, method="winograd")
    assert calls[1] == (cyconv._openmp.max_threads(), "unknown")


@pytest.mark.parametrize("method", ["auto", "winograd"])
@pytest.mark.parametrize("where", ["input", "weight", "overflow", "overflow at a row's end"])
def test_nonfinite_gives_the_direct_result(where, method):
    # The differences (x0 - x2) would turn inf - inf into NaN where the sum
    # has an inf: such calls take an exact path, as the stride-1 Winograd does.
    x, w, b = _data((2, 16, 11, 10), 16, 1, np.float32)
    padding = 1
    if where == "input":
        x[1, 2, 5, 4], x[0, 0, 0, 8], x[0, 3, 6, 6] = np.nan, np.inf, -np.inf
    elif where == "weight":
        w[2, 1, 0, 2] = np.inf
    elif where == "overflow":  # x0 - x2 overflows float32; the direct sum stays finite
        x[0, 0, 4, 3], x[0, 0, 4, 5] = 3e38, -3e38
        w[:, 0] = 0
    else:  # x4 - x2 of a row's last tile (x4 read apart from the rest)
        padding = 0
        x[0, 0, 4, 8], x[0, 0, 4, 6] = 3e38, -3e38
        w[:, 0] = 0
    got = cyconv.conv2d(x, w, b, stride=2, padding=padding, method=method)
    direct = cyconv.conv2d(x, w, b, stride=2, padding=padding, method="direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(direct))
    finite = np.isfinite(direct)
    if where == "overflow":
        assert finite.all()
    np.testing.assert_allclose(got[finite], direct[finite], rtol=1e-5, atol=1e-4)


def test_the_backward_keeps_stride_1():
    x, w, _ = _data((1, 4, 9, 9), 4, 1, np.float64)
    gy = np.ones(cyconv.output_shape(x.shape, w.shape, stride=2))
    with pytest.raises(ValueError, match="method='winograd' needs 3x3 kernels at stride 1 "):
        cyconv.conv2d_backward(gy, x, w, stride=2, method="winograd")
    with pytest.raises(ValueError, match=r"stride 1 or 2 .*stride \(3, 3\)"):
        cyconv.conv2d(x, w, stride=3, method="winograd")
