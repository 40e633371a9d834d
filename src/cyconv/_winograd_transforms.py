"""Transform matrices of Winograd's minimal filtering algorithm F(m, r).

Groundwork for ``method='winograd'`` (issue 12): the 1-D algorithm computes
``m`` outputs of a correlation with an ``r``-tap kernel from ``n = m + r - 1``
inputs with ``n`` multiplications::

    y = AT @ ((G @ g) * (BT @ d))      # y[i] = sum_k g[k] * d[i + k]

and the 2-D tile ``Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T``.

The matrices come from Toom-Cook interpolation at ``n - 1`` finite points
and infinity, by transposing the linear-convolution algorithm
``s = V^-1 [(V_r g) * (V_m d)]`` (``V`` the ``n x n`` Vandermonde matrix of
the points, its infinity row picking the leading coefficient; ``V_r``, ``V_m``
its first ``r`` and ``m`` columns): ``AT = V_m.T``, ``G = V_r`` and
``BT = V^-T``. Each row of ``BT`` is then scaled to integers and the inverse
scale moved into the matching row of ``G``, so the input transform, applied
to every tile, is exact in floating point (Lavin & Gray 2016).

The default points for F(4, 3), ``{0, -1, 1, 1/2, -2}``, are the ones
Barabasz et al. (2018, "Error analysis and improving the accuracy of
Winograd convolution for deep neural networks") report most accurate.
Everything is derived in exact rationals (`fractions.Fraction`) and only
converted to float at the end.

Accuracy (tests/test_winograd.py, NumPy tiling of F(4x4, 3x3) in float32
against a float64 reference, 9x9 input, padding 1): the largest error
relative to the largest |output| was about 1e-6 at 3-16 channels, 2e-6 at
64, 5e-6 at 256 and 9e-6 at 1024, for value scales 1e-3, 1 and 1e3; the
tests assert 2e-5.
"""
import functools
import math
from fractions import Fraction

import numpy as np

POINTS_F4 = (Fraction(0), Fraction(-1), Fraction(1), Fraction(1, 2), Fraction(-2))
# F(2, 3): the usual points (Lavin & Gray 2016); its transforms have entries +-1, 1/2.
POINTS_F2 = (Fraction(0), Fraction(1), Fraction(-1))
# The points the kernels use for each output tile size m of F(m, 3).
POINTS = {2: POINTS_F2, 4: POINTS_F4}


def _inverse(matrix):
    """Inverse of a square matrix of Fractions by Gauss-Jordan elimination."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)]
            for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        lead = rows[col][col]
        rows[col] = [v / lead for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                f = rows[r][col]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[col])]
    return [row[n:] for row in rows]


def exact_transforms(m, r, points):
    """``(AT, G, BT)`` of F(m, r) as lists of Fraction rows.

    ``points`` are the ``m + r - 2`` distinct finite interpolation points;
    the last point is infinity.
    """
    n = m + r - 1
    pts = [Fraction(p) for p in points]
    if len(pts) != n - 1 or len(set(pts)) != n - 1:
        raise ValueError(f"points: need {n - 1} distinct values, got {points!r}")
    vander = [[p ** j for j in range(n)] for p in pts]
    vander.append([Fraction(int(j == n - 1)) for j in range(n)])
    g_mat = [row[:r] for row in vander]
    g_mat[-1] = [Fraction(int(j == r - 1)) for j in range(r)]
    at = [[(pts[i] ** j if i < n - 1 else Fraction(int(j == m - 1)))
           for i in range(n)] for j in range(m)]
    inv = _inverse(vander)
    bt = [list(col) for col in zip(*inv)]       # V^-T
    for j in range(n):
        # Scale row j of BT to coprime integers; G absorbs the inverse.
        den = math.lcm(*(v.denominator for v in bt[j]))
        num = math.gcd(*(v.numerator for v in bt[j])) or 1
        scale = Fraction(den, num)
        if bt[j][0] < 0 or (bt[j][0] == 0 and next(v for v in bt[j] if v) < 0):
            scale = -scale
        bt[j] = [v * scale for v in bt[j]]
        g_mat[j] = [v / scale for v in g_mat[j]]
    return at, g_mat, bt


@functools.cache
def transforms(m=4, r=3, points=POINTS_F4):
    """``(AT, G, BT)`` of F(m, r) as read-only float64 arrays."""
    out = []
    for mat in exact_transforms(m, r, points):
        arr = np.array([[float(v) for v in row] for row in mat])
        arr.flags.writeable = False
        out.append(arr)
    return tuple(out)
