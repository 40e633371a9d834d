"""conv2d_backward against finite differences of the NumPy reference conv2d.

The loss ``L = sum(conv2d(x, w, b) * g)`` is linear in each of x, w and b,
so central differences of tests/_reference.py's conv2d_ref are exact up to
rounding: they are an independent reference for every gradient, padding
mode included. The course exercise's kernel and image gradients are checked
by its own formulas, written out here.
"""
import itertools
import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import cyconv
import cyconv._backward
from cyconv import _openmp, _threads

from _reference import TOL, conv2d_api_ref

METHODS = ("direct", "im2col")
MODES = ("zeros", "reflect", "replicate", "circular")

# The exercise: a 5x5 image, a 3x3 kernel, stride 2 (a 2x2 output).
I_EX = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
                 [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
K_EX = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
S_EX = 2


_ref_forward = conv2d_api_ref


def _central_differences(loss, a):
    """d loss / d a by central differences, one entry at a time.

    The loss is linear in ``a``, so a unit step is exact up to rounding.
    """
    grad = np.zeros(a.shape)
    step = np.zeros(a.shape)
    for idx in np.ndindex(a.shape):
        step[idx] = 1.0
        grad[idx] = (loss(a + step) - loss(a - step)) / 2
        step[idx] = 0.0
    return grad


def _assert_close_fd(got, expected):
    """Relative error below 1e-6, measured against the largest entry."""
    scale = max(np.abs(expected).max(initial=0.0), 1.0)
    assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * scale)


# (id, input shape, weight shape, parameters): every feature at least once.
CASES = [
    ("plain", (2, 3, 6, 5), (4, 3, 3, 3), {}),
    ("stride", (1, 2, 7, 6), (3, 2, 3, 2), dict(stride=(2, 3))),
    ("padding", (2, 2, 5, 5), (2, 2, 3, 3), dict(padding=(1, 2))),
    ("dilation", (1, 2, 8, 7), (2, 2, 3, 2), dict(dilation=(2, 3), padding=1)),
    ("groups", (2, 4, 5, 6), (6, 2, 2, 3), dict(groups=2, stride=(1, 2), padding=1)),
    ("depthwise", (1, 3, 5, 5), (3, 1, 3, 3), dict(groups=3, padding=1)),
    ("same-even", (1, 2, 5, 6), (3, 2, 2, 4), dict(padding="same")),
    ("same-even-dilated", (1, 2, 7, 6), (2, 2, 2, 3), dict(padding="same", dilation=(3, 2))),
    ("pointwise", (2, 4, 3, 4), (6, 2, 1, 1), dict(groups=2)),
    ("pointwise-reflect", (1, 2, 4, 3), (5, 2, 1, 1), dict(padding=1, padding_mode="reflect")),
    ("reflect-same-even", (2, 2, 5, 6), (3, 2, 2, 4),
     dict(padding="same", padding_mode="reflect")),
    ("replicate", (1, 2, 5, 4), (3, 2, 3, 3),
     dict(padding=(2, 1), stride=2, padding_mode="replicate")),
    ("circular-groups", (1, 3, 4, 5), (3, 1, 3, 2),
     dict(padding=(1, 2), groups=3, padding_mode="circular")),
    ("circular-pad-equals-size", (1, 1, 3, 3), (2, 1, 3, 3),
     dict(padding=3, dilation=2, padding_mode="circular")),
    ("2d", (6, 7), (3, 2), dict(stride=2, padding=1)),
    ("2d-reflect-same", (5, 5), (2, 2), dict(padding="same", padding_mode="reflect")),
    ("3d", (2, 5, 6), (4, 2, 3, 3), dict(padding=1, dilation=(1, 2))),
    ("3d-replicate-same", (2, 5, 6), (2, 1, 3, 3),
     dict(padding="same", groups=2, padding_mode="replicate")),
    ("padding-over-kernel", (1, 2, 3, 4), (2, 2, 2, 2), dict(padding=3, stride=2)),
    ("output-1x1", (2, 1, 5, 5), (2, 1, 3, 3), dict(stride=4)),
]


