"""col2im: the adjoint of im2col, and a NumPy scatter-add reference."""
import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import cyconv


def col2im_ref(cols, h, w, kh, kw, stride, padding, dilation):
    """(N, C*kh*kw, L) -> (N, C, h, w) by scatter-add, padding entries dropped."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, rows, _ = cols.shape
    c = rows // (kh * kw)
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    blocks = np.asarray(cols, dtype=np.float64).reshape(n, c, kh, kw, ho, wo)
    # Scatter into the padded image, then cut the padding off.
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for p, q, i, j in itertools.product(range(kh), range(kw), range(ho), range(wo)):
        out[:, :, i * sh + p * dh, j * sw + q * dw] += blocks[:, :, p, q, i, j]
    return out[:, :, ph:ph + h, pw:pw + w]


def _n_pos(h, w, kh, kw, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    return (((h + 2 * ph - dh * (kh - 1) - 1) // sh + 1)
            * ((w + 2 * pw - dw * (kw - 1) - 1) // sw + 1))


def _combinations():
    for (h, w), (kh, kw), stride, padding, dilation in itertools.product(
            ((5, 6), (7, 4)), ((1, 1), (2, 3), (3, 3)), ((1, 1), (2, 1), (3, 3)),
            ((0, 0), (1, 1), (2, 0)), ((1, 1), (1, 2), (2, 2))):
        if (h + 2 * padding[0] < dilation[0] * (kh - 1) + 1
                or w + 2 * padding[1] < dilation[1] * (kw - 1) + 1):
            continue
        yield pytest.param(
            (h, w), (kh, kw), stride, padding, dilation,
            id=f"{h}x{w}-k{kh}x{kw}-s{stride}-p{padding}-d{dilation}")


COMBINATIONS = list(_combinations())


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation"), COMBINATIONS)
def test_adjoint_of_im2col(size, kernel, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3) + size)
    cols_x = cyconv.im2col(x, kernel, stride, padding, dilation)
    c = rng.standard_normal(cols_x.shape)
    folded = cyconv.col2im(c, size, kernel, stride, padding, dilation)
    assert folded.shape == x.shape
    assert_allclose(np.vdot(cols_x, c), np.vdot(x, folded), rtol=1e-12)


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "dilation"),
                         COMBINATIONS[::7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_scatter_add(size, kernel, stride, padding, dilation, dtype):
    rows = 2 * kernel[0] * kernel[1]
    cols = np.random.default_rng(1).integers(
        -5, 6, (2, rows, _n_pos(*size, *kernel, stride, padding, dilation))).astype(dtype)
    got = cyconv.col2im(cols, size, kernel, stride, padding, dilation)
    assert got.dtype == dtype
    assert got.flags.c_contiguous
    # Small integers: every sum is exact in either precision.
    assert_array_equal(got, col2im_ref(cols, *size, *kernel, stride, padding, dilation))


def test_ranks_and_dtypes():
    kernel, stride, padding = (2, 3), 2, 1
    n_pos = _n_pos(6, 5, 2, 3, (2, 2), (1, 1), (1, 1))
    cols = np.arange(2 * 12 * n_pos).reshape(2, 12, n_pos)  # int64, C = 2
    batched = cyconv.col2im(cols, (6, 5), kernel, stride, padding)
    assert batched.dtype == np.float64
    assert batched.shape == (2, 2, 6, 5)
    assert_array_equal(batched, col2im_ref(cols, 6, 5, 2, 3, (2, 2), (1, 1), (1, 1)))
    # 2-D columns are one image: (C*kh*kw, L) -> (C, H, W).
    single = cyconv.col2im(cols[1], (6, 5), kernel, stride, padding)
    assert single.shape == (2, 6, 5)
    assert_array_equal(single, batched[1])
    # bool counts as float64; an empty batch folds to an empty batch.
    assert cyconv.col2im(cols[1] > 3, (6, 5), kernel, stride, padding).dtype == np.float64
    assert cyconv.col2im(cols[:0], (6, 5), kernel, stride, padding).shape == (0, 2, 6, 5)


def test_all_padding_image():
    """H = 0 with padding: every entry falls in the padding and is dropped."""
    out = cyconv.col2im(np.ones((4, 1 * 2)), (0, 1), 2, padding=1)  # 1x2 outputs
    assert out.shape == (1, 0, 1)


def test_memory_layouts(layout):
    size, kernel, stride, padding, dilation = (5, 6), (2, 3), (2, 1), (1, 1), (1, 2)
    cols = np.random.default_rng(2).standard_normal(
        (2, 3 * 6, _n_pos(*size, *kernel, stride, padding, dilation)))
    expected = cyconv.col2im(cols, size, kernel, stride, padding, dilation)
    arg = layout(cols)
    before = arg.copy()
    got = cyconv.col2im(arg, size, kernel, stride, padding, dilation)
    assert_array_equal(arg, before)
    assert got.flags.c_contiguous
    assert_array_equal(got, expected)


def test_errors():
    cols = np.ones((1, 18, 12))  # C = 2, 3x3 kernel, 3x4 outputs of a 5x6 image
    assert cyconv.col2im(cols, (5, 6), 3).shape == (1, 2, 5, 6)
    with pytest.raises(ValueError, match=r"cols must be 2-D .* got shape \(18,\)"):
        cyconv.col2im(cols[0, :, 0], (5, 6), 3)
    with pytest.raises(ValueError, match=r"cols must be 2-D"):
        cyconv.col2im(cols[None], (5, 6), 3)
    with pytest.raises(ValueError, match=r"cols.shape\[-2\]=18 is not a multiple of kh\*kw=4"):
        cyconv.col2im(cols, (5, 6), 2)
    with pytest.raises(ValueError, match=r"cols.shape\[-1\]=12 .* 2x2=4 output positions"):
        cyconv.col2im(cols, (5, 6), 3, stride=2)
    with pytest.raises(ValueError, match=r"cols.shape\[-1\]=11"):
        cyconv.col2im(cols[..., :11], (5, 6), 3)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        cyconv.col2im(cols, (5, 6), 3, dilation=3)
    with pytest.raises(ValueError, match="input_size"):
        cyconv.col2im(cols, (5, 6, 1), 3)
    with pytest.raises(ValueError, match="padding"):
        cyconv.col2im(cols, (5, 6), 3, padding=-1)
    with pytest.raises(TypeError, match="kernel_size"):
        cyconv.col2im(cols, (5, 6), 3.0)
    with pytest.raises(TypeError, match="cols"):
        cyconv.col2im(cols.astype(complex), (5, 6), 3)
