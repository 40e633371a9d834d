"""conv2d and output_shape against independent references.

The references are tests/_reference.py (the API.md sum written with NumPy,
padding modes through numpy.pad) and scipy.signal.correlate2d for one channel.
"""
import types

import numpy as np
import pytest
import scipy.signal
from numpy.testing import assert_allclose, assert_array_equal

import cyconv
import cyconv._conv

from _reference import TOL, conv2d_api_ref, ref_pads

METHODS = ("direct", "im2col", "auto")
FLOATS = (np.float32, np.float64)
SHAPE_KEYS = ("stride", "padding", "dilation", "groups")

# (input shape NCHW, weight shape (K, C/groups, kh, kw), conv2d parameters)
CASES = [
    pytest.param((2, 3, 5, 4), (4, 3, 1, 1), {}, id="1x1"),
    pytest.param((1, 2, 5, 4), (3, 2, 1, 1), dict(dilation=3), id="1x1-dilated"),
    pytest.param((1, 2, 5, 6), (3, 2, 1, 1), dict(stride=2), id="1x1-stride2"),
    pytest.param((1, 2, 4, 3), (3, 2, 1, 1), dict(padding=1), id="1x1-pad1"),
    pytest.param((2, 2, 4, 3), (3, 2, 6, 5), dict(padding=1), id="kernel-as-large-as-padded"),
    pytest.param((1, 3, 7, 5), (5, 3, 3, 2),
                 dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)), id="non-square"),
    pytest.param((2, 1, 5, 5), (2, 1, 3, 3), dict(stride=4), id="output-1x1"),
    pytest.param((1, 3, 6, 7), (5, 3, 3, 3), dict(padding=1), id="K5"),
    pytest.param((2, 4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=(1, 2)), id="groups2"),
    pytest.param((2, 6, 5, 4), (9, 2, 2, 3), dict(groups=3, stride=(2, 1)), id="groups3"),
    pytest.param((2, 3, 5, 6), (3, 1, 3, 3), dict(groups=3, padding=1), id="depthwise"),
    pytest.param((1, 3, 5, 6), (6, 1, 2, 3), dict(groups=3, stride=(1, 2)), id="depthwise-x2"),
    pytest.param((1, 2, 9, 8), (3, 2, 3, 2), dict(dilation=(2, 3), padding=2), id="dilation"),
    pytest.param((1, 2, 8, 9), (3, 2, 2, 2), dict(stride=3), id="stride-over-kernel"),
    pytest.param((1, 2, 5, 6), (3, 2, 3, 3), dict(padding="same"), id="same-odd"),
    pytest.param((1, 2, 5, 6), (3, 2, 2, 4), dict(padding="same"), id="same-even"),
    pytest.param((1, 2, 7, 6), (4, 2, 2, 3), dict(padding="same", dilation=(3, 2)),
                 id="same-even-dilated"),
    pytest.param((1, 2, 5, 6), (3, 2, 3, 2), dict(padding="valid"), id="valid"),
    pytest.param((1, 2, 3, 4), (2, 2, 2, 2), dict(padding=3, stride=2), id="pad-over-kernel"),
    pytest.param((1, 2, 5, 5), (7, 2, 3, 3), dict(padding=(0, 2), stride=(1, 2)), id="pad-pair"),
    pytest.param((0, 2, 5, 5), (3, 2, 3, 3), dict(padding=1), id="N0"),
    pytest.param((1, 2, 4, 4), (0, 2, 3, 3), dict(padding=1), id="K0"),
    pytest.param((1, 2, 0, 3), (2, 2, 1, 1), dict(padding=1), id="H0-all-padding"),
    pytest.param((1, 16, 4, 5), (4, 16, 3, 3), dict(padding=1), id="C16"),
    pytest.param((2, 2, 6, 1), (3, 2, 3, 1), dict(padding=(1, 0)), id="W1"),
]


def _shape_kwargs(kwargs):
    return {key: value for key, value in kwargs.items() if key in SHAPE_KEYS}


_ref = conv2d_api_ref


