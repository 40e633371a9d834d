"""The short paths of correlate2d/convolve2d: ``_small.filter2d`` and ``_DIRECT_PLANE``.

A common small call (int64/float32/float64 ndarrays, exact strings, zero
fill) runs in one compiled call, ``_small.filter2d``, which returns None for
anything else; the general path (``_signal._filter2d``) then calls the
specialization of the fused ``_direct.conv2d_forward`` for the compute dtype
directly, skipping Cython's per-call dispatch. These tests check that every
``_DIRECT_PLANE`` entry is the right specialization (it accepts arrays of its
own dtype only and gives what the dispatching call gives), and that
correlate2d/convolve2d through both short paths give the general path's bits
and raise its errors, over dtypes, modes, boundaries, shapes and layouts, and
equal scipy.signal.
"""
import warnings

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import cyconv
import cyconv.ndimage
from cyconv import _direct, _signal, _small
from cyconv._conv import ZERO_BIAS

from _reference import conv2d_ref

DTYPES = ("int8", "uint8", "int16", "int32", "int64", "uint64", "float32", "float64",
          "longdouble", "complex64", "complex128", "clongdouble")
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")
IMAGE = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
                  [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
KERNEL = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])


@pytest.fixture
def dispatching(monkeypatch):
    """Route _signal through the general path and the plain fused call (Cython's dispatch)."""
    plain = {dtype: _direct.conv2d_forward for dtype in _signal._DIRECT_PLANE}
    monkeypatch.setattr(_signal, "_DIRECT_PLANE", plain)
    monkeypatch.setattr(_small, "filter2d", lambda *args: None)


@pytest.mark.parametrize("dtype", list(_signal._DIRECT_PLANE), ids=str)
def test_specialization_matches_dispatch(dtype):
    rng = np.random.default_rng(0)
    source = rng.integers(-5, 6, (1, 1, 6, 7))
    x = source.astype(dtype)
    w = rng.integers(-3, 4, (1, 1, 3, 2)).astype(dtype)
    fast, plain = np.empty((1, 1, 6, 8), dtype), np.empty((1, 1, 6, 8), dtype)
    _signal._DIRECT_PLANE[dtype](x, w, ZERO_BIAS[dtype], fast, 1, 1, 1, 1, 1, 1, 1)
    _direct.conv2d_forward(x, w, ZERO_BIAS[dtype], plain, 1, 1, 1, 1, 1, 1, 1)
    np.testing.assert_array_equal(fast, plain)
    # A specialization takes its own dtype only: a wrong entry cannot read garbage.
    other = np.dtype(np.float32) if dtype != np.float32 else np.dtype(np.float64)
    with pytest.raises(ValueError, match="dtype mismatch"):
        _signal._DIRECT_PLANE[dtype](source.astype(other), w, ZERO_BIAS[dtype], fast,
                                     1, 1, 1, 1, 1, 1, 1)


def test_every_direct_dtype_has_an_entry():
    assert set(_signal._DIRECT_PLANE) == set(ZERO_BIAS)


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_against_dispatch_and_scipy(name, dtype, request):
    ours, peer = getattr(cyconv, name), getattr(scipy.signal, name)
    image, kernel = IMAGE.astype(dtype), KERNEL.astype(dtype)
    fast = {(m, b): ours(image, kernel, m, b) for m in MODES for b in BOUNDARIES}
    request.getfixturevalue("dispatching")
    for (mode, boundary), got in fast.items():
        plain = ours(image, kernel, mode, boundary)
        assert got.dtype == plain.dtype
        np.testing.assert_array_equal(got, plain)
        # Small integers: every sum is exact in every dtype.
        ref = peer(image, kernel, mode, boundary)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


BAD_CALLS = [
    (IMAGE[0], KERNEL, "full", "fill", 0),
    (IMAGE, KERNEL, "nope", "fill", 0),
    (IMAGE, KERNEL, ["full"], "fill", 0),
    (IMAGE, KERNEL, "full", "reflect", 0),
    (IMAGE, KERNEL, "full", "fill", [1, 2]),
    (IMAGE, KERNEL, "full", "fill", 1j),
    (IMAGE, KERNEL, "full", "fill", object()),
    (IMAGE[:2, :4], KERNEL, "valid", "fill", 0),
    (IMAGE.astype(bool), KERNEL.astype(bool), "full", "fill", 0),
    (IMAGE.astype(np.float16), KERNEL.astype(np.float16), "full", "fill", 0),
]


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("args", BAD_CALLS, ids=range(len(BAD_CALLS)))
def test_errors_identical(name, args, request):
    ours = getattr(cyconv, name)
    with pytest.raises(Exception) as fast:
        ours(*args)
    request.getfixturevalue("dispatching")
    with pytest.raises(Exception) as plain:
        ours(*args)
    assert type(fast.value) is type(plain.value)
    assert str(fast.value) == str(plain.value)
    with pytest.raises(type(fast.value)), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns before it raises for 1j
        getattr(scipy.signal, name)(*args)


