"""Max and average pooling, forward and backward (torch.nn.functional semantics)."""
from __future__ import annotations

from typing import Literal, NamedTuple, overload

import numpy as np
import numpy.typing as npt

from cyconv._dispatch import _pooling
from cyconv._typing import FloatArray, IndexArray, IntPair, Shape
from cyconv._validate import (
    INDEX_MAX,
    as_array,
    as_int,
    check_alloc,
    check_extent,
    float_dtype,
    int_tuple,
    out_size,
    pair,
)


# Planes per kernel call: about this much work (values read or written, taps
# visited), so that a long pooling returns to Python, which acts on Ctrl-C,
# every few tens of milliseconds, while each call still has work enough for
# all threads. One plane is never split.
CHUNK_WORK = 2**26


def plane_chunks(planes, work_per_plane):
    """Slices of [0, planes) of about CHUNK_WORK work each (one for a small call)."""
    step = max(1, CHUNK_WORK // max(1, work_per_plane))
    return [slice(c, min(c + step, planes)) for c in range(0, planes, step)]


class PoolGeometry(NamedTuple):
    """One pooling's shapes and parameters, checked and normalized."""

    # Leading axes of the caller's shape: (N, C), (C,) or (); pooled plane by plane.
    lead: tuple
    planes: int
    height: int
    width: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    ho: int
    wo: int

    def output_shape(self):
        """The pooled shape, in the caller's rank."""
        return self.lead + (self.ho, self.wo)

    def params(self) -> tuple[int, int, int, int, int, int]:
        """Kernel, stride and padding as the kernels take them: kh, kw, sh, sw, ph, pw."""
        return self.kh, self.kw, self.sh, self.sw, self.ph, self.pw


def _flag(func, name, value):
    """A bool (Python or NumPy); TypeError for anything else, as torch's bool arguments."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be a bool, got {value!r}")
    return bool(value)


def _shape(func, name, shape):
    """A 2-D, 3-D or 4-D shape as a tuple of non-negative ints."""
    shape = int_tuple(func, name, shape)
    if len(shape) not in (2, 3, 4):
        raise ValueError(
            f"{func}: {name} must be 2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W), "
            f"got shape {shape}"
        )
    return shape


def _pool_size(func, axis, size, kernel, stride, pad, dilation, ceil_mode, shapes):
    """Output length along one axis: PyTorch's ``pooling_output_shape``.

    ``floor_or_ceil((size + 2*pad - dilation*(kernel - 1) - 1) / stride) + 1``;
    in ceil mode the last window must start inside the input or the left
    padding, else it is dropped.
    """
    if not ceil_mode:
        return out_size(func, axis, size, kernel, stride, 2 * pad, dilation, shapes)
    check_extent(func, axis, size, 2 * pad, stride, dilation)
    span = dilation * (kernel - 1) + 1
    # Python's // floors like torch's div_rtn; -(-a // s) is the ceiling.
    n_out = -(-(size + 2 * pad - span) // stride) + 1
    if (n_out - 1) * stride >= size + pad:
        n_out -= 1
    if n_out < 1:
        raise ValueError(
            f"{func}: the {axis} of the (padded) input, {size} + {2 * pad} = "
            f"{size + 2 * pad}, leaves no window of the dilated kernel {axis} {span} "
            f"even with ceil_mode=True ({shapes})"
        )
    return n_out


def _has_empty_window(size, kernel, stride, pad, dilation, n_out):
    """Whether a dilated window along one axis has all its taps in the padding.

    Only a window starting in the left padding can (the padding is at most
    half the kernel), and only with dilation > 1: its taps may jump from the
    left padding over the whole input into the right padding. Such a window
    pools to -inf, as in PyTorch, with index -1.
    """
    if dilation == 1 or pad == 0:
        return False
    starts = np.arange(min(n_out, -(-pad // stride))) * stride - pad
    first = starts + -(starts // dilation) * dilation  # first tap >= 0
    return bool(np.any(first >= size))


def pool_geometry(func, shape, kernel_size, stride, padding, dilation,
                  ceil_mode) -> PoolGeometry:
    """Check a pooling's shape and parameters (PyTorch's rules); return its PoolGeometry."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3, 4):
        raise ValueError(
            f"{func}: input must be 2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W), "
            f"got shape {shape}"
        )
    kh, kw = pair(func, "kernel_size", kernel_size, 1)
    sh, sw = (kh, kw) if stride is None else pair(func, "stride", stride, 1)
    ph, pw = pair(func, "padding", padding, 0)
    dh, dw = pair(func, "dilation", dilation, 1)
    ceil_mode = _flag(func, "ceil_mode", ceil_mode)
    shapes = f"input shape {shape}, kernel_size {(kh, kw)}"
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"{func}: padding {(ph, pw)} must be at most half of kernel_size "
            f"{(kh, kw)} (padding <= kernel_size // 2)"
        )
    *lead, h, w = shape
    if h < 1 or w < 1:
        raise ValueError(f"{func}: the input height and width must be >= 1 ({shapes})")
    ho = _pool_size(func, "height", h, kh, sh, ph, dh, ceil_mode, shapes)
    wo = _pool_size(func, "width", w, kw, sw, pw, dw, ceil_mode, shapes)
    # The input (or its gradient) and the output, at 8 bytes (float64, int64 indices).
    check_alloc(func, 8, input=shape, output=(*lead, ho, wo))
    return PoolGeometry(tuple(lead), int(np.prod(lead, dtype=np.int64)), h, w,
                        kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)