def run_conv2d(x, w, b=None, **kwargs):
    """conv2d, checking that it returns a new C-contiguous array and leaves its inputs alone."""
    copies = [None if a is None else np.array(a, copy=True) for a in (x, w, b)]
    out = cyconv.conv2d(x, w, b, **kwargs)
    assert isinstance(out, np.ndarray) and out.flags.c_contiguous
    for before, after in zip(copies, (x, w, b)):
        if before is not None:
            assert_array_equal(after, before)  # inputs unchanged
    for a in (x, w, b):
        assert not np.shares_memory(out, a)
    return out


def check(out, ref, dtype):
    """Result dtype and values against a float64 reference, to the dtype's rounding."""
    assert out.dtype == np.dtype(dtype)
    assert out.shape == ref.shape
    assert_allclose(out, ref, **TOL[np.dtype(dtype)])


def _data(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, ws, kwargs", CASES)
def test_matches_reference(xs, ws, kwargs, dtype, method):
    rng = np.random.default_rng(1)
    x, w, b = _data(rng, xs, dtype), _data(rng, ws, dtype), _data(rng, ws[0], dtype)
    for bias in (None, b):
        out = run_conv2d(x, w, bias, method=method, **kwargs)
        check(out, _ref(x, w, bias, **kwargs), dtype)
    assert out.shape == cyconv.output_shape(xs, ws, **_shape_kwargs(kwargs))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, ws, kwargs", CASES)
def test_direct_and_im2col_agree(xs, ws, kwargs, dtype):
    rng = np.random.default_rng(2)
    x, w, b = _data(rng, xs, dtype), _data(rng, ws, dtype), _data(rng, ws[0], dtype)
    direct = run_conv2d(x, w, b, method="direct", **kwargs)
    gemm = run_conv2d(x, w, b, method="im2col", **kwargs)
    assert direct.dtype == gemm.dtype == np.dtype(dtype)
    assert_allclose(direct, gemm, **TOL[np.dtype(dtype)])


def test_output_shape_formula():
    # Ho = floor((H + 2p - d(k - 1) - 1) / s) + 1, evaluated by hand:
    # H=10, p=1, d=2, k=3, s=3: (10 + 2 - 4 - 1) // 3 + 1 = 7 // 3 + 1 = 3
    # W=7,  p=0, d=1, k=2, s=2: (7 - 1 - 1) // 2 + 1 = 5 // 2 + 1 = 3
    assert cyconv.output_shape((4, 2, 10, 7), (5, 2, 3, 2), stride=(3, 2), padding=(1, 0),
                               dilation=(2, 1)) == (4, 5, 3, 3)
    assert cyconv.output_shape((2, 10, 7), (4, 1, 3, 2), stride=(3, 2), padding=(1, 0),
                               dilation=(2, 1), groups=2) == (4, 3, 3)
    assert cyconv.output_shape((10, 7), (3, 2), stride=(3, 2), padding=(1, 0),
                               dilation=(2, 1)) == (3, 3)
    # 'same' keeps the size whatever the kernel parity and dilation.
    for kernel in ((2, 2), (3, 4), (1, 5)):
        assert cyconv.output_shape((6, 5), kernel, padding="same", dilation=(2, 3)) == (6, 5)
    assert cyconv.output_shape((0, 3, 5, 5), (2, 3, 3, 3)) == (0, 2, 3, 3)


# ---------------------------------------------------------------- padding modes

MODE_CASES = [
    pytest.param((2, 2, 5, 4), (3, 2, 3, 3), dict(padding=1), id="pad1"),
    # (3, 4) on a 4x5 image: the largest padding reflect allows (pad < size).
    pytest.param((1, 2, 4, 5), (2, 2, 2, 3), dict(padding=(3, 4)), id="pad-pair-max"),
    pytest.param((1, 2, 5, 6), (3, 2, 2, 4), dict(padding="same"), id="same-even"),
    pytest.param((1, 2, 6, 5), (2, 2, 3, 2), dict(padding="same", dilation=(2, 3)),
                 id="same-dilated"),
    pytest.param((1, 4, 6, 7), (4, 2, 3, 3), dict(padding=(2, 1), stride=(2, 3), groups=2),
                 id="strided-groups"),
    pytest.param((1, 2, 4, 4), (4, 2, 1, 1), dict(padding=2), id="1x1"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("xs, ws, kwargs", MODE_CASES)
def test_padding_modes(xs, ws, kwargs, padding_mode, method):
    rng = np.random.default_rng(3)
    x, w, b = _data(rng, xs, np.float64), _data(rng, ws, np.float64), _data(rng, ws[0], np.float64)
    out = run_conv2d(x, w, b, padding_mode=padding_mode, method=method, **kwargs)
    check(out, _ref(x, w, b, padding_mode=padding_mode, **kwargs), np.float64)


@pytest.mark.parametrize("method", ["direct", "im2col"])
def test_padding_modes_on_a_row(method):
    # A 1x1 kernel of 1 returns the padded input itself: PyTorch's four modes
    # on the row [1 2 3 4] padded by 2 on each side, written out by hand.
    row = np.array([[1.0, 2.0, 3.0, 4.0]])
    expected = {
        "zeros": [0, 0, 1, 2, 3, 4, 0, 0],
        "reflect": [3, 2, 1, 2, 3, 4, 3, 2],
        "replicate": [1, 1, 1, 2, 3, 4, 4, 4],
        "circular": [3, 4, 1, 2, 3, 4, 1, 2],
    }
    for mode, values in expected.items():
        out = run_conv2d(row, [[1.0]], padding=(0, 2), padding_mode=mode, method=method)
        assert_array_equal(out, [values])


@pytest.mark.parametrize("mode, slack", [("reflect", -1), ("circular", 0)])
def test_padding_mode_limits(mode, slack):
    # PyTorch: reflect needs pad < size, circular pad <= size (replicate any):
    # the largest pad allowed is size + slack.
    rng = np.random.default_rng(4)
    x, w = _data(rng, (1, 1, 4, 6), np.float64), _data(rng, (1, 1, 1, 1), np.float64)
    largest = lambda size: size + slack  # noqa: E731
    for pad in ((largest(4), 0), (0, largest(6)), (largest(4), largest(6))):
        check(run_conv2d(x, w, padding=pad, padding_mode=mode),
              _ref(x, w, None, padding=pad, padding_mode=mode), np.float64)
    for pad in ((largest(4) + 1, 0), (0, largest(6) + 1)):
        with pytest.raises(ValueError, match="padding"):
            cyconv.conv2d(x, w, padding=pad, padding_mode=mode)
    big = run_conv2d(x, w, padding=(9, 9), padding_mode="replicate")
    check(big, _ref(x, w, None, padding=(9, 9), padding_mode="replicate"), np.float64)


def test_padding_mode_empty_input():
    x, w = np.zeros((1, 1, 0, 3)), np.ones((1, 1, 1, 1))
    for mode in ("reflect", "replicate", "circular"):
        with pytest.raises(ValueError, match="padding"):
            cyconv.conv2d(x, w, padding=1, padding_mode=mode)
    # Nothing to pad: every mode is the plain convolution.
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    for mode in ("reflect", "replicate", "circular"):
        assert_array_equal(run_conv2d(x, w, padding_mode=mode), x)


# ---------------------------------------------------------------- dtypes

I8, I32, I64, U8 = np.int8, np.int32, np.int64, np.uint8
F32, F64, B = np.float32, np.float64, np.bool_


@pytest.mark.parametrize("method", ["direct", "im2col"])
@pytest.mark.parametrize("xdt, wdt, bdt, expected", [
    (F32, F32, F32, F32),
    (F32, F32, None, F32),
    (F64, F64, F64, F64),
    (F32, F64, None, F64),
    (F64, F32, F32, F64),
    (F32, F32, F64, F64),
    (I32, I32, None, F64),
    (I64, F32, None, F64),
    (F32, I8, None, F64),
    (F32, F32, I64, F64),
    (U8, I8, I32, F64),
    (B, B, None, F64),
    (B, F32, B, F64),
])
def test_result_dtype(xdt, wdt, bdt, expected, method):
    rng = np.random.default_rng(5)
    # Small integers: every dtype holds them exactly, and so does every sum.
    low = 0 if np.dtype(xdt).kind in "bu" else -3
    x = rng.integers(low, 4, (2, 3, 5, 4)).astype(xdt)
    low = 0 if np.dtype(wdt).kind in "bu" else -3
    w = rng.integers(low, 4, (4, 3, 2, 3)).astype(wdt)
    b = None if bdt is None else rng.integers(0, 2, 4).astype(bdt)
    out = run_conv2d(x, w, b, padding=1, method=method)
    check(out, _ref(x, w, b, padding=1), expected)
    # Exact: integer-valued sums far below 2**24.
    assert_array_equal(out, _ref(x, w, b, padding=1))


def test_python_scalar_bias_is_weak():
    # 2-D input: a scalar bias. Python int/float do not upcast float32 (NEP 50),
    # a NumPy float64 scalar does, as in NumPy arithmetic.
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = np.array([[1, -1], [2, 0]], dtype=np.float32)
    ref = _ref(x[None, None], w[None, None], [0.5])[0, 0]
    for bias, dtype in ((0.5, F32), (np.float32(0.5), F32), (np.float64(0.5), F64),
                        (np.array(0.5), F64), (np.array([0.5], np.float32), F32)):
        out = run_conv2d(x, w, bias)
        assert out.dtype == dtype, (type(bias), out.dtype)
        assert_array_equal(out, ref)
        assert out.dtype == (np.asarray(x) + np.asarray(w)[0, 0] + bias).dtype
    assert run_conv2d(x, w, 2).dtype == F32


# ---------------------------------------------------------------- conventions

@pytest.mark.parametrize("method", METHODS)
def test_2d_input_single_channel(method):
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((7, 6)), rng.standard_normal((3, 2))
    kwargs = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    ref = _ref(x[None, None], w[None, None], [1.5], **kwargs)[0, 0]
    for bias in (1.5, np.float64(1.5), np.array(1.5), np.array([1.5]), [1.5]):
        out = run_conv2d(x, w, bias, method=method, **kwargs)
        assert out.ndim == 2
        check(out, ref, np.float64)
    assert out.shape == cyconv.output_shape(x.shape, w.shape, **kwargs)
    # The same thing as a 4-D batch of one image and one kernel.
    out4 = run_conv2d(x[None, None], w[None, None], [1.5], method=method, **kwargs)
    assert_allclose(out4[0, 0], out, **TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_single_channel_matches_scipy_correlate2d(method, dtype):
    # One channel, stride 1, padding 0: conv2d is correlate2d's 'valid' mode.
    rng = np.random.default_rng(7)
    for xs, ws in (((6, 9), (3, 4)), ((5, 5), (5, 5)), ((4, 7), (1, 1)), ((8, 3), (2, 3))):
        x, w = _data(rng, xs, dtype), _data(rng, ws, dtype)
        ref = scipy.signal.correlate2d(x.astype(F64), w.astype(F64), mode="valid")
        check(run_conv2d(x, w, method=method), ref, dtype)
        # Padding p, stride s: the 'valid' correlation of the zero-padded
        # image, every s-th row and column.
        padded = np.pad(x.astype(F64), ((2, 2), (1, 1)))
        ref = scipy.signal.correlate2d(padded, w.astype(F64), mode="valid")[::2, ::3]
        check(run_conv2d(x, w, padding=(2, 1), stride=(2, 3), method=method), ref, dtype)
        # Dilation d: the kernel with d-1 zeros between taps.
        dilated = np.zeros((2 * ws[0] - 1, 3 * ws[1] - 2))
        dilated[::2, ::3] = w
        if dilated.shape[0] <= padded.shape[0] and dilated.shape[1] <= padded.shape[1]:
            ref = scipy.signal.correlate2d(padded, dilated, mode="valid")
            check(run_conv2d(x, w, padding=(2, 1), dilation=(2, 3), method=method), ref, dtype)
        # 'same' for an odd kernel is correlate2d's 'same' (centred kernel).
        if ws[0] % 2 and ws[1] % 2:
            ref = scipy.signal.correlate2d(x.astype(F64), w.astype(F64), mode="same")
            check(run_conv2d(x, w, padding="same", method=method), ref, dtype)


@pytest.mark.parametrize("method", METHODS)
def test_3d_input_is_one_image(method):
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((4, 5, 6)), rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kwargs = dict(groups=2, padding=(1, 0), stride=(1, 2))
    out = run_conv2d(x, w, b, method=method, **kwargs)
    assert out.shape == cyconv.output_shape(x.shape, w.shape, **kwargs) == (6, 5, 3)
    check(out, _ref(x[None], w, b, **kwargs)[0], np.float64)


# ---------------------------------------------------------------- memory layouts

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_memory_layouts(layout, dtype, method):
    rng = np.random.default_rng(9)
    # Length-1 axes (N=1, C/groups=1) give the broadcast layout its zero
    # strides; the bias, with no constant axis, is a plain read-only view.
    x = _data(rng, (1, 3, 6, 5), dtype)
    w = _data(rng, (6, 1, 3, 2), dtype)
    b = _data(rng, 6, dtype)
    kwargs = dict(groups=3, padding=(1, 2), stride=(2, 1))
    xl, wl, bl = layout(x), layout(w), layout(b)
    out = run_conv2d(xl, wl, bl, method=method, **kwargs)
    check(out, _ref(x, w, b, **kwargs), dtype)
    # The same in 2-D: one channel, one kernel.
    out = run_conv2d(layout(x[0, 0]), layout(w[0, 0]), method=method, padding=1)
    check(out, _ref(x[:, :1], w[:1], None, padding=1)[0, 0], dtype)


@pytest.mark.parametrize("method", METHODS)
def test_broadcast_arrays(method):
    rng = np.random.default_rng(10)
    image, kernel = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 3, 3))
    x = np.broadcast_to(image, (3, 2, 5, 4))  # the same image three times
    w = np.broadcast_to(kernel, (4, 2, 3, 3))  # the same kernel four times
    b = np.broadcast_to(np.float64(0.25), (4,))
    assert x.strides[0] == w.strides[0] == b.strides[0] == 0
    out = run_conv2d(x, w, b, padding=1, method=method)
    one = _ref(image[None], kernel[None], [0.25], padding=1)[0, 0]
    check(out, np.broadcast_to(one, out.shape), np.float64)
    # A broadcast within the image (every row the same) and a kernel that is
    # one column repeated.
    x = np.broadcast_to(rng.standard_normal(7), (1, 1, 5, 7))
    w = np.broadcast_to(rng.standard_normal((1, 1, 3, 1)), (2, 1, 3, 2))
    check(run_conv2d(x, w, method=method, stride=(1, 2)),
          _ref(np.array(x), np.array(w), None, stride=(1, 2)), np.float64)


def test_read_only_one_at_a_time():
    # Each input read-only in turn, the others writable (skimage's test).
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((4, 2, 2, 2)),
              rng.standard_normal(4)]
    ref = _ref(*arrays, padding=1)
    for method in ("direct", "im2col"):
        for frozen in range(3):
            args = [a.copy() for a in arrays]
            args[frozen].setflags(write=False)
            check(run_conv2d(*args, padding=1, method=method), ref, np.float64)


# ---------------------------------------------------------------- im2col blocks

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("block", [1, 3, 7, 11])
def test_im2col_workspace_blocks(monkeypatch, dtype, block):
    # run_forward sizes the workspace from the module global WORKSPACE_BYTES
    # at call time, one row per thread: shrink it so each GEMM covers at most
    # `block` output pixels, a count that splits the 5-wide output rows in
    # the middle.
    rng = np.random.default_rng(12)
    # 32 images: PARALLEL_WORK multiply-adds or more, so the call gets the kernel threads.
    xs, ws = (32, 4, 7, 11), (6, 2, 3, 3)
    kwargs = dict(groups=2, padding=(1, 0), stride=(1, 2), dilation=(2, 1))
    x, w, b = _data(rng, xs, dtype), _data(rng, ws, dtype), _data(rng, ws[0], dtype)
    q_len = 2 * 3 * 3
    ho, wo = cyconv.output_shape(xs, ws, **kwargs)[2:]
    assert wo == 5 and block % wo and block < ho * wo
    itemsize = np.dtype(dtype).itemsize
    n_threads = cyconv._openmp.max_threads()
    monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES",
                        n_threads * block * q_len * itemsize + itemsize - 1)
    seen = []
    real = cyconv._conv._im2col

    def spy(*args, **kwargs):  # records the workspace and phase-plane rows the GEMM driver is given
        seen.append((args[-3].shape[1], args[-2].shape[1]))
        return real.conv2d_forward(*args, **kwargs)

    monkeypatch.setattr(cyconv._conv, "_im2col", types.SimpleNamespace(conv2d_forward=spy, phase_scratch=real.phase_scratch))
    for bias in (None, b):
        out = run_conv2d(x, w, bias, method="im2col", **kwargs)
        check(out, _ref(x, w, bias, **kwargs), dtype)
        assert_allclose(out, run_conv2d(x, w, bias, method="direct", **kwargs),
                        **TOL[np.dtype(dtype)])
    # Blocks of a row or more unroll through the stride phases' planes (one
    # per column phase here: stride (1, 2)); shorter ones through the walker.
    phases = real.phase_scratch(block, ho, wo, 3, 3, 1, 2, 2, 1) if block >= wo else 1
    assert seen == [(block * q_len, phases)] * 2


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("columns", [2, 100, 256])
@pytest.mark.parametrize("kwargs", [dict(groups=2, padding=1, stride=(2, 1)),
                                    dict(padding=(2, 0), dilation=(1, 2))],
                         ids=["strided-groups", "stride1-dilated"])
