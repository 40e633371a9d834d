"""SciPy drop-ins: correlate2d and convolve2d (``scipy.signal`` names, arguments and results).

Everything SciPy decides in Python or in its C wrapper (``_sigtools._convolve2d``)
is reproduced here before one forward kernel of ``_direct``, ``_im2col`` or
``_fft`` runs: the input swap in 'valid' mode, the common dtype, the cast of
``fillvalue``, the output size, the 'same' offsets and the boundary padding.
Small calls are common (SciPy's own are cheap), so the usual arguments take
short paths: exact strings, the default ``fillvalue=0``, no padding copy, and
the direct loops on one plane called without ``run_forward``.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cyconv._dispatch import _direct
from cyconv import _small  # noqa: I001 (after _dispatch, see _conv.py)
from cyconv._conv import ZERO_BIAS, Geometry, run_forward
from cyconv._fft import all_finite, auto_fft_dtype, fft_applies, fft_is_faster
from cyconv._small import MODES
from cyconv._typing import Method
from cyconv._validate import MEMORY_BYTES, check_alloc, check_choice

_MODE_CODES = {mode: code for code, mode in enumerate(MODES)}
Mode = Literal["full", "same", "valid"]

# boundary -> numpy.pad mode. The names and aliases are SciPy's _boundarydict,
# less its 'reflect', which SciPy lists but then rejects ("Incorrect boundary
# value"). np.pad wraps and mirrors again and again when the kernel is larger
# than the image, which is what SciPy's index arithmetic does too. On a row
# [1 2 3] padded by 2 on each side:
#   fill, pad           f f | 1 2 3 | f f   (f = fillvalue)
#   wrap, circular      2 3 | 1 2 3 | 1 2
#   symm, symmetric     2 1 | 1 2 3 | 3 2   (mirror, edge pixel repeated)
BOUNDARIES = {"fill": "constant", "pad": "constant", "wrap": "wrap", "circular": "wrap",
              "symm": "symmetric", "symmetric": "symmetric"}
Boundary = Literal["fill", "pad", "wrap", "circular", "symm", "symmetric"]

METHODS = ("auto", "direct", "im2col", "fft")

# The dtypes a BLAS GEMM exists for (sgemm, dgemm, cgemm, zgemm): the others,
# long double and the integers, always run the direct kernel.
_GEMM_DTYPES = frozenset(np.dtype(c) for c in "fdFD")

# Integers are summed in uint64 (see _filter2d).
_UINT64 = np.dtype(np.uint64)

# _direct.conv2d_forward is a fused def function: called plainly, Cython
# matches the dtypes of its arrays against every specialization on each call,
# which costs about a microsecond, a third of a small call. Indexed by the
# type it returns that specialization, called here for one plane.
_DIRECT_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
                 np.dtype(np.longdouble): "long double", np.dtype(np.complex64): "float complex",
                 np.dtype(np.complex128): "double complex",
                 np.dtype(np.clongdouble): "long double complex",
                 _UINT64: "uint64"}
_DIRECT_PLANE = {dtype: _direct.conv2d_forward[name] for dtype, name in _DIRECT_NAMES.items()}

def _check_name(func, name, value, choices):
    """SciPy looks mode and boundary up in a dict: unhashable values raise TypeError."""
    if type(value) is str and value in choices:  # the usual case, checked first
        return value
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"{func}: {name} must be a string, got unhashable {type(value).__name__}"
        ) from None
    return check_choice(func, name, value, choices)


def _swap_needed(func, mode, shape1, shape2):
    """SciPy's ``_inputs_swap_needed``: in 'valid' mode the larger array goes first."""
    if mode != "valid":
        return False
    (h1, w1), (h2, w2) = shape1, shape2  # both 2-D: unpacked, not zipped (a small-call cost)
    ok1 = h1 >= h2 and w1 >= w2
    ok2 = h2 >= h1 and w2 >= w1
    if not (ok1 or ok2):
        raise ValueError(
            f"{func}: for mode='valid', one input must be at least as large as the "
            f"other in every dimension, got in1 shape {shape1} and in2 shape {shape2}"
        )
    return not ok1