# ---- the compiled fast path, _small.filter2d ---------------------------------

SHORT_DTYPES = ("int64", "float32", "float64")


def _layouts(array):
    """The same values as a C-contiguous array and as each layout the fast path declines."""
    swapped = array.astype(array.dtype.newbyteorder())
    readonly = array.copy()
    readonly.flags.writeable = False
    return {"c": array, "fortran": np.asfortranarray(array), "strided": np.repeat(array, 2, 1)[:, ::2],
            "reversed": array[::-1, ::-1].copy()[::-1, ::-1], "byteswapped": swapped,
            "readonly": readonly, "subclass": array.view(_Sub), "list": array.tolist()}


class _Sub(np.ndarray):
    pass


def _same_result(call, *args, **kwargs):
    """call's result by the default paths and by the general path alone: same bits and dtype."""
    fast = call(*args, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_small, "filter2d", lambda *a: None)
        general = call(*args, **kwargs)
    assert type(fast) is np.ndarray and fast.flags.c_contiguous
    assert fast.dtype == general.dtype and fast.shape == general.shape
    assert fast.tobytes() == general.tobytes()
    return fast


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("dtype", SHORT_DTYPES)
@pytest.mark.parametrize("shape", [(5, 5), (1, 1), (2, 7), (7, 1), (4, 6)])
@pytest.mark.parametrize("kshape", [(3, 3), (1, 1), (2, 2), (2, 5), (6, 3)])
def test_fast_path_matches_general_and_scipy(name, dtype, shape, kshape):
    ours, peer = getattr(cyconv, name), getattr(scipy.signal, name)
    rng = np.random.default_rng(sum(shape) * 10 + sum(kshape))
    image = rng.integers(-9, 10, shape).astype(dtype)
    kernel = rng.integers(-9, 10, kshape).astype(dtype)
    if dtype != "int64":
        image, kernel = image / 7, kernel / 3  # inexact sums: the bits must still agree
        image, kernel = image.astype(dtype), kernel.astype(dtype)
    for mode in MODES:
        for method in ("auto", "direct"):
            for boundary in ("fill", "pad"):
                try:
                    ref = peer(image, kernel, mode, boundary)
                except ValueError:  # 'valid' with neither input the larger
                    with pytest.raises(ValueError, match="at least as large"):
                        ours(image, kernel, mode, boundary, method=method)
                    continue
                got = _same_result(ours, image, kernel, mode, boundary, method=method)
                assert got.dtype == ref.dtype
                np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == "float32" else 1e-12,
                                           atol=1e-5 if dtype == "float32" else 1e-12)


def test_fast_path_taken_for_the_common_case_only():
    image, kernel = IMAGE.astype(np.float64), KERNEL.astype(np.float64)
    common = (image, kernel, "same", "fill", 0, "auto", False)
    assert _small.filter2d(*common) is not None
    declined = {
        "in1 layouts": [(layout,) + common[1:] for key, layout in _layouts(image).items()
                        if key not in ("c", "readonly")],
        "in2 layouts": [(image, layout) + common[2:] for key, layout in _layouts(kernel).items()
                        if key not in ("c", "readonly")],
        "dtypes": [(image.astype(d), kernel.astype(d)) + common[2:]
                   for d in ("int32", "uint64", "bool", "complex128", "longdouble", object)],
        "mixed": [(image, kernel.astype(np.float32)) + common[2:]],
        "ndim": [(image[0],) + common[1:], (image[None],) + common[1:]],
        "empty": [(image[:0],) + common[1:], (image, kernel[:, :0]) + common[2:]],
        "large": [(np.ones((40, 40)), kernel) + common[2:]],
        "swap": [(kernel, image, "valid") + common[3:]],
        "arguments": [common[:2] + ("same ",) + common[3:], common[:3] + ("wrap",) + common[4:],
                      common[:4] + (0.0,) + common[5:], common[:4] + (1,) + common[5:],
                      common[:4] + (False,) + common[5:], common[:5] + ("fft",) + common[6:],
                      common[:2] + (np.str_("same"),) + common[3:]],
    }
    for what, calls in declined.items():
        for call in calls:
            assert _small.filter2d(*call) is None, what


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("dtype", SHORT_DTYPES)
@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed", "byteswapped", "readonly",
                                    "subclass", "list"])
