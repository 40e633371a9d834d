"""cyconv.ndimage's integer and bool outputs against scipy.ndimage's C casts.

SciPy sums in float64 and stores each sum with a C cast to the output type.
C defines that cast when the sum truncated toward zero fits the type (for
unsigned types the sums in (-1, 0) give 0 too); beyond it (sums out of range,
NaN, inf) the result is undefined behaviour and depends on the platform's
conversion instructions. These tests hold cyconv to SciPy exactly on the
defined part, and check the rest only for the dtype, the shape and silence.
"""
import warnings

import numpy as np
import pytest

import cyconv.ndimage as cnd

snd = pytest.importorskip("scipy.ndimage")

INT_OUTPUTS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
               np.uint64]


def _defined(sums, dtype):
    """Where C defines the cast of the float64 ``sums`` to ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        dtype = np.dtype(np.uint8)  # npy_bool is an unsigned char
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        t = np.trunc(sums)
        # The bounds as float64: the upper one may round up to 2**bits, excluded.
        return (t >= float(info.min)) & (t < float(info.max) + 1.0) & np.isfinite(sums)


def _run_silently(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return f(*args, **kw)


def _same_where_defined(a, w, dtype, **kw):
    for name in ("correlate", "convolve"):
        ref = _run_silently(getattr(snd, name), a, w, output=dtype, **kw)
        got = _run_silently(getattr(cnd, name), a, w, output=dtype, **kw)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        sums = getattr(snd, name)(a, w, output=np.float64, **kw)
        ok = _defined(sums, dtype)
        np.testing.assert_array_equal(got[ok], ref[ok])
        out = np.zeros(a.shape, dtype)  # an output array takes the same casts
        assert _run_silently(getattr(cnd, name), a, w, output=out, **kw) is out
        np.testing.assert_array_equal(out[ok], ref[ok])
    return ok


@pytest.mark.parametrize("dtype", INT_OUTPUTS + [np.bool_])
def test_in_range_sums_truncate_as_scipy(dtype):
    info = np.iinfo(np.uint8 if dtype == np.bool_ else dtype)
    lo, hi = float(info.min), float(info.max)
    # Exactly representable limits (the 64-bit maxima are not: 2**63 - 1024 is).
    top = hi if info.bits < 64 else np.nextafter(hi, 0.0)
    values = [lo, lo + 0.5, top, top - 0.5, 0.0, 0.7, -0.7, 1.999, -0.999, 2.5, 100.25]
    a = np.array(values, np.float64).reshape(1, -1)
    ok = _same_where_defined(a, np.ones((1, 1)), dtype, mode="nearest")
    assert ok.all()


@pytest.mark.parametrize("dtype", INT_OUTPUTS + [np.bool_])
def test_sums_beyond_the_range(dtype):
    # uint8 images summed by a 3x3 kernel of ones (up to 2295), a kernel with
    # negative taps (sums below 0), and large float64 images.
    rng = np.random.default_rng(8)
    a8 = rng.integers(0, 256, (9, 10)).astype(np.uint8)
    ok = _same_where_defined(a8, np.ones((3, 3)), dtype)
    if np.dtype(dtype).itemsize == 1:
        assert not ok.all()  # the test reaches the undefined part
    _same_where_defined(a8, np.array([[1.0, -2.0, 0.5]]), dtype, mode="constant", cval=3.0)
    big = rng.uniform(-3e19, 3e19, (6, 7))
    _same_where_defined(big, np.array([[0.5, 0.25]]), dtype, mode="wrap")


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint16])
def test_integer_input_overflowing_its_own_dtype(dtype):
    # The default output is the input dtype: int16 sums past 32767 and so on.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(9)
    a = rng.integers(info.max // 2, info.max, (6, 6), dtype=dtype, endpoint=True)
    a[::2] = rng.integers(info.min, info.min // 2 + 1, (3, 6), dtype=dtype, endpoint=True)
    for name in ("correlate", "convolve"):
        ref = getattr(snd, name)(a, np.ones((2, 2)))
        got = _run_silently(getattr(cnd, name), a, np.ones((2, 2)))
        assert got.dtype == ref.dtype == a.dtype
        sums = getattr(snd, name)(a, np.ones((2, 2)), output=np.float64)
        ok = _defined(sums, dtype)
        # Past 2**53 a float64 sum of four terms rounds by the order they are
        # added in, which differs between SIMD levels (and from SciPy's): to
        # rounding there, exactly below.
        exact = ok & (np.abs(sums) < 2.0**53)
        np.testing.assert_array_equal(got[exact], ref[exact])
        # Each of the 3 additions rounds by at most half an ulp of the terms' sum.
        bound = 4 * np.finfo(np.float64).eps * 4 * float(np.abs(a).max())
        np.testing.assert_allclose(got[ok].astype(np.float64), ref[ok].astype(np.float64),
                                   rtol=0, atol=bound)


def test_large_int64_values_through_float64():
    # int64 input is summed in float64 as in SciPy: exact below 2**53, rounded
    # alike above (these are multiples of 2**10, exact in float64).
    a = np.array([[2**62, -2**62, 2**53 + 2, 3 * 2**60, -2**63 + 2**11, 7]], np.int64)
    for w in (np.ones((1, 1)), np.array([[1, 1]]), np.array([[1, -1]])):
        _same_where_defined(a, w, np.int64, mode="nearest")
        np.testing.assert_array_equal(cnd.correlate(a, w, np.float64, mode="nearest"),
                                      snd.correlate(a, w, np.float64, mode="nearest"))


@pytest.mark.parametrize("dtype", INT_OUTPUTS + [np.bool_])
def test_nan_and_inf_into_integers_are_silent(dtype):
    a = np.array([[np.nan, 1.0, np.inf, 2.0, -np.inf, 3.5, 4.0]])
    ok = _same_where_defined(a, np.ones((1, 1)), dtype, mode="nearest")
    assert not ok[0, [0, 2, 4]].any() and ok[0, [1, 3, 5, 6]].all()


def test_integer_outputs_are_exact_with_large_kernels():
    # Integer sums are summed directly (exactly), never by an FFT whose
    # rounding would move a truncation by one.
    rng = np.random.default_rng(10)
    a = rng.integers(0, 256, (128, 128)).astype(np.uint8)
    w = rng.integers(-3, 4, (31, 31))
    for output in (np.int32, np.float64):
        np.testing.assert_array_equal(cnd.correlate(a, w, output=output),
                                      snd.correlate(a, w, output=output))
    f = rng.integers(-50, 50, (128, 128)).astype(np.float64)
    np.testing.assert_array_equal(cnd.correlate(f, w, output=np.int32),
                                  snd.correlate(f, w, output=np.int32))


@pytest.mark.parametrize("args, kw", [
    # dtypes SciPy's C filters do not read or write: RuntimeError
    ((np.ones((3, 3), np.float16), np.ones((2, 2))), {}),
    ((np.ones((3, 3), np.longdouble), np.ones((2, 2))), {}),
    ((np.ones((3, 3), object), np.ones((2, 2))), {}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": np.float16}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": np.longdouble}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": object}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": np.zeros((3, 3), np.float16)}),
    # a dtype name must be numeric (np.bool_ itself is accepted)
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": "bool"}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": "U3"}),
    # weights are converted to float64 first
    ((np.ones((3, 3)), np.array([["a", "b"]])), {}),
])
def test_unsupported_dtypes_match_scipy(args, kw):
    for name in ("correlate", "convolve"):
        try:
            getattr(snd, name)(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - compared by type
            ref = type(exc)
        else:
            raise AssertionError("SciPy accepted it")
        with pytest.raises(ref):
            getattr(cnd, name)(*args, **kw)


@pytest.mark.parametrize("weights", [np.array([[1, 2], [3, 4]], object), [[1, 2], [3, 4]],
                                     np.array([["1", "2"], ["3", "4"]])])
def test_weights_convert_to_float64_as_scipy(weights):
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    for name, output in (("correlate", None), ("convolve", np.bool_), ("correlate", "f8")):
        ref = getattr(snd, name)(a, weights, output=output)
        got = getattr(cnd, name)(a, weights, output=output)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [">f8", ">i2", "<u4"])
def test_default_output_is_native_as_scipy(dtype):
    # SciPy allocates the output by the input dtype's name: native byte order.
    a = np.arange(20).reshape(4, 5).astype(dtype)
    ref, got = snd.correlate(a, np.ones((2, 3))), cnd.correlate(a, np.ones((2, 3)))
    assert got.dtype == ref.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("output", [np.dtype(">f4"), ">i4", "array>f8", "array>i2"])
def test_swapped_byte_order_outputs(output):
    a = np.arange(20).reshape(4, 5).astype(np.float64) - 7.5
    out_ref = out_got = output
    if isinstance(output, str) and output.startswith("array"):
        out_ref, out_got = np.zeros(a.shape, output[5:]), np.zeros(a.shape, output[5:])
    ref, got = (f(a, np.ones((2, 3)), output=o)
                for f, o in ((snd.correlate, out_ref), (cnd.correlate, out_got)))
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


def test_float32_output_overflows_to_inf_silently():
    # IEEE (C Annex F) defines it: a float64 sum beyond float32's range is inf.
    a = np.array([[1e300, -1e300, 1.0, 3e38]])
    w = np.array([[1.0, 2.0]])
    ref = _run_silently(snd.correlate, a, w, output=np.float32)
    got = _run_silently(cnd.correlate, a, w, output=np.float32)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    assert np.isinf(got).any()


def test_compiled_int64_cast_truncates_as_numpy_where_defined():
    # _small.truncate_to_int64 (the int64 output's cast) against NumPy's cast on
    # the defined part; other inputs are declined (None) for NumPy to cast.
    from cyconv import _small
    sums = np.array([[0.0, -0.5, 0.99, -1.99, 2.0**52 + 0.5, -(2.0**62), 12345.678],
                     [np.nan, np.inf, -np.inf, 2.0**63, -(2.0**64), 1e300, -7.5]])
    got = _small.truncate_to_int64(sums)
    assert got.dtype == np.int64 and got.shape == sums.shape
    defined = _defined(sums, np.int64)
    assert defined.sum() == 8
    np.testing.assert_array_equal(got[defined], np.trunc(sums[defined]).astype(np.int64))
    for declined in (np.ones((2, 2), np.float32), sums[:, ::2], sums.astype(">f8"),
                     np.ones((2, 2), np.int64)):
        assert _small.truncate_to_int64(declined) is None
