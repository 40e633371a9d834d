"""``scipy.ndimage`` drop-ins for 2-D arrays: correlate and convolve.

SciPy's steps in SciPy's order: weights flipped and origins negated (and
shifted by one on even axes) for convolve, origins checked against SciPy's
bounds, the input extended by ``mode`` as ``numpy.pad`` extends it (in one
compiled call, ``_small.pad``) and one 'valid' correlation run by
``cyconv._signal`` (direct loops or FFT), then cast to the output dtype as
SciPy's C code casts its float64 sums.
"""
from __future__ import annotations

import operator

import numpy as np
import numpy.typing as npt

from cyconv import _small
from cyconv._signal import _filter2d

__all__ = ["correlate", "convolve"]

# ndimage mode -> numpy.pad mode. For filters SciPy treats each 'grid-' name
# as its plain twin. On a row [1 2 3] extended by 2:
#   reflect, grid-mirror     2 1 | 1 2 3 | 3 2
#   mirror                   3 2 | 1 2 3 | 2 1
#   nearest                  1 1 | 1 2 3 | 3 3
#   wrap, grid-wrap          2 3 | 1 2 3 | 1 2
#   constant, grid-constant  c c | 1 2 3 | c c
_PAD_MODES = {"reflect": "symmetric", "grid-mirror": "symmetric", "mirror": "reflect",
              "nearest": "edge", "wrap": "wrap", "grid-wrap": "wrap",
              "constant": "constant", "grid-constant": "constant"}
_PAD_CODES = {mode: _small.PAD_MODES.index(pad) for mode, pad in _PAD_MODES.items()}

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _origins(func, origin, ndim=2):
    """SciPy's ``_normalize_sequence``: a scalar, or one integer per axis."""
    if isinstance(origin, (str, bytes)) or not np.iterable(origin):
        origin = [origin] * ndim
    else:
        origin = list(origin)
        if len(origin) != ndim:
            raise RuntimeError(
                f"{func}: origin must hold one value per axis ({ndim}), got {len(origin)}")
    return [operator.index(o) for o in origin]


def _output_dtype(func, output, input):
    """SciPy's ``_get_output``: None, a dtype (or its name), or an array to fill."""
    if output is None:
        return input.dtype, None
    if isinstance(output, np.ndarray):
        if output.shape != input.shape:
            raise RuntimeError(
                f"{func}: output shape {output.shape} is not the input shape {input.shape}")
        return output.dtype, output
    dtype = np.dtype(output)
    return dtype, None