def test_declined_layouts_give_the_same_result(name, dtype, layout):
    ours, peer = getattr(cyconv, name), getattr(scipy.signal, name)
    image, kernel = IMAGE.astype(dtype), KERNEL.astype(dtype)
    for mode in MODES:
        for args in ((_layouts(image)[layout], kernel), (image, _layouts(kernel)[layout])):
            ref = peer(*args, mode)
            got = _same_result(ours, *args, mode)
            assert got.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_taps_as_scipy(name, dtype, bad):
    """A NaN or inf tap times the zero fill is NaN in SciPy: the fast path declines it."""
    ours, peer = getattr(cyconv, name), getattr(scipy.signal, name)
    image, kernel = IMAGE.astype(dtype), KERNEL.astype(dtype)
    kernel[0, 2] = bad
    for mode in MODES:
        ref = peer(image, kernel, mode)
        got = _same_result(ours, image, kernel, mode)
        np.testing.assert_array_equal(got, ref)  # NaN where SciPy has NaN
    image[1, 1] = bad  # in the image: no fill involved
    for mode in MODES:
        np.testing.assert_array_equal(_same_result(ours, image, KERNEL.astype(dtype), mode),
                                      peer(image, KERNEL.astype(dtype), mode))


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_int64_wraps_as_scipy(name):
    ours, peer = getattr(cyconv, name), getattr(scipy.signal, name)
    big = np.iinfo(np.int64).max
    image = np.array([[big, -big - 1, 3], [big, 1, -2]], np.int64)
    kernel = np.array([[3, -5], [7, big]], np.int64)
    for mode in MODES:
        got = _same_result(ours, image, kernel, mode)
        np.testing.assert_array_equal(got, peer(image, kernel, mode))


SHORT_BAD_CALLS = [
    (IMAGE[None], KERNEL, "full", "fill", 0),
    (IMAGE, KERNEL[0], "same", "fill", 0),
    (IMAGE.astype(object), KERNEL.astype(object), "full", "fill", 0),
    (IMAGE.astype("U3"), KERNEL, "full", "fill", 0),
    (IMAGE.astype(np.float64), KERNEL.astype(np.float64), "full", "fill", "x"),
    (IMAGE.astype(np.float64), KERNEL.astype(np.float64), "same", "fill", np.ones(2)),
    (IMAGE.astype(np.float64), KERNEL.astype(np.float64), "SAME", "fill", 0),
    (IMAGE.astype(np.float64), KERNEL.astype(np.float64), "same", "reflect", 0),
    (IMAGE.astype(np.float64), KERNEL.astype(np.float64), "same", "fill", 0, "fast"),
    (IMAGE.astype(np.float64), KERNEL.astype(np.float64), {"same"}, "fill", 0),
    (IMAGE.astype(np.float64)[:2], KERNEL.astype(np.float64)[:, :2], "valid", "fill", 0),
    (np.zeros((0, 3)), np.zeros((0, 2)), "full", "fill", 0),
]


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("args", SHORT_BAD_CALLS, ids=range(len(SHORT_BAD_CALLS)))
def test_more_errors_identical(name, args, request):
    """Errors of calls near the fast path's: the same with and without the short paths."""
    ours = getattr(cyconv, name)
    *args, method = args if len(args) == 6 else (*args, "auto")
    with pytest.raises(Exception) as fast:
        ours(*args, method=method)
    request.getfixturevalue("dispatching")
    with pytest.raises(Exception) as plain:
        ours(*args, method=method)
    assert type(fast.value) is type(plain.value)
    assert str(fast.value) == str(plain.value)
    assert isinstance(fast.value, (TypeError, ValueError))


