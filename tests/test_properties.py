"""Property-based tests: every public function on random valid calls, against references.

Hypothesis draws the shapes (1x1 inputs, kernels as large as the padded
input, outputs of size 1, empty batches and channels), strides, paddings,
dilations, groups, padding modes, methods, dtypes and memory layouts; each
result is compared with the NumPy references of tests/_reference.py (and the
pooling references of test_pool.py) or with scipy.signal. The profile in
conftest.py keeps the default run derandomized and small;
CYCONV_HYPOTHESIS_PROFILE=thorough searches far more cases.
"""
import numpy as np
import pytest
import scipy.signal
from hypothesis import assume, event, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import cyconv

from _reference import NP_PAD_MODE, TOL, conv2d_ref, im2col_ref, ref_pads
from test_pool import (
    avg_pool_backward_ref,
    avg_pool_ref,
    max_pool_backward_ref,
    max_pool_ref,
    n_windows,
)
from test_signal import _assert_close, _random, outcome

# Input dtypes of the deep-learning functions: float32 stays float32, the rest
# are computed in float64.
DTYPES = [np.float32, np.float64, np.int32, np.uint8, np.bool_]
PAD_MODES = list(NP_PAD_MODE)
METHODS = ["auto", "direct", "im2col"]
seeds = st.integers(0, 2**32 - 1)


def _values(seed, shape, dtype):
    """Reproducible values: normal floats, small integers, random bools."""
    return _random(np.random.default_rng(seed), shape, dtype, low=-4, high=5)


def _result_dtype(*dtypes):
    """float32 if every input is float32, else float64 (API.md)."""
    return np.dtype(np.float32 if all(d == np.float32 for d in dtypes) else np.float64)


def _in_layout(data, layouts, a):
    """``a`` in a drawn memory layout (C, F, negative strides, strided, read-only, broadcast)."""
    choices = layouts(a)
    return choices[data.draw(st.sampled_from(sorted(choices)), label="layout")]


def _pair(draw, low, high):
    return (draw(st.integers(low, high)), draw(st.integers(low, high)))


def _kernel(draw, padded, dilation):
    """A kernel length that fits ``padded`` cells, often the largest one that does."""
    largest = (padded - 1) // dilation + 1
    return draw(st.one_of(st.just(largest), st.integers(1, min(largest, 4))))


def _as_given(draw, pair):
    """A pair as the caller may give it: an int when both entries agree, or a tuple."""
    return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else pair


def _dot_close(lhs, rhs, scale, dtype):
    """Two inner products agree to the dtype's tolerance, relative to the sum of |terms|."""
    assert abs(lhs - rhs) <= TOL[np.dtype(dtype)]["rtol"] * scale + 1e-12, (lhs, rhs, scale)


def _edges(shape_in, shape_out, kernel, padded):
    """Record (in --hypothesis-show-statistics) which edge cases a call reached."""
    if 0 in shape_in:
        event("empty input (zero-size batch, channels or image)")
    if shape_out[-2:] == (1, 1):
        event("1x1 output")
    if shape_in[-2:] == (1, 1):
        event("1x1 input")
    if tuple(kernel) == tuple(padded):
        event("kernel as large as the padded input")


def _unchanged(arrays, copies):
    for array, copy in zip(arrays, copies):
        assert_array_equal(array, copy)


# ---------------------------------------------------------------- convolution

