"""Convolution as a linear operator: conv_operator and conv_matrix."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import scipy.sparse
from scipy.sparse.linalg import LinearOperator

from cyconv._backward import conv2d_backward
from cyconv._conv import conv2d, geometry, padding_plan, prepare_input, weight4
from cyconv._typing import IntPair, Padding, PaddingMode, Shape
from cyconv._unfold import im2col
from cyconv._validate import as_array, check_alloc, fits_int, float_dtype


def _setup(func, weight, input_shape, stride, padding, dilation, groups, padding_mode):
    """Check everything as conv2d does; return (4-D weight, geometry)."""
    w = as_array(func, "weight", weight)
    geom = geometry(func, input_shape, w.shape, stride, padding, dilation, groups)
    padding_plan(func, geom, padding_mode)
    dtype = float_dtype(w)
    # An operator whose input or output vector cannot exist cannot be applied.
    check_alloc(func, dtype.itemsize, weight=w.shape,
                input=(geom.batch, geom.channels, geom.height, geom.width),
                output=(geom.batch, geom.kernels, geom.ho, geom.wo))
    # A private copy: the operator must not change when the caller's array does.
    w4 = np.array(weight4(w, geom), dtype=dtype, order="C", copy=True)
    return w4, geom


def _index_image(func, geom, padding_mode):
    """The input cells numbered 1..prod(input_shape) in C order, padded as conv2d pads.

    Each padded cell holds the number of the input cell it copies (0 for zeros).
    """
    top, bottom, left, right = geom.pads
    check_alloc(func, 8, padded_input=(
        geom.batch, geom.channels, geom.height + top + bottom, geom.width + left + right))
    size = geom.batch * geom.channels * geom.height * geom.width
    index = np.arange(1, size + 1, dtype=np.int64)
    padded, _, _ = prepare_input(func, index, geom, padding_mode, np.int64)
    if padded.shape[2:] == (geom.height, geom.width):  # zeros: the kernels pad, so pad here
        padded = np.pad(padded, ((0, 0), (0, 0), (top, bottom), (left, right)))
    return padded


def _by_parts(apply, x):
    """``apply`` is real-linear: run it on the real and imaginary parts of a complex ``x``."""
    if np.iscomplexobj(x):
        return apply(x.real) + 1j * apply(x.imag)
    return apply(x)


# The parameters and errors both functions share, filled into their docstrings.
_DOC = {
    "params": """    input_shape : tuple of ints
        ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``, as `conv2d`'s input.
    stride : int or tuple of 2 ints, default 1
    padding : int, tuple of 2 ints, 'valid' or 'same', default 0
        As in `conv2d`; ``'same'`` (stride 1 only) puts the odd pixel at the
        bottom/right.
    dilation : int or tuple of 2 ints, default 1
    groups : int, default 1
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in `conv2d`: what the padding holds (zeros; the mirror image
        without the edge pixel; the edge pixel repeated; the opposite edge).
""",
    "raises": """    Raises
    ------
    ValueError
        For shapes that do not fit together, an empty output, or bad
        stride/padding/dilation/groups/padding_mode values (as `conv2d`).
    TypeError
        For a complex, object or string weight, or non-integer parameters.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.
