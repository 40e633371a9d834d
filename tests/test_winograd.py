"""Winograd F(4x4, 3x3) transforms (groundwork for method='winograd')."""
import itertools
from fractions import Fraction

import numpy as np
import pytest

from cyconv import _winograd_transforms as wt


def _matvec(mat, vec):
    return [sum((a * b for a, b in zip(row, vec)), Fraction(0)) for row in mat]


@pytest.mark.parametrize("m, r, points", [
    (4, 3, wt.POINTS_F4),
    (2, 3, (0, 1, -1)),
    (4, 3, (0, 1, -1, 2, -2)),
])
def test_1d_transform_exact_in_rationals(m, r, points):
    at, g_mat, bt = wt.exact_transforms(m, r, points)
    n = m + r - 1
    assert (len(at), len(at[0]), len(g_mat), len(g_mat[0]), len(bt)) == (m, n, n, r, n)
    # Exact on a basis of (d, g) pairs, hence on every pair (bilinear).
    for t, k in itertools.product(range(n), range(r)):
        d = [Fraction(int(i == t)) for i in range(n)]
        g = [Fraction(int(i == k)) for i in range(r)]
        y = _matvec(at, [a * b for a, b in zip(_matvec(g_mat, g), _matvec(bt, d))])
        assert y == [Fraction(int(t == i + k)) for i in range(m)]


def test_input_transform_is_integer():
    _, _, bt = wt.exact_transforms(4, 3, wt.POINTS_F4)
    assert all(v.denominator == 1 for row in bt for v in row)


def test_bad_points():
    with pytest.raises(ValueError, match="points"):
        wt.exact_transforms(4, 3, (0, 1, 1, 2, -2))
    with pytest.raises(ValueError, match="points"):
        wt.exact_transforms(4, 3, (0, 1, 2))


def _winograd_conv_numpy(x, w, pad, dtype):
    """Reference stride-1 3x3 correlation through F(4x4, 3x3) tiles in NumPy."""
    at, g_mat, bt = (a.astype(dtype) for a in wt.transforms())
    n, c, h, wd = x.shape
    k = w.shape[0]
    ho, wo = h + 2 * pad - 2, wd + 2 * pad - 2
    th, tw = -(-ho // 4), -(-wo // 4)
    xp = np.zeros((n, c, th * 4 + 2, tw * 4 + 2), dtype)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    u = np.einsum("ai,kcij,bj->abkc", g_mat, w.astype(dtype), g_mat)
    tiles = np.lib.stride_tricks.sliding_window_view(xp, (6, 6), axis=(2, 3))[:, :, ::4, ::4]
    v = np.einsum("ai,nctsij,bj->abcnts", bt, tiles, bt)
    mprod = np.einsum("abkc,abcnts->abknts", u, v)
    y = np.einsum("ia,abknts,jb->nktisj", at, mprod, at)
    return y.reshape(n, k, th * 4, tw * 4)[:, :, :ho, :wo]


def _direct64(x, w, pad):
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    return np.einsum("ncijpq,kcpq->nkij", win, w.astype(np.float64))


@pytest.mark.parametrize("shape, pad", [
    ((1, 2, 3, 3), 0), ((2, 3, 7, 9), 1), ((3, 4, 10, 5), 2), ((9, 1, 6, 6), 0),
])
def test_tiled_algorithm_float64(shape, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((5, shape[1], 3, 3))
    np.testing.assert_allclose(_winograd_conv_numpy(x, w, pad, np.float64),
                               _direct64(x, w, pad), rtol=1e-12, atol=1e-12)


# Measured float32 error of F(4x4, 3x3) with these points, relative to the
# largest |output| of the float64 reference: well below this bound for
# channel counts 3..1024 and value scales 1e-3..1e3 (see the test below).
F32_REL_BOUND = 2e-5


@pytest.mark.parametrize("c", [3, 64, 1024])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_float32_error_bound(c, scale):
    rng = np.random.default_rng(c)
    x = (rng.standard_normal((1, c, 9, 9)) * scale).astype(np.float32)
    w = (rng.standard_normal((2, c, 3, 3)) * scale).astype(np.float32)
    ref = _direct64(x, w, 1)
    got = _winograd_conv_numpy(x, w, 1, np.float32)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < F32_REL_BOUND
