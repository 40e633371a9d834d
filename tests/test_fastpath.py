"""The one-plane direct call of correlate2d/convolve2d (``_signal._DIRECT_PLANE``).

``_signal`` calls the specialization of the fused ``_direct.conv2d_forward``
for the compute dtype directly, skipping Cython's per-call dispatch. These
tests check that every entry is the right specialization: it accepts arrays of
its own dtype only, gives what the dispatching call gives, and that
correlate2d/convolve2d through it equal scipy.signal for every dtype, mode and
boundary, and raise what the dispatching path raises.
"""
import warnings

import numpy as np
import pytest
import scipy.signal

import cyconv
from cyconv import _direct, _signal
from cyconv._conv import ZERO_BIAS

DTYPES = ("int8", "uint8", "int16", "int32", "int64", "uint64", "float32", "float64",
          "longdouble", "complex64", "complex128", "clongdouble")
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")
IMAGE = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
                  [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
KERNEL = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])


@pytest.fixture
def dispatching(monkeypatch):
    """Route _signal through the plain fused call (Cython's own dispatch)."""
    plain = {dtype: _direct.conv2d_forward for dtype in _signal._DIRECT_PLANE}
    monkeypatch.setattr(_signal, "_DIRECT_PLANE", plain)


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
