"""im2col against im2col_ref, NumPy's sliding windows, conv2d and torch's unfold."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from numpy.testing import assert_allclose, assert_array_equal

import cyconv

from _reference import TOL, conv2d_ref, im2col_ref, ref_pads

FLOATS = (np.float32, np.float64)

# (input shape NCHW, kernel_size, stride, padding, dilation)
CASES = [
    pytest.param((2, 3, 5, 4), 1, 1, 0, 1, id="1x1"),
    pytest.param((1, 2, 5, 6), (2, 3), 1, 0, 1, id="non-square-kernel"),
    pytest.param((2, 1, 7, 5), 3, (2, 1), (1, 2), 1, id="stride-pad"),
    pytest.param((1, 2, 9, 8), (3, 2), 1, 2, (2, 3), id="dilation"),
    pytest.param((1, 2, 4, 3), (6, 5), 1, 1, 1, id="kernel-as-large-as-padded"),
    pytest.param((1, 2, 3, 4), 2, 2, 3, 1, id="pad-over-kernel"),
    pytest.param((1, 1, 8, 9), 2, 3, 0, 1, id="stride-over-kernel"),
    pytest.param((0, 2, 5, 5), 3, 1, 1, 1, id="N0"),
    pytest.param((1, 2, 0, 3), 1, 1, 1, 1, id="H0-all-padding"),
    pytest.param((3, 4, 6, 1), (3, 1), (1, 2), (1, 0), 1, id="W1"),
]


def pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def run_im2col(x, *args, **kwargs):
    """im2col, checking a new C-contiguous result and an unchanged input."""
    before = np.array(x, copy=True)
    cols = cyconv.im2col(x, *args, **kwargs)
    assert isinstance(cols, np.ndarray) and cols.flags.c_contiguous
    assert_array_equal(x, before)
    assert not np.shares_memory(cols, x)
    return cols


def windows_ref(x, kernel, stride, padding, dilation):
    """Independent of im2col_ref: NumPy's sliding windows of the padded (C, H, W) image."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel, stride, padding, dilation))
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(1, 2))
    win = win[:, ::sh, ::sw, ::dh, ::dw]  # (C, Ho, Wo, kh, kw)
    c, ho, wo = win.shape[:3]
    return win.transpose(0, 3, 4, 1, 2).reshape(c * kh * kw, ho * wo)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, kernel, stride, padding, dilation", CASES)
def test_matches_references(xs, kernel, stride, padding, dilation, dtype):
    rng = np.random.default_rng(20)
    x = rng.standard_normal(xs).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    cols = run_im2col(x, kernel, **kwargs)
    ref = im2col_ref(x, *pair(kernel), pair(stride), pair(padding), pair(dilation))
    assert cols.dtype == dtype and cols.shape == ref.shape
    # Unrolling copies values: exact in any dtype.
    assert_array_equal(cols, ref)
    for n in range(xs[0]):
        assert_array_equal(cols[n], windows_ref(x[n], kernel, stride, padding, dilation))
    # 3-D and 2-D inputs drop the batch (and channel) axis.
    if xs[0] == 1:
        assert_array_equal(run_im2col(x[0], kernel, **kwargs), ref[0])
        if xs[1] == 1:
            assert_array_equal(run_im2col(x[0, 0], kernel, **kwargs), ref[0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, kernel, stride, padding, dilation", CASES)
def test_conv2d_is_a_matrix_product(xs, kernel, stride, padding, dilation, dtype):
    # API.md: conv2d(x, w) == (w.reshape(K, -1) @ im2col(x, ...)).reshape(...)
    rng = np.random.default_rng(21)
    kh, kw = pair(kernel)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((5, xs[1], kh, kw)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    cols = run_im2col(x, kernel, **kwargs)
    for method in ("direct", "im2col", "auto"):
        out = cyconv.conv2d(x, w, method=method, **kwargs)
        product = (w.reshape(5, -1) @ cols).reshape(out.shape)
        assert product.dtype == out.dtype == dtype
        assert_allclose(out, product, **TOL[np.dtype(dtype)])
    ref = conv2d_ref(x, w, None, pair(stride), ref_pads(padding, (kh, kw), pair(dilation)),
                     pair(dilation))
    assert_allclose(out, ref, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype, expected", [
    (np.float32, np.float32), (np.float64, np.float64), (np.int32, np.float64),
    (np.int64, np.float64), (np.uint8, np.float64), (np.bool_, np.float64),
])
def test_result_dtype(dtype, expected):
    x = (np.arange(24).reshape(2, 3, 4) % 2).astype(dtype)
    cols = run_im2col(x, (2, 3), padding=1)
    assert cols.dtype == expected
    assert_array_equal(cols, im2col_ref(x[None], 2, 3, padding=(1, 1))[0])


def test_memory_layouts(layout):
    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 3, 5, 6)).astype(np.float32)
    ref = im2col_ref(x, 3, 2, (2, 1), (1, 0), (1, 2))
    for dtype in (np.float32, np.float64):
        xl = layout(x.astype(dtype))
        cols = run_im2col(xl, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
        assert cols.dtype == dtype
        assert_array_equal(cols, ref)
        assert_array_equal(run_im2col(layout(x[0, 0].astype(dtype)), 2),
                           im2col_ref(x[:, :1], 2, 2)[0])


def test_broadcast_input():
    row = np.arange(6.0)
    x = np.broadcast_to(row, (2, 3, 4, 6))  # every image, channel and row the same
    assert 0 in x.strides
    cols = run_im2col(x, (2, 3), stride=(1, 2))
    assert_array_equal(cols, im2col_ref(np.array(x), 2, 3, (1, 2)))


def test_python_list_input():
    x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    cols = run_im2col(x, 2)
    # Column t is the t-th 2x2 window (row-major), read row by row: by hand,
    # the windows are [1 2 4 5], [2 3 5 6], [4 5 7 8] and [5 6 8 9].
    windows = [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]]
    assert cols.dtype == np.float64
    assert_array_equal(cols, np.transpose(windows))


@pytest.mark.parametrize("xs, kernel, stride, padding, dilation", CASES[:6])
def test_matches_torch_unfold(xs, kernel, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(23)
    x = rng.standard_normal(xs)
    expected = torch.nn.functional.unfold(torch.from_numpy(x), kernel, dilation=dilation,
                                          padding=padding, stride=stride).numpy()
    assert_array_equal(run_im2col(x, kernel, stride=stride, padding=padding,
                                  dilation=dilation), expected)
