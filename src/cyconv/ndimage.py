"""``scipy.ndimage`` drop-ins for 2-D arrays: correlate and convolve.

SciPy's steps in SciPy's order: weights flipped and origins negated (and
shifted by one on even axes) for convolve, origins checked against SciPy's
bounds, the input extended by ``mode`` as ``numpy.pad`` extends it (in one
compiled call, ``_small.pad``) and one 'valid' correlation run by
``cyconv._signal`` (direct loops or FFT), then cast to the output dtype as
SciPy's C code casts its float64 sums. Complex input or weights take SciPy's
route: real filterings of the parts, combined in the output.
"""
from __future__ import annotations

import operator
import warnings

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
_I64 = np.dtype(np.int64)


def _origins(func, origin, ndim=2):
    """SciPy's ``_normalize_sequence``: a scalar, or one integer per axis."""
    if type(origin) is int:  # the common call, without np.iterable's cost
        return [origin] * ndim
    if isinstance(origin, (str, bytes)) or not np.iterable(origin):
        origin = [origin] * ndim
    else:
        origin = list(origin)
        if len(origin) != ndim:
            raise RuntimeError(
                f"{func}: origin must hold one value per axis ({ndim}), got {len(origin)}")
    return [operator.index(o) for o in origin]


# The dtypes SciPy's C filters read and write (NI_Correlate's type switch):
# bool, the integers, float32 and float64. Others raise its RuntimeError.
_C_TYPES = "?bBhHiIlLqQfd"  # dtype.char, either byte order


def _output_dtype(func, output, input):
    """SciPy's ``_get_output``: None, a dtype or type, a dtype name, or an array to fill."""
    if output is None:
        return input.dtype.newbyteorder("="), None  # SciPy allocates by dtype name
    if isinstance(output, (type, np.dtype)):
        return np.dtype(output), None
    if isinstance(output, str):
        dtype = np.dtype(output)
        if not issubclass(dtype.type, np.number):  # 'bool' too (np.bool_ is accepted)
            raise RuntimeError(f"{func}: output must have numeric dtype, got {output!r}")
        return dtype, None
    output = np.asarray(output)
    if output.shape != input.shape:
        raise RuntimeError(
            f"{func}: output shape {output.shape} is not the input shape {input.shape}")
    return output.dtype, output


def _complex_output(func, output, input):
    """SciPy's ``_get_output(..., complex_output=True)``: the complex array to fill."""
    if output is None:
        return np.zeros(input.shape, np.promote_types(input.dtype, np.complex64))
    if isinstance(output, (type, np.dtype)):
        dtype = np.dtype(output)
        if dtype.kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=5)
            dtype = np.promote_types(dtype, np.complex64)
        return np.zeros(input.shape, dtype)
    if isinstance(output, str):
        dtype = np.dtype(output)
        if dtype.kind != "c":
            raise RuntimeError(
                f"{func}: output must have complex dtype for complex input or weights, "
                f"got {output!r}")
        return np.zeros(input.shape, dtype)
    output = np.asarray(output)
    if output.shape != input.shape:
        raise RuntimeError(
            f"{func}: output shape {output.shape} is not the input shape {input.shape}")
    if output.dtype.kind != "c":
        raise RuntimeError(
            f"{func}: output must have complex dtype for complex input or weights, got "
            f"an array of dtype {output.dtype}")
    return output


def _check_rank(func, input):
    if input.ndim != 2:
        raise ValueError(
            f"{func}: only 2-D input is supported (cyconv.ndimage is 2-D), got shape "
            f"{input.shape}")


def _complex(func, input, weights, output, mode, cval, origin, flip):
    """SciPy's ``_complex_via_real_components``, step for step (but on a copy of an
    input that shares memory with the output).

    Complex filtering as real filterings of the real and imaginary parts
    (same mode, origin; cval split into its parts), each cast to the output's
    component dtype before they are combined, as SciPy rounds them. A
    correlation conjugates complex weights first (as ``np.correlate`` does).
    """
    complex_input = input.dtype.kind == "c"
    complex_weights = weights.dtype.kind == "c"
    if complex_weights and not flip:
        weights = weights.conj()
    out = _complex_output(func, output, input)
    if np.may_share_memory(input, out):
        # SciPy reads parts it has already overwritten here (complex weights
        # filter input.real twice); filtering a copy gives the true result.
        input = input.copy()

    def part(image, kernel, into, value):
        return _correlate(func, image, kernel, into, mode, value, origin, flip)

    # inf - inf and the like give NaN silently, as the IEEE sums do.
    with np.errstate(all="ignore"):
        if complex_input and complex_weights:
            part(input.real, weights.real, out.real, np.real(cval))
            out.real -= part(input.imag, weights.imag, None, np.imag(cval))
            part(input.real, weights.imag, out.imag, np.real(cval))
            out.imag += part(input.imag, weights.real, None, np.imag(cval))
        elif complex_input:
            part(input.real, weights, out.real, np.real(cval))
            part(input.imag, weights, out.imag, np.imag(cval))
        else:
            if np.iscomplexobj(cval):
                raise ValueError(
                    f"{func}: cval={cval!r} is complex but the input is real")
            part(input, weights.real, out.real, cval)
            part(input, weights.imag, out.imag, cval)
    return out