@st.composite
def conv_calls(draw):
    """A valid conv2d call: shapes in the caller's rank, parameters and padding."""
    ndim = draw(st.sampled_from([4, 3, 2]))
    groups, cg, kg, n = 1, 1, 1, 1
    if ndim > 2:
        groups, cg, kg = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
        n = draw(st.integers(0, 2)) if ndim == 4 else 1
    kind = draw(st.sampled_from(["ints", "ints", "same", "valid"]))
    low = 0 if kind == "ints" else 1  # an empty image needs padding
    h, w = _pair(draw, low, 7)
    dilation = _pair(draw, 1, 3)
    if kind == "same":
        stride, padding = (1, 1), "same"
        kernel = _pair(draw, 1, 4)
    else:
        ph, pw = _pair(draw, 0, 3) if kind == "ints" else (0, 0)
        assume(h + 2 * ph >= 1 and w + 2 * pw >= 1)
        kernel = (_kernel(draw, h + 2 * ph, dilation[0]), _kernel(draw, w + 2 * pw, dilation[1]))
        stride = _pair(draw, 1, 4)
        padding = _as_given(draw, (ph, pw)) if kind == "ints" else "valid"
    pads = ref_pads(padding, kernel, dilation)
    modes = ["zeros"]
    if h and w:
        modes.append("replicate")
        if max(pads[:2]) < h and max(pads[2:]) < w:
            modes.append("reflect")
        if max(pads[:2]) <= h and max(pads[2:]) <= w:
            modes.append("circular")
    xs = (n, groups * cg, h, w)[4 - ndim:] if ndim > 2 else (h, w)
    ws = (groups * kg, cg) + kernel if ndim > 2 else kernel
    # method='fft' takes one input channel and one kernel.
    methods = METHODS + ["fft"] if groups * cg == groups * kg == 1 else METHODS
    kwargs = dict(stride=_as_given(draw, stride), padding=padding,
                  dilation=_as_given(draw, dilation), groups=groups,
                  padding_mode=draw(st.sampled_from(modes)), method=draw(st.sampled_from(methods)))
    return dict(xs=xs, ws=ws, kwargs=kwargs, stride=stride, pads=pads, dilation=dilation,
                ndim=ndim)


def _conv_ref(call, x, w, b=None):
    """conv2d_ref on the call's arrays, in the caller's rank."""
    lead = (1,) * (4 - x.ndim)
    w4 = w.reshape((1, 1) + w.shape) if w.ndim == 2 else w
    b1 = None if b is None else np.reshape(b, (-1,))
    ref = conv2d_ref(x.reshape(lead + x.shape), w4, b1, call["stride"], call["pads"],
                     call["dilation"], call["kwargs"]["groups"],
                     NP_PAD_MODE[call["kwargs"]["padding_mode"]])
    return ref.reshape(ref.shape[4 - x.ndim:] if x.ndim > 2 else ref.shape[2:])


@given(call=conv_calls(), dtypes=st.lists(st.sampled_from(DTYPES), min_size=3, max_size=3),
       bias=st.sampled_from([None, "vector", "scalar"]), seed=seeds, data=st.data())
def test_conv2d(call, dtypes, bias, seed, data, layouts):
    x = _values(seed, call["xs"], dtypes[0])
    w = _values(seed + 1, call["ws"], dtypes[1])
    k = 1 if call["ndim"] == 2 else call["ws"][0]
    b = None
    if bias is not None:
        b = _values(seed + 2, () if bias == "scalar" and call["ndim"] == 2 else (k,), dtypes[2])
    args = [_in_layout(data, layouts, x), _in_layout(data, layouts, w), b]
    copies = [np.copy(a) for a in args[:2]]

    out = cyconv.conv2d(*args, **call["kwargs"])
    top, bottom, left, right = call["pads"]
    _edges(x.shape, out.shape, call["ws"][-2:], (x.shape[-2] + top + bottom,
                                                  x.shape[-1] + left + right))

    dtype = _result_dtype(*dtypes[:2 if b is None else 3])
    ref = _conv_ref(call, x, w, b)
    assert out.dtype == dtype and out.flags.c_contiguous
    shape_kwargs = {key: call["kwargs"][key] for key in ("stride", "padding", "dilation",
                                                        "groups")}
    assert out.shape == ref.shape == cyconv.output_shape(x.shape, w.shape, **shape_kwargs)
    assert_allclose(out, ref, **TOL[dtype])
    _unchanged(args[:2], copies)


