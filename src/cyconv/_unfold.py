"""im2col: convolution as a matrix multiplication (torch.nn.functional.unfold)."""
import numpy as np

from cyconv import _im2col
from cyconv._validate import as_array, float_dtype, out_size, pair


def im2col(input, kernel_size, stride=1, padding=0, dilation=1):
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
    kh, kw = pair(func, "kernel_size", kernel_size, 1)
    sh, sw = pair(func, "stride", stride, 1)
    ph, pw = pair(func, "padding", padding, 0)
    dh, dw = pair(func, "dilation", dilation, 1)
    n, c, h, w = (1,) * (4 - x.ndim) + x.shape
    shapes = f"input shape {x.shape}, kernel_size {(kh, kw)}"
    ho = out_size(func, "height", h, kh, sh, 2 * ph, dh, shapes)
    wo = out_size(func, "width", w, kw, sw, 2 * pw, dw, shapes)
    dtype = float_dtype(x)
    cols = np.empty((n, c * kh * kw, ho * wo), dtype=dtype)
    if x.size == 0 or cols.size == 0:
        cols[...] = 0  # only padding was unrolled
    else:
        x4 = np.ascontiguousarray(x.reshape(n, c, h, w), dtype=dtype)
        _im2col.im2col(x4, cols, kh, kw, wo, sh, sw, ph, pw, dh, dw)
    if x.ndim == 4:
        return cols
    return cols[0]
