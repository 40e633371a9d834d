"""correlate2d and convolve2d against scipy.signal, the functions they replace.

Every comparison checks the result dtype, the values (exact for integers), a
new C-contiguous result and unchanged inputs. Where SciPy raises, cyconv must
raise the same exception type.
"""
import contextlib
import warnings

import numpy as np
import pytest
import scipy.signal

import cyconv

NAMES = ("correlate2d", "convolve2d")
MODES = ("full", "same", "valid")
METHODS = ("direct", "im2col")
INTS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
# Every numeric dtype NumPy has ('l' and 'q' are both int64 here, which is fine).
ALL_NUMERIC = "?bBhHiIlLqQefdgFDG"

# Image (5, 6) with kernels that are odd, even, non-square, 1x1 and larger than
# the image in one or both dimensions (wrap/symm then go round more than once).
IMAGE = (5, 6)
KERNELS = ((1, 1), (2, 2), (3, 3), (2, 3), (4, 1), (3, 6), (5, 6), (7, 9), (9, 4), (11, 13))


def _tol(dtype):
    """assert_allclose tolerances for a floating or complex dtype: 1000 ulps."""
    eps = np.finfo(dtype).eps
    return dict(rtol=1000 * eps, atol=1000 * eps)


def _random(rng, shape, dtype, low=-5, high=5):
    """Random values of ``dtype``: integers in [low, high), floats normal, complex both parts."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(low, info.min), min(high, info.max), shape, dtype=dtype)
    values = rng.standard_normal(shape)
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


@contextlib.contextmanager
def _quiet():
    """Silence the warnings of fillvalue casts (SciPy warns on its way to an error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # nan or overflowing casts
        yield


def _scipy(name, *args, **kwargs):
    """scipy.signal's function, without the warnings it gives before raising."""
    with _quiet():
        return getattr(scipy.signal, name)(*args, **kwargs)


def _assert_close(got, expected):
    """Exact for integers, to 1000 ulps of the dtype for floating and complex."""
    if expected.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, **_tol(expected.dtype))


def check(name, in1, in2, *args, method="auto", **kwargs):
    """cyconv.<name> equals scipy.signal.<name> on these arguments; returns the result."""
    before = (np.array(in1, copy=True), np.array(in2, copy=True))
    expected = _scipy(name, in1, in2, *args, **kwargs)
    got = getattr(cyconv, name)(in1, in2, *args, method=method, **kwargs)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    assert got.flags.c_contiguous
    assert not np.shares_memory(got, in1) and not np.shares_memory(got, in2)
    _assert_close(got, expected)
    np.testing.assert_array_equal(in1, before[0])
    np.testing.assert_array_equal(in2, before[1])
    return got


def outcome(func, *args, **kwargs):
    """The result, or the type of the exception raised, for comparing behaviours."""
    with _quiet():
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the type is what is compared
            return type(exc)


def same_outcome(name, *args, **kwargs):
    """cyconv and SciPy both raise the same type, or both return equal arrays."""
    expected = outcome(getattr(scipy.signal, name), *args, **kwargs)
    got = outcome(getattr(cyconv, name), *args, **kwargs)
    if isinstance(expected, type):
        assert got is expected, f"SciPy raised {expected.__name__}, cyconv gave {got!r}"
    else:
        assert isinstance(got, np.ndarray), f"SciPy returned, cyconv raised {got.__name__}"
        assert got.dtype == expected.dtype and got.shape == expected.shape
        _assert_close(got, expected)