def _grad_weight_ref(call, x4, gy4, w_shape4):
    """sum_n dY[n, group] @ im2col(padded x[n, group]).T, per group (im2col_ref)."""
    top, bottom, left, right = call["pads"]
    mode = NP_PAD_MODE[call["kwargs"]["padding_mode"]]
    xp = np.pad(np.asarray(x4, np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)),
                mode=mode)
    k, cg, kh, kw = w_shape4
    groups = call["kwargs"]["groups"]
    kg, q = k // groups, cg * kh * kw
    cols = im2col_ref(xp, kh, kw, call["stride"], (0, 0), call["dilation"])
    dy = np.asarray(gy4, np.float64).reshape(gy4.shape[0], k, gy4.shape[2] * gy4.shape[3])
    gw = np.concatenate([np.einsum("nkp,nqp->kq", dy[:, g * kg:(g + 1) * kg],
                                   cols[:, g * q:(g + 1) * q]) for g in range(groups)])
    return gw.reshape(w_shape4)


@given(call=conv_calls(), dtypes=st.lists(st.sampled_from(DTYPES), min_size=3, max_size=3),
       mask=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=seeds,
       data=st.data())
def test_conv2d_backward(call, dtypes, mask, seed, data, layouts):
    x = _values(seed, call["xs"], dtypes[0])
    w = _values(seed + 1, call["ws"], dtypes[1])
    gy = _values(seed + 2, _conv_ref(call, x, w).shape, dtypes[2])
    args = [_in_layout(data, layouts, a) for a in (gy, x, w)]
    copies = [np.copy(a) for a in args]

    kwargs = dict(call["kwargs"])
    kwargs["method"] = kwargs["method"].replace("fft", "auto")  # the forward's only
    grads = cyconv.conv2d_backward(*args, **kwargs, output_mask=mask)

    dtype = _result_dtype(*dtypes)
    for grad, wanted, shape in zip(grads, mask, (x.shape, w.shape, None)):
        assert (grad is None) == (not wanted)
        if grad is not None:
            assert grad.dtype == dtype and grad.flags.c_contiguous
            if shape is not None:
                assert grad.shape == shape
    lead = (1,) * (4 - x.ndim)
    x4 = x.reshape(lead + x.shape)
    w4 = w.reshape((1, 1) + w.shape) if w.ndim == 2 else w
    gy4 = gy.reshape(x4.shape[:1] + w4.shape[:1] + gy.shape[-2:])
    grad_input, grad_weight, grad_bias = grads
    if grad_bias is not None:
        assert_allclose(grad_bias, gy4.sum(axis=(0, 2, 3), dtype=np.float64), **TOL[dtype])
    if grad_weight is not None:
        assert_allclose(grad_weight.reshape(w4.shape), _grad_weight_ref(call, x4, gy4, w4.shape),
                        **TOL[dtype])
    if grad_input is not None:
        # <grad_input, dx> = <dY, conv(dx, w)>: grad_input is the adjoint of x -> conv(x, w).
        dx = np.random.default_rng(seed + 3).standard_normal(x.shape)
        abs_conv = _conv_ref(call, np.abs(dx), np.abs(w4).reshape(w.shape))
        _dot_close(np.vdot(grad_input, dx), np.vdot(gy, _conv_ref(call, dx, w)),
                   np.vdot(np.abs(gy), abs_conv), dtype)
    _unchanged(args, copies)