@pytest.mark.parametrize("mode", range(3))
@pytest.mark.parametrize("flip", [False, True])
def test_geometry_matches_scipy_shapes_and_offsets(mode, flip):
    """geometry's sizes are SciPy's output shapes, its offsets SciPy's 'same' window."""
    peer = scipy.signal.convolve2d if flip else scipy.signal.correlate2d
    rng = np.random.default_rng(3)
    for h, w, kh, kw in [(5, 5, 3, 3), (6, 7, 2, 4), (4, 4, 4, 1), (9, 3, 1, 3)]:
        image = rng.standard_normal((h, w))
        kernel = rng.standard_normal((kh, kw))
        ho, wo, top, left = _small.geometry(mode, flip, h, w, kh, kw)
        ref = peer(image, kernel, _small.MODES[mode])
        assert (ho, wo) == ref.shape
        # Output (i, j) reads from input pixel (i - top, j - left) on, as 'full'
        # output (i + kh - 1 - top, j + kw - 1 - left) does (top = kh - 1 there).
        full = peer(image, kernel, "full")
        start = (kh - 1 - top, kw - 1 - left)
        np.testing.assert_allclose(full[start[0]:start[0] + ho, start[1]:start[1] + wo], ref,
                                   rtol=1e-12, atol=1e-12)


# ---- _small.pad: cyconv.ndimage's extension of the input ---------------------

@pytest.mark.parametrize("mode", _small.PAD_MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (3, 2), (5, 5)])
def test_pad_matches_numpy_pad(mode, dtype, shape):
    """Every padding up to three times the axis (np.pad extends again and again)."""
    rng = np.random.default_rng(7)
    image = rng.standard_normal(shape).astype(dtype)
    code = _small.PAD_MODES.index(mode)
    h, w = shape
    for top, bottom, left, right in [(0, 0, 0, 0), (1, 1, 1, 1), (2, 0, 0, 3),
                                     (3 * h, h + 1, 2 * w + 1, 3 * w), (h, 2 * h, w, 0)]:
        extra = {"constant_values": 0.3} if mode == "constant" else {}
        ref = np.pad(image, ((top, bottom), (left, right)), mode=mode, **extra)
        got = _small.pad(image, top, bottom, left, right, code, 0.3)
        assert got.dtype == ref.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("image", [np.ones((3, 3), np.int64), np.ones((3, 3)).T[:, ::2],
                                   np.ones((0, 3)), np.ones(3), np.ones((3, 3), ">f8")],
                         ids=["int64", "strided", "empty", "1-D", "byteswapped"])
def test_pad_rejects_what_it_cannot_read(image):
    with pytest.raises(ValueError, match="C-contiguous float32 or float64"):
        _small.pad(image, 1, 1, 1, 1, 0, 0.0)
    with pytest.raises(ValueError, match="paddings >= 0"):
        _small.pad(np.ones((3, 3)), -1, 1, 1, 1, 0, 0.0)


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed", "byteswapped", "list"])
def test_ndimage_layouts(name, layout):
    """cyconv.ndimage makes any layout C-contiguous before _small.pad reads it."""
    ours, peer = getattr(cyconv.ndimage, name), getattr(scipy.ndimage, name)
    image = IMAGE.astype(np.float64)
    for mode in ("reflect", "constant", "mirror", "wrap", "nearest"):
        for args in ((_layouts(image)[layout], KERNEL), (image, _layouts(KERNEL)[layout])):
            np.testing.assert_allclose(ours(*args, mode=mode, cval=1.5),
                                       peer(*args, mode=mode, cval=1.5), rtol=1e-12)


# ---- _small.conv2d: conv2d on one small plane --------------------------------