def test_im2col_images_side_by_side(monkeypatch, dtype, columns, kwargs):
    # Images of fewer than IM2COL_BATCH_COLUMNS output pixels go through one
    # GEMM several at a time (the last run shorter), each copied out with
    # its bias; at 2 columns, one image per GEMM.
    rng = np.random.default_rng(13)
    xs, ws = (5, 4, 9, 8), (6, 4 // kwargs.get("groups", 1), 3, 3)
    x, w, b = _data(rng, xs, dtype), _data(rng, ws, dtype), _data(rng, ws[0], dtype)
    n_pos = np.prod(cyconv.output_shape(xs, ws, **kwargs)[2:])
    monkeypatch.setattr(cyconv._conv, "IM2COL_BATCH_COLUMNS", columns)
    seen = []
    real = cyconv._im2col.conv2d_forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("images", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(cyconv._im2col, "conv2d_forward", spy)
    for bias in (None, b):
        out = run_conv2d(x, w, bias, method="im2col", **kwargs)
        check(out, _ref(x, w, bias, **kwargs), dtype)
    assert len(seen) == 2 and seen[0] == seen[1]
    if columns <= n_pos:
        assert seen[0] == 1
    else:  # as many as fill the columns (the team size may cap it)
        assert 1 < seen[0] <= min(-(-columns // n_pos), 5)
    if columns == 100:
        assert 5 % seen[0]  # a last, shorter run of images


# ---------------------------------------------------------------- wide rows

# The direct kernel sums a stride-1 row's interior in blocks of 4 vectors, then
# single vectors, then one last vector overlapping the one before (16 float32
# or 8 float64 lanes with AVX-512; a row narrower than a vector goes scalar),
# and its border columns one by one. These widths cross every one of those
# boundaries for both dtypes, for any vector width up to 64 bytes.
ROW_WIDTHS = (1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 63, 64, 65, 66, 70, 97, 128, 131)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kwargs", [
    dict(padding=0), dict(padding=(1, 2)), dict(padding="same", dilation=(1, 3)),
    dict(padding=(2, 5), stride=(2, 1)), dict(padding=(0, 9), dilation=2),
], ids=["valid", "pad", "same-dilated", "row-stride", "pad-beyond-kernel"])
def test_direct_rows_of_every_width(dtype, kwargs):
    rng = np.random.default_rng(21)
    for width in ROW_WIDTHS:
        for ws in ((3, 2, 3, 4), (2, 2, 1, 1), (2, 1, 2, 9)):
            xs = (1, 2, 6, width)
            try:
                cyconv.output_shape(xs, ws, **kwargs)
            except ValueError:
                continue  # the kernel does not fit this width
            x, w, b = _data(rng, xs, dtype), _data(rng, ws, dtype), _data(rng, ws[0], dtype)
            out = run_conv2d(x, w, b, **kwargs, method="direct")
            check(out, _ref(x, w, b, **kwargs), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_direct_rows_keep_nan_and_inf_local(dtype):
    # A NaN or inf in a wide row reaches only the windows that contain it.
    x = np.ones((1, 1, 3, 150), dtype)
    x[0, 0, 1, 70] = np.nan
    x[0, 0, 1, 20] = np.inf
    w = np.ones((1, 1, 3, 5), dtype)
    out = run_conv2d(x, w, padding=(1, 2), method="direct")
    ref = _ref(x, w, None, padding=(1, 2))
    assert_array_equal(np.isnan(out), np.isnan(ref))
    assert_array_equal(np.isposinf(out), np.isposinf(ref))
    assert np.isnan(out).sum() == 3 * 5 and np.isposinf(out).sum() == 3 * 5


# ---------------------------------------------------------------- IEEE values

@pytest.mark.parametrize("method", ["direct", "im2col"])
def test_nan_and_inf_propagate(method):
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 4, 4] = np.inf
    x[0, 0, 4, 1] = -np.inf
    w = np.array([[[[1.0, 0.0], [2.0, -1.0]]]])
    out = run_conv2d(x, w, method=method)
    ref = _ref(x, w, None)
    # NaN*anything and inf*0 are NaN, inf*w keeps inf with w's sign, inf-inf
    # is NaN: the reference's plain NumPy arithmetic says where each lands.
    assert_array_equal(np.isnan(out), np.isnan(ref))
    assert_array_equal(np.isposinf(out), np.isposinf(ref))
    assert_array_equal(np.isneginf(out), np.isneginf(ref))
    assert np.isnan(out).any() and np.isposinf(out).any() and np.isneginf(out).any()
    finite = np.isfinite(ref)
    assert finite.any()
    assert_allclose(out[finite], ref[finite], **TOL[np.dtype(np.float64)])
    # A NaN weight poisons every output pixel of its kernel only.
    w2 = np.ones((2, 1, 2, 2))
    w2[1, 0, 0, 1] = np.nan
    out = run_conv2d(np.ones((1, 1, 3, 3)), w2, method=method)
    assert np.isnan(out[0, 1]).all() and not np.isnan(out[0, 0]).any()


# ---------------------------------------------------------------- torch

TORCH_CASES = [
    pytest.param((2, 4, 7, 6), (6, 2, 3, 2),
                 dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), id="mixed"),
    pytest.param((1, 3, 6, 5), (3, 1, 2, 4), dict(padding="same", dilation=(2, 1), groups=3),
                 id="same-depthwise"),
    pytest.param((1, 2, 5, 5), (4, 2, 5, 5), dict(padding="valid"), id="valid-full"),
]


# torch warns that it copies the input for even kernels with padding='same'.
@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, ws, kwargs", TORCH_CASES)
def test_matches_torch(xs, ws, kwargs, dtype, method):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x, w, b = _data(rng, xs, dtype), _data(rng, ws, dtype), _data(rng, ws[0], dtype)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                          torch.from_numpy(b), **kwargs).numpy()
    check(run_conv2d(x, w, b, method=method, **kwargs), expected, dtype)


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch(padding_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x, w, b = _data(rng, (2, 2, 5, 6), F64), _data(rng, (3, 2, 3, 2), F64), _data(rng, 3, F64)
    # torch.nn.Conv2d pads with F.pad(mode) first, then convolves unpadded.
    padded = torch.nn.functional.pad(torch.from_numpy(x), (2, 2, 1, 1), mode=padding_mode)
    expected = torch.nn.functional.conv2d(padded, torch.from_numpy(w), torch.from_numpy(b),
                                          stride=(1, 2)).numpy()
    out = run_conv2d(x, w, b, padding=(1, 2), stride=(1, 2), padding_mode=padding_mode)
    check(out, expected, np.float64)


# ---------------------------------------------------------------- threads

def test_threads_match_serial():
    # The kernels release the GIL: calls from several threads at once must
    # give the serial results (scipy's test_medfilt2d_parallel).
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(15)
    jobs = [(_data(rng, (2, 4, 9, 8), dtype), _data(rng, (6, 2, 3, 3), dtype), method)
            for dtype in FLOATS for method in ("direct", "im2col") for _ in range(3)]

    def run(job):
        x, w, method = job
        return cyconv.conv2d(x, w, stride=(1, 2), padding=1, groups=2, method=method)

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run, jobs))
    for (x, w, _), one, other in zip(jobs, serial, parallel):
        assert_array_equal(one, other)
        check(other, _ref(x, w, None, stride=(1, 2), padding=1, groups=2), x.dtype)