def _correlate(func, input, weights, output, mode, cval, origin, flip):
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        raise TypeError(f"{func}: complex input or weights are not supported")
    if input.dtype.kind not in "biuf" or weights.dtype.kind not in "biuf":
        raise TypeError(f"{func}: input and weights must be real numeric arrays")
    if input.ndim != 2:
        raise ValueError(
            f"{func}: only 2-D input is supported (cyconv.ndimage is 2-D), got shape "
            f"{input.shape}")
    if weights.ndim != input.ndim:
        raise RuntimeError(
            f"{func}: weights array has incorrect shape {weights.shape}; it must be 2-D "
            "like the input")
    origins = _origins(func, origin)
    if flip:
        weights = weights[::-1, ::-1]
        origins = [-o - (1 - k % 2) for o, k in zip(origins, weights.shape)]
    for o, k in zip(origins, weights.shape):
        if o < -(k // 2) or o > (k - 1) // 2:
            raise ValueError(
                f"{func}: invalid origin {o}; origin must satisfy "
                f"-(weights.shape[k] // 2) <= origin[k] <= (weights.shape[k]-1) // 2")
    if not isinstance(mode, str) or mode not in _PAD_MODES:
        raise RuntimeError(f"{func}: boundary mode not supported: {mode!r}")
    out_dtype, out_array = _output_dtype(func, output, input)
    if out_dtype.kind == "c":
        raise TypeError(f"{func}: a complex output is not supported")
    if weights.size == 0:
        raise RuntimeError(f"{func}: no filter weights given")

    compute = _F32 if input.dtype == _F32 else _F64
    # C-contiguous, as _small.pad takes them and the fast path of _filter2d.
    image = np.ascontiguousarray(input, compute)
    kernel = np.ascontiguousarray(weights, compute)
    if image.size == 0:
        result = np.zeros(input.shape, compute)
    else:
        (kh, kw), (oh, ow) = kernel.shape, origins
        image = _small.pad(image, kh // 2 + oh, (kh - 1) // 2 - oh, kw // 2 + ow,
                           (kw - 1) // 2 - ow, _PAD_CODES[mode], float(cval))
        result = _filter2d(func, image, kernel, "valid", "fill", 0, "auto", False)
    if out_dtype == np.bool_:
        # SciPy stores a sum into a bool output with a C cast to npy_bool (an
        # unsigned char), which truncates toward zero: 0.5 is False, not True.
        result = np.trunc(result) != 0
    if out_array is not None:
        out_array[...] = result.astype(out_dtype, casting="unsafe", copy=False)
        return out_array
    return result.astype(out_dtype, copy=False)


_DOC = """
    Parameters
    ----------
    input : array_like, shape (H, W)
        The image; bool, integer or floating (2-D only).
    weights : array_like, shape (kh, kw)
        The filter, any size (even sizes and sizes larger than the image too).
    output : dtype or ndarray, optional
        The output dtype, or an array of the input's shape to write into (and
        return). Default: the input's dtype.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', \
'grid-mirror', 'grid-wrap'}, default 'reflect'
        How the input is extended past its edges, as in ``scipy.ndimage``. On
        a row ``[1 2 3]`` extended by 2: 'reflect' (= 'grid-mirror')
        ``2 1|1 2 3|3 2``, 'mirror' ``3 2|1 2 3|2 1``, 'nearest'
        ``1 1|1 2 3|3 3``, 'wrap' (= 'grid-wrap') ``2 3|1 2 3|1 2``,
        'constant' (= 'grid-constant') ``c c|1 2 3|c c``.
    cval : scalar, default 0.0
        The value past the edges for 'constant' and 'grid-constant'.
    origin : int or sequence of 2 ints, default 0
        Shift of the filter's centre, per axis, with SciPy's bounds
        ``-(k // 2) <= origin <= (k - 1) // 2``.

    Returns
    -------
    ndarray
        The filtered image, of the output dtype (``output``'s array when one
        is given).

    Raises
    ------
    ValueError
        If ``input`` is not 2-D, or an origin is out of bounds.
    RuntimeError
        If ``weights`` does not have the input's rank, is empty, ``output``
        has the wrong shape, ``mode`` is unknown or ``origin`` has the wrong
        length (as SciPy raises).
    TypeError
        For complex or non-numeric inputs (not supported here).

    Notes
    -----
    As in SciPy, every input but float32 is computed in float64 and the sums
    are cast to the output dtype (truncated toward zero for integer outputs;
    a bool output is True where the truncated sum is nonzero, as SciPy's cast).
    float32 input is computed in float32, so results may differ from SciPy's
    by float32 rounding (and an integer output cast from them may then differ
    by one where a sum lies within rounding of an integer).
"""


def correlate(input: npt.ArrayLike, weights: npt.ArrayLike, output=None,
              mode: str = "reflect", cval: float = 0.0, origin=0) -> np.ndarray:
    """Correlate a 2-D array with 2-D weights, as ``scipy.ndimage.correlate``.
%(doc)s
    Examples
    --------
    >>> import numpy as np
    >>> import cyconv.ndimage
    >>> a = np.arange(12).reshape(3, 4)
    >>> cyconv.ndimage.correlate(a, np.array([[1, 0, -1]]), mode='nearest')
    array([[-1, -2, -2, -1],
           [-1, -2, -2, -1],
           [-1, -2, -2, -1]])
    """
    return _correlate("correlate", input, weights, output, mode, cval, origin, False)


def convolve(input: npt.ArrayLike, weights: npt.ArrayLike, output=None,
             mode: str = "reflect", cval: float = 0.0, origin=0) -> np.ndarray:
    """Convolve a 2-D array with 2-D weights, as ``scipy.ndimage.convolve``.
%(doc)s
    Examples
    --------
    >>> import numpy as np
    >>> import cyconv.ndimage
    >>> a = np.arange(12).reshape(3, 4)
    >>> cyconv.ndimage.convolve(a, np.array([[1, 0, -1]]), mode='nearest')
    array([[1, 2, 2, 1],
           [1, 2, 2, 1],
           [1, 2, 2, 1]])
    """
    return _correlate("convolve", input, weights, output, mode, cval, origin, True)


correlate.__doc__ = correlate.__doc__ % {"doc": _DOC}
convolve.__doc__ = convolve.__doc__ % {"doc": _DOC}