@overload
def max_pool2d(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair | None = ...,
               padding: IntPair = ..., dilation: IntPair = ..., ceil_mode: bool = ...,
               return_indices: Literal[False] = ...) -> FloatArray: ...
@overload
def max_pool2d(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair | None,
               padding: IntPair, dilation: IntPair, ceil_mode: bool,
               return_indices: Literal[True]) -> tuple[FloatArray, IndexArray]: ...
@overload
def max_pool2d(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair | None = ...,
               padding: IntPair = ..., dilation: IntPair = ..., ceil_mode: bool = ..., *,
               return_indices: Literal[True]) -> tuple[FloatArray, IndexArray]: ...
@overload
def max_pool2d(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair | None = ...,
               padding: IntPair = ..., dilation: IntPair = ..., ceil_mode: bool = ...,
               return_indices: bool = ...) -> FloatArray | tuple[FloatArray, IndexArray]: ...
def max_pool2d(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> FloatArray | tuple[FloatArray, IndexArray]:
    """2-D max pooling of each channel of a batch of images.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W), (C, H, W) or (H, W)
        Images; each channel is pooled on its own. Any memory layout; integer
        and bool arrays are computed as float64.
    kernel_size : int or tuple of 2 ints
        Window size ``(kh, kw)``.
    stride : int or tuple of 2 ints, optional
        Step between windows; default ``kernel_size``.
    padding : int or tuple of 2 ints, default 0
        Implicit -inf padding on each side, at most ``kernel_size // 2``.
    dilation : int or tuple of 2 ints, default 1
        Spacing between window taps.
    ceil_mode : bool, default False
        Round the output size up instead of down: a last, partial window is
        kept if it starts inside the input or the left padding.
    return_indices : bool, default False
        Also return where each maximum was found.

    Returns
    -------
    out : ndarray, shape (N, C, Ho, Wo), (C, Ho, Wo) or (Ho, Wo)
        New C-contiguous array, float32 for float32 input, else float64.
    indices : ndarray of int64, same shape as `out`
        Only with ``return_indices=True``: the flat position ``y*W + x`` of
        each maximum in its ``H*W`` input plane, for `max_pool2d_backward`;
        -1 for a window with no tap inside the input (see Notes).

    Raises
    ------
    ValueError
        For an input that is not 2-D, 3-D or 4-D or has no rows or columns,
        kernel_size/stride/dilation < 1, padding < 0 or above
        ``kernel_size // 2``, or an empty output.
    TypeError
        For complex, object or string input, non-integer parameters or
        non-bool flags.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    See Also
    --------
    max_pool2d_backward : the gradient with respect to the input.

    Notes
    -----
    ``out[n, c, i, j] = max_{p, q} x[n, c, i*sh - ph + p*dh, j*sw - pw + q*dw]``
    over ``0 <= p < kh``, ``0 <= q < kw``, with -inf in the padding. The
    output size is ``Ho = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1``
    (``ceil`` with ``ceil_mode``, minus one if that last window would start
    at or beyond ``H + ph``), likewise ``Wo``. As in PyTorch, the first maximum
    in row-major window order wins a tie, and NaN propagates: a tap replaces
    the running maximum when ``val > max or isnan(val)``, so the index of a
    window holding NaN is that of its last NaN. With dilation, a window can
    have every tap in the padding (kernel (1, 2), dilation 2, padding 1 on a
    1-wide plane): it pools to -inf, as in PyTorch, with index -1 (PyTorch
    reports a position outside the window), which `max_pool2d_backward`
    skips.

    Examples
    --------
    The course exercise: max pooling of the 5x5 image with a 3x3 kernel at
    stride 2. The 5 at row 2, column 3 (index ``2*5 + 3 = 13``) is the
    maximum of both right-hand windows.

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> out, indices = cyconv.max_pool2d(I, 3, stride=2, return_indices=True)
    >>> out
    array([[1., 5.],
           [1., 5.]])
    >>> indices
    array([[ 0, 13],
           [11, 13]])
    """
    func = "max_pool2d"
    x = as_array(func, "input", input)
    geom = pool_geometry(func, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = _flag(func, "return_indices", return_indices)
    dtype = float_dtype(x)
    if return_indices:  # pool_geometry weighed the input and the output; the indices too
        check_alloc(func, 8, input=x.shape, output=geom.output_shape(),
                    indices=geom.output_shape())
    out = np.empty((geom.planes, geom.ho, geom.wo), dtype=dtype)
    # The int64 indices only when asked for: the kernel otherwise keeps them
    # in a scratch row per thread.
    indices = np.empty(out.shape, dtype=np.int64) if return_indices else None
    if out.size:
        x3 = np.ascontiguousarray(x, dtype=dtype).reshape(geom.planes, geom.height,
                                                          geom.width)
        empty = (_has_empty_window(geom.height, geom.kh, geom.sh, geom.ph, geom.dh, geom.ho)
                 or _has_empty_window(geom.width, geom.kw, geom.sw, geom.pw, geom.dw, geom.wo))
        for sl in plane_chunks(geom.planes, geom.height * geom.width
                               + geom.ho * geom.wo * geom.kh * geom.kw):
            _pooling.max_pool2d_forward(x3[sl], out[sl],
                                        None if indices is None else indices[sl],
                                        *geom.params(), geom.dh, geom.dw, empty)
    out = out.reshape(geom.output_shape())
    if return_indices:
        return out, indices.reshape(geom.output_shape())
    return out


def max_pool2d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike,
                        input_shape: Shape) -> FloatArray:
    """Gradient of `max_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, Ho, Wo), (C, Ho, Wo) or (Ho, Wo)
        Gradient of the loss with respect to the pooled output.
    indices : array_like of integers, same shape as `grad_output`
        The ``indices`` that ``max_pool2d(..., return_indices=True)`` returned:
        flat positions ``y*W + x`` in each ``H*W`` input plane.
    input_shape : tuple of ints
        Shape of the pooled input: ``(N, C, H, W)``, ``(C, H, W)`` or
        ``(H, W)``, of the same rank and leading axes as `grad_output`.

    Returns
    -------
    ndarray, shape `input_shape`
        New C-contiguous array, float32 for float32 `grad_output`, else
        float64.

    Raises
    ------
    ValueError
        If the shapes do not match or an index lies outside its plane.
    TypeError
        For complex, object or string `grad_output`, or non-integer `indices`.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    See Also
    --------
    max_pool2d : the forward pass.

    Notes
    -----
    ``grad_input[n, c].flat[indices[n, c, i, j]] += grad_output[n, c, i, j]``:
    each output gradient goes to its maximum's cell, and a cell that is the
    maximum of several (overlapping) windows receives their sum. An index of
    -1 (a window wholly in the padding) sends its gradient nowhere.

    Examples
    --------
    The exercise's image again: the 5 at row 2, column 3 is the maximum of
    two windows, so it collects both of their gradients.

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> out, indices = cyconv.max_pool2d(I, 3, stride=2, return_indices=True)
    >>> cyconv.max_pool2d_backward(np.ones((2, 2)), indices, I.shape)
    array([[1., 0., 0., 0., 0.],
           [0., 0., 0., 0., 0.],
           [0., 1., 0., 2., 0.],
           [0., 0., 0., 0., 0.],
           [0., 0., 0., 0., 0.]])
    """
    func = "max_pool2d_backward"
    g = as_array(func, "grad_output", grad_output)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{func}: indices must be integers, got dtype {idx.dtype}")
    shape = _shape(func, "input_shape", input_shape)
    *lead, h, w = shape
    if g.shape != idx.shape:
        raise ValueError(
            f"{func}: grad_output shape {g.shape} and indices shape {idx.shape} differ"
        )
    if g.ndim != len(shape) or g.shape[:-2] != tuple(lead):
        raise ValueError(
            f"{func}: grad_output shape {g.shape} does not fit input_shape {shape} "
            "(need the same rank and the same leading axes)"
        )
    check_alloc(func, 8, grad_input=shape, grad_output=g.shape)
    dtype = float_dtype(g)
    planes = int(np.prod(lead, dtype=np.int64))
    if not g.size:
        return np.zeros(shape, dtype=dtype)
    # The kernel zero-fills each plane just before it scatters into it, and
    # checks each index as it scatters, counting the bad ones (uint64 values
    # past 2**63 wrap to negative here, and count too).
    grad_input = np.empty((planes, h * w), dtype=dtype)
    g2 = np.ascontiguousarray(g, dtype=dtype).reshape(planes, -1)
    idx2 = np.ascontiguousarray(idx, dtype=np.int64).reshape(planes, -1)
    outside = 0
    for sl in plane_chunks(planes, h * w + g2.shape[1]):
        outside += _pooling.max_pool2d_backward(g2[sl], idx2[sl], grad_input[sl])
    if outside:
        raise ValueError(
            f"{func}: indices must be -1 or lie in [0, H*W) = [0, {h * w}) for input_shape "
            f"{shape}, got values in [{idx.min()}, {idx.max()}] ({outside} outside)"
        )
    return grad_input.reshape(shape)


def _avg_geometry(func, shape, kernel_size, stride, padding, ceil_mode,
                  count_include_pad, divisor_override) -> tuple[PoolGeometry, bool, int]:
    """PoolGeometry, count_include_pad and the divisor code (0: none) of an average pooling."""
    geom = pool_geometry(func, shape, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _flag(func, "count_include_pad", count_include_pad)
    divisor = 0
    if divisor_override is not None:
        # Like torch, any nonzero int, negative ones included.
        divisor = as_int(func, "divisor_override", divisor_override, -np.inf)
        if divisor == 0 or abs(divisor) > INDEX_MAX:
            raise ValueError(
                f"{func}: divisor_override must be nonzero and at most 2**62 in size, "
                f"got {divisor}"
            )
    return geom, count_include_pad, divisor


def avg_pool2d(input: npt.ArrayLike, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> FloatArray:
    """2-D average pooling of each channel of a batch of images.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W), (C, H, W) or (H, W)
        Images; each channel is pooled on its own. Any memory layout; integer
        and bool arrays are computed as float64.
    kernel_size : int or tuple of 2 ints
        Window size ``(kh, kw)``.
    stride : int or tuple of 2 ints, optional
        Step between windows; default ``kernel_size``.
    padding : int or tuple of 2 ints, default 0
        Implicit zero padding on each side, at most ``kernel_size // 2``.
    ceil_mode : bool, default False
        Round the output size up instead of down: a last, partial window is
        kept if it starts inside the input or the left padding.
    count_include_pad : bool, default True
        Whether the padding cells count in the divisor.
    divisor_override : int, optional
        If given (nonzero), the divisor of every window.

    Returns
    -------
    ndarray, shape (N, C, Ho, Wo), (C, Ho, Wo) or (Ho, Wo)
        New C-contiguous array, float32 for float32 input, else float64.

    Raises
    ------
    ValueError
        For an input that is not 2-D, 3-D or 4-D or has no rows or columns,
        kernel_size/stride < 1, padding < 0 or above ``kernel_size // 2``,
        an empty output, or ``divisor_override=0``.
    TypeError
        For complex, object or string input, non-integer parameters or
        non-bool flags.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    See Also
    --------
    avg_pool2d_backward : the gradient with respect to the input.

    Notes
    -----
    ``out[n, c, i, j] = sum_{p, q} x[n, c, i*sh - ph + p, j*sw - pw + q] / D``
    with zeros in the padding. The divisor ``D`` is `divisor_override` if
    given; else, with `count_include_pad`, the number of window cells inside
    the padded input (a ceil_mode window hanging beyond the padding counts
    only its cells up to it), and without it the number of window cells
    inside the input. Output size as in `max_pool2d` with dilation 1.

    Examples
    --------
    >>> import numpy as np
    >>> import cyconv
    >>> x = np.arange(16).reshape(4, 4)
    >>> cyconv.avg_pool2d(x, 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])

    With padding 1 the corner window holds one input cell and three padding
    cells; ``count_include_pad=False`` divides by 1 instead of 4:

    >>> cyconv.avg_pool2d(x, 2, padding=1, count_include_pad=False)
    array([[ 0. ,  1.5,  3. ],
           [ 6. ,  7.5,  9. ],
           [12. , 13.5, 15. ]])
    """
    func = "avg_pool2d"
    x = as_array(func, "input", input)
    geom, count_include_pad, divisor = _avg_geometry(
        func, x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override)
    dtype = float_dtype(x)
    out = np.empty((geom.planes, geom.ho, geom.wo), dtype=dtype)
    if out.size:
        x3 = np.ascontiguousarray(x, dtype=dtype).reshape(geom.planes, geom.height,
                                                          geom.width)
        for sl in plane_chunks(geom.planes, geom.height * geom.width
                               + geom.ho * geom.wo * geom.kh * geom.kw):
            _pooling.avg_pool2d_forward(x3[sl], out[sl], *geom.params(), count_include_pad,
                                        divisor)
    return out.reshape(geom.output_shape())


def avg_pool2d_backward(grad_output: npt.ArrayLike, input_shape: Shape, kernel_size: IntPair,
                        stride: IntPair | None = None, padding: IntPair = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None) -> FloatArray:
    """Gradient of `avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, Ho, Wo), (C, Ho, Wo) or (Ho, Wo)
        Gradient of the loss with respect to the pooled output; its shape
        must be what `avg_pool2d` returns for `input_shape` and the parameters.
    input_shape : tuple of ints
        Shape of the pooled input: ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``.
    kernel_size : int or tuple of 2 ints
    stride : int or tuple of 2 ints, optional
    padding : int or tuple of 2 ints, default 0
    ceil_mode : bool, default False
    count_include_pad : bool, default True
    divisor_override : int, optional
        These six as given to `avg_pool2d`.

    Returns
    -------
    ndarray, shape `input_shape`
        New C-contiguous array, float32 for float32 `grad_output`, else
        float64.

    Raises
    ------
    ValueError
        For the parameter errors of `avg_pool2d`, or a `grad_output` whose
        shape is not the pooled shape of `input_shape`.
    TypeError
        For complex, object or string `grad_output`, non-integer parameters
        or non-bool flags.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    See Also
    --------
    avg_pool2d : the forward pass.

    Notes
    -----
    ``grad_input[n, c, y, x] = sum_{i, j} grad_output[n, c, i, j] / D(i, j)``
    over the windows ``(i, j)`` that contain ``(y, x)``, with the divisor
    ``D`` of `avg_pool2d`: the adjoint of the forward map.

    Examples
    --------
    Two overlapping 2x2 windows at stride 1: the middle column is in both.

    >>> import numpy as np
    >>> import cyconv
    >>> cyconv.avg_pool2d_backward(np.array([[4, 8]]), (2, 3), 2, stride=1)
    array([[1., 3., 2.],
           [1., 3., 2.]])
    """
    func = "avg_pool2d_backward"
    g = as_array(func, "grad_output", grad_output)
    shape = _shape(func, "input_shape", input_shape)
    geom, count_include_pad, divisor = _avg_geometry(
        func, shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override)
    if g.shape != geom.output_shape():
        raise ValueError(
            f"{func}: grad_output shape {g.shape} is not the pooled shape "
            f"{geom.output_shape()} of input_shape {shape}"
        )
    dtype = float_dtype(g)
    # The kernel writes every cell (no window: 0), so no zero-fill pass here.
    grad_input = np.empty((geom.planes, geom.height, geom.width), dtype=dtype)
    if g.size:
        g3 = np.ascontiguousarray(g, dtype=dtype).reshape(geom.planes, geom.ho, geom.wo)
        for sl in plane_chunks(geom.planes, geom.height * geom.width
                               + geom.ho * geom.wo * geom.kh * geom.kw):
            _pooling.avg_pool2d_backward(g3[sl], grad_input[sl], *geom.params(),
                                         count_include_pad, divisor)
    return grad_input.reshape(shape)
