"""cyconv.ndimage with complex input or weights against scipy.ndimage (SciPy >= 1.6).

SciPy filters the real and imaginary parts separately and combines the parts
in the output's component dtype; cyconv does the same, so the results agree to
the rounding of each real filtering (float32 parts are summed in float32 here).
"""
import warnings

import numpy as np
import pytest

import cyconv.ndimage as cnd

snd = pytest.importorskip("scipy.ndimage")

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror",
         "grid-wrap"]
# (input dtype, weights dtype): complex on either side or both.
PAIRS = [(np.complex128, np.complex128), (np.complex128, np.float64),
         (np.float64, np.complex128), (np.complex64, np.complex64),
         (np.complex64, np.float32), (np.float32, np.complex64),
         (np.complex64, np.complex128), (np.int16, np.complex128), (np.uint8, np.complex64),
         (np.bool_, np.complex128), (np.int64, np.complex64)]
# Relative tolerance by the output's component precision.
RTOL = {np.dtype(np.complex64): 2e-5, np.dtype(np.complex128): 1e-12}


def _array(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 9, shape).astype(dtype)
    x = rng.standard_normal(shape)
    if dtype.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _close(ref, got):
    assert got.dtype == ref.dtype
    assert got.shape == ref.shape
    scale = max(np.abs(ref).max(), 1.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL[ref.dtype] * scale * 10)


def _outcome(f, *args, **kw):
    try:
        return f(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - compared by type
        return type(exc)


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{np.dtype(p[0])}-{np.dtype(p[1])}")
def test_complex_against_scipy(name, mode, pair):
    rng = np.random.default_rng(3)
    a = _array(rng, (6, 7), pair[0])
    cval = 1.5 - 2j if a.dtype.kind == "c" else 2.5
    for kshape in [(3, 4), (1, 1), (5, 2)]:
        w = _array(rng, kshape, pair[1])
        for origin in [0, (1, -1), -1]:
            kw = {"mode": mode, "cval": cval, "origin": origin}
            ref = _outcome(getattr(snd, name), a, w, **kw)
            if isinstance(ref, type):  # an origin out of SciPy's bounds
                with pytest.raises(ref):
                    getattr(cnd, name)(a, w, **kw)
            else:
                _close(ref, getattr(cnd, name)(a, w, **kw))


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@pytest.mark.parametrize("output", [np.complex64, np.complex128, "complex64", "complex128",
                                    "array64", "array128"])
def test_complex_output_forms(name, output):
    rng = np.random.default_rng(4)
    a = _array(rng, (5, 6), np.complex128)
    w = _array(rng, (3, 3), np.float32)
    out_ref = out_got = output
    if str(output).startswith("array"):
        dtype = np.complex64 if output == "array64" else np.complex128
        out_ref, out_got = np.zeros(a.shape, dtype), np.zeros(a.shape, dtype)
    ref = getattr(snd, name)(a, w, output=out_ref)
    got = getattr(cnd, name)(a, w, output=out_got)
    if isinstance(out_got, np.ndarray):
        assert got is out_got
    _close(ref, got)


def test_real_output_dtype_is_promoted_with_scipy_warning():
    rng = np.random.default_rng(5)
    a, w = _array(rng, (4, 5), np.float64), _array(rng, (2, 3), np.complex128)
    for dtype in (np.float32, np.float64, np.int16):
        with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
            ref = snd.correlate(a, w, output=dtype)
        with pytest.warns(UserWarning, match="promoting specified output dtype to complex") as rec:
            got = cnd.correlate(a, w, output=dtype)
        assert rec[0].filename == __file__  # it points at the caller, as SciPy's
        _close(ref, got)


def test_complex_layouts_and_inputs_unchanged():
    rng = np.random.default_rng(6)
    base = _array(rng, (9, 12), np.complex128)
    w = _array(rng, (3, 2), np.complex128)
    ref = snd.correlate(np.ascontiguousarray(base[::-1, ::3]), w, mode="mirror")
    for a in (base[::-1, ::3], np.asfortranarray(base[::-1, ::3])):
        a.flags.writeable = False
        before = a.copy()
        _close(ref, cnd.correlate(a, w, mode="mirror"))
        np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("wdtype", [np.float64, np.complex128])
def test_complex_output_may_be_the_input(wdtype):
    # The result of filtering into a fresh array. (With complex weights SciPy
    # itself returns something else here: it filters input.real after it has
    # overwritten it.)
    rng = np.random.default_rng(7)
    a = _array(rng, (5, 5), np.complex128)
    w = _array(rng, (3, 3), wdtype)
    ref = snd.correlate(a, w)
    b = a.copy()
    assert cnd.correlate(b, w, output=b) is b
    _close(ref, b)
    if wdtype == np.complex128:  # a real input that is a view of the output
        x = np.zeros((5, 5), complex)
        x.real[...] = a.real
        ref = snd.correlate(a.real, w)
        assert cnd.convolve(x.real, w.conj()[::-1, ::-1], output=x) is x
        _close(ref, x)


@pytest.mark.parametrize("args, kw", [
    # complex cval with a real input: ValueError with complex weights ...
    ((np.ones((3, 3)), np.ones((2, 2)) + 1j), {"cval": 1j, "mode": "constant"}),
    # ... and the real path's TypeError without.
    ((np.ones((3, 3)), np.ones((2, 2))), {"cval": 1j, "mode": "constant"}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"cval": 1j}),
    ((np.ones((3, 3)) + 1j, np.ones((2, 2))), {"output": "float64"}),
    ((np.ones((3, 3)) + 1j, np.ones((2, 2))), {"output": np.zeros((3, 3))}),
    ((np.ones((3, 3)) + 1j, np.ones((2, 2))), {"output": np.zeros((2, 2), complex)}),
    ((np.ones((3, 3), np.clongdouble), np.ones((2, 2))), {}),
    ((np.ones((3, 3)) + 1j, np.ones((2, 2))), {"output": np.clongdouble}),
    ((np.ones((3, 3)) + 1j, np.ones((2, 2))), {"mode": "bogus"}),
    ((np.ones((3, 3)) + 1j, np.ones((2, 2))), {"origin": 1}),
    ((np.ones((3, 3)) + 1j, np.ones(2)), {}),
    # a complex output for real input and weights: SciPy's C code has no such type
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": np.complex128}),
    ((np.ones((3, 3)), np.ones((2, 2))), {"output": np.zeros((3, 3), complex)}),
])
def test_complex_errors_match_scipy(args, kw):
    for name in ("correlate", "convolve"):
        ref = _outcome(getattr(snd, name), *args, **kw)
        assert isinstance(ref, type), ref
        with pytest.raises(ref):
            getattr(cnd, name)(*args, **kw)


def test_complex_other_ranks_name_the_2d_limit():
    with pytest.raises(ValueError, match="2-D"):
        cnd.correlate(np.ones((2, 2, 2), complex), np.ones((1, 1, 1)))


def test_complex_nonfinite_parts_combine_silently():
    # inf - inf in the combination is NaN, as IEEE arithmetic says, with no warning.
    a = np.full((3, 3), np.inf + 1j * np.inf)
    w = np.array([[1 + 1j]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cnd.correlate(a, w)
    with np.errstate(invalid="ignore"):
        ref = snd.correlate(a, w)
    np.testing.assert_array_equal(got, ref)