# ---------------------------------------------------------------- random geometries

def random_geometry(rng):
    """A valid conv2d call drawn at random: shapes, parameters, mode, workspace cap."""
    while True:
        groups, cg, kg = (int(v) for v in rng.integers(1, [4, 4, 5]))
        h, w, kh, kw = (int(v) for v in rng.integers(1, [9, 9, 5, 5]))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        if rng.random() < 0.25:
            stride, padding = (1, 1), "same"
        else:
            stride = tuple(int(v) for v in rng.integers(1, 4, 2))
            padding = tuple(int(v) for v in rng.integers(0, 4, 2))
        top, bottom, left, right = ref_pads(padding, (kh, kw), dilation)
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        limit = {"reflect": (h - 1, w - 1), "circular": (h, w)}.get(mode, (h + 9, w + 9))
        if (max(top, bottom) <= limit[0] and max(left, right) <= limit[1]
                and h + top + bottom >= dilation[0] * (kh - 1) + 1
                and w + left + right >= dilation[1] * (kw - 1) + 1):
            break
    return dict(xs=(int(rng.integers(1, 3)), groups * cg, h, w),
                ws=(groups * kg, cg, kh, kw),
                kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                            padding_mode=mode),
                block_bytes=int(rng.choice([1, 40, 200, 2**24])))