def _valid_ok(shape1, shape2):
    return (all(a >= b for a, b in zip(shape1, shape2))
            or all(b >= a for a, b in zip(shape1, shape2)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fillvalue", [0, 2.5, -3])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_modes_boundaries_kernel_shapes(name, mode, boundary, fillvalue, method):
    rng = np.random.default_rng(0)
    image = _random(rng, IMAGE, np.float64)
    for shape in KERNELS:
        if mode == "valid" and not _valid_ok(IMAGE, shape):
            continue
        kernel = _random(rng, shape, np.float64)
        check(name, image, kernel, mode, boundary, fillvalue, method=method)
        # The image as the smaller argument: 'valid' swaps, the others do not.
        check(name, kernel, image, mode, boundary, fillvalue, method=method)


@pytest.mark.parametrize("alias, canonical",
                         [("pad", "fill"), ("circular", "wrap"), ("symmetric", "symm")])
@pytest.mark.parametrize("name", NAMES)
def test_boundary_aliases(name, alias, canonical):
    rng = np.random.default_rng(1)
    image, kernel = _random(rng, (4, 5), np.float64), _random(rng, (3, 4), np.float64)
    got = check(name, image, kernel, "same", alias, 1.5)
    ours = getattr(cyconv, name)(image, kernel, "same", canonical, 1.5)
    np.testing.assert_array_equal(got, ours)


@pytest.mark.parametrize("name", NAMES)
def test_same_offsets_for_even_kernels(name):
    """'same' is the 'full' output cut at k//2 (correlate) or (k-1)//2 (convolve)."""
    rng = np.random.default_rng(2)
    image = _random(rng, (6, 7), np.int64)
    for kh, kw in ((2, 2), (4, 3), (3, 4), (2, 5)):
        kernel = _random(rng, (kh, kw), np.int64)
        func = getattr(cyconv, name)
        full = func(image, kernel, "full")
        top, left = ((kh // 2, kw // 2) if name == "correlate2d"
                     else ((kh - 1) // 2, (kw - 1) // 2))
        same = check(name, image, kernel, "same")
        np.testing.assert_array_equal(same, full[top:top + 6, left:left + 7])


def test_correlate_conjugates_complex_in2():
    """sum_{p,q} in1[i+p, j+q] * conj(in2[p, q]), written out with NumPy."""
    rng = np.random.default_rng(3)
    image, kernel = _random(rng, (5, 6), np.complex128), _random(rng, (2, 3), np.complex128)
    got = check("correlate2d", image, kernel, "valid")
    expected = np.zeros((4, 4), complex)
    for p in range(2):
        for q in range(3):
            expected += image[p:p + 4, q:q + 4] * np.conj(kernel[p, q])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # convolve2d does not conjugate: it is correlate2d of the flipped conjugate.
    np.testing.assert_allclose(
        cyconv.convolve2d(image, kernel, "valid"),
        cyconv.correlate2d(image, np.conj(kernel[::-1, ::-1]), "valid"), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "complex128", "int32"])
@pytest.mark.parametrize("name", NAMES)
def test_valid_swaps_inputs(name, dtype):
    rng = np.random.default_rng(4)
    small = _random(rng, (3, 4), dtype)
    for big_shape in ((5, 7), (3, 6), (4, 4), (3, 4)):
        big = _random(rng, big_shape, dtype)
        check(name, small, big, "valid")
        check(name, big, small, "valid")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("name", NAMES)
def test_integers_wrap_on_overflow(name, dtype, method):
    """Full-range integers overflow; SciPy's wrap-around is reproduced exactly."""
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    image = rng.integers(info.min, info.max, (6, 7), dtype=dtype, endpoint=True)
    kernel = rng.integers(info.min, info.max, (3, 4), dtype=dtype, endpoint=True)
    for mode in MODES:
        for boundary, fillvalue in (("fill", 0), ("fill", 7), ("wrap", 0), ("symm", 0)):
            check(name, image, kernel, mode, boundary, fillvalue, method=method)
    if info.min < 0:
        check(name, image, kernel, "full", "fill", -2, method=method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "longdouble",
                                   "complex64", "complex128", "clongdouble"])
@pytest.mark.parametrize("name", NAMES)
def test_floating_dtypes(name, dtype, method):
    rng = np.random.default_rng(6)
    image, kernel = _random(rng, (7, 6), dtype), _random(rng, (4, 3), dtype)
    fills = [0, 1.5, -2.25] + ([1 - 2j] if np.dtype(dtype).kind == "c" else [])
    for mode in MODES:
        for fillvalue in fills:
            check(name, image, kernel, mode, "fill", fillvalue, method=method)
        check(name, image, kernel, mode, "symm", method=method)


MIXED = [("int8", "uint8"), ("int64", "uint64"), ("int16", "float16"), ("bool", "int32"),
         ("bool", "uint8"), ("uint8", "int64"), ("int32", "float32"), ("uint16", "float32"),
         ("float32", "float64"), ("float32", "complex128"), ("float64", "complex64"),
         ("longdouble", "complex64"), ("int64", "complex64"), ("clongdouble", "int8"),
         ("uint64", "float32"), ("longdouble", "int64")]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtypes", MIXED, ids="+".join)
@pytest.mark.parametrize("name", NAMES)
def test_mixed_dtypes(name, dtypes, method):
    rng = np.random.default_rng(7)
    for first, second in (dtypes, dtypes[::-1]):
        image = _random(rng, (5, 6), first, low=-100, high=100)
        kernel = _random(rng, (3, 2), second, low=-100, high=100)
        for mode in MODES:
            check(name, image, kernel, mode, "fill", 3, method=method)
            check(name, image, kernel, mode, "wrap", method=method)


@pytest.mark.parametrize("name", NAMES)
def test_result_dtype_is_scipys_for_every_pair(name):
    """np.promote_types, and ValueError for bool, float16 and their kin, as SciPy."""
    ours, theirs = getattr(cyconv, name), getattr(scipy.signal, name)
    for first in ALL_NUMERIC:
        for second in ALL_NUMERIC:
            in1, in2 = np.ones((2, 3), first), np.ones((2, 2), second)
            expected = outcome(theirs, in1, in2)
            if isinstance(expected, type):
                assert expected is ValueError
                with pytest.raises(ValueError, match="dtype"):
                    ours(in1, in2)
            else:
                got = ours(in1, in2)
                assert got.dtype == expected.dtype == np.promote_types(first, second)
                np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", NAMES)
def test_memory_layouts(name, method, layout):
    rng = np.random.default_rng(8)
    for dtype in ("float64", "complex64", "int16"):
        image, kernel = _random(rng, (6, 5), dtype), _random(rng, (3, 2), dtype)
        for mode, boundary in (("full", "fill"), ("same", "wrap"), ("valid", "symm")):
            check(name, layout(image), kernel, mode, boundary, 2, method=method)
            check(name, image, layout(kernel), mode, boundary, 2, method=method)
            check(name, layout(kernel), layout(image), mode, boundary, 2, method=method)


@pytest.mark.parametrize("name", NAMES)
def test_broadcast_and_byte_swapped_inputs(name):
    rng = np.random.default_rng(9)
    row = _random(rng, (1, 6), np.float64)
    image = np.broadcast_to(row, (5, 6))
    kernel = np.broadcast_to(_random(rng, (3, 1), np.float64), (3, 4))
    check(name, image, kernel, "same", "symm")
    check(name, image.astype(">f8"), kernel.astype(">f4"), "full")
    check(name, _random(rng, (4, 4), "i4").astype(">i4"), _random(rng, (2, 3), "<i2"), "same")
    # Python lists, as scipy accepts them.
    check(name, [[1, 2, 3], [4, 5, 6]], [[1, -1]], "full")
    check(name, [[1.5, 2, 3], [4, 5, 6]], [[1j, -1]], "valid")


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_values(name):
    """SciPy multiplies every tap by the fill value, so 0 * inf in the kernel is NaN."""
    image = np.arange(12.0).reshape(3, 4)
    kernel = np.ones((2, 3))
    kernel[0, 1] = np.inf
    for mode in MODES:
        for boundary in ("fill", "wrap"):
            check(name, image, kernel, mode, boundary)
            check(name, image, kernel.astype(complex), mode, boundary)
            check(name, kernel.T, image.T, mode, boundary)
    image[1, 2] = np.nan
    check(name, image, np.ones((2, 2)), "full")
    check(name, image, np.ones((2, 2)), "full", "fill", np.inf)


FILLVALUES = [2.7, -1, 300, -300, 2**63, -2**63, 2**64, 1 + 2j, np.nan, np.inf, 1e300, None,
              True, "3", "x", np.float64(2.5), np.float64(np.nan), np.int64(300), np.int8(-1),
              np.complex128(1 + 2j), np.array(2.5), np.array(300), np.array(2, ">i8"),
              np.array([[4]]), np.array([1, 2]), np.array([]), [5], [], object()]


@pytest.mark.parametrize("fillvalue", FILLVALUES, ids=repr)
def test_fillvalue_casts_like_scipy(fillvalue):
    """Cast, truncation, overflow and the complex-to-real ValueError all match SciPy."""
    image = np.arange(6).reshape(2, 3)
    for dtype in ("uint8", "int64", "uint64", "float32", "complex64", "bool"):
        for name in NAMES:
            same_outcome(name, image.astype(dtype), np.ones((2, 2), dtype),
                         fillvalue=fillvalue)
    # Any fillvalue is ignored by the other boundaries.
    same_outcome("correlate2d", image, image, boundary="wrap", fillvalue=fillvalue)


EMPTY_SHAPES = [((0, 3), (2, 2)), ((3, 3), (2, 0)), ((0, 0), (0, 0)), ((0, 3), (0, 2)),
                ((0, 3), (1, 2)), ((3, 0), (3, 0)), ((2, 2), (0, 0)), ((0, 0), (2, 2))]


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_empty_inputs(name, mode, boundary):
    for shape1, shape2 in EMPTY_SHAPES:
        in1, in2 = np.ones(shape1), np.ones(shape2)
        func = getattr(cyconv, name)
        n_out = (shape1[0] + shape2[0] - 1) * (shape1[1] + shape2[1] - 1)
        if boundary != "fill" and mode == "full" and in1.size == 0 and in2.size and n_out:
            # SciPy divides by the empty image's size and dies of SIGFPE here.
            with pytest.raises(ValueError, match="non-empty in1"):
                func(in1, in2, mode, boundary)
            continue
        same_outcome(name, in1, in2, mode, boundary, fillvalue=2)


class _Unconjugable:
    pass


def _errors():
    ones = np.ones((3, 3))
    cases = [
        ((np.ones(3), ones), {}, ValueError),
        ((ones, np.ones((2, 2, 2))), {}, ValueError),
        ((3, ones), {}, ValueError),
        (([[1, 2], [3]], ones), {}, ValueError),
        ((ones, ones), {"mode": "bad"}, ValueError),
        ((ones, ones), {"mode": 1}, ValueError),
        ((ones, ones), {"mode": None}, ValueError),
        ((ones, ones), {"mode": ["full"]}, TypeError),
        ((ones, ones), {"boundary": "bad"}, ValueError),
        ((ones, ones), {"boundary": "reflect"}, ValueError),
        ((ones, ones), {"boundary": None}, ValueError),
        ((ones, ones), {"boundary": ["fill"]}, TypeError),
        ((np.ones((3, 2)), np.ones((2, 3))), {"mode": "valid"}, ValueError),
        ((np.ones((2, 3)), np.ones((3, 2))), {"mode": "valid"}, ValueError),
        ((ones > 0, ones > 0), {}, ValueError),
        ((ones.astype("f2"), ones.astype("f2")), {}, ValueError),
        ((ones.astype("u1"), ones.astype("f2")), {}, ValueError),
        ((ones.astype(object), ones), {}, ValueError),
        ((ones, ones.astype(object)), {}, ValueError),
        ((ones, ones), {"fillvalue": 1 + 2j}, ValueError),
        ((ones.astype(int), ones), {"fillvalue": 1j}, ValueError),
        ((ones.astype("u1"), ones.astype("u1")), {"fillvalue": -1}, ValueError),
        ((ones.astype("u1"), ones.astype("u1")), {"fillvalue": 256}, ValueError),
        ((ones.astype(int), ones.astype(int)), {"fillvalue": np.nan}, ValueError),
        ((ones, ones), {"fillvalue": np.array([1.0, 2.0])}, ValueError),
        ((ones, ones), {"fillvalue": []}, ValueError),
        ((ones, ones), {"fillvalue": _Unconjugable()}, TypeError),
        ((np.ones((0, 3)), np.ones((0, 2))), {}, ValueError),
        ((ones, ones.astype("U1")), {}, {"correlate2d": TypeError, "convolve2d": ValueError}),
        ((ones, ones.astype("M8[s]")), {}, {"correlate2d": TypeError,
                                            "convolve2d": ValueError}),
        ((ones.astype("m8[s]"), ones), {}, ValueError),
        ((ones, np.array([["a"]], dtype=object)), {},
         {"correlate2d": TypeError, "convolve2d": ValueError}),
    ]
    return [pytest.param(args, kwargs, exc, id=str(i)) for i, (args, kwargs, exc)
            in enumerate(cases)]


@pytest.mark.parametrize("args, kwargs, exc", _errors())
@pytest.mark.parametrize("name", NAMES)
def test_errors_match_scipy(name, args, kwargs, exc):
    exc = exc[name] if isinstance(exc, dict) else exc
    with pytest.raises(exc):
        _scipy(name, *args, **kwargs)
    with pytest.raises(exc, match=name):
        getattr(cyconv, name)(*args, **kwargs)


@pytest.mark.parametrize("method", ["FFT", "bad", None, "DIRECT"])
@pytest.mark.parametrize("name", NAMES)
def test_bad_method(name, method):
    with pytest.raises(ValueError, match="method=.*'auto', 'direct', 'im2col', 'fft'"):
        getattr(cyconv, name)(np.ones((3, 3)), np.ones((2, 2)), method=method)
