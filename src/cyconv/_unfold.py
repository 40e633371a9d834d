"""im2col: convolution as a matrix multiplication (torch.nn.functional.unfold)."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cyconv import _im2col
from cyconv._typing import FloatArray, IntPair
from cyconv._validate import as_array, check_alloc, float_dtype, out_size, pair


def _window(func, kernel_size, stride, padding, dilation):
    """kernel_size, stride, padding and dilation of an unfold window as (h, w) pairs."""
    return (pair(func, "kernel_size", kernel_size, 1), pair(func, "stride", stride, 1),
            pair(func, "padding", padding, 0), pair(func, "dilation", dilation, 1))


def im2col(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1) -> FloatArray:
    """Unroll every kernel-sized patch of the input into a column.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W), (C, H, W) or (H, W)
    kernel_size : int or tuple of 2 ints
    stride, dilation : int or tuple of 2 ints, default 1
    padding : int or tuple of 2 ints, default 0
        Zero padding on each side.

    Returns
    -------
    ndarray, shape (N, C*kh*kw, Ho*Wo), (C*kh*kw, Ho*Wo) or (kh*kw, Ho*Wo)
        Row ``(c*kh + p)*kw + q``, column ``i*Wo + j`` holds
        ``x[c, i*sh - ph + p*dh, j*sw - pw + q*dw]`` (0 in the padding).
        float32 for float32 input, else float64.

    Raises
    ------
    ValueError
        If the input has the wrong rank or the output would be empty.
    TypeError
        For complex, object or string input, or non-integer parameters.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    Notes
    -----
    The rows are ordered channel, kernel row, kernel column, so that
    ``conv2d(x, w) == (w.reshape(K, -1) @ im2col(x, ...)).reshape(...)``.

    Examples
    --------
    The exercise's image at stride 2: each column is one 3x3 patch.

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> K = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    >>> cols = cyconv.im2col(I, 3, stride=2)
    >>> cols.shape
    (9, 4)
    >>> (K.ravel() @ cols).reshape(2, 2)
    array([[1., 6.],
           [0., 9.]])
    """
    func = "im2col"
    x = as_array(func, "input", input)
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"{func}: input must be 2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W), "
            f"got shape {x.shape}"
        )
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(
        func, kernel_size, stride, padding, dilation)
    n, c, h, w = (1,) * (4 - x.ndim) + x.shape
    shapes = f"input shape {x.shape}, kernel_size {(kh, kw)}"
    ho = out_size(func, "height", h, kh, sh, 2 * ph, dh, shapes)
    wo = out_size(func, "width", w, kw, sw, 2 * pw, dw, shapes)
    dtype = float_dtype(x)
    check_alloc(func, dtype.itemsize, input=x.shape, output=(n, c * kh * kw, ho * wo))
    cols = np.empty((n, c * kh * kw, ho * wo), dtype=dtype)
    if x.size == 0 or cols.size == 0:
        cols[...] = 0  # only padding was unrolled
    else:
        x4 = np.ascontiguousarray(x.reshape(n, c, h, w), dtype=dtype)
        _im2col.im2col(x4, cols, kh, kw, wo, sh, sw, ph, pw, dh, dw)
    if x.ndim == 4:
        return cols
    return cols[0]


def col2im(cols: npt.ArrayLike, input_size: IntPair, kernel_size: IntPair, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1) -> FloatArray:
    """Fold columns back into images, summing entries from the same input cell.

    The adjoint of `im2col` (like ``torch.nn.functional.fold``): every entry
    of ``cols`` is added to the input pixel that `im2col` would have read it
    from; entries that `im2col` read from the padding are dropped.

    Parameters
    ----------
    cols : array_like, shape (N, C*kh*kw, L) or (C*kh*kw, L)
        Columns in `im2col`'s layout: row ``(c*kh + p)*kw + q``, column
        ``i*Wo + j``, with ``L = Ho*Wo``.
    input_size : int or tuple of 2 ints
        ``(H, W)`` of the images to rebuild.
    kernel_size : int or tuple of 2 ints
    stride, dilation : int or tuple of 2 ints, default 1
    padding : int or tuple of 2 ints, default 0
        Zero padding on each side.

    Returns
    -------
    ndarray, shape (N, C, H, W) or (C, H, W)
        New C-contiguous array, float32 for float32 ``cols``, else float64.

    Raises
    ------
    ValueError
        If ``cols`` is not 2-D or 3-D, ``cols.shape[-2]`` is not a multiple
        of ``kh*kw``, or ``L`` differs from the number of output positions
        ``Ho*Wo`` of these parameters.
    TypeError
        For complex, object or string input, or non-integer parameters.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    Notes
    -----
    ``x[n, c, i*sh - ph + p*dh, j*sw - pw + q*dw] += cols[n, (c*kh + p)*kw + q, i*Wo + j]``
    over all ``(p, q, i, j)`` that land inside the image, with
    ``Ho = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1`` (likewise ``Wo``).
    Hence ``<im2col(x), cols> == <x, col2im(cols)>`` for all ``x`` and ``cols``.

    Examples
    --------
    Folding columns of ones counts how many 2x2 patches cover each pixel:

    >>> import numpy as np
    >>> import cyconv
    >>> cyconv.col2im(np.ones((4, 4)), (3, 3), 2)
    array([[[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]]])
    """
    func = "col2im"
    c = as_array(func, "cols", cols)
    if c.ndim not in (2, 3):
        raise ValueError(
            f"{func}: cols must be 2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L), "
            f"got shape {c.shape}"
        )
    h, w = pair(func, "input_size", input_size, 0)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(
        func, kernel_size, stride, padding, dilation)
    n, rows, n_pos = (1,) * (3 - c.ndim) + c.shape
    shapes = f"cols shape {c.shape}, input_size {(h, w)}, kernel_size {(kh, kw)}"
    if rows % (kh * kw):
        raise ValueError(
            f"{func}: cols.shape[-2]={rows} is not a multiple of kh*kw={kh * kw} ({shapes})"
        )
    ho = out_size(func, "height", h, kh, sh, 2 * ph, dh, shapes)
    wo = out_size(func, "width", w, kw, sw, 2 * pw, dw, shapes)
    if n_pos != ho * wo:
        raise ValueError(
            f"{func}: cols.shape[-1]={n_pos} but these parameters give "
            f"{ho}x{wo}={ho * wo} output positions ({shapes})"
        )
    dtype = float_dtype(c)
    check_alloc(func, dtype.itemsize, cols=c.shape, output=(n, rows // (kh * kw), h, w))
    x = np.zeros((n, rows // (kh * kw), h, w), dtype=dtype)
    if c.size and x.size:
        c3 = np.ascontiguousarray(c.reshape(n, rows, n_pos), dtype=dtype)
        _im2col.col2im(c3, x, kh, kw, wo, sh, sw, ph, pw, dh, dw)
    if c.ndim == 3:
        return x
    return x[0]
