"""max_pool2d / avg_pool2d and their backward passes against NumPy references.

The references below pad explicitly (-inf for max, 0 for average), loop over
the windows and follow PyTorch's rules as the API states them; nothing here
calls cyconv.
"""
import numpy as np
import pytest

import cyconv

RNG_SEED = 20181207

# The course exercise's image (exercise-conv-nets.txt, section 2, last item).
EXERCISE_IMAGE = np.array([[1, 1, -2, 0, 1],
                           [1, 0, 0, 2, 1],
                           [0, 1, 0, 5, -1],
                           [-2, 1, 0, -1, 1],
                           [0, 1, 0, 5, -1]])


# ---------------------------------------------------------------- references

def n_windows(size, k, s, p, d, ceil_mode):
    """Number of windows along one axis, counted one window at a time.

    Floor mode keeps a window whose taps all lie in the padded input. Ceil
    mode keeps a window while the previous one has not reached the end of
    the padded input, provided it starts inside the input or the left padding.
    """
    span = d * (k - 1) + 1
    count = 0
    while True:
        if ceil_mode:
            keep = (count - 1) * s + span < size + 2 * p and count * s < size + p
        else:
            keep = count * s + span <= size + 2 * p
        if not keep:
            return count
        count += 1


def _geometry(shape, k, s, p, d, ceil_mode):
    """(ho, wo) and the extra cells past the padded input the windows reach."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = k, s, p, d
    h, w = shape[-2:]
    ho = n_windows(h, kh, sh, ph, dh, ceil_mode)
    wo = n_windows(w, kw, sw, pw, dw, ceil_mode)
    extra_h = max(0, (ho - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (wo - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    return ho, wo, extra_h, extra_w


def max_pool_ref(x, k, s=None, p=(0, 0), d=(1, 1), ceil_mode=False):
    """(N, C, H, W) -> (out, indices) by PyTorch's rule ``val > max or isnan(val)``."""
    s = k if s is None else s
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = k, s, p, d
    ho, wo, eh, ew = _geometry(x.shape, k, s, p, d, ceil_mode)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)),
                constant_values=-np.inf)
    out = np.empty((n, c, ho, wo))
    idx = np.empty((n, c, ho, wo), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, best_pos, first_inside = -np.inf, None, None
                    for a in range(kh):
                        for e in range(kw):
                            y, xx = i * sh + a * dh - ph, j * sw + e * dw - pw
                            val = xp[b, ch, y + ph, xx + pw]
                            if first_inside is None and 0 <= y < h and 0 <= xx < w:
                                first_inside = y * w + xx
                            if val > best or np.isnan(val):
                                best, best_pos = val, y * w + xx
                    out[b, ch, i, j] = best
                    # -1: no tap inside the input (a dilated window wholly in the padding).
                    idx[b, ch, i, j] = ((-1 if first_inside is None else first_inside)
                                        if best_pos is None else best_pos)
    return out, idx


def _avg_windows(shape, k, s, p, ceil_mode, count_include_pad, divisor_override):
    """Yield (i, j, rows, cols, divisor) of each window, in padded coordinates."""
    s = k if s is None else s
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    h, w = shape[-2:]
    ho, wo, eh, ew = _geometry(shape, k, s, p, (1, 1), ceil_mode)
    # 1 on the padded input (and 0 beyond it) or on the input only.
    in_padded = np.pad(np.ones((h + 2 * ph, w + 2 * pw)), ((0, eh), (0, ew)))
    in_input = np.pad(np.ones((h, w)), ((ph, ph + eh), (pw, pw + ew)))
    counts = in_padded if count_include_pad else in_input
    for i in range(ho):
        for j in range(wo):
            rows = slice(i * sh, i * sh + kh)
            cols = slice(j * sw, j * sw + kw)
            divisor = counts[rows, cols].sum() if divisor_override is None else divisor_override
            yield i, j, rows, cols, divisor


def _padded_zeros(shape, k, s, p, ceil_mode):
    """Zero array holding the input padded by p and the ceil_mode overhang."""
    s = k if s is None else s
    _, _, eh, ew = _geometry(shape, k, s, p, (1, 1), ceil_mode)
    return np.zeros(shape[:-2] + (shape[-2] + 2 * p[0] + eh, shape[-1] + 2 * p[1] + ew))


def avg_pool_ref(x, k, s=None, p=(0, 0), ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
    """(N, C, H, W) -> (N, C, Ho, Wo) with PyTorch's divisor rules, zero padding."""
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape[-2:]
    xp = _padded_zeros(x.shape, k, s, p, ceil_mode)
    xp[..., p[0]:p[0] + h, p[1]:p[1] + w] = x
    ho, wo, _, _ = _geometry(x.shape, k, k if s is None else s, p, (1, 1), ceil_mode)
    out = np.empty(x.shape[:-2] + (ho, wo))
    for i, j, rows, cols, divisor in _avg_windows(x.shape, k, s, p, ceil_mode,
                                                  count_include_pad, divisor_override):
        out[..., i, j] = xp[..., rows, cols].sum(axis=(-2, -1)) / divisor
    return out


def avg_pool_backward_ref(g, input_shape, k, s=None, p=(0, 0), ceil_mode=False,
                          count_include_pad=True, divisor_override=None):
    """Scatter-add each output gradient / divisor over its window, then crop."""
    g = np.asarray(g, dtype=np.float64)
    h, w = input_shape[-2:]
    gp = _padded_zeros(tuple(input_shape), k, s, p, ceil_mode)
    for i, j, rows, cols, divisor in _avg_windows(input_shape, k, s, p, ceil_mode,
                                                  count_include_pad, divisor_override):
        gp[..., rows, cols] += g[..., i, j, None, None] / divisor
    return gp[..., p[0]:p[0] + h, p[1]:p[1] + w]


def max_pool_backward_ref(g, indices, input_shape):
    """np.add.at of each output gradient onto its index in the flattened plane."""
    g = np.asarray(g, dtype=np.float64)
    h, w = input_shape[-2:]
    planes = g.reshape(-1, g.shape[-2] * g.shape[-1])
    idx = np.asarray(indices).reshape(planes.shape)
    grad = np.zeros((planes.shape[0], h * w))
    for c in range(planes.shape[0]):
        np.add.at(grad[c], idx[c], planes[c])
    return grad.reshape(input_shape)


def numeric_grad(f, x, g, eps=1e-6):
    """Central differences of L(x) = sum(f(x) * g), one input cell at a time."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for pos in np.ndindex(x.shape):
        old = x[pos]
        x[pos] = old + eps
        plus = np.sum(f(x) * g)
        x[pos] = old - eps
        minus = np.sum(f(x) * g)
        x[pos] = old
        grad[pos] = (plus - minus) / (2 * eps)
    return grad


def pairs(*values):
    """Each value (int or pair) as a pair."""
    return tuple((v, v) if isinstance(v, int) else tuple(v) for v in values)


def randn(shape, dtype=np.float64, seed=0):
    """Standard normal values (distinct with probability 1), reproducibly."""
    return np.random.default_rng(RNG_SEED + seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------- the exercise

def test_exercise_max_pool():
    # Hand answer of the exercise (section 2, last item; 3x3 windows at stride 2, no padding):
    #   rows 0-2, cols 0-2: [1 1 -2; 1 0 0; 0 1 0]  -> 1 (first at (0,0))
    #   rows 0-2, cols 2-4: [-2 0 1; 0 2 1; 0 5 -1] -> 5 (at (2,3))
    #   rows 2-4, cols 0-2: [0 1 0; -2 1 0; 0 1 0]  -> 1 (first at (2,1))
    #   rows 2-4, cols 2-4: [0 5 -1; 0 -1 1; 0 5 -1] -> 5 (first at (2,3))
    out, idx = cyconv.max_pool2d(EXERCISE_IMAGE, 3, stride=2, padding=0,
                                 return_indices=True)
    np.testing.assert_array_equal(out, [[1, 5], [1, 5]])
    np.testing.assert_array_equal(idx, [[0 * 5 + 0, 2 * 5 + 3], [2 * 5 + 1, 2 * 5 + 3]])
    ref_out, ref_idx = max_pool_ref(EXERCISE_IMAGE[None, None], (3, 3), (2, 2))
    np.testing.assert_array_equal(out, ref_out[0, 0])
    np.testing.assert_array_equal(idx, ref_idx[0, 0])


# ------------------------------------------------------------- max forward

MAX_CASES = [
    # shape, kernel_size, stride, padding, dilation, ceil_mode
    ((2, 3, 7, 8), 2, None, 0, 1, False),
    ((2, 3, 7, 8), 3, 2, 1, 1, False),
    ((1, 2, 9, 7), (3, 2), (2, 1), (1, 0), (1, 2), False),
    ((1, 2, 9, 7), (2, 3), (3, 2), (1, 1), (2, 1), True),
    ((2, 1, 6, 6), 3, 2, 1, 1, True),
    ((1, 1, 5, 5), 3, 2, 0, 1, True),
    ((1, 2, 8, 5), (4, 1), (5, 1), (2, 0), 1, True),  # last row window dropped
    ((1, 1, 10, 11), (3, 3), (1, 2), (1, 1), (3, 2), False),
    ((1, 1, 2, 2), 3, 2, 0, 1, True),  # input smaller than the kernel
]


@pytest.mark.parametrize("shape, k, s, p, d, ceil_mode", MAX_CASES)
def test_max_pool_matches_reference(shape, k, s, p, d, ceil_mode):
    x = randn(shape)
    out, idx = cyconv.max_pool2d(x, k, stride=s, padding=p, dilation=d,
                                 ceil_mode=ceil_mode, return_indices=True)
    kk, pp, dd = pairs(k, p, d)
    ss = kk if s is None else pairs(s)[0]
    ref_out, ref_idx = max_pool_ref(x, kk, ss, pp, dd, ceil_mode)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    assert idx.dtype == np.int64 and out.dtype == np.float64
    assert out.flags.c_contiguous and idx.flags.c_contiguous
    # The value sits at the index.
    planes = x.reshape(-1, shape[-2] * shape[-1])
    np.testing.assert_array_equal(
        np.take_along_axis(planes, idx.reshape(planes.shape[0], -1), axis=1),
        out.reshape(planes.shape[0], -1))


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_rank_is_kept(ndim, pool):
    x4 = randn((2, 3, 6, 7))
    x = x4[(0,) * (4 - ndim)]
    if pool == "max":
        out, idx = cyconv.max_pool2d(x, (3, 2), stride=(2, 1), padding=1,
                                     return_indices=True)
        ref, ref_idx = max_pool_ref(x4, (3, 2), (2, 1), (1, 1))
        np.testing.assert_array_equal(idx, ref_idx[(0,) * (4 - ndim)])
    else:
        out = cyconv.avg_pool2d(x, (3, 2), stride=(2, 1), padding=1)
        ref = avg_pool_ref(x4, (3, 2), (2, 1), (1, 1))
    assert out.ndim == ndim
    np.testing.assert_allclose(out, ref[(0,) * (4 - ndim)], rtol=1e-12, atol=1e-12)


def test_stride_defaults_to_kernel_size():
    x = randn((1, 1, 7, 9))
    np.testing.assert_array_equal(cyconv.max_pool2d(x, (2, 3)),
                                  cyconv.max_pool2d(x, (2, 3), stride=(2, 3)))
    np.testing.assert_array_equal(cyconv.max_pool2d(x, (2, 3)),
                                  max_pool_ref(x, (2, 3))[0])


@pytest.mark.parametrize("size, k, s, p, expected", [
    # (8 + 4 - 4) / 5 = 1.6 -> ceil 2 -> 3 windows; the third would start at
    # 2*5 - 2 = 8 = H, in the right padding: dropped, 2 remain.
    (8, 4, 5, 2, 2),
    # (6 + 2 - 3) / 2 = 2.5 -> ceil 3 -> 4 windows; the fourth starts at
    # 3*2 - 1 = 5 < H = 6, inside the input: kept.
    (6, 3, 2, 1, 4),
    # (5 - 2) / 2 = 1.5 -> ceil 2 -> 3; the third starts at 4 < 5: kept.
    (5, 2, 2, 0, 3),
    # (4 + 2 - 2) / 3 = 1.33 -> ceil 2 -> 3; the third would start at 6 - 1 = 5 >= 4.
    (4, 2, 3, 1, 2),
])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_ceil_mode_last_window(size, k, s, p, expected, pool):
    assert n_windows(size, k, s, p, 1, True) == expected
    x = randn((1, 2, size, size + 1))
    if pool == "max":
        out, idx = cyconv.max_pool2d(x, k, stride=s, padding=p, ceil_mode=True,
                                     return_indices=True)
        ref, ref_idx = max_pool_ref(x, (k, k), (s, s), (p, p), ceil_mode=True)
        np.testing.assert_array_equal(idx, ref_idx)
    else:
        out = cyconv.avg_pool2d(x, k, stride=s, padding=p, ceil_mode=True)
        ref = avg_pool_ref(x, (k, k), (s, s), (p, p), ceil_mode=True)
    assert out.shape[-2] == expected
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_ties_first_maximum_wins():
    # Values in {0, 1, 2}: almost every window holds a tie for its maximum.
    x = np.random.default_rng(RNG_SEED).integers(0, 3, (2, 2, 9, 8)).astype(np.float64)
    for k, s, p, d in [(3, 1, 1, 1), (2, 2, 0, 1), ((3, 2), (2, 1), (1, 0), (2, 3))]:
        out, idx = cyconv.max_pool2d(x, k, stride=s, padding=p, dilation=d,
                                     return_indices=True)
        kk, ss, pp, dd = pairs(k, s, p, d)
        ref_out, ref_idx = max_pool_ref(x, kk, ss, pp, dd)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(idx, ref_idx)
    # All equal: the first tap of each window (row-major) is reported.
    _, idx = cyconv.max_pool2d(np.ones((4, 6)), 2, return_indices=True)
    np.testing.assert_array_equal(idx, [[0, 2, 4], [12, 14, 16]])


def test_nan_propagates():
    x = randn((1, 1, 6, 6))
    x[0, 0, 1, 4] = np.nan
    out, idx = cyconv.max_pool2d(x, 3, stride=3, return_indices=True)
    # Only the top-right window holds the NaN; it wins and reports its index.
    assert np.isnan(out[0, 0, 0, 1]) and np.isnan(out).sum() == 1
    assert idx[0, 0, 0, 1] == 1 * 6 + 4
    # Several NaNs and overlapping windows: PyTorch's rule, as the reference.
    x[0, 0, 4, 0] = x[0, 0, 5, 2] = x[0, 0, 2, 2] = np.nan
    out, idx = cyconv.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    ref_out, ref_idx = max_pool_ref(x, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(out, ref_out)  # NaNs compare equal here
    np.testing.assert_array_equal(idx, ref_idx)
    # A NaN makes the average NaN too.
    avg = cyconv.avg_pool2d(x, 3, stride=3)
    np.testing.assert_array_equal(np.isnan(avg), np.isnan(avg_pool_ref(x, (3, 3))))


@pytest.mark.parametrize("width, k, s, p, d", [
    # Output rows of >= 8 windows (the row kernel) at the column strides it
    # treats apart (1, 2, others), with dilation and ceil_mode overhangs.
    (20, 3, 1, 1, 1), (21, 3, 2, 1, 1), (23, (2, 3), (1, 2), (1, 1), (2, 1)),
    (40, 3, 3, 1, 2), (44, 4, (2, 5), 2, 1),
    # Rows of fewer windows, and windows wider than the input (9 > W = 8):
    # the window-at-a-time loop.
    (8, 3, 2, 1, 1), (8, (2, 9), (1, 2), (1, 4), 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_ties_nan_and_minus_inf(width, k, s, p, d, dtype):
    # Few distinct values (ties everywhere), NaNs, and a region of -inf.
    rng = np.random.default_rng(RNG_SEED)
    x = rng.integers(-2, 3, (2, 3, 11, width)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 1, :5, :6] = -np.inf
    out, idx = cyconv.max_pool2d(x, k, stride=s, padding=p, dilation=d, ceil_mode=True,
                                 return_indices=True)
    kk, ss, pp, dd = pairs(k, s, p, d)
    ref_out, ref_idx = max_pool_ref(x, kk, ss, pp, dd, ceil_mode=True)
    np.testing.assert_array_equal(out, ref_out.astype(dtype))
    np.testing.assert_array_equal(idx, ref_idx)
    assert np.isnan(out).any() and np.isneginf(out).any()


def test_minus_inf_inputs():
    # A window of -inf reports -inf at its first in-bounds tap (padding never wins).
    x = np.full((1, 1, 4, 5), -np.inf)
    x[0, 0, 3, 4] = 7.0
    out, idx = cyconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    ref_out, ref_idx = max_pool_ref(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    assert out[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0
    assert out[0, 0, 1, 2] == 7.0 and idx[0, 0, 1, 2] == 3 * 5 + 4


# ------------------------------------------------------------- avg forward

AVG_CASES = [
    # shape, kernel_size, stride, padding, ceil_mode
    ((2, 3, 7, 8), 2, None, 0, False),
    ((2, 3, 7, 8), 3, 2, 1, False),
    ((1, 2, 9, 7), (3, 2), (2, 1), (1, 1), False),
    ((1, 2, 9, 7), (2, 3), (3, 2), (1, 1), True),
    ((2, 1, 6, 6), 3, 2, 1, True),
    ((1, 2, 8, 9), 4, 5, 2, True),
]


@pytest.mark.parametrize("shape, k, s, p, ceil_mode", AVG_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 3, -2])
def test_avg_pool_matches_reference(shape, k, s, p, ceil_mode, count_include_pad,
                                    divisor_override):
    x = randn(shape)
    out = cyconv.avg_pool2d(x, k, stride=s, padding=p, ceil_mode=ceil_mode,
                            count_include_pad=count_include_pad,
                            divisor_override=divisor_override)
    kk, pp = pairs(k, p)
    ss = kk if s is None else pairs(s)[0]
    ref = avg_pool_ref(x, kk, ss, pp, ceil_mode, count_include_pad, divisor_override)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert out.dtype == np.float64 and out.flags.c_contiguous


def test_avg_pool_count_include_pad_divisors():
    # On ones, each output is (input cells in the window) / divisor.
    ones = np.ones((6, 6))
    with_pad = cyconv.avg_pool2d(ones, 3, stride=2, padding=1, ceil_mode=True)
    without = cyconv.avg_pool2d(ones, 3, stride=2, padding=1, ceil_mode=True,
                                count_include_pad=False)
    np.testing.assert_array_equal(without, np.ones((4, 4)))
    # Along each axis the windows hold 2, 3, 3, 1 input cells and reach
    # 3, 3, 3, 2 cells of the padded input (the last stops at its end).
    cells, reach = np.array([2, 3, 3, 1]), np.array([3, 3, 3, 2])
    np.testing.assert_allclose(with_pad, np.outer(cells, cells) / np.outer(reach, reach),
                               rtol=1e-15)


# ------------------------------------------------------- dtypes and layouts

@pytest.mark.parametrize("dtype, expected", [
    (np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float32),
    (np.int32, np.float64), (np.int64, np.float64), (np.uint8, np.float64),
    (np.bool_, np.float64),
])
def test_dtypes(dtype, expected):
    x = np.random.default_rng(RNG_SEED).integers(0, 2 if dtype is np.bool_ else 9,
                                                  (2, 3, 6, 5)).astype(dtype)
    out, idx = cyconv.max_pool2d(x, 2, stride=1, padding=1, return_indices=True)
    ref_out, ref_idx = max_pool_ref(x, (2, 2), (1, 1), (1, 1))
    assert out.dtype == expected
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    avg = cyconv.avg_pool2d(x, 2, stride=1, padding=1)
    assert avg.dtype == expected
    tol = 1e-6 if expected == np.float32 else 1e-12
    np.testing.assert_allclose(avg, avg_pool_ref(x, (2, 2), (1, 1), (1, 1)), rtol=tol)
    g = np.ones(out.shape, dtype)
    assert cyconv.max_pool2d_backward(g, idx, x.shape).dtype == expected
    assert cyconv.avg_pool2d_backward(g, x.shape, 2, stride=1, padding=1).dtype == expected


def test_float32_precision():
    x = randn((2, 2, 9, 9), np.float32)
    out = cyconv.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert out.dtype == np.float32
    ref = avg_pool_ref(x, (3, 3), (2, 2), (1, 1), count_include_pad=False)
    np.testing.assert_allclose(out, ref, rtol=2e-7, atol=2e-7)
    m = cyconv.max_pool2d(x, 3, stride=2, padding=1)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, max_pool_ref(x, (3, 3), (2, 2), (1, 1))[0])


@pytest.mark.parametrize("ndim", [2, 4])
def test_layouts(layout, ndim):
    x = randn((2, 3, 7, 6)[4 - ndim:])
    x4 = x.reshape((1,) * (4 - ndim) + x.shape)
    xl = layout(x)
    before = xl.copy()
    out, idx = cyconv.max_pool2d(xl, 3, stride=2, padding=1, return_indices=True)
    ref_out, ref_idx = max_pool_ref(x4, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(out, ref_out.reshape(out.shape))
    np.testing.assert_array_equal(idx, ref_idx.reshape(idx.shape))
    avg = cyconv.avg_pool2d(xl, 3, stride=2, padding=1, ceil_mode=True)
    np.testing.assert_allclose(
        avg, avg_pool_ref(x4, (3, 3), (2, 2), (1, 1), True).reshape(avg.shape),
        rtol=1e-12, atol=1e-12)
    # Backward inputs in the same layout.
    g = randn(out.shape, seed=1)
    grad = cyconv.max_pool2d_backward(layout(g), layout(idx), x.shape)
    np.testing.assert_allclose(grad, max_pool_backward_ref(g, idx, x.shape), rtol=1e-15)
    grad = cyconv.avg_pool2d_backward(layout(randn(avg.shape, seed=2)), x.shape, 3,
                                      stride=2, padding=1, ceil_mode=True)
    np.testing.assert_allclose(
        grad, avg_pool_backward_ref(randn(avg.shape, seed=2), x.shape, (3, 3), (2, 2),
                                    (1, 1), True), rtol=1e-12, atol=1e-12)
    for result in (out, idx, avg, grad):
        assert result.flags.c_contiguous
    np.testing.assert_array_equal(xl, before)


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    out, idx = cyconv.max_pool2d(x, 2, return_indices=True)
    assert out.shape == idx.shape == (0, 3, 2, 2) and out.dtype == np.float32
    assert cyconv.avg_pool2d(x, 2).shape == (0, 3, 2, 2)
    assert cyconv.max_pool2d_backward(out, idx, x.shape).shape == x.shape
    assert cyconv.avg_pool2d_backward(out, x.shape, 2).shape == x.shape



def test_max_pool_backward_of_no_windows_is_zero():
    # max_pool2d_backward takes any grad_output rows and columns, none too:
    # then no gradient reaches the input, which must still be all zeros.
    np.full((2, 5, 6), np.nan)  # recycled memory, if NumPy hands it back
    grad = cyconv.max_pool2d_backward(np.zeros((2, 0, 3)), np.zeros((2, 0, 3), int),
                                      (2, 5, 6))
    np.testing.assert_array_equal(grad, np.zeros((2, 5, 6)))


# ----------------------------------------------------------------- backward

@pytest.mark.parametrize("k, s, p, d, ceil_mode", [
    (3, 1, 1, 1, False),          # overlapping windows: gradients add
    ((3, 2), (2, 1), (1, 0), (1, 2), True),
    (2, 3, 1, 1, True),
])
def test_max_pool_backward_finite_differences(k, s, p, d, ceil_mode):
    x = randn((1, 2, 6, 7))  # distinct values: the maximum is differentiable
    kwargs = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    out, idx = cyconv.max_pool2d(x, k, return_indices=True, **kwargs)
    g = randn(out.shape, seed=1)
    grad = cyconv.max_pool2d_backward(g, idx, x.shape)
    expected = numeric_grad(lambda v: cyconv.max_pool2d(v, k, **kwargs), x, g)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
    assert grad.flags.c_contiguous and grad.dtype == np.float64


@pytest.mark.parametrize("k, s, p, ceil_mode", [
    (3, 1, 1, False), ((3, 2), (2, 1), (1, 1), True), (3, 2, 1, True),
])
@pytest.mark.parametrize("count_include_pad, divisor_override",
                         [(True, None), (False, None), (True, 5)])
def test_avg_pool_backward_finite_differences(k, s, p, ceil_mode, count_include_pad,
                                              divisor_override):
    x = randn((1, 2, 6, 7))
    kwargs = dict(stride=s, padding=p, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    out = cyconv.avg_pool2d(x, k, **kwargs)
    g = randn(out.shape, seed=1)
    grad = cyconv.avg_pool2d_backward(g, x.shape, k, **kwargs)
    expected = numeric_grad(lambda v: cyconv.avg_pool2d(v, k, **kwargs), x, g)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
    kk, ss, pp = pairs(k, s, p)
    ref = avg_pool_backward_ref(g, x.shape, kk, ss, pp, ceil_mode, count_include_pad,
                                divisor_override)
    np.testing.assert_allclose(grad, ref, rtol=1e-12, atol=1e-12)


# Output rows of >= 8 windows (ROW_WINDOWS): the kernels' row-at-a-time
# path, at column strides 1, 2 and others, with ceil_mode overhangs.
AVG_ROW_CASES = [
    ((1, 2, 9, 21), 3, 2, 1, True),
    ((1, 2, 6, 17), (2, 3), 1, (1, 1), False),
    ((2, 1, 7, 40), (2, 4), (2, 5), (1, 2), True),
    ((1, 1, 5, 16), 2, None, 0, False),
]


AVG_BOTH_CASES = AVG_CASES + AVG_ROW_CASES + [
    # The kernel writes every input cell itself (no zero-filled output):
    # stride > kernel leaves rows and columns in no window, which must be 0.
    ((1, 2, 9, 8), 2, 3, 0, False),
    ((1, 2, 7, 9), (1, 2), (3, 4), 0, True),
    # Windows wider than the input (kw > W), and one wider than H too.
    ((2, 1, 6, 3), (3, 5), (2, 1), (1, 2), False),
    ((1, 2, 2, 3), (4, 6), (1, 2), (2, 3), True),
]


@pytest.mark.parametrize("shape, k, s, p, ceil_mode", AVG_BOTH_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 3, -2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_and_backward_match_reference(shape, k, s, p, ceil_mode, count_include_pad,
                                               divisor_override, dtype):
    kwargs = dict(stride=s, padding=p, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    kk, pp = pairs(k, p)
    ss = kk if s is None else pairs(s)[0]
    ref_args = (kk, ss, pp, ceil_mode, count_include_pad, divisor_override)
    tol = 1e-6 if dtype is np.float32 else 1e-12
    x = randn(shape, dtype)
    out = cyconv.avg_pool2d(x, k, **kwargs)
    np.testing.assert_allclose(out, avg_pool_ref(x, *ref_args), rtol=tol, atol=tol)
    assert out.dtype == dtype
    g = randn(out.shape, dtype, seed=7)
    # Recycle a NaN-filled buffer of the output's size first: NumPy's
    # allocator likely hands it back, and any cell the kernel missed shows.
    np.full(shape, np.nan, dtype)
    grad = cyconv.avg_pool2d_backward(g, shape, k, **kwargs)
    np.testing.assert_allclose(grad, avg_pool_backward_ref(g, shape, *ref_args),
                               rtol=tol, atol=tol)
    assert grad.dtype == dtype and grad.flags.c_contiguous


@pytest.mark.parametrize("divisor_override", [None, 3, 2**24 + 1, -(2**40)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_backward_rounds_each_share_once(divisor_override, dtype):
    # Non-overlapping windows: each cell gets exactly one share, which must
    # be g / divisor rounded once to the dtype. float32 divides in float
    # while the divisor is a float (<= 2**24), else in double.
    x_shape = (2, 3, 8, 10)
    g = randn((2, 3, 4, 5), dtype, seed=8)
    grad = cyconv.avg_pool2d_backward(g, x_shape, 2, divisor_override=divisor_override)
    divisor = 4 if divisor_override is None else divisor_override
    shares = (g.astype(np.float64) / divisor).astype(dtype)
    np.testing.assert_array_equal(grad, shares.repeat(2, axis=-2).repeat(2, axis=-1))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_avg_pool_backward_threads(threads):
    # Enough planes and cells for the kernel to split the planes between
    # threads, each with its own scratch rows: the result must be that of
    # the planes pooled one at a time (a single plane runs on one thread).
    threadpoolctl = pytest.importorskip("threadpoolctl")
    kwargs = dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    shape = (4, 8, 49, 48)  # 75264 cells: above the kernels' PARALLEL_WORK
    g = randn(cyconv.avg_pool2d(np.zeros(shape), 3, **kwargs).shape, np.float32, seed=9)
    with threadpoolctl.threadpool_limits(limits=threads):
        grad = cyconv.avg_pool2d_backward(g, shape, 3, **kwargs)
    for n, c in np.ndindex(4, 8):
        np.testing.assert_array_equal(
            grad[n, c], cyconv.avg_pool2d_backward(g[n, c], shape[2:], 3, **kwargs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [2, 3, 4])
def test_max_pool_backward_scatter_add(dtype, ndim):
    # Integer values with ties and overlapping windows: one cell can be the
    # maximum of several windows and must collect all their gradients.
    shape = (2, 3, 7, 6)[4 - ndim:]
    x = np.random.default_rng(RNG_SEED).integers(0, 4, shape).astype(dtype)
    out, idx = cyconv.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    g = randn(out.shape, dtype, seed=3)
    # The kernel zero-fills the output itself: recycle a NaN-filled buffer of
    # its size first (NumPy's allocator likely hands it back) to show a miss.
    np.full(shape, np.nan, dtype)
    grad = cyconv.max_pool2d_backward(g, idx, shape)
    assert grad.dtype == dtype and grad.shape == shape
    tol = 1e-5 if dtype is np.float32 else 1e-12
    np.testing.assert_allclose(grad, max_pool_backward_ref(g, idx, shape), rtol=tol,
                               atol=tol)
    assert np.bincount(idx.ravel()).max() > 1  # the test does exercise the adding


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_backward_is_adjoint(dtype):
    x = randn((2, 2, 7, 8), dtype)
    kwargs = dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    out = cyconv.avg_pool2d(x, 3, **kwargs)
    g = randn(out.shape, dtype, seed=4)
    grad = cyconv.avg_pool2d_backward(g, x.shape, 3, **kwargs)
    assert grad.dtype == dtype
    lhs = np.sum(out.astype(np.float64) * g)
    rhs = np.sum(x.astype(np.float64) * grad)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5 if dtype is np.float32 else 1e-12)


def test_exercise_backward():
    # The 5 at (2, 3) is the maximum of both right-hand windows: it gets 1 + 1.
    _, idx = cyconv.max_pool2d(EXERCISE_IMAGE, 3, stride=2, return_indices=True)
    grad = cyconv.max_pool2d_backward(np.ones((2, 2)), idx, EXERCISE_IMAGE.shape)
    expected = np.zeros((5, 5))
    expected[0, 0] = expected[2, 1] = 1
    expected[2, 3] = 2
    np.testing.assert_array_equal(grad, expected)


# ------------------------------------------------------------------- errors

X = np.zeros((1, 1, 6, 6))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=3, padding=2), "padding"),
    (dict(kernel_size=(4, 2), padding=(2, 2)), "padding"),
    (dict(kernel_size=2, padding=-1), "padding"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(kernel_size=(2, -1)), "kernel_size"),
    (dict(kernel_size=2, stride=0), "stride"),
    (dict(kernel_size=2, stride=(1, -2)), "stride"),
    (dict(kernel_size=2, dilation=0), "dilation"),
    (dict(kernel_size=(1, 2, 3)), "kernel_size"),
    (dict(kernel_size=7), "height"),
    (dict(kernel_size=(2, 4), dilation=(1, 2)), "width"),
])
def test_max_pool_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cyconv.max_pool2d(X, **kwargs)


# Geometries with a window whose taps all lie in the padding (dilation jumps
# over the input): (input shape, kernel_size, stride, padding, dilation).
ALL_PADDING = [
    ((1, 1), (1, 2), 1, (0, 1), 2),                # the 1-wide plane
    ((2, 5), (2, 1), (2, 1), (1, 0), (3, 1)),      # taps -1 and 2 of a 2-row input
    ((3, 3, 3), (2, 2), 1, 1, 4),                  # both axes
    ((2, 2, 1, 20), (2, 2), 1, 1, (2, 1)),         # 21 windows a row: the row path
    ((1, 1, 6, 6), (2, 1), 1, (1, 0), (7, 1)),     # taps -1 and 6: every window
]


@pytest.mark.parametrize("shape, k, s, p, d", ALL_PADDING)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_padding_window_is_minus_inf(shape, k, s, p, d, dtype):
    """Such a window pools to -inf with index -1, and its gradient goes nowhere."""
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    out, idx = cyconv.max_pool2d(x, k, s, p, d, return_indices=True)
    x4 = x.reshape((-1, 1) + shape[-2:])
    ref, ref_idx = max_pool_ref(x4, pair(k), pair(s), pair(p), pair(d))
    assert np.isneginf(ref).any()
    np.testing.assert_array_equal(out, ref.reshape(out.shape).astype(dtype))
    np.testing.assert_array_equal(idx, ref_idx.reshape(idx.shape))
    np.testing.assert_array_equal(cyconv.max_pool2d(x, k, s, p, d), out)
    # Backward: a scatter of the gradient by the reference indices, skipping -1.
    g = np.random.default_rng(4).standard_normal(out.shape)
    grad = cyconv.max_pool2d_backward(g, idx, x.shape)
    want = np.zeros((x4.shape[0], x4.shape[2] * x4.shape[3]))
    for plane, (gp, ip) in enumerate(zip(g.reshape(len(want), -1),
                                         ref_idx.reshape(len(want), -1))):
        for gv, iv in zip(gp, ip):
            if iv >= 0:
                want[plane, iv] += gv
    np.testing.assert_allclose(grad, want.reshape(x.shape))


@pytest.mark.parametrize("shape, k, s, p, d", ALL_PADDING)
def test_all_padding_window_matches_torch(shape, k, s, p, d):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal(shape)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x)[None] if x.ndim == 2
                                          else torch.from_numpy(x), k, s, p, d)
    out = cyconv.max_pool2d(x, k, s, p, d)
    np.testing.assert_array_equal(out, want.numpy().reshape(out.shape))


def test_backward_rejects_other_negative_indices():
    with pytest.raises(ValueError, match="indices must be -1 or lie in"):
        cyconv.max_pool2d_backward(np.ones((1, 1)), np.full((1, 1), -2), (1, 1))


@pytest.mark.parametrize("bad, error", [
    (np.zeros((6,)), ValueError), (np.zeros((1, 1, 1, 6, 6)), ValueError),
    (np.zeros((1, 0, 6)), ValueError), (np.zeros((6, 6), complex), TypeError),
    (np.array([["a"]]), TypeError), (np.zeros((6, 6), object), TypeError),
])
@pytest.mark.parametrize("pool", [cyconv.max_pool2d, cyconv.avg_pool2d])
def test_bad_inputs(bad, error, pool):
    with pytest.raises(error, match="input"):
        pool(bad, 2)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kernel_size=2.0), TypeError, "kernel_size"),
    (dict(kernel_size=True), TypeError, "kernel_size"),
    (dict(kernel_size=2, ceil_mode=1), TypeError, "ceil_mode"),
    (dict(kernel_size=2, return_indices="yes"), TypeError, "return_indices"),
    (dict(kernel_size=2, stride=1.5), TypeError, "stride"),
])
def test_max_pool_type_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        cyconv.max_pool2d(X, **kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(divisor_override=0), ValueError, "divisor_override"),
    (dict(divisor_override=1.5), TypeError, "divisor_override"),
    (dict(count_include_pad=None), TypeError, "count_include_pad"),
    (dict(padding=2), ValueError, "padding"),
    (dict(stride=0), ValueError, "stride"),
])
@pytest.mark.parametrize("backward", [False, True])
def test_avg_pool_errors(kwargs, error, match, backward):
    with pytest.raises(error, match=match):
        if backward:
            cyconv.avg_pool2d_backward(np.zeros((1, 1, 2, 2)), X.shape, 3, **kwargs)
        else:
            cyconv.avg_pool2d(X, 3, **kwargs)


@pytest.mark.parametrize("grad_shape, shape, match", [
    ((1, 1, 3, 3), (1, 1, 6, 6), "pooled shape"),
    ((1, 2, 2), (1, 1, 6, 6), "pooled shape"),
    ((2, 2), (6,), "input_shape"),
    ((2, 2), (1, 1, 1, 6, 6), "input_shape"),
])
def test_avg_pool_backward_shape_errors(grad_shape, shape, match):
    with pytest.raises(ValueError, match=match):
        cyconv.avg_pool2d_backward(np.zeros(grad_shape), shape, 3)


def test_max_pool_backward_errors():
    out, idx = cyconv.max_pool2d(X, 2, return_indices=True)
    g = np.ones_like(out)
    with pytest.raises(ValueError, match="indices shape"):
        cyconv.max_pool2d_backward(g, idx[..., :2], X.shape)
    with pytest.raises(ValueError, match="input_shape"):
        cyconv.max_pool2d_backward(g[0], idx[0], X.shape)
    with pytest.raises(ValueError, match="input_shape"):
        cyconv.max_pool2d_backward(g, idx, (1, 2, 6, 6))
    with pytest.raises(ValueError, match="input_shape"):
        cyconv.max_pool2d_backward(g.ravel(), idx.ravel(), (36,))
    for bad in (36, -2):  # -1 is a window wholly in the padding
        bad_idx = idx.copy()
        bad_idx[0, 0, 1, 2] = bad
        with pytest.raises(ValueError,
                           match=r"indices must be -1 or lie in \[0, H\*W\) = \[0, 36\)"):
            cyconv.max_pool2d_backward(g, bad_idx, X.shape)
    # An index valid for a larger plane is out of range for a smaller one.
    with pytest.raises(ValueError, match="indices"):
        cyconv.max_pool2d_backward(g, np.full(idx.shape, 30), (1, 1, 5, 6))
    with pytest.raises(TypeError, match="indices"):
        cyconv.max_pool2d_backward(g, idx.astype(np.float64), X.shape)
    with pytest.raises(TypeError, match="indices"):
        cyconv.max_pool2d_backward(g, idx.astype(bool), X.shape)
    with pytest.raises(TypeError, match="grad_output"):
        cyconv.max_pool2d_backward(g.astype(complex), idx, X.shape)
    with pytest.raises(TypeError, match="input_shape"):
        cyconv.max_pool2d_backward(g, idx, (1, 1, 6.0, 6))
    with pytest.raises(ValueError, match="input_shape"):
        cyconv.max_pool2d_backward(g, idx, (1, 1, -6, 6))


def test_inputs_not_modified():
    x = randn((1, 2, 5, 5))
    x_before = x.copy()
    out, idx = cyconv.max_pool2d(x, 2, return_indices=True)
    g = randn(out.shape, seed=1)
    g_before, idx_before = g.copy(), idx.copy()
    cyconv.max_pool2d_backward(g, idx, x.shape)
    cyconv.avg_pool2d(x, 2)
    cyconv.avg_pool2d_backward(g, x.shape, 2)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(g, g_before)
    np.testing.assert_array_equal(idx, idx_before)


# -------------------------------------------------------------------- torch

TORCH_CASES = [
    # kernel_size, stride, padding, dilation, ceil_mode
    (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 1), (2, 1), False),
    (4, 5, 2, 1, True), (2, 3, 1, 1, True), (3, 1, 0, 1, False),
]


@pytest.mark.parametrize("k, s, p, d, ceil_mode", TORCH_CASES)
def test_against_torch(k, s, p, d, ceil_mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(RNG_SEED).integers(-3, 4, (2, 3, 8, 9)).astype(np.float64)
    x[0, 0, 2, 2] = np.nan
    xt = torch.from_numpy(x).requires_grad_(True)
    out_t, idx_t = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    out, idx = cyconv.max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_array_equal(idx, idx_t.numpy())
    g = randn(out.shape, seed=5)
    out_t.backward(torch.from_numpy(g))
    np.testing.assert_allclose(cyconv.max_pool2d_backward(g, idx, x.shape),
                               xt.grad.numpy(), rtol=1e-12)
    x = np.nan_to_num(x)
    for count_include_pad in (True, False):
        for divisor_override in (None, 4):
            args = (k, s, p, ceil_mode, count_include_pad, divisor_override)
            xt = torch.from_numpy(x).requires_grad_(True)
            out_t = F.avg_pool2d(xt, *args)
            out = cyconv.avg_pool2d(x, *args)
            np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
            g = randn(out.shape, seed=6)
            out_t.backward(torch.from_numpy(g))
            np.testing.assert_allclose(cyconv.avg_pool2d_backward(g, x.shape, *args),
                                       xt.grad.numpy(), rtol=1e-12, atol=1e-12)


_LONG_POOL = """
import sys
import numpy as np
import cyconv
from cyconv import _pool
x = np.ones((256, 256, 256), dtype=np.float32)
cyconv.max_pool2d(x[:1], 3)  # built and warm
# How many kernel calls the whole pooling takes, and how many it made.
total = len(_pool.plane_chunks(256, 256 * 256 + 256 * 256 * 31 * 31))
made = 0
kernels = _pool._pooling
class Counting:
    def __getattr__(self, name):
        return getattr(kernels, name)
    def max_pool2d_forward(self, *args):
        global made
        made += 1
        if made == 2:  # the parent's cue for SIGINT: one call done, another begun
            print("second call", flush=True)
        return kernels.max_pool2d_forward(*args)
_pool._pooling = Counting()
print("start", flush=True)
try:
    cyconv.max_pool2d(x, 31, stride=1, padding=15)
except KeyboardInterrupt:
    print("interrupted after", made, "of", total, flush=True)
    sys.exit(3)
print("finished", flush=True)
"""


def test_ctrl_c_stops_a_long_pooling():
    """SIGINT during a pooling of ~256 chunks of work acts after the current
    chunk, inside the call, not when the whole call has ended."""
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", _LONG_POOL], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "start"
        assert child.stdout.readline().strip() == "second call"
        child.send_signal(signal.SIGINT)
        rest = child.communicate(timeout=120)[0]
    finally:
        child.kill()
    assert child.returncode == 3, rest
    # SIGINT came as the second kernel call began: a chunked pooling stops
    # after it, with calls still to make (an unchunked one never makes a
    # second call, and finishes).
    words = rest.split()
    assert rest.startswith("interrupted after"), rest
    made, total = int(words[2]), int(words[4])
    assert 2 <= made < total, rest
