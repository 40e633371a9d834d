"""The compiled fast path of correlate2d and convolve2d for small, common calls.

On a 5x5 image SciPy's whole call takes about 2.5 us; the general path
(``_signal._filter2d``) normalizes every argument in Python and took about
twice that. `filter2d` runs the common case in one compiled call: exact
ndarrays of one dtype among int64, float32 and float64, both 2-D, C-contiguous,
aligned and in native byte order; an exact mode string; boundary 'fill' (or
'pad') with the default ``fillvalue=0``; method 'auto' or 'direct'; no
'valid' swap; and fewer than `DIRECT_WORK` multiply-adds, where 'auto' always
runs the direct loops. For anything else, every invalid call included, it
returns None and the general path decides: it raises nothing itself, so the
errors are the general path's by construction. What both paths compute is
shared, not copied: the output geometry (`geometry`, which the general path
calls too), the 'auto' threshold (``_fft.DIRECT_WORK``) and the direct
kernel's row loop (``_direct._conv_row``), called with the arguments the
general path's one-plane ``conv2d_forward`` call gives it, so both paths
return the same bits.
"""
cimport numpy as cnp
from libc.math cimport isfinite

from cyconv._direct cimport _conv_row
from cyconv._fused cimport direct_t, uint64

from cyconv._fft import DIRECT_WORK

cnp.import_array()

# scipy.signal's modes, in the order of their codes below.
MODES = ("full", "same", "valid")

cdef enum:
    FULL = 0
    SAME = 1
    VALID = 2
    # Taps of the largest kernel the fast path takes: below DIRECT_WORK, since
    # the output has a pixel at least (checked at import).
    MAX_TAPS = 1024

cdef Py_ssize_t _direct_work = DIRECT_WORK
if _direct_work > MAX_TAPS:
    raise ImportError(f"cyconv._small: DIRECT_WORK={DIRECT_WORK} exceeds MAX_TAPS={MAX_TAPS}")


cdef inline void _geometry(int mode, bint flip, Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh,
                           Py_ssize_t kw, Py_ssize_t *shape) noexcept nogil:
    """shape[:] = (ho, wo, top, left): output size and the input row/column of its first tap."""
    if mode == FULL:
        shape[0], shape[1], shape[2], shape[3] = h + kh - 1, w + kw - 1, kh - 1, kw - 1
    elif mode == SAME:
        # Output pixel i reads from input row i - top on: top = (k-1)//2 in
        # SciPy's correlation, k//2 in its convolution (with the kernel
        # flipped); for even k the two differ by one.
        shape[0], shape[1] = h, w
        shape[2], shape[3] = (kh // 2, kw // 2) if flip else ((kh - 1) // 2, (kw - 1) // 2)
    else:
        shape[0], shape[1], shape[2], shape[3] = h - kh + 1, w - kw + 1, 0, 0


def geometry(int mode, bint flip, Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw):
    """(ho, wo, top, left) of an (h, w) image and a (kh, kw) kernel in mode ``MODES[mode]``.

    ``top``/``left`` is the padding before the first input row/column: output
    pixel (i, j) correlates the kernel (flipped for a convolution) with the
    window whose corner is input pixel (i - top, j - left). The 'valid' sizes
    are negative when the kernel is the larger input (the caller swaps first).
    """
    cdef Py_ssize_t shape[4]
    _geometry(mode, flip, h, w, kh, kw, shape)
    return shape[0], shape[1], shape[2], shape[3]


cdef bint _plane(const direct_t *image, const direct_t *kernel, direct_t *out,
                 Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                 Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t top, Py_ssize_t left,
                 bint flip, bint need_finite) noexcept nogil:
    """out = image (zeros outside) correlated with kernel, flipped if ``flip``; C-contiguous.

    False, with ``out`` unwritten, when ``need_finite`` and a tap is NaN or
    inf: SciPy multiplies such a tap by the zero fill (giving NaN), which the
    implicit zeros of the direct loops do not; the general path pads instead.
    Invariants: kh*kw <= MAX_TAPS, all sizes >= 1.
    """
    cdef direct_t taps[MAX_TAPS]
    cdef Py_ssize_t t, i, n = kh * kw
    cdef const direct_t *k = kernel
    if direct_t is float or direct_t is double:
        if need_finite:
            for t in range(n):
                if not isfinite(kernel[t]):
                    return False
    if flip:  # kernel[::-1, ::-1] of a C-contiguous kernel: the flat taps reversed
        for t in range(n):
            taps[t] = kernel[n - 1 - t]
        k = taps
    for i in range(ho):
        _conv_row(image, k, out + i * wo, 0, i, 1, h, w, kh, kw, wo, 1, 1, top, left, 1, 1)
    return True


def filter2d(in1, in2, mode, boundary, fillvalue, method, bint flip):
    """correlate2d (flip False) or convolve2d (flip True) of a common small call, else None.

    None means "not the common case" (see the module docstring), never an
    error: the general path then checks and computes the call.
    """
    if type(in1) is not cnp.ndarray or type(in2) is not cnp.ndarray:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>in1, b = <cnp.ndarray>in2
    if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_NDIM(b) != 2:
        return None
    cdef int typenum = cnp.PyArray_TYPE(a)
    if cnp.PyArray_TYPE(b) != typenum or not (
            typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE or typenum == cnp.NPY_INT64):
        return None
    # C-contiguous, aligned and in native byte order, both.
    if not (cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISCARRAY_RO(b)):
        return None
    cdef int code
    if type(mode) is not str:
        return None
    if mode == "full":
        code = FULL
    elif mode == "same":
        code = SAME
    elif mode == "valid":
        code = VALID
    else:
        return None
    if not (type(boundary) is str and (boundary == "fill" or boundary == "pad")
            and type(fillvalue) is int and fillvalue == 0
            and type(method) is str and (method == "auto" or method == "direct")):
        return None
    cdef Py_ssize_t h = a.shape[0], w = a.shape[1], kh = b.shape[0], kw = b.shape[1]
    if code == VALID and (h < kh or w < kw):
        return None  # swapped inputs, or an error
    cdef Py_ssize_t shape[4]
    _geometry(code, flip, h, w, kh, kw, shape)
    cdef Py_ssize_t ho = shape[0], wo = shape[1], top = shape[2], left = shape[3]
    # Every factor in [1, DIRECT_WORK) first, so that the product cannot overflow.
    if not (0 < ho < _direct_work and 0 < wo < _direct_work and 0 < kh < _direct_work
            and 0 < kw < _direct_work and ho * wo * kh * kw < _direct_work):
        return None
    cdef bint padded = (top or left or ho + kh - 1 - top - h or wo + kw - 1 - left - w)
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = ho, wo
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    cdef void *x = cnp.PyArray_DATA(a)
    cdef void *k = cnp.PyArray_DATA(b)
    cdef void *o = cnp.PyArray_DATA(out)
    cdef bint done
    if typenum == cnp.NPY_FLOAT:
        done = _plane[float](<float *>x, <float *>k, <float *>o, h, w, kh, kw, ho, wo,
                             top, left, flip, padded)
    elif typenum == cnp.NPY_DOUBLE:
        done = _plane[double](<double *>x, <double *>k, <double *>o, h, w, kh, kw, ho, wo,
                              top, left, flip, padded)
    else:
        # int64 summed as uint64 (two's complement, wrapping modulo 2**64) and
        # its bits read back as int64: the general path's casts, without copies.
        done = _plane[uint64](<uint64 *>x, <uint64 *>k, <uint64 *>o, h, w, kh, kw, ho, wo,
                              top, left, flip, False)
    return out if done else None