""",
}


def _fill_doc(func):
    """Fill ``%(params)s`` and ``%(raises)s`` in ``func.__doc__`` (scipy's doccer idea)."""
    if func.__doc__:  # None under python -OO
        func.__doc__ = func.__doc__ % _DOC
    return func


@_fill_doc
def conv_operator(weight: npt.ArrayLike, input_shape: Shape, stride: IntPair = 1,
                  padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, *,
                  padding_mode: PaddingMode = "zeros") -> LinearOperator:
    """`conv2d` with a fixed weight as a ``scipy.sparse.linalg.LinearOperator``.

    The operator maps a flattened input to the flattened output of `conv2d`,
    and its adjoint maps a flattened output gradient to the input gradient
    of `conv2d_backward`, so that iterative solvers (``lsqr``, ``cg``,
    ``svds``...) can invert or analyse a convolution without forming its
    matrix.

    Parameters
    ----------
    weight : array_like, shape (K, C // groups, kh, kw), or (kh, kw) with a 2-D input
        Kernels, not flipped; read once, when the operator is made.
%(params)s
    Returns
    -------
    scipy.sparse.linalg.LinearOperator, shape (prod(output_shape), prod(input_shape))
        ``A @ x == conv2d(x.reshape(input_shape), weight, ...).ravel()`` and
        ``A.T @ y`` is the input gradient of `conv2d_backward` for
        ``grad_output = y.reshape(output_shape)``. ``A.dtype`` is float32 for a
        float32 weight, else float64; a float32 vector gives a float32
        result. ``matmat``/``rmatmat`` run all columns as one batch.
        The bias is not part of the operator (it would make it affine).

%(raises)s
    See Also
    --------
    conv_matrix : the same map as an explicit sparse matrix.
    conv2d, conv2d_backward

    Notes
    -----
    With ``out = A x``: ``out[n, k, i, j] = sum_{c, p, q} weight[k, c, p, q] *
    x[n, g*C/groups + c, i*sh - ph + p*dh, j*sw - pw + q*dw]``, and
    ``<A x, y> == <x, A.T y>`` for all ``x`` and ``y``. Applying ``A`` costs
    one `conv2d`, ``A.T`` one `conv2d_backward` for the input only.

    Examples
    --------
    The course exercise: a 5x5 image, a 3x3 kernel, stride 2.

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> K = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    >>> A = cyconv.conv_operator(K, (5, 5), stride=2)
    >>> A.shape
    (4, 25)
    >>> A @ I.ravel()
    array([1., 6., 0., 9.])

    The adjoint scatters each output gradient back through ``K``:

    >>> (A.T @ np.ones(4)).reshape(5, 5)
    array([[0., 1., 1., 1., 1.],
           [1., 0., 1., 0., 0.],
           [0., 2., 1., 2., 1.],
           [1., 0., 1., 0., 0.],
           [0., 1., 0., 1., 0.]])
    """
    func = "conv_operator"
    w4, geom = _setup(func, weight, input_shape, stride, padding, dilation, groups,
                      padding_mode)
    in_shape = (geom.batch, geom.channels, geom.height, geom.width)
    out_shape = (geom.batch, geom.kernels, geom.ho, geom.wo)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)

    # Columns of X are separate inputs: stack them along the batch axis so one
    # conv2d call runs them all, (n_in, m) -> (m*N, C, H, W) -> (n_out, m).
    def forward(xs):
        m = xs.shape[1]
        batch = np.ascontiguousarray(xs.T).reshape((m * geom.batch,) + in_shape[1:])
        return conv2d(batch, w4, **params).reshape(m, -1).T

    def adjoint(ys):
        m = ys.shape[1]
        grad = np.ascontiguousarray(ys.T).reshape((m * geom.batch,) + out_shape[1:])
        # conv2d_backward takes the input for its shape only when output_mask
        # asks for grad_input alone: a zero-stride view of one zero suffices.
        like = np.broadcast_to(np.zeros((), w4.dtype), (m * geom.batch,) + in_shape[1:])
        gx, _, _ = conv2d_backward(grad, like, w4, **params,
                                   output_mask=(True, False, False))
        return gx.reshape(m, -1).T

    def matmat(xs):
        return _by_parts(forward, xs)

    def rmatmat(ys):
        return _by_parts(adjoint, ys)

    shape = (math.prod(out_shape), math.prod(in_shape))
    return LinearOperator(shape, dtype=w4.dtype,
                          matvec=lambda x: matmat(x.reshape(-1, 1)),
                          rmatvec=lambda y: rmatmat(y.reshape(-1, 1)),
                          matmat=matmat, rmatmat=rmatmat)