def _general_conv2d(*args, **kwargs):
    """cyconv.conv2d with the compiled one-plane path turned off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_small, "conv2d", lambda *a: None)
        return cyconv.conv2d(*args, **kwargs)


@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float64", "float64"),
                                    ("int64", "int64"), ("int64", "float64"),
                                    ("float32", "float64"), ("float32", "int64")])
@pytest.mark.parametrize("kshape", [(3, 3), (1, 1), (2, 4), (5, 2)])
def test_conv2d_fast_path_matches_general_and_reference(dtypes, kshape):
    rng = np.random.default_rng(kshape[0] * 7 + kshape[1])
    x = (rng.integers(-9, 10, (6, 7)) / (7 if dtypes[0] != "int64" else 1)).astype(dtypes[0])
    w = (rng.integers(-9, 10, kshape) / (3 if dtypes[1] != "int64" else 1)).astype(dtypes[1])
    for stride in (1, 2, 3):
        for padding in (0, 1, 2):
            for dilation in (1, 2):
                for method in ("auto", "direct"):
                    kwargs = dict(stride=stride, padding=padding, dilation=dilation,
                                  method=method)
                    try:
                        general = _general_conv2d(x, w, **kwargs)
                    except ValueError:
                        continue  # the dilated kernel exceeds the padded input
                    assert _small.conv2d(x, w, None, stride, padding, dilation, 1, "zeros",
                                         method) is not None
                    fast = cyconv.conv2d(x, w, **kwargs)
                    assert type(fast) is np.ndarray and fast.flags.c_contiguous
                    assert fast.dtype == general.dtype and fast.shape == general.shape
                    assert fast.tobytes() == general.tobytes()
                    ref = conv2d_ref(x[None, None].astype(np.float64),
                                     w[None, None].astype(np.float64), None, (stride, stride),
                                     (padding,) * 4, (dilation, dilation))[0, 0]
                    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


def test_conv2d_fast_path_taken_for_the_common_case_only():
    x, w = IMAGE.astype(np.float64), KERNEL.astype(np.float64)
    common = (x, w, None, 2, 0, 1, 1, "zeros", "auto")

    def change(position, value):
        return common[:position] + (value,) + common[position + 1:]

    assert _small.conv2d(*common) is not None
    declined = [change(0, layout) for key, layout in _layouts(x).items()
                if key not in ("c", "readonly")]
    declined += [change(1, layout) for key, layout in _layouts(w).items()
                 if key not in ("c", "readonly")]
    declined += [change(0, x.astype(d)) for d in ("int32", "bool", "float16", "complex128",
                                                  "longdouble", object)]
    declined += [change(0, x[None]), change(1, w[None, None]), change(0, x[:0]),
                 change(0, np.ones((40, 40))), change(2, np.zeros(1)), change(2, 0.0),
                 change(3, (2, 2)), change(3, True), change(3, 0), change(3, 2.0),
                 change(4, "same"), change(4, -1), change(4, (0, 0)), change(5, 0),
                 change(5, np.int64(1)), change(6, 2), change(6, True), change(7, "reflect"),
                 change(8, "im2col"), change(8, "fft"), change(1, np.ones((9, 9)))]
    for call in declined:
        assert _small.conv2d(*call) is None


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_conv2d_nonfinite_weights(bad):
    """Padded taps sum as 0 * w, NaN for a NaN or inf weight: the general path pads."""
    x, w = IMAGE.astype(np.float64), KERNEL.astype(np.float64)
    w[0, 0] = bad
    for padding in (0, 1):
        fast = cyconv.conv2d(x, w, padding=padding)
        general = _general_conv2d(x, w, padding=padding)
        assert fast.tobytes() == general.tobytes()
        ref = conv2d_ref(x[None, None], w[None, None], None, (1, 1), (padding,) * 4)[0, 0]
        np.testing.assert_array_equal(fast, ref)


CONV2D_BAD_CALLS = [
    dict(input=IMAGE, weight=KERNEL, stride=0),
    dict(input=IMAGE, weight=KERNEL, stride=True),
    dict(input=IMAGE, weight=KERNEL, padding=-1),
    dict(input=IMAGE, weight=KERNEL, dilation=3),
    dict(input=IMAGE, weight=np.ones((7, 7))),
    dict(input=IMAGE, weight=KERNEL, groups=0),
    dict(input=IMAGE, weight=KERNEL, padding_mode="nope"),
    dict(input=IMAGE, weight=KERNEL, method="nope"),
    dict(input=IMAGE, weight=KERNEL[0]),
    dict(input=IMAGE.astype(complex), weight=KERNEL),
    dict(input=IMAGE.astype(object), weight=KERNEL),
    dict(input=IMAGE[:0], weight=KERNEL),
]


@pytest.mark.parametrize("kwargs", CONV2D_BAD_CALLS, ids=range(len(CONV2D_BAD_CALLS)))
def test_conv2d_errors_identical(kwargs):
    with pytest.raises(Exception) as fast:
        cyconv.conv2d(**kwargs)
    with pytest.raises(Exception) as general:
        _general_conv2d(**kwargs)
    assert type(fast.value) is type(general.value)
    assert str(fast.value) == str(general.value)
    assert isinstance(fast.value, (TypeError, ValueError))
