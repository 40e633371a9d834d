"""cyconv.ndimage against scipy.ndimage: modes, origins, cvals, shapes, dtypes, outputs, errors."""
import doctest

import numpy as np
import pytest

import cyconv.ndimage as cnd

snd = pytest.importorskip("scipy.ndimage")

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror",
         "grid-wrap"]
SHAPES = [(1, 1), (3, 3), (2, 4), (1, 5), (4, 1), (9, 8)]


def _outcome(f, *args, **kw):
    try:
        return f(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - compared by type
        return type(exc)


def _same(ref, got):
    if isinstance(ref, type):
        assert got is ref
        return
    assert not isinstance(got, type), got
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kshape", SHAPES)
@pytest.mark.parametrize("origin", [0, -1, 1, (0, -1), (2, 0)])
def test_modes_origins_shapes(name, mode, kshape, origin):
    rng = np.random.default_rng(0)
    a = rng.integers(-9, 10, (5, 7)).astype(np.int64)
    w = rng.integers(-3, 4, kshape)
    for cval in (0.0, 2.5):
        _same(_outcome(getattr(snd, name), a, w, mode=mode, origin=origin, cval=cval),
              _outcome(getattr(cnd, name), a, w, mode=mode, origin=origin, cval=cval))


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.int64, np.float32,
                                   np.float64])
@pytest.mark.parametrize("name", ["correlate", "convolve"])
@pytest.mark.parametrize("output", [None, np.float64, np.int16, "array"])
def test_dtypes_and_outputs(dtype, name, output):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, (6, 5)).astype(dtype)
    w = rng.integers(0, 3, (3, 2)).astype(np.float64) * 0.5  # sums of 0.5: a bool output truncates
    out_ref = out_got = output
    if output == "array":
        out_ref, out_got = np.zeros(a.shape, np.int32), np.zeros(a.shape, np.int32)
    ref = getattr(snd, name)(a, w, output=out_ref)
    got = getattr(cnd, name)(a, w, output=out_got)
    if output == "array":
        assert got is out_got
    _same(ref, got)


def test_kernel_larger_than_image_float():
    rng = np.random.default_rng(2)
    a, w = rng.standard_normal((3, 2)), rng.standard_normal((7, 6))
    for mode in MODES:
        np.testing.assert_allclose(cnd.correlate(a, w, mode=mode),
                                   snd.correlate(a, w, mode=mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("args, kw", [
    ((np.ones((3, 3)), np.ones((2, 2))), {"mode": "bogus"}),
    ((np.ones((3, 3)), np.ones((3, 3))), {"origin": 2}),
    ((np.ones((3, 3)), np.ones((3, 3))), {"origin": (0, 0, 0)}),
    ((np.ones((3, 3)), np.ones(3)), {}),
    ((np.ones((3, 3)), np.ones((3, 3))), {"output": np.zeros((2, 2))}),
])
def test_errors_match_scipy(args, kw):
    for name in ("correlate", "convolve"):
        ref = _outcome(getattr(snd, name), *args, **kw)
        assert isinstance(ref, type)
        with pytest.raises(ref):
            getattr(cnd, name)(*args, **kw)


def test_other_ranks_name_the_2d_limit():
    with pytest.raises(ValueError, match="2-D"):
        cnd.correlate(np.ones((2, 2, 2)), np.ones((1, 1, 1)))


def test_doctests():
    assert doctest.testmod(cnd).failed == 0