def _fill_scalar(func, fillvalue, dtype):
    """``fillvalue`` as a 0-d array of ``dtype``, cast as SciPy's C wrapper casts it.

    SciPy converts it with ``PyArray_FromObject``: a Python or NumPy scalar (or
    a list) is cast like ``np.array(fillvalue, dtype)``, which truncates 2.7 to
    2 for an integer output, while an ndarray must cast safely. If that fails,
    a value that converts to complex128 gives ValueError (this is what a complex
    fillvalue with a real output raises); otherwise the conversion's own error.
    """
    if isinstance(fillvalue, np.ndarray):
        if np.can_cast(fillvalue.dtype, dtype, "safe"):
            value = fillvalue.astype(dtype)
        else:
            value = None
            if not np.can_cast(fillvalue.dtype, np.complex128, "safe"):
                raise TypeError(
                    f"{func}: cannot cast fillvalue of dtype {fillvalue.dtype} to the "
                    f"output dtype {dtype} or to complex128 according to the rule 'safe'"
                )
    else:
        try:
            value = np.array(fillvalue, dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            value = None
            try:  # SciPy's fallback; its error is the one SciPy raises
                np.array(fillvalue, dtype=np.complex128)
            except (TypeError, ValueError, OverflowError) as exc:
                raise type(exc)(
                    f"{func}: fillvalue={fillvalue!r} converts neither to the output "
                    f"dtype {dtype} nor to complex128: {exc}"
                ) from None
    if value is None:
        raise ValueError(
            f"{func}: could not cast fillvalue={fillvalue!r} to the output dtype {dtype}"
        )
    if value.size != 1:
        what = "an empty array" if value.size == 0 else f"an array of size {value.size}"
        raise ValueError(
            f"{func}: fillvalue must be a scalar or an array with one element, got {what}"
        )
    return value.reshape(())


def _filter2d(func, in1, in2, mode, boundary, fillvalue, method, flip):
    """correlate2d (flip False) or convolve2d (flip True), SciPy's steps in SciPy's order."""
    out = _small.filter2d(in1, in2, mode, boundary, fillvalue, method, flip)
    if out is not None:  # the common small call, computed in one compiled call
        return out
    try:
        in1 = np.asarray(in1)
        in2 = np.asarray(in2)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise type(exc)(f"{func}: in1 or in2 cannot be converted to an array: {exc}") from None
    if in1.ndim != 2 or in2.ndim != 2:
        raise ValueError(
            f"{func}: in1 and in2 must both be 2-D arrays, got shapes {in1.shape} "
            f"and {in2.shape}"
        )
    swapped = _swap_needed(func, mode, in1.shape, in2.shape)
    if swapped:
        in1, in2 = in2, in1
    _check_name(func, "mode", mode, MODES)
    pad_mode = BOUNDARIES[_check_name(func, "boundary", boundary, BOUNDARIES)]
    check_choice(func, "method", method, METHODS)
    kind1, kind2 = in1.dtype.kind, in2.dtype.kind
    if not flip and kind2 not in "biufc":
        try:  # SciPy conjugates in2 before anything else looks at the dtypes
            in2.conj()
        except TypeError as exc:
            raise TypeError(
                f"{func}: in2 of dtype {in2.dtype} cannot be conjugated: {exc}"
            ) from None

    numeric = kind1 in "biufc" and kind2 in "biufc"
    # promote_types gives native byte order.
    dtype = np.promote_types(in1.dtype, in2.dtype) if numeric else None
    # SciPy casts fillvalue (and may fail) before it rejects the dtype. The
    # default 0 casts to every numeric dtype: None stands for a zero fill.
    fill = None
    if numeric and pad_mode == "constant" and not (type(fillvalue) is int and fillvalue == 0):
        fill = _fill_scalar(func, fillvalue, dtype)
    if not numeric or dtype.char in "?e":  # bool, float16
        raise ValueError(
            f"{func}: the common dtype of in1 ({in1.dtype}) and in2 ({in2.dtype}) is "
            f"{dtype if numeric else 'not numeric'}; bool, float16 and object are not "
            "supported (as in scipy.signal)"
        )

    (h, w), (kh, kw) = in1.shape, in2.shape
    ho, wo, top, left = _small.geometry(_MODE_CODES[mode], flip, h, w, kh, kw)
    if ho < 0 or wo < 0:
        raise ValueError(
            f"{func}: mode='full' with in1 shape {in1.shape} and in2 shape {in2.shape} "
            f"gives negative output dimensions {(ho, wo)}"
        )
    # Copies of both inputs (in 64 bits at least), the padded in1 and the
    # output. If all four fit in memory together, each does: only otherwise
    # must check_alloc find the one that does not.
    itemsize = dtype.itemsize if dtype.itemsize > 8 else 8
    padded = (ho + kh - 1, wo + kw - 1)
    if (in1.size + in2.size + padded[0] * padded[1] + ho * wo) * itemsize > MEMORY_BYTES:
        check_alloc(func, itemsize, in1=in1.shape, in2=in2.shape, padded_in1=padded,
                    output=(ho, wo))
    if ho * wo == 0 or kh * kw == 0:
        # Nothing to compute, or an empty sum: zeros, as SciPy gives.
        return np.zeros((ho, wo), dtype)

    # Integers are summed in uint64, where every input converts by two's
    # complement and arithmetic wraps modulo 2**64 (no undefined behaviour);
    # the final cast reduces modulo 2**bits, which is what SciPy's wrapping
    # arithmetic in the integer dtype gives.
    compute = _UINT64 if dtype.kind in "iu" else dtype
    kernel = in2.conj() if (not flip and kind2 == "c") else in2
    kernel = np.ascontiguousarray(kernel[::-1, ::-1] if flip else kernel, dtype=compute)
    image = np.ascontiguousarray(in1, dtype=compute)

    # (top, bottom, left, right): the last output row reads input row
    # ho - 1 - top + kh - 1, which is bottom rows past the last one, h - 1.
    pads = (top, ho + kh - 1 - top - h, left, wo + kw - 1 - left - w)
    # The kernels read zero outside the image; SciPy multiplies every tap by
    # the fill value there, which differs when a tap is inf or NaN (0*inf).
    implicit_zeros = not any(pads) or (
        pad_mode == "constant" and (fill is None or fill == 0)
        and (compute.kind not in "fc" or all_finite(kernel)))
    if not implicit_zeros:
        if image.size == 0 and pad_mode != "constant":
            # SciPy divides by the zero image size here and crashes.
            raise ValueError(
                f"{func}: boundary={boundary!r} needs a non-empty in1 when the output "
                f"{(ho, wo)} is not empty, got in1 shape {in1.shape}"
            )
        extra = {}
        if pad_mode == "constant":
            extra["constant_values"] = 0 if fill is None else fill.astype(compute)
        image = np.pad(image, ((pads[0], pads[1]), (pads[2], pads[3])), mode=pad_mode,
                       **extra)
        pads = (0, 0, 0, 0)

    if method == "auto":
        faster = fft_is_faster(image.shape, kernel.shape, pads[0], pads[2], (ho, wo), compute)
        wide = auto_fft_dtype(image, kernel) if faster else None
        method = "direct" if wide is None else "fft"
        if wide is not None and wide != compute:
            # float32 data past the float32 transform's range or accuracy.
            image, kernel = image.astype(wide), kernel.astype(wide)
    if method == "fft":
        if not fft_applies(image, kernel):
            method = "direct"
    elif compute not in _GEMM_DTYPES:
        method = "direct"
    if method == "direct" and image.size:
        # One plane, one kernel, no bias: the direct loops are called here,
        # without the Geometry and run_forward's handling of batches, groups,
        # biases and methods, which costs about as much as SciPy's whole call.
        out = np.empty((1, 1, ho, wo), compute)
        _DIRECT_PLANE[compute](image[None, None], kernel[None, None], ZERO_BIAS[compute],
                               out, 1, 1, pads[0], pads[2], 1, 1, 1)
    else:
        geom = Geometry(1, 1, image.shape[0], image.shape[1], 1, kh, kw, 1, 1, 1, 1, 1,
                        pads, ho, wo, 2)
        out = run_forward(func, image[None, None], kernel[None, None], None, geom,
                          pads[0], pads[2], method)
    out = out[0, 0]
    if out.dtype != compute:
        out = out.astype(compute)  # transformed in float64 by 'auto'
    if swapped and not flip:
        out = out[::-1, ::-1]  # SciPy reverses the swapped correlation (no conjugate)
    elif compute is dtype:
        return out
    elif compute.itemsize == dtype.itemsize:
        return out.view(dtype)  # the same bits: uint64 sums read as int64
    return np.ascontiguousarray(out, dtype=dtype)


_SHARED_DOC = """
    Parameters
    ----------
    in1 : array_like, shape (H, W)
        First input, the image.
    in2 : array_like, shape (kh, kw)
        Second input, the kernel. In ``'valid'`` mode, if ``in2`` is at least as
        large as ``in1`` in both dimensions the two are swapped (as SciPy does);
        one must be at least as large as the other.
    mode : {'full', 'same', 'valid'}, default 'full'
        Output size: ``(H + kh - 1, W + kw - 1)`` for ``'full'``, ``(H, W)`` for
        ``'same'`` (centred on the ``'full'`` output), ``(H - kh + 1, W - kw + 1)``
        for ``'valid'`` (no boundary values are used).
    boundary : {'fill', 'pad', 'wrap', 'circular', 'symm', 'symmetric'}, default 'fill'
        What ``in1`` holds outside its bounds: ``fillvalue`` ('fill', alias
        'pad'); the opposite edge, periodically ('wrap', alias 'circular'); the
        mirror image with the edge pixel repeated ('symm', alias 'symmetric').
        On a row ``[1 2 3]`` extended by 2: ``f f|1 2 3|f f``, ``2 3|1 2 3|1 2``,
        ``2 1|1 2 3|3 2``.
    fillvalue : scalar, default 0
        The value outside ``in1`` with ``boundary='fill'``, cast to the output
        dtype as SciPy casts it (2.7 becomes 2 for an integer output).
    method : {'auto', 'direct', 'im2col', 'fft'}, default 'auto'
        ``'direct'`` runs the nested sum as C loops; ``'im2col'`` unrolls
        ``in1`` and runs one BLAS GEMM; ``'fft'`` multiplies spectra through
        ``scipy.fft``. Both need float32, float64, complex64 or complex128;
        integer and long double inputs use the direct loops (so integer
        results stay exact), as do inputs holding NaN or inf with ``'fft'``.
        ``'auto'`` runs ``'fft'`` (where it applies) when a cost model
        measured on the development machine predicts it beats the direct
        loops (on a 1024x1024 image: from about 15x15 kernels in ``'same'``
        mode and 17x17 to 19x19 in ``'valid'`` mode, which has no border
        columns for the direct loops to sum one by one), else the direct
        loops. 'auto' is as trustworthy as the direct sum: it keeps the FFT
        only when a one-pass check of the data finds its rounding error
        (about eps * max|in1| * sum|in2|) small next to a typical output, and
        no transform can overflow: float32 data with a large dynamic range
        or magnitude is transformed in float64, and data beyond float64's
        range (max|in1| over 1e8 times its median magnitude, or near the
        float64 maximum) takes the direct sum. An explicit ``'fft'`` does no
        such check: its error is eps * max|in1| * sum|in2| in the data's
        precision, and a transform can overflow to inf or NaN where the
        direct sum is finite.

    Returns
    -------
    ndarray, shape given by ``mode``
        New C-contiguous array of the common dtype of ``in1`` and ``in2``
        (``np.promote_types``: int8 with uint8 gives int16, int64 with uint64
        gives float64, long double is kept), as in SciPy.

    Raises
    ------
    ValueError
        If an input is not 2-D; for a bad ``mode``, ``boundary`` (including
        'reflect', which SciPy rejects too) or ``method``; in ``'valid'`` mode
        when neither input is at least as large as the other; when the common
        dtype is bool, float16, object or not numeric; for a ``fillvalue`` that
        does not cast to the output dtype (a complex one with a real output) or
        has more than one element; for negative output sizes (``'full'`` with
        both inputs empty along one axis); for ``'wrap'``/``'symm'`` with an
        empty ``in1`` and a non-empty output (SciPy crashes there).
    TypeError
        For an unhashable ``mode`` or ``boundary``, or a ``fillvalue`` that
        converts neither to the output dtype nor to complex (an arbitrary
        object), as SciPy does.%(typeerror)s
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits.
"""

_SHARED_NOTES = """
    Integer inputs are computed exactly as SciPy does, in the integer output
    dtype with wrap-around on overflow: both inputs are converted to uint64
    (two's complement), the direct kernel sums in unsigned 64-bit arithmetic,
    which wraps modulo ``2**64``, and the cast to the output dtype reduces
    modulo ``2**bits``, which equals the sum wrapped in ``bits``-bit
    arithmetic. Floating and complex inputs run in their own precision
    (long double and its complex included) and agree with SciPy to rounding.

    ``method='fft'`` computes the same sum as the product of the spectra of
    ``x`` (``in1`` extended by ``boundary``, explicitly unless the extension
    is zeros) and of the kernel, with ``scipy.fft`` (real transforms for
    real inputs, in their own precision), at lengths from
    ``scipy.fft.next_fast_len`` long enough that the requested output is not
    aliased. A large ``x`` is cut into overlapping tiles of a few hundred
    pixels whose transforms run on the kernels' threads (overlap-save: the
    kernel's spectrum is computed once, at the tile size). Its rounding
    error grows with ``sum |x| * max |in2|`` over a tile rather than with
    each output's own terms, so small outputs next to large ones carry a
    larger relative error than with the direct loops. Inputs
    holding NaN or inf run the direct loops, since a transform would spread
    them over the whole output; so do integer inputs (exact results) and long
    double ones (no long-double FFT here).
"""


def correlate2d(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: Mode = "full",
                boundary: Boundary = "fill", fillvalue: npt.ArrayLike = 0, *,
                method: Method = "auto") -> npt.NDArray[Any]:
    """Cross-correlate two 2-D arrays, as ``scipy.signal.correlate2d``.
%(shared)s
    See Also
    --------
    convolve2d : the same sum with the kernel flipped.
    scipy.signal.correlate2d : the function this one replaces.

    Notes
    -----
    ``out[i, j] = sum_{p, q} x[i - t + p, j - l + q] * conj(in2[p, q])``
    where ``x`` is ``in1`` extended by ``boundary`` and the offset is
    ``(t, l) = (kh - 1, kw - 1)`` for ``'full'``, ``((kh - 1) // 2, (kw - 1) // 2)``
    for ``'same'`` and ``(0, 0)`` for ``'valid'``. When ``'valid'`` swaps the
    inputs, the result is ``correlate2d(in2, in1)[::-1, ::-1]`` (for complex
    inputs this is the conjugate of the unswapped sum; SciPy does the same).
%(notes)s
    Examples
    --------
    >>> import numpy as np
    >>> import cyconv
    >>> a = np.array([[1, 2, 0], [0, 1, 3]])
    >>> k = np.array([[1, 0], [0, 2]])
    >>> cyconv.correlate2d(a, k)
    array([[2, 4, 0, 0],
           [0, 3, 8, 0],
           [0, 0, 1, 3]])
    >>> cyconv.correlate2d(a, k, mode="same")
    array([[3, 8, 0],
           [0, 1, 3]])
    >>> cyconv.correlate2d(a, k, boundary="symm")
    array([[3, 5, 2, 0],
           [1, 3, 8, 6],
           [0, 2, 7, 9]])

    Integers wrap around as in SciPy:

    >>> cyconv.correlate2d(np.array([[100, 100]], np.int8), np.array([[2]], np.int8))
    array([[-56, -56]], dtype=int8)
    """
    return _filter2d("correlate2d", in1, in2, mode, boundary, fillvalue, method, False)


def convolve2d(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: Mode = "full",
               boundary: Boundary = "fill", fillvalue: npt.ArrayLike = 0, *,
               method: Method = "auto") -> npt.NDArray[Any]:
    """Convolve two 2-D arrays, as ``scipy.signal.convolve2d``.
%(shared)s
    See Also
    --------
    correlate2d : the same sum without flipping the kernel.
    scipy.signal.convolve2d : the function this one replaces.

    Notes
    -----
    ``out[i, j] = sum_{p, q} x[i + t - p, j + l - q] * in2[p, q]``
    where ``x`` is ``in1`` extended by ``boundary`` and the offset is
    ``(t, l) = (0, 0)`` for ``'full'``, ``((kh - 1) // 2, (kw - 1) // 2)`` for
    ``'same'`` and ``(kh - 1, kw - 1)`` for ``'valid'``. The kernel is flipped
    and correlated; for an even kernel the ``'same'`` window therefore sits
    one pixel further up/left than correlate2d's, as in SciPy.
%(notes)s
    Examples
    --------
    >>> import numpy as np
    >>> import cyconv

    Convolving a single 1 reproduces the kernel:

    >>> delta = np.zeros((3, 3), dtype=int)
    >>> delta[1, 1] = 1
    >>> k = np.array([[1, 2], [3, 4]])
    >>> cyconv.convolve2d(delta, k)
    array([[0, 0, 0, 0],
           [0, 1, 2, 0],
           [0, 3, 4, 0],
           [0, 0, 0, 0]])

    With an even kernel, ``'same'`` keeps a different window than
    correlate2d does (which also leaves the kernel unflipped):

    >>> cyconv.convolve2d(delta, k, mode="same")
    array([[0, 0, 0],
           [0, 1, 2],
           [0, 3, 4]])
    >>> cyconv.correlate2d(delta, k, mode="same")
    array([[4, 3, 0],
           [2, 1, 0],
           [0, 0, 0]])

    A moving sum of 3 on a periodic row:

    >>> cyconv.convolve2d(np.array([[1, 2, 3, 4]]), np.array([[1, 1, 1]]),
    ...                   mode="same", boundary="wrap")
    array([[7, 6, 9, 8]])
    """
    return _filter2d("convolve2d", in1, in2, mode, boundary, fillvalue, method, True)


# The shared sections are filled in with %-formatting, as scipy's docfiller
# does (docstrings are None under python -OO).
if correlate2d.__doc__ and convolve2d.__doc__:
    _CONJ = "\n        For an ``in2`` whose dtype has no conjugate (strings, dates), as SciPy does."
    correlate2d.__doc__ %= {"shared": _SHARED_DOC % {"typeerror": _CONJ},
                            "notes": _SHARED_NOTES}
    convolve2d.__doc__ %= {"shared": _SHARED_DOC % {"typeerror": ""}, "notes": _SHARED_NOTES}