def _correlate(func, input, weights, output, mode, cval, origin, flip):
    input = np.asarray(input)
    weights = np.asarray(weights)
    _check_rank(func, input)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        return _complex(func, input, weights, output, mode, cval, origin, flip)
    if weights.dtype.kind not in "biuf":
        weights = np.asarray(weights, dtype=np.float64)  # as SciPy converts them
    if weights.ndim != input.ndim:
        raise RuntimeError(
            f"{func}: weights array has incorrect shape {weights.shape}; it must be 2-D "
            "like the input")
    origins = _origins(func, origin)
    if flip:
        weights = weights[::-1, ::-1]
        (oh, ow), (kh, kw) = origins, weights.shape
        origins = [-oh - (1 - kh % 2), -ow - (1 - kw % 2)]
    for o, k in zip(origins, weights.shape):
        if o < -(k // 2) or o > (k - 1) // 2:
            raise ValueError(
                f"{func}: invalid origin {o}; origin must satisfy "
                f"-(weights.shape[k] // 2) <= origin[k] <= (weights.shape[k]-1) // 2")
    out_dtype, out_array = _output_dtype(func, output, input)
    if not isinstance(mode, str) or mode not in _PAD_MODES:
        raise RuntimeError(f"{func}: boundary mode not supported: {mode!r}")
    if weights.size == 0:
        raise RuntimeError(f"{func}: no filter weights given")
    for what, dtype in (("input", input.dtype), ("output", out_dtype)):
        if dtype.char not in _C_TYPES:
            raise RuntimeError(
                f"{func}: {what} dtype {dtype} is not supported (array type not supported, "
                "as in SciPy: bool, integers, float32, float64)")
    cval = float(cval)  # SciPy's C call takes a double in every mode

    compute = _F32 if input.dtype == _F32 else _F64
    # Integer data, or an integer output that truncates: the direct sums, exact
    # for integers as SciPy's are (an FFT's rounding would move a truncation).
    method = "direct" if input.dtype.kind in "biu" or out_dtype.kind in "biu" else "auto"
    # C-contiguous, as _small.pad takes them and the fast path of _filter2d.
    image = np.ascontiguousarray(input, compute)
    kernel = np.ascontiguousarray(weights, compute)
    if image.size == 0:
        result = np.zeros(input.shape, compute)
    else:
        (kh, kw), (oh, ow) = kernel.shape, origins
        image = _small.pad(image, kh // 2 + oh, (kh - 1) // 2 - oh, kw // 2 + ow,
                           (kw - 1) // 2 - ow, _PAD_CODES[mode], cval)
        result = _filter2d(func, image, kernel, "valid", "fill", 0, method, False)
    # SciPy's C cast of each sum: see _cast.
    result = _cast(result, out_dtype)
    if out_array is not None:
        out_array[...] = result
        return out_array
    return result


def _cast(result, dtype):
    """The float sums cast to ``dtype`` as SciPy's C code casts them.

    Truncation toward zero wherever C defines the cast: the truncated value
    fits the integer type (for unsigned types, (-1, 0) gives 0). A bool
    output is SciPy's cast to ``npy_bool``, an unsigned char: True where the
    truncated sum is nonzero, so 0.5 is False. Beyond that (NaN, inf, values
    out of the type's range) C leaves the result undefined; NumPy's cast gives
    what this platform's conversion instructions give, silently, as SciPy's.
    """
    if dtype == result.dtype:
        return result
    if dtype.kind == "b":
        return np.trunc(result) != 0
    if dtype == _I64:  # the common integer case, compiled: no np.errstate to enter
        cast = _small.truncate_to_int64(result)
        if cast is not None:
            return cast
    # NumPy warns where a value does not fit (as float64 -> float32 overflow
    # to inf); SciPy's C cast is silent.
    with np.errstate(invalid="ignore", over="ignore"):
        return result.astype(dtype, copy=False)


_DOC = """
    Parameters
    ----------
    input : array_like, shape (H, W)
        The image: bool, integer, float32, float64, complex64 or complex128
        (2-D only).
    weights : array_like, shape (kh, kw)
        The filter, any size (even sizes and sizes larger than the image
        too); real weights are converted to float64 first, as SciPy does.
        ``correlate`` conjugates complex weights (as ``numpy.correlate``);
        ``convolve`` does not.
    output : dtype or ndarray, optional
        The output dtype (a type, a dtype or a numeric dtype name), or an
        array of the input's shape to write into (and return). Default: the
        input's dtype in native byte order; with complex input or weights,
        the input's dtype promoted with complex64 (int16 gives complex64,
        int64 gives complex128). With complex input or weights a real dtype
        given as a type or dtype is promoted to complex with SciPy's
        ``UserWarning``; a real dtype name or a real array raises.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', \
'grid-mirror', 'grid-wrap'}, default 'reflect'
        How the input is extended past its edges, as in ``scipy.ndimage``. On
        a row ``[1 2 3]`` extended by 2: 'reflect' (= 'grid-mirror')
        ``2 1|1 2 3|3 2``, 'mirror' ``3 2|1 2 3|2 1``, 'nearest'
        ``1 1|1 2 3|3 3``, 'wrap' (= 'grid-wrap') ``2 3|1 2 3|1 2``,
        'constant' (= 'grid-constant') ``c c|1 2 3|c c``.
    cval : scalar, default 0.0
        The value past the edges for 'constant' and 'grid-constant'. It may
        be complex when the input is (its real part extends the real part of
        the input, its imaginary part the imaginary part).
    origin : int or sequence of 2 ints, default 0
        Shift of the filter's centre, per axis, with SciPy's bounds
        ``-(k // 2) <= origin <= (k - 1) // 2``.

    Returns
    -------
    ndarray, shape (H, W)
        The filtered image, of the output dtype (``output``'s array when one
        is given).

    Raises
    ------
    ValueError
        If ``input`` is not 2-D, an origin is out of bounds, or ``cval`` is
        complex while the input is real and the weights complex.
    RuntimeError
        As SciPy raises it: if ``weights`` does not have the input's rank or
        is empty, ``output`` has the wrong shape or a non-numeric dtype name
        (or a real one for complex filtering), ``mode`` is unknown,
        ``origin`` has the wrong length, or the input or output dtype is one
        SciPy's filters do not take (float16, long double, complex long
        double, object; complex output of a real filtering).
    TypeError
        If ``cval`` is complex while the input and weights are real (SciPy's
        error too).

    Notes
    -----
    As in SciPy, every real input but float32 is computed in float64 (integer
    data by the direct sums, exactly as SciPy's while the sums stay below
    2**53; past it float64 rounds them by the order of the additions, which
    differs with the SIMD level, so they may differ from SciPy's in the last
    place) and the sums are cast to the output dtype. float32 input is computed in float32, so results may differ
    from SciPy's (which sums in float64) by float32 rounding, and an integer
    output cast from them may then differ by one where a sum lies within
    rounding of an integer.

    Integer outputs truncate toward zero, as SciPy's C cast; a bool output
    is SciPy's cast to an unsigned char: True where the truncated sum is
    nonzero (0.5 gives False). C defines that cast only where the truncated
    sum fits the output type; sums out of range, NaN and inf give what the
    platform's conversion gives, without a warning, in SciPy and here alike,
    and the two may differ there (on x86-64 both wrap sums within the int32
    range modulo 2**8 or 2**16 for 8- and 16-bit outputs, as 300 gives 44 in
    uint8, and give the type's minimum for int32 and int64).

    Complex input or weights are filtered as SciPy (>= 1.6) does, by real
    filterings of the real and imaginary parts with the same mode and
    origin, each cast to the output's component dtype before they are
    combined: ``(a + ib) * (c + id) = (a*c - b*d) + i(a*d + b*c)``. complex64
    parts are float32 inputs, computed in float32 as above. An ``output``
    array that shares memory with the input gets the true result (SciPy's
    can differ there: it reads parts of the input it has overwritten).
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

    Complex weights are conjugated; the output is complex:

    >>> cyconv.ndimage.correlate(np.arange(6).reshape(2, 3), np.array([[1j, 1]]),
    ...                          mode='nearest')
    array([[0.+0.j, 1.+0.j, 2.-1.j],
           [3.-3.j, 4.-3.j, 5.-4.j]])

    An integer output truncates the float64 sums (0.75 * 20 = 15):

    >>> cyconv.ndimage.correlate(np.array([[20, 100, 60]], np.uint8),
    ...                          np.array([[0.5, 0.75]]), mode='constant')
    array([[15, 85, 95]], dtype=uint8)
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

    A complex image with a complex ``cval`` (its parts extend the parts):

    >>> cyconv.ndimage.convolve(np.arange(6).reshape(2, 3) + 1j, np.array([[1, 1]]),
    ...                         mode='constant', cval=2j)
    array([[1.+2.j, 3.+2.j, 2.+3.j],
           [7.+2.j, 9.+2.j, 5.+3.j]])
    """
    return _correlate("convolve", input, weights, output, mode, cval, origin, True)


correlate.__doc__ = correlate.__doc__ % {"doc": _DOC}
convolve.__doc__ = convolve.__doc__ % {"doc": _DOC}