@_fill_doc
def conv_matrix(weight: npt.ArrayLike, input_shape: Shape, stride: IntPair = 1,
                padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, *,
                padding_mode: PaddingMode = "zeros") -> scipy.sparse.csr_array:
    """`conv2d` with a fixed weight as a sparse CSR matrix.

    Convolution as a matrix multiplication, literally: row ``r`` of the
    matrix holds the weights that output cell ``r`` (C order) takes from each
    input cell (C order).

    Parameters
    ----------
    weight : array_like, shape (K, C // groups, kh, kw), or (kh, kw) with a 2-D input
        Kernels, not flipped.
%(params)s        In the matrix, a tap that reads a padded cell is added to the entry of
        the input cell that cell copies, so an entry may hold several weights.

    Returns
    -------
    scipy.sparse.csr_array, shape (prod(output_shape), prod(input_shape))
        ``M @ x.ravel() == conv2d(x, weight, ...).ravel()`` and ``M.T`` is the
        adjoint (the input gradient). float32 for a float32 weight, else
        float64. Taps whose weight is zero are not stored. The bias is not
        part of the matrix.

%(raises)s
    See Also
    --------
    conv_operator : the same map, applied by `conv2d` without a matrix.
    im2col

    Notes
    -----
    ``M[(n, k, i, j), (n, g*C/groups + c, y, x)] = sum of weight[k, c, p, q]``
    over the taps ``(p, q)`` for which the padded input cell
    ``(i*sh + p*dh, j*sw + q*dw)`` is (a copy of) the input cell ``(y, x)``,
    where ``g = k // (K/groups)``. It is built without a loop per entry:
    `im2col` of an image that numbers the input cells gives, for every
    output cell and tap, the input cell it reads, and duplicates are summed.
    The matrix holds up to ``N*K*Ho*Wo*(C/groups)*kh*kw`` entries.

    Examples
    --------
    The course exercise: each row of the 4x25 matrix is the kernel placed on
    one stride-2 patch of a 5x5 image, zeros elsewhere.

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> K = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    >>> M = cyconv.conv_matrix(K, (5, 5), stride=2)
    >>> M.shape
    (4, 25)
    >>> for row in M.toarray():
    ...     print("".join(str(int(v)) for v in row))
    0110010000010000000000000
    0001100100000100000000000
    0000000000011001000001000
    0000000000000110010000010

    Row 1 as an image: ``K`` on the patch at rows 0-2, columns 2-4.

    >>> M.toarray()[1].reshape(5, 5)
    array([[0., 0., 0., 1., 1.],
           [0., 0., 1., 0., 0.],
           [0., 0., 0., 1., 0.],
           [0., 0., 0., 0., 0.],
           [0., 0., 0., 0., 0.]])
    >>> M @ I.ravel()
    array([1., 6., 0., 9.])
    """
    func = "conv_matrix"
    w4, geom = _setup(func, weight, input_shape, stride, padding, dilation, groups,
                      padding_mode)
    padded = _index_image(func, geom, padding_mode)
    n, k, g = geom.batch, geom.kernels, geom.groups
    n_out = n * k * geom.ho * geom.wo
    n_in = n * geom.channels * geom.height * geom.width
    # source[n, g, t, l]: the input cell (1-based, 0 for zero padding) that tap
    # t = (c, p, q) of group g reads for output pixel l = (i, j).
    n_pos, taps = geom.ho * geom.wo, w4.shape[1] * geom.kh * geom.kw
    # Each array below holds at most one 8-byte value per possible entry.
    check_alloc(func, 8, matrix_entries=(n, g, k // g, taps, n_pos))
    source = im2col(padded, (geom.kh, geom.kw), (geom.sh, geom.sw), 0,
                    (geom.dh, geom.dw)).astype(np.int64)
    source = source.reshape(n, g, 1, taps, n_pos)
    # Row of output cell (n, k = g*K/g + kg, l), laid out like source.
    rows = (np.arange(n).reshape(n, 1, 1, 1, 1) * k
            + np.arange(k).reshape(1, g, k // g, 1, 1)) * n_pos \
        + np.arange(n_pos).reshape(1, 1, 1, 1, n_pos)
    values = w4.reshape(1, g, k // g, taps, 1)
    shape = (n, g, k // g, taps, n_pos)
    keep = np.broadcast_to((source > 0) & (values != 0), shape)
    index = np.int32 if fits_int(n_out, n_in, keep.size) else np.int64
    coo = scipy.sparse.coo_array(
        (np.broadcast_to(values, shape)[keep],
         (np.broadcast_to(rows, shape)[keep].astype(index),
          np.broadcast_to(source - 1, shape)[keep].astype(index))),
        shape=(n_out, n_in))
    return coo.tocsr()  # sums the duplicates that padding modes create