def _random_case(seed):
    """A random valid combination of shapes and parameters."""
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(2, 5))
    groups = 1 if ndim == 2 else int(rng.choice([1, 2, 3]))
    cg, kg = (int(v) for v in rng.integers(1, 3, size=2))
    kh, kw = (int(v) for v in rng.integers(1, 4, size=2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    mode = str(rng.choice(MODES))
    if rng.random() < 0.3:
        stride, padding = 1, "same"
    else:
        stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
        padding = tuple(int(v) for v in rng.integers(0, 3, size=2))
    # >= 5 keeps every pad (<= 2) below the size, as reflect needs, and the
    # dilated kernel (<= 5) inside the input.
    h, w = (int(v) for v in rng.integers(5, 8, size=2))
    n = int(rng.integers(1, 3))
    x_shape = {2: (h, w), 3: (groups * cg, h, w), 4: (n, groups * cg, h, w)}[ndim]
    w_shape = (kh, kw) if ndim == 2 else (groups * kg, cg, kh, kw)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=mode)
    return (f"random{seed}", x_shape, w_shape, params)


ALL_CASES = [pytest.param(*case[1:], id=case[0])
             for case in CASES + [_random_case(seed) for seed in range(12)]]


def _data(x_shape, w_shape, params, seed=0):
    """Random x, w and grad_output of the right shape, in float64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    out_shape = cyconv.output_shape(x_shape, w_shape, **{
        k: v for k, v in params.items() if k != "padding_mode"})
    g = rng.standard_normal(out_shape)
    return x, w, g


@pytest.mark.parametrize(("x_shape", "w_shape", "params"), ALL_CASES)
def test_gradients_match_finite_differences(x_shape, w_shape, params):
    x, w, g = _data(x_shape, w_shape, params)
    k = 1 if len(x_shape) == 2 else w_shape[0]
    b = np.random.default_rng(1).standard_normal(k)
    fd_input = _central_differences(lambda a: np.sum(_ref_forward(a, w, b, **params) * g), x)
    fd_weight = _central_differences(lambda a: np.sum(_ref_forward(x, a, b, **params) * g), w)
    fd_bias = _central_differences(lambda a: np.sum(_ref_forward(x, w, a, **params) * g), b)
    for method in METHODS:
        grads = cyconv.conv2d_backward(g, x, w, **params, method=method)
        for got, expected in zip(grads, (fd_input, fd_weight, fd_bias)):
            assert got.shape == expected.shape
            assert got.dtype == np.float64
            assert got.flags.c_contiguous
            _assert_close_fd(got, expected)


def _combinations():
    for stride, padding, dilation, groups, mode in itertools.product(
            (1, (2, 3)), (0, (1, 2), "same"), (1, (2, 1)), (1, 2), MODES):
        if padding == "same" and stride != 1:
            continue
        yield pytest.param(dict(stride=stride, padding=padding, dilation=dilation,
                                groups=groups, padding_mode=mode),
                           id=f"s{stride}-p{padding}-d{dilation}-g{groups}-{mode}")


@pytest.mark.parametrize("params", list(_combinations()))
def test_direct_and_im2col_agree(params):
    # kh = 2 makes 'same' uneven (the extra row at the bottom).
    x, w, g = _data((2, 4, 7, 6), (4, 4 // params["groups"], 2, 3), params)
    direct = cyconv.conv2d_backward(g, x, w, **params, method="direct")
    for method in ("im2col", "auto"):
        other = cyconv.conv2d_backward(g, x, w, **params, method=method)
        for a, b in zip(direct, other):
            assert_allclose(b, a, **TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("params", [
    dict(padding=1), dict(padding="same", dilation=(1, 2)), dict(padding=(1, 2), groups=4),
    dict(padding=(3, 1), groups=2), dict(padding=(1, 4), stride=(1, 2)),
], ids=["pad", "same-even-dilated", "depthwise", "pad-beyond-kernel-rows", "col-stride"])
@pytest.mark.parametrize("width", [5, 17, 40, 70])
def test_direct_input_gradient_on_wide_rows(params, width):
    # At stride 1 the direct input gradient runs the forward kernel on the
    # flipped kernels (wide rows take its vector blocks); padding larger than
    # the kernel, or a stride, takes the scatter kernel. Both must agree with
    # the im2col/col2im gradient, in both precisions.
    groups = params.get("groups", 1)
    x, w, g = _data((2, 4, 6, width), (4, 4 // groups, 2, 3), params)
    expected = cyconv.conv2d_backward(g, x, w, **params, method="im2col")[0]
    for dtype in (np.float64, np.float32):
        got = cyconv.conv2d_backward(g.astype(dtype), x.astype(dtype), w.astype(dtype),
                                     **params, method="direct", output_mask=(True, False, False))[0]
        assert got.dtype == dtype
        assert_allclose(got, expected, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("params", [dict(padding=1, stride=(1, 2)), dict(groups=2),
                                    dict(padding=(1, 3), stride=(2, 3)),
                                    dict(padding=2, stride=2, dilation=(1, 2))],
                         ids=["3x3", "pointwise", "3x3-stride3", "3x3-stride2-dilated"])
def test_im2col_blocks_smaller_than_a_row(monkeypatch, params):
    """A tiny workspace cap splits the GEMMs into blocks of 3 output pixels."""
    k_shape = (3, 3) if "padding" in params else (1, 1)
    x, w, g = _data((2, 4, 5, 7), (4, 4 // params.get("groups", 1)) + k_shape, params)
    direct = cyconv.conv2d_backward(g, x, w, **params, method="direct")
    q_len = w[0].size
    monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES", 3 * q_len * 8)
    blocked = cyconv.conv2d_backward(g, x, w, **params, method="im2col")
    for a, b in zip(direct, blocked):
        assert_allclose(b, a, **TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns", [2, 100, 256])
@pytest.mark.parametrize("params", [dict(groups=2, padding=1, stride=(2, 1)),
                                    dict(padding=(2, 0), dilation=(1, 2)),
                                    dict(padding=1, padding_mode="reflect")],
                         ids=["strided-groups", "stride1-dilated", "reflect"])
def test_im2col_input_gradient_of_images_side_by_side(monkeypatch, params, columns, dtype):
    # Images of fewer than IM2COL_BATCH_COLUMNS output pixels: W.T times
    # their grad_output rows side by side in one GEMM (the last run
    # shorter), each image's block gathered into its planes; at 2 columns
    # one image per GEMM. Both GEMM engines ('auto' runs the packed one on
    # this small weight).
    x, w, g = (a.astype(dtype) for a in _data(
        (5, 4, 9, 8), (8, 4 // params.get("groups", 1), 3, 3), params, seed=7))
    monkeypatch.setattr(cyconv._conv, "IM2COL_BATCH_COLUMNS", columns)
    seen = []
    real = cyconv._backward._im2col.conv2d_grad_input

    def spy(*args, **kwargs):
        seen.append(kwargs.get("images", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(cyconv._backward._im2col, "conv2d_grad_input", spy)
    expected = cyconv.conv2d_backward(g, x, w, **params, method="direct")[0]
    for method in ("im2col", "auto"):
        got = cyconv.conv2d_backward(g, x, w, **params, method=method,
                                     output_mask=(True, False, False))[0]
        assert got.dtype == dtype
        assert_allclose(got, expected, **TOL[np.dtype(dtype)])
    # 100 columns: runs of 2 images (the last of 1) of 40 or 44 pixels, on
    # one thread or two; the 72 pixels of 'reflect' get no even runs under 100.
    expected_images = {2: 1, 100: 1 if "padding_mode" in params else 2}.get(columns)
    assert len(seen) == 2 and seen[0] == seen[1]
    if expected_images:
        assert seen[0] == expected_images
    else:
        assert seen[0] > 1


def test_im2col_input_gradient_images_beyond_the_cap_go_one_by_one(monkeypatch):
    # The side-by-side row (columns, grad_output's rows, the sums) over the
    # workspace cap: one image per task, still gathering.
    x, w, g = _data((4, 4, 9, 8), (8, 4, 3, 3), dict(padding=1, stride=2), seed=8)
    one_image = (4 * 9 * 5 * 4 + 8) * 8  # float64 columns of one image and its sums
    monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES", 2 * one_image * _openmp.max_threads())
    monkeypatch.setattr(cyconv._backward, "batched_images", lambda *args: 4)
    seen = []
    real = cyconv._backward._im2col.conv2d_grad_input

    def spy(*args, **kwargs):
        seen.append((kwargs.get("images"), args[10] is not None))
        return real(*args, **kwargs)

    monkeypatch.setattr(cyconv._backward._im2col, "conv2d_grad_input", spy)
    got = cyconv.conv2d_backward(g, x, w, padding=1, stride=2, method="im2col",
                                 output_mask=(True, False, False))[0]
    assert seen == [(1, True)]
    expected = cyconv.conv2d_backward(g, x, w, padding=1, stride=2, method="direct")[0]
    assert_allclose(got, expected, **TOL[np.dtype(np.float64)])


def _grad_input_ref(gy, w, x_shape, stride, pads, dilation, groups):
    """conv2d's input gradient by the definition, in float64: each tap's share added in place."""
    n, c, h, wd = x_shape
    k, cg, kh, kw = w.shape
    (sh, sw), (top, left), (dh, dw) = stride, pads, dilation
    ho, wo = gy.shape[2:]
    kg = k // groups
    canvas = np.zeros((n, c, top + h + sh * ho + dh * kh, left + wd + sw * wo + dw * kw))
    for kk, p, q in np.ndindex(k, kh, kw):
        g = kk // kg
        canvas[:, g * cg:(g + 1) * cg, p * dh:p * dh + sh * (ho - 1) + 1:sh,
               q * dw:q * dw + sw * (wo - 1) + 1:sw] += (
            gy[:, kk, None].astype(np.float64) * w[kk, :, p, q, None, None])
    return canvas[:, :, top:top + h, left:left + wd]


# im2col's gathering fold (one image's columns per task, every element of
# grad_input written once): odd sizes, taps that miss rows or columns of a
# phase, padding beyond the kernel, dilation, groups, rows shorter than the stride.
GATHER_CASES = [
    ((2, 6, 9, 11), (8, 6, 4, 4), dict(stride=2, padding=1)),
    ((1, 4, 13, 8), (6, 2, 3, 5), dict(stride=(3, 2), padding=(2, 0), dilation=(2, 1),
                                       groups=2)),
    ((2, 3, 7, 10), (4, 3, 3, 3), dict(stride=(2, 3), padding=(1, 2))),
    ((1, 3, 10, 9), (4, 3, 5, 5), dict(stride=4, padding=(3, 4))),
    ((1, 2, 5, 5), (4, 2, 2, 2), dict(stride=3)),  # rows no tap reaches
    ((2, 2, 6, 5), (5, 2, 2, 3), dict(padding=1, dilation=(1, 2))),  # stride 1
    ((1, 2, 1, 1), (4, 2, 3, 3), dict(stride=2, padding=1)),
    ((1, 2, 4, 1), (4, 2, 3, 2), dict(stride=(1, 2), padding=(1, 1))),
    ((1, 2, 3, 4), (4, 2, 2, 2), dict(padding=3, stride=2)),  # padding beyond the kernel
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("x_shape", "w_shape", "params"), GATHER_CASES)
def test_gathering_fold_writes_every_element(monkeypatch, x_shape, w_shape, params, dtype):
    # grad_input is uninitialized there: NaN-filled blocks of its size freed
    # first, so that a cell left unwritten would show.
    x, w, g = (a.astype(dtype) for a in _data(x_shape, w_shape, params, seed=5))
    tables = []
    real = cyconv._backward._im2col.conv2d_grad_input

    def spy(*args, **kwargs):
        tables.append(args[10] is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(cyconv._backward._im2col, "conv2d_grad_input", spy)
    for _ in range(3):
        np.full(x_shape, np.nan, dtype)
    gx = cyconv.conv2d_backward(g, x, w, **params, method="im2col",
                                output_mask=(True, False, False))[0]
    assert tables == [True] and gx.dtype == dtype
    full = _full(params)
    expected = _grad_input_ref(g, w.astype(np.float64), x_shape, full["stride"],
                               full["padding"], full["dilation"], full["groups"])
    assert_allclose(gx, expected, **TOL[np.dtype(dtype)])
    # With room for one pixel's columns, blocks of one pixel are added into a zeroed array.
    monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES", w[0].size * x.itemsize)
    tables.clear()
    blocked = cyconv.conv2d_backward(g, x, w, **params, method="im2col",
                                     output_mask=(True, False, False))[0]
    assert tables == [False]
    assert_allclose(blocked, expected, **TOL[np.dtype(dtype)])


def _full(params):
    """stride, padding (top, left), dilation as pairs, and groups."""
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    return dict(stride=pair(params.get("stride", 1)), padding=pair(params.get("padding", 0)),
                dilation=pair(params.get("dilation", 1)), groups=params.get("groups", 1))


@pytest.mark.parametrize("rows", [1, 1.5, 2.2, None])
@pytest.mark.parametrize("params", [dict(padding=1, stride=2), dict(padding=(1, 3), stride=(2, 3)),
                                    dict(padding=2, stride=(3, 2), dilation=(1, 2)),
                                    dict(padding=(0, 1), stride=(2, 1), groups=2)],
                         ids=["3x3-stride2", "3x3-stride3", "3x3-stride3-dilated", "groups"])
def test_im2col_blocks_of_rows(monkeypatch, params, rows):
    """Blocks of a row or more at stride > 1 unroll through the stride phases' planes:
    whole images (rows None), whole rows, and blocks that start and end mid-row."""
    x, w, g = _data((2, 4, 9, 11), (4, 4 // params.get("groups", 1), 3, 3), params)
    direct = cyconv.conv2d_backward(g, x, w, **params, method="direct")
    wo = g.shape[3]
    if rows is not None:
        block = int(rows * wo)
        monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES",
                            cyconv._openmp.max_threads() * block * w[0].size * 8)
    blocked = cyconv.conv2d_backward(g, x, w, **params, method="im2col")
    for a, b in zip(direct, blocked):
        assert_allclose(b, a, **TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("mask", list(itertools.product((False, True), repeat=3)))
@pytest.mark.parametrize("method", METHODS)
def test_output_mask(mask, method):
    params = dict(padding=1, groups=2, padding_mode="circular")
    x, w, g = _data((2, 4, 5, 5), (4, 2, 3, 3), params)
    full = cyconv.conv2d_backward(g, x, w, **params, method=method)
    some = cyconv.conv2d_backward(g, x, w, **params, method=method,
                                  output_mask=[np.bool_(m) for m in mask])
    for wanted, a, b in zip(mask, full, some):
        if wanted:
            assert_array_equal(b, a)
        else:
            assert b is None


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("x_shape", "w_shape", "params"), [
    pytest.param((2, 4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=1, stride=2), id="4d"),
    pytest.param((3, 6, 6), (2, 3, 2, 2), dict(padding="same", padding_mode="reflect"),
                 id="3d-reflect"),
    pytest.param((6, 6), (3, 3), dict(dilation=2, padding=2, padding_mode="replicate"),
                 id="2d-replicate"),
])
def test_float32_stays_float32(x_shape, w_shape, params, method):
    x, w, g = _data(x_shape, w_shape, params)
    ref = cyconv.conv2d_backward(g, x, w, **params, method=method)
    args = (g.astype(np.float32), x.astype(np.float32), w.astype(np.float32))
    got = cyconv.conv2d_backward(*args, **params, method=method)
    for a, b in zip(ref, got):
        assert b.dtype == np.float32
        assert b.flags.c_contiguous
        assert_allclose(b, a, **TOL[np.dtype(np.float32)])
    # Any float64 or integer argument makes it float64, as in conv2d.
    for i, other in enumerate((g, x.round().astype(np.int64), w)):
        mixed = list(args)
        mixed[i] = other
        for grad in cyconv.conv2d_backward(*mixed, **params, method=method):
            assert grad.dtype == np.float64


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("which", [0, 1, 2], ids=["grad_output", "input", "weight"])
def test_memory_layouts(layout, which, method):
    params = dict(padding=(1, 2), groups=2, padding_mode="reflect", stride=(2, 1))
    x, w, g = _data((2, 4, 5, 6), (4, 2, 3, 2), params)
    args = [g, x, w]
    expected = cyconv.conv2d_backward(*args, **params, method=method)
    arg = layout(args[which])
    before = arg.copy()
    args[which] = arg
    got = cyconv.conv2d_backward(*args, **params, method=method)
    assert_array_equal(arg, before)
    for a, b in zip(expected, got):
        assert b.flags.c_contiguous
        assert_array_equal(b, a)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("x_shape", "w_shape", "params"), [
    pytest.param((0, 2, 5, 5), (3, 2, 3, 3), dict(padding=1), id="N0"),
    pytest.param((1, 2, 0, 3), (2, 2, 1, 1), dict(padding=1), id="H0-all-padding"),
    pytest.param((1, 2, 4, 4), (0, 2, 3, 3), {}, id="K0"),
])
def test_empty_sums_are_zero(x_shape, w_shape, params, method):
    x, w, g = _data(x_shape, w_shape, params)
    grad_input, grad_weight, grad_bias = cyconv.conv2d_backward(
        g, x, w, **params, method=method)
    assert_array_equal(grad_input, np.zeros(x_shape))
    # No image, or every tap in the zero padding: nothing reaches the weights.
    assert_array_equal(grad_weight, np.zeros(w_shape))
    assert_array_equal(grad_bias, g.sum(axis=(0, 2, 3)))


def test_errors():
    x, w, g = _data((1, 2, 5, 5), (3, 2, 3, 3), {})
    bwd = cyconv.conv2d_backward
    with pytest.raises(ValueError, match=r"grad_output has shape \(1, 3, 2, 3\).*\(1, 3, 3, 3\)"):
        bwd(g[:, :, :2], x, w)
    with pytest.raises(ValueError, match=r"grad_output has shape \(3, 3, 3\)"):
        bwd(g[0], x, w)
    with pytest.raises(ValueError, match="method"):
        bwd(g, x, w, method="fft")
    with pytest.raises(ValueError, match="padding_mode"):
        bwd(g, x, w, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding_mode='reflect' needs padding"):
        bwd(np.ones((1, 3, 13, 13)), x, w, padding=5, padding_mode="reflect")
    with pytest.raises(ValueError, match="'same' needs stride 1"):
        bwd(g, x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="groups=2"):
        bwd(g, x, w, groups=2)
    with pytest.raises(ValueError, match="stride"):
        bwd(g, x, w, stride=0)
    with pytest.raises(ValueError, match="output_mask"):
        bwd(g, x, w, output_mask=(True, False))
    with pytest.raises(TypeError, match="output_mask"):
        bwd(g, x, w, output_mask=(1, 0, 1))
    with pytest.raises(TypeError, match="output_mask"):
        bwd(g, x, w, output_mask=True)
    with pytest.raises(TypeError, match="grad_output"):
        bwd(g.astype(complex), x, w)
    with pytest.raises(TypeError, match="input"):
        bwd(g, x.astype(object), w)


# The course exercise, by its own formulas (1-based indices as in the sheet).

def test_exercise_kernel_gradient_by_the_sum():
    """Equation (2): dO/dK[m', n'] = sum_{i,j} I[s(i-1)+m', s(j-1)+n'] (grad_output = 1)."""
    c1 = c2 = (5 + 2 * 0 - 3) // S_EX + 1
    expected = np.zeros((3, 3))
    for m in range(1, 4):
        for n in range(1, 4):
            expected[m - 1, n - 1] = sum(I_EX[S_EX * (i - 1) + m - 1, S_EX * (j - 1) + n - 1]
                                         for i in range(1, c1 + 1) for j in range(1, c2 + 1))
    for method in METHODS:
        _, grad_k, _ = cyconv.conv2d_backward(np.ones((c1, c2)), I_EX, K_EX, stride=S_EX,
                                              method=method)
        assert_array_equal(grad_k, expected)
    # The answer by hand: the four 3x3 patches of I, added up.
    assert_array_equal(expected, [[-1, 7, -2], [-1, 2, 2], [0, 12, -2]])


def test_exercise_kernel_gradient_by_matrix_multiplication():
    """dL/dk = I^T dL/dO with I the unrolled image: cols @ grad_out.ravel()."""
    cols = cyconv.im2col(I_EX, 3, stride=S_EX)  # (9, 4): one patch per column
    rng = np.random.default_rng(0)
    for grad_out in (np.ones((2, 2)), rng.integers(-3, 4, size=(2, 2)).astype(float)):
        expected = (cols @ grad_out.ravel()).reshape(3, 3)
        for method in METHODS:
            _, grad_k, _ = cyconv.conv2d_backward(grad_out, I_EX, K_EX, stride=S_EX,
                                                  method=method)
            assert_array_equal(grad_k, expected)


def test_exercise_image_gradient():
    """The closing note: dO/dI[m', n'] = sum_{i,j} K[m'-s(i-1), n'-s(j-1)] (grad_output = 1)."""
    expected = np.zeros((5, 5))
    for m in range(1, 6):
        for n in range(1, 6):
            expected[m - 1, n - 1] = sum(
                K_EX[m - S_EX * (i - 1) - 1, n - S_EX * (j - 1) - 1]
                for i in range(1, 3) for j in range(1, 3)
                if 1 <= m - S_EX * (i - 1) <= 3 and 1 <= n - S_EX * (j - 1) <= 3)
    grad_out = np.ones((2, 2))
    for method in METHODS:
        grad_i, _, _ = cyconv.conv2d_backward(grad_out, I_EX, K_EX, stride=S_EX,
                                              method=method)
        assert_array_equal(grad_i, expected)
    # As a matrix multiplication: d(I.k)/dI = k^T per patch, folded back.
    patches = np.outer(K_EX.ravel(), grad_out.ravel())
    assert_array_equal(cyconv.col2im(patches, (5, 5), 3, stride=S_EX)[0], expected)


def test_exercise_bias():
    """A bias b shifts every output by b; dO/db counts the output pixels; dO/dK is unchanged."""
    b = 3.0
    assert_array_equal(cyconv.conv2d(I_EX, K_EX, b, stride=S_EX)
                       - cyconv.conv2d(I_EX, K_EX, stride=S_EX), np.full((2, 2), b))
    grad_out = np.ones((2, 2))
    _, grad_k, grad_b = cyconv.conv2d_backward(grad_out, I_EX, K_EX, stride=S_EX)
    assert_array_equal(grad_b, [2 * 2])
    kk = K_EX.astype(float)
    fd = _central_differences(
        lambda a: np.sum(_ref_forward(I_EX.astype(float), a, b, stride=S_EX)), kk)
    assert_array_equal(grad_k, fd)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "groups", "padding", "mode"),
                         [(1, 1, 0, "zeros"), (3, 2, 0, "zeros"), (2, 1, 1, "reflect")])
def test_pointwise_grad_input_writes_every_element(dtype, n, groups, padding, mode):
    # im2col's 1x1 input gradient fills an uninitialized array (its GEMMs
    # overwrite): freed NaN-filled blocks of that size first, so that a cell
    # left unwritten would show. Reference: the sum over kernels, in NumPy.
    rng = np.random.default_rng(3)
    c, k, h, w = 4 * groups, 6 * groups, 9, 7
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c // groups, 1, 1)).astype(dtype)
    hp, wp = h + 2 * padding, w + 2 * padding
    gy = rng.standard_normal((n, k, hp, wp)).astype(dtype)
    for _ in range(3):
        np.full((n, c, hp, wp), np.nan, dtype)
    gx, gw, _ = cyconv.conv2d_backward(gy, x, wt, padding=padding, groups=groups,
                                       padding_mode=mode, method="im2col",
                                       output_mask=(True, True, False))
    # Per group: d x_padded[n, g*cg + c] = sum_kk w[g*kg + kk, c] gy[n, g*kg + kk].
    w2 = wt[:, :, 0, 0].astype(np.float64).reshape(groups, k // groups, c // groups)
    g5 = gy.astype(np.float64).reshape(n, groups, k // groups, hp, wp)
    gxp = np.einsum("gkc,ngkyx->ngcyx", w2, g5).reshape(n, c, hp, wp)
    x5 = (np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2), mode="reflect")
          if padding else x).astype(np.float64).reshape(n, groups, c // groups, hp, wp)
    gw_ref = np.einsum("ngkyx,ngcyx->gkc", g5, x5).reshape(k, c // groups, 1, 1)
    # The reflected border's gradients fold back onto the cells they copy.
    expected = np.zeros((n, c, h, w)) if padding else gxp
    if padding:
        for i, j in np.ndindex(hp, wp):
            src_i = abs(i - padding) if i < padding + h else 2 * (h - 1) - (i - padding)
            src_j = abs(j - padding) if j < padding + w else 2 * (w - 1) - (j - padding)
            expected[:, :, src_i, src_j] += gxp[:, :, i, j]
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert_allclose(gx, expected, rtol=tol, atol=tol)
    assert_allclose(gw, gw_ref, rtol=tol, atol=tol)
    # 'auto' takes the same path.
    assert_allclose(cyconv.conv2d_backward(gy, x, wt, padding=padding, groups=groups,
                                           padding_mode=mode,
                                           output_mask=(True, False, False))[0],
                    expected, rtol=tol, atol=tol)


# ------------------------------------------- Winograd's gradients side by side

needs_two_cpus = pytest.mark.skipif(
    _threads.usable_cpus() < 2 or not _threads.blas_threads.controlled,
    reason="needs 2 CPUs and BLAS thread control")


def _gradients_ref(gy, x, w):
    """grad_input and grad_weight of a padding-1, stride-1 3x3 conv2d by the sums, in float64."""
    n, k, ho, wo = gy.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    gxp, gw = np.zeros(xp.shape), np.zeros(w.shape)
    for p, q in np.ndindex(3, 3):
        gxp[:, :, p:p + ho, q:q + wo] += np.einsum("nkhw,kc->nchw", gy, w[:, :, p, q])
        gw[:, :, p, q] = np.einsum("nkhw,nchw->kc", gy, xp[:, :, p:p + ho, q:q + wo])
    return gxp[:, :, 1:-1, 1:-1], gw


def _spy_threads(monkeypatch, sums=0):
    """Records (kernel, thread, team size) of the Winograd kernels' calls.

    Side by side from ``sums`` transformed sums (0: the small layers below too).
    """
    monkeypatch.setattr(cyconv._backward, "SIDE_BY_SIDE_SUMS", sums)
    import cyconv._winograd_gemm as wg
    import cyconv._winograd_wgrad_gemm as wwg
    from cyconv._dispatch import _winograd, _winograd_wgrad
    calls = []
    for module, name in ((_winograd, "conv2d_forward"), (_winograd_wgrad, "transformed_sums")):
        real = getattr(module, name)

        def spy(*args, real=real, name=name):
            calls.append((name, threading.get_ident(), args[-1]))
            return real(*args)

        monkeypatch.setattr(module, name, spy)
    assert wg._winograd is _winograd and wwg._winograd_wgrad is _winograd_wgrad
    return calls


@needs_two_cpus
@pytest.mark.parametrize("mask", [(True, True, True), (True, True, False)])
def test_winograd_gradients_side_by_side(monkeypatch, mask):
    # Two threads: the input gradient (and the bias) on a second thread and the
    # weight gradient on the calling one, each with a team of one; the results
    # are the sums', and the thread setting is back afterwards.
    calls = _spy_threads(monkeypatch)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 32, 32, 32))
    w = rng.standard_normal((32, 32, 3, 3))
    gy = rng.standard_normal((2, 32, 32, 32))
    with _threads.thread_limit(2):
        gx, gw, gb = cyconv.conv2d_backward(gy, x, w, padding=1, output_mask=mask)
        assert _openmp.thread_setting() == 2
    assert sorted((name, tid == threading.get_ident(), team) for name, tid, team in calls) == [
        ("conv2d_forward", False, 1), ("transformed_sums", True, 1)]
    gx_ref, gw_ref = _gradients_ref(gy, x, w)
    assert_allclose(gx, gx_ref, rtol=0, atol=1e-11 * np.abs(gx_ref).max())
    assert_allclose(gw, gw_ref, rtol=0, atol=1e-11 * np.abs(gw_ref).max())
    if mask[2]:
        assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-13)
    else:
        assert gb is None


@needs_two_cpus
@pytest.mark.parametrize("channels, side_by_side", [(192, True), (128, False)])
def test_side_by_side_where_the_sums_are_large(monkeypatch, channels, side_by_side):
    # Both gradients by Winograd: side by side from SIDE_BY_SIDE_SUMS
    # transformed sums (36 * K * Cg: 1.3M at 192 channels, 0.59M at 128), else
    # one after the other, each on both threads.
    calls = _spy_threads(monkeypatch, cyconv._backward.SIDE_BY_SIDE_SUMS)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, channels, 8, 8)).astype(np.float32)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((1, channels, 8, 8)).astype(np.float32)
    with _threads.thread_limit(2):
        gx, gw, _ = cyconv.conv2d_backward(gy, x, w, padding=1, method="winograd")
    expected = ([("conv2d_forward", False, 1), ("transformed_sums", True, 1)] if side_by_side
                else [("conv2d_forward", True, 2), ("transformed_sums", True, 2)])
    assert sorted((name, tid == threading.get_ident(), team)
                  for name, tid, team in calls) == expected
    want = cyconv.conv2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                  w.astype(np.float64), padding=1, method="im2col")
    assert_allclose(gx, want[0], rtol=0, atol=1e-4 * np.abs(want[0]).max())
    assert_allclose(gw, want[1], rtol=0, atol=1e-4 * np.abs(want[1]).max())


@needs_two_cpus
def test_side_by_side_nonfinite_falls_back(monkeypatch):
    # An inf of grad_output: the input gradient's Winograd leaves it to the
    # shifted GEMMs (on its thread) and the weight gradient to im2col's.
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 32, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 32, 32, 32)).astype(np.float32)
    gy[1, 3, 0, 5] = np.inf
    calls = _spy_threads(monkeypatch)
    # im2col's weight gradient on OpenBLAS, as method='im2col' below runs it.
    monkeypatch.setattr(cyconv._backward, "PACKED_IM2COL_WEIGHT_BYTES", -1)
    with _threads.thread_limit(2):
        gx, gw, gb = cyconv.conv2d_backward(gy, x, w, padding=1)
    assert {name for name, _, _ in calls} == {"conv2d_forward", "transformed_sums"}
    want = cyconv.conv2d_backward(gy, x, w, padding=1, method="im2col")
    assert_array_equal(np.isnan(gx), np.isnan(want[0]))
    assert_array_equal(np.isinf(gx), np.isinf(want[0]))
    assert_array_equal(gw, want[1])
    assert_array_equal(gb, want[2])


@needs_two_cpus
@pytest.mark.parametrize("where", ["input gradient", "weight gradient"])
def test_side_by_side_raises_either_error(monkeypatch, where):
    # An exception on either thread comes out of the call, once both have ended.
    def fail(*args):
        raise MemoryError(where)

    target = "_grad_input_as_forward" if where == "input gradient" else "run_winograd_grad_weight"
    monkeypatch.setattr(cyconv._backward, target, fail)
    monkeypatch.setattr(cyconv._backward, "SIDE_BY_SIDE_SUMS", 0)  # side by side at 32 channels
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 32, 32, 32))
    w = rng.standard_normal((32, 32, 3, 3))
    gy = rng.standard_normal((2, 32, 32, 32))
    before = threading.active_count()
    with _threads.thread_limit(2):
        with pytest.raises(MemoryError, match=where):
            cyconv.conv2d_backward(gy, x, w, padding=1)
        assert _openmp.thread_setting() == 2
    assert threading.active_count() == before