@given(call=conv_calls(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_conv_operator_and_matrix(call, dtype, seed):
    w = _values(seed, call["ws"], dtype)
    kwargs = {key: value for key, value in call["kwargs"].items() if key != "method"}
    operator = cyconv.conv_operator(w, call["xs"], **kwargs)
    matrix = cyconv.conv_matrix(w, call["xs"], **kwargs)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal(call["xs"])
    ref = _conv_ref(call, x, w)
    shape = (ref.size, x.size)
    assert operator.shape == matrix.shape == shape
    assert operator.dtype == matrix.dtype == _result_dtype(dtype)
    # The forward map is conv2d's, the adjoint its adjoint: <A.T y, x> = <y, A x>.
    y = rng.standard_normal(ref.size)
    abs_scale = np.vdot(np.abs(y), _conv_ref(call, np.abs(x), np.abs(w.astype(np.float64))))
    for linear_map in (operator, matrix):
        assert_allclose(linear_map @ x.ravel(), ref.ravel(), **TOL[operator.dtype])
        _dot_close(np.vdot(linear_map.T @ y, x), np.vdot(y, ref), abs_scale, operator.dtype)


# ---------------------------------------------------------------- unfolding

@st.composite
def unfold_calls(draw):
    """im2col/col2im parameters with an input shape in the caller's rank."""
    ndim = draw(st.sampled_from([4, 3, 2]))
    lead = (draw(st.integers(0, 2)), draw(st.integers(0, 3)))[4 - ndim:] if ndim > 2 else ()
    padding = _pair(draw, 0, 2)
    h, w = _pair(draw, 0, 6)
    assume(h + 2 * padding[0] >= 1 and w + 2 * padding[1] >= 1)
    dilation = _pair(draw, 1, 3)
    kernel = (_kernel(draw, h + 2 * padding[0], dilation[0]),
              _kernel(draw, w + 2 * padding[1], dilation[1]))
    stride = _pair(draw, 1, 4)
    return dict(shape=lead + (h, w), kernel=kernel, stride=stride, padding=padding,
                dilation=dilation,
                kwargs=dict(kernel_size=_as_given(draw, kernel), stride=_as_given(draw, stride),
                            padding=_as_given(draw, padding), dilation=_as_given(draw, dilation)))


def _im2col_ref(call, x):
    """im2col_ref in the caller's rank."""
    x4 = np.reshape(x, (1,) * (4 - np.ndim(x)) + np.shape(x))
    cols = im2col_ref(x4, *call["kernel"], call["stride"], call["padding"], call["dilation"])
    return cols if np.ndim(x) == 4 else cols[0]


@given(call=unfold_calls(), dtype=st.sampled_from(DTYPES), seed=seeds, data=st.data())
def test_im2col(call, dtype, seed, data, layouts):
    x = _values(seed, call["shape"], dtype)
    arg = _in_layout(data, layouts, x)
    copy = np.copy(arg)
    cols = cyconv.im2col(arg, **call["kwargs"])
    ph, pw = call["padding"]
    _edges(x.shape, cols.shape[-1:] * 2, call["kernel"], (x.shape[-2] + 2 * ph,
                                                          x.shape[-1] + 2 * pw))
    ref = _im2col_ref(call, x)
    assert cols.dtype == _result_dtype(dtype) and cols.flags.c_contiguous
    assert cols.shape == ref.shape
    assert_array_equal(cols, ref.astype(cols.dtype))  # a copy: exact
    _unchanged([arg], [copy])


def _col2im_ref(call, cols):
    """Scatter-add of ``cols`` through the pixel each entry of im2col_ref came from."""
    c, h, w = ((1,) + call["shape"])[-3:]
    # im2col of the pixel numbers 1..c*h*w says where each entry comes from (0: padding).
    source = _im2col_ref(call, np.arange(1, c * h * w + 1.0).reshape(call["shape"][-3:]))
    source = source.astype(np.int64).reshape(-1)
    n = np.shape(cols)[0] if np.ndim(cols) == 3 else 1
    out = np.zeros((n, c * h * w))
    if source.size == 0:
        return out
    rows = np.reshape(cols, (n, source.size)).astype(np.float64)
    inside = source > 0
    for image, row in zip(out, rows):
        np.add.at(image, source[inside] - 1, row[inside])
    return out


@given(call=unfold_calls(), dtype=st.sampled_from(DTYPES), seed=seeds, data=st.data())
def test_col2im(call, dtype, seed, data, layouts):
    shape = call["shape"] if len(call["shape"]) > 2 else (1,) + call["shape"]
    cols_shape = _im2col_ref(call, np.zeros(shape)).shape
    cols = _values(seed, cols_shape, dtype)
    arg = _in_layout(data, layouts, cols)
    copy = np.copy(arg)
    h, w = call["shape"][-2:]
    kwargs = {key: value for key, value in call["kwargs"].items()}
    out = cyconv.col2im(arg, _as_given(data.draw, (h, w)), **kwargs)
    assert out.dtype == _result_dtype(dtype) and out.flags.c_contiguous
    assert out.shape == shape
    assert_allclose(out.reshape(-1), _col2im_ref(call, cols).reshape(-1),
                    **TOL[out.dtype])
    _unchanged([arg], [copy])


# ---------------------------------------------------------------- pooling

def _has_empty_window(size, k, s, p, d, n_out):
    """True if some window's taps all fall in the padding (PyTorch rejects those)."""
    return any(all(not 0 <= i * s - p + a * d < size for a in range(k)) for i in range(n_out))


@st.composite
def pool_calls(draw, dilation):
    """A valid max_pool2d (dilation=True) or avg_pool2d call, in the caller's rank."""
    lead = draw(st.sampled_from([(), (2,), (0,), (2, 1), (0, 3), (1, 0)]))
    h, w = _pair(draw, 1, 7)
    kernel = _pair(draw, 1, 5)
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dil = _pair(draw, 1, 2) if dilation else (1, 1)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ceil_mode = draw(st.booleans())
    s = kernel if stride is None else stride
    sizes = [n_windows(size, k, st_, p, d, ceil_mode)
             for size, k, st_, p, d in zip((h, w), kernel, s, padding, dil)]
    assume(min(sizes) >= 1)
    assume(not any(_has_empty_window(size, k, st_, p, d, n)
                   for size, k, st_, p, d, n in zip((h, w), kernel, s, padding, dil, sizes)))
    kwargs = dict(kernel_size=_as_given(draw, kernel),
                  stride=stride if stride is None else _as_given(draw, stride),
                  padding=_as_given(draw, padding), ceil_mode=ceil_mode)
    if dilation:
        kwargs["dilation"] = _as_given(draw, dil)
    return dict(shape=lead + (h, w), kernel=kernel, stride=stride, padding=padding,
                dilation=dil, ceil_mode=ceil_mode, kwargs=kwargs)


def _nchw(a):
    """(..., H, W) with 0-2 leading axes as (N, C, H, W)."""
    a = np.asarray(a)
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


@given(call=pool_calls(dilation=True), dtype=st.sampled_from(DTYPES), seed=seeds,
       data=st.data())
def test_max_pool2d_and_backward(call, dtype, seed, data, layouts):
    x = _values(seed, call["shape"], dtype)
    arg = _in_layout(data, layouts, x)
    copy = np.copy(arg)
    out, indices = cyconv.max_pool2d(arg, **call["kwargs"], return_indices=True)
    _edges(x.shape, out.shape, call["kernel"], call["shape"][-2:])
    ref, ref_indices = max_pool_ref(_nchw(x), call["kernel"], call["stride"], call["padding"],
                                    call["dilation"], call["ceil_mode"])
    dtype_out = _result_dtype(dtype)
    assert out.dtype == dtype_out and indices.dtype == np.int64
    assert out.flags.c_contiguous and indices.flags.c_contiguous
    assert out.shape == indices.shape == call["shape"][:-2] + ref.shape[2:]
    assert_array_equal(_nchw(out), ref.astype(dtype_out))  # a maximum is exact
    assert_array_equal(_nchw(indices), ref_indices)
    _unchanged([arg], [copy])

    g = _values(seed + 1, out.shape, data.draw(st.sampled_from(DTYPES), label="grad dtype"))
    g_arg, i_arg = _in_layout(data, layouts, g), _in_layout(data, layouts, indices)
    grad = cyconv.max_pool2d_backward(g_arg, i_arg, call["shape"])
    assert grad.dtype == _result_dtype(g.dtype) and grad.flags.c_contiguous
    assert grad.shape == call["shape"]
    assert_allclose(_nchw(grad), max_pool_backward_ref(_nchw(g), ref_indices, _nchw(x).shape),
                    **TOL[grad.dtype])


@given(call=pool_calls(dilation=False), dtype=st.sampled_from(DTYPES),
       count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(-3, 5).filter(bool)),
       seed=seeds, data=st.data())
def test_avg_pool2d_and_backward(call, dtype, count_include_pad, divisor_override, seed, data,
                                 layouts):
    x = _values(seed, call["shape"], dtype)
    arg = _in_layout(data, layouts, x)
    copy = np.copy(arg)
    options = dict(count_include_pad=count_include_pad, divisor_override=divisor_override)
    out = cyconv.avg_pool2d(arg, **call["kwargs"], **options)
    _edges(x.shape, out.shape, call["kernel"], call["shape"][-2:])
    ref_args = (call["kernel"], call["stride"], call["padding"], call["ceil_mode"],
                count_include_pad, divisor_override)
    ref = avg_pool_ref(_nchw(x), *ref_args)
    assert out.dtype == _result_dtype(dtype) and out.flags.c_contiguous
    assert out.shape == call["shape"][:-2] + ref.shape[2:]
    assert_allclose(_nchw(out), ref, **TOL[out.dtype])
    _unchanged([arg], [copy])

    g = _values(seed + 1, out.shape, data.draw(st.sampled_from(DTYPES), label="grad dtype"))
    g_arg = _in_layout(data, layouts, g)
    grad = cyconv.avg_pool2d_backward(g_arg, call["shape"], **call["kwargs"], **options)
    assert grad.dtype == _result_dtype(g.dtype) and grad.flags.c_contiguous
    assert grad.shape == call["shape"]
    assert_allclose(_nchw(grad), avg_pool_backward_ref(_nchw(g), _nchw(x).shape, *ref_args),
                    **TOL[grad.dtype])


# ---------------------------------------------------------------- SciPy drop-ins

# Every dtype family SciPy accepts, and the ones it rejects (bool, float16).
SIGNAL_DTYPES = ["int8", "uint8", "int32", "uint64", "int64", "float32", "float64",
                 "longdouble", "complex64", "complex128", "bool", "float16"]
BOUNDARIES = ["fill", "pad", "wrap", "circular", "symm", "symmetric"]


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@given(shapes=st.tuples(*[st.integers(0, 6)] * 2, *[st.integers(0, 5)] * 2),
       dtypes=st.tuples(st.sampled_from(SIGNAL_DTYPES), st.sampled_from(SIGNAL_DTYPES)),
       mode=st.sampled_from(["full", "same", "valid"]), boundary=st.sampled_from(BOUNDARIES),
       fillvalue=st.sampled_from([0, 1, 3, -2, 2.5]), method=st.sampled_from(METHODS + ["fft"]),
       seed=seeds, data=st.data())
def test_signal_matches_scipy(name, shapes, dtypes, mode, boundary, fillvalue, method, seed,
                              data, layouts):
    in1 = _values(seed, shapes[:2], dtypes[0])
    in2 = _values(seed + 1, shapes[2:], dtypes[1])
    args = [_in_layout(data, layouts, in1), _in_layout(data, layouts, in2)]
    copies = [np.copy(a) for a in args]
    kwargs = dict(mode=mode, boundary=boundary, fillvalue=fillvalue)
    full = (shapes[0] + shapes[2] - 1, shapes[1] + shapes[3] - 1)
    if boundary not in ("fill", "pad") and mode == "full" and in1.size == 0 and min(full) > 0:
        # SciPy divides by the empty image's size here and dies of SIGFPE. cyconv
        # refuses, unless the kernel is empty too: then every sum is empty.
        got = outcome(getattr(cyconv, name), *args, method=method, **kwargs)
        dtype = np.promote_types(*dtypes)
        if in2.size or dtype in (np.bool_, np.float16):  # SciPy rejects those two
            assert got is ValueError
        else:
            assert got.dtype == dtype
            assert_array_equal(got, np.zeros(full))
        return
    expected = outcome(getattr(scipy.signal, name), in1, in2, **kwargs)
    got = outcome(getattr(cyconv, name), *args, method=method, **kwargs)
    if isinstance(expected, type):
        assert got is expected, f"SciPy raised {expected.__name__}, cyconv gave {got!r}"
    else:
        assert isinstance(got, np.ndarray), f"SciPy returned, cyconv raised {got.__name__}"
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.flags.c_contiguous
        _assert_close(got, expected)
    _unchanged(args, copies)