@pytest.mark.parametrize("seed", range(40))
def test_random_geometries(seed, monkeypatch):
    rng = np.random.default_rng([17, seed])
    case = random_geometry(rng)
    dtype = FLOATS[seed % 2]
    x, w = _data(rng, case["xs"], dtype), _data(rng, case["ws"], dtype)
    b = _data(rng, case["ws"][0], dtype) if seed % 4 < 2 else None
    monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES", case["block_bytes"])
    ref = _ref(x, w, b, **case["kwargs"])
    for method in ("direct", "im2col"):
        check(run_conv2d(x, w, b, method=method, **case["kwargs"]), ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_hw, kernel, params", [
    ((4, 1), (3, 3), dict(stride=(2, 1), padding=1)),          # 1-pixel rows, 2 taps past them
    ((1, 1), (3, 3), dict(stride=(2, 1), padding=(2, 1))),
    ((5, 3), (2, 3), dict(stride=(3, 1), padding=(0, 1), dilation=(1, 2))),
    ((6, 3), (3, 5), dict(stride=2, padding=(1, 2), groups=2)),
])
def test_im2col_strided_rows_narrower_than_the_taps_reach(x_hw, kernel, params, dtype):
    # At stride > 1 the unroll copies a run of each phase plane and writes the
    # pixels whose taps reach past the row from the edge columns; an output
    # row narrower than that reach is all edge (the forward and the weight
    # gradient share the unroll).
    rng = np.random.default_rng(3)
    groups = params.get("groups", 1)
    x = rng.standard_normal((2, 4) + x_hw).astype(dtype)
    w = rng.standard_normal((4, 4 // groups) + kernel).astype(dtype)
    got = cyconv.conv2d(x, w, **params, method="im2col")
    assert_allclose(got, conv2d_api_ref(x, w, None, **params), **TOL[np.dtype(dtype)])
    gy = rng.standard_normal(got.shape).astype(dtype)
    grads = cyconv.conv2d_backward(gy, x, w, **params, method="im2col")
    direct = cyconv.conv2d_backward(gy, x, w, **params, method="direct")
    for a, b in zip(grads, direct):
        assert_allclose(a, b, **TOL[np.dtype(dtype)])
