"""Compiled fast paths for small, common calls: correlate2d, convolve2d, conv2d, ndimage.

On a 5x5 image SciPy's whole correlate2d call takes about 2.5 us; the
general paths normalize every argument in Python and took about twice that.
`filter2d` (correlate2d/convolve2d) and `conv2d` run the common call in one
compiled call: exact 2-D ndarrays of the common dtypes, C-contiguous, aligned
and in native byte order; the usual arguments as exact strings and ints; and
fewer than ``_fft.DIRECT_WORK`` multiply-adds, where 'auto' always runs the
direct loops. For anything else, every invalid call included, they return
None and the general path decides: they raise nothing themselves, so the
errors are the general path's by construction. What both paths compute is
shared, not copied: the signal geometry (`geometry`, which the general path
calls too), the 'auto' threshold and the direct kernel's row loop
(``_direct._conv_row``), called with the arguments the general path's
one-plane ``conv2d_forward`` call gives it, so both paths return the same
bits. They keep the GIL: their work is under a microsecond, less than
releasing it costs.

`pad` extends an image as ``numpy.pad`` does, for cyconv.ndimage, whose
small calls it otherwise dominated (np.pad takes some 20 us).
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport isfinite
from libc.stdlib cimport free, malloc

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
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                 bint flip, bint need_finite) noexcept nogil:
    """out = image (zeros outside) correlated with kernel, flipped if ``flip``; C-contiguous.

    ``out[i, j] = sum_{p, q} k[p, q] * image[i*sh - top + p*dh, j*sw - left + q*dw]``,
    the sum of ``_direct.conv2d_forward`` on one plane with one kernel.

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
        _conv_row(image, k, out + i * wo, 0, i, 1, h, w, kh, kw, wo, sh, sw, top, left, dh, dw)
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
                             top, left, 1, 1, 1, 1, flip, padded)
    elif typenum == cnp.NPY_DOUBLE:
        done = _plane[double](<double *>x, <double *>k, <double *>o, h, w, kh, kw, ho, wo,
                              top, left, 1, 1, 1, 1, flip, padded)
    else:
        # int64 summed as uint64 (two's complement, wrapping modulo 2**64) and
        # its bits read back as int64: the general path's casts, without copies.
        done = _plane[uint64](<uint64 *>x, <uint64 *>k, <uint64 *>o, h, w, kh, kw, ho, wo,
                              top, left, 1, 1, 1, 1, flip, False)
    return out if done else None



# ---- conv2d on one plane -----------------------------------------------------

cdef inline bint _plain_int(object value, Py_ssize_t minimum, Py_ssize_t *result):
    """True, with *result set, if value is an int (not bool) in [minimum, MAX_TAPS)."""
    if type(value) is not int or not (minimum <= value < MAX_TAPS):
        return False
    result[0] = value
    return True


cdef double *_as_double(cnp.ndarray array):
    """A malloc'ed float64 copy of a C-contiguous int64 or float32 array (NULL if none)."""
    cdef Py_ssize_t t, n = cnp.PyArray_SIZE(array)
    cdef double *copy = <double *>malloc(n * sizeof(double))
    cdef const cnp.int64_t *ints = <const cnp.int64_t *>cnp.PyArray_DATA(array)
    cdef const float *floats = <const float *>cnp.PyArray_DATA(array)
    if copy == NULL:
        return NULL
    if cnp.PyArray_TYPE(array) == cnp.NPY_INT64:
        for t in range(n):
            copy[t] = <double>ints[t]
    else:
        for t in range(n):
            copy[t] = <double>floats[t]
    return copy


def conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode, method):
    """cyconv.conv2d of a common small call on one plane, else None.

    The common call: 2-D exact ndarrays, each int64, float32 or float64,
    C-contiguous, aligned and in native byte order; no bias; plain ints for
    stride (>= 1), padding (>= 0) and dilation (>= 1); groups 1; zero padding;
    method 'auto' or 'direct' (both run the direct loops for one kernel); an
    output of at least one pixel and fewer than DIRECT_WORK multiply-adds.
    It computes in float32 when both arrays are float32, else in float64, as
    ``_validate.float_dtype`` decides, and returns None (the general path
    decides and raises) for anything else, and for NaN or inf weights with
    padding, whose padded taps conv2d sums as 0 * w.
    """
    if (type(input) is not cnp.ndarray or type(weight) is not cnp.ndarray
            or bias is not None or type(groups) is not int or groups != 1
            or type(padding_mode) is not str or padding_mode != "zeros"
            or type(method) is not str or not (method == "auto" or method == "direct")):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>input, k = <cnp.ndarray>weight
    cdef Py_ssize_t s, p, d
    if not (cnp.PyArray_NDIM(x) == 2 and cnp.PyArray_NDIM(k) == 2
            and cnp.PyArray_ISCARRAY_RO(x) and cnp.PyArray_ISCARRAY_RO(k)
            and _plain_int(stride, 1, &s) and _plain_int(padding, 0, &p)
            and _plain_int(dilation, 1, &d)):
        return None
    cdef int tx = cnp.PyArray_TYPE(x), tk = cnp.PyArray_TYPE(k)
    if not ((tx == cnp.NPY_FLOAT or tx == cnp.NPY_DOUBLE or tx == cnp.NPY_INT64)
            and (tk == cnp.NPY_FLOAT or tk == cnp.NPY_DOUBLE or tk == cnp.NPY_INT64)):
        return None
    cdef Py_ssize_t h = x.shape[0], w = x.shape[1], kh = k.shape[0], kw = k.shape[1]
    if not (0 < h < _direct_work and 0 < w < _direct_work and 0 < kh < _direct_work
            and 0 < kw < _direct_work):
        return None
    # _validate.out_size: floor((size + 2*pad - dilation*(k - 1) - 1) / stride) + 1.
    cdef Py_ssize_t span_h = d * (kh - 1) + 1, span_w = d * (kw - 1) + 1
    if h + 2 * p < span_h or w + 2 * p < span_w:
        return None  # an empty output: the general path says why
    cdef Py_ssize_t ho = (h + 2 * p - span_h) // s + 1, wo = (w + 2 * p - span_w) // s + 1
    if ho * wo * kh * kw >= _direct_work:
        return None
    cdef int typenum = cnp.NPY_FLOAT if tx == tk == cnp.NPY_FLOAT else cnp.NPY_DOUBLE
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = ho, wo
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    cdef void *o = cnp.PyArray_DATA(out)
    cdef bint done
    cdef double *xd = NULL
    cdef double *kd = NULL
    if typenum == cnp.NPY_FLOAT:
        done = _plane[float](<float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(k),
                             <float *>o, h, w, kh, kw, ho, wo, p, p, s, s, d, d, False, p > 0)
        return out if done else None
    # float64: int64 and float32 arrays are cast first, as the general path casts them.
    if tx != cnp.NPY_DOUBLE:
        xd = _as_double(x)
        if xd == NULL:
            return None
    if tk != cnp.NPY_DOUBLE:
        kd = _as_double(k)
        if kd == NULL:
            free(xd)
            return None
    done = _plane[double](xd if xd != NULL else <double *>cnp.PyArray_DATA(x),
                          kd if kd != NULL else <double *>cnp.PyArray_DATA(k),
                          <double *>o, h, w, kh, kw, ho, wo, p, p, s, s, d, d, False, p > 0)
    free(xd)
    free(kd)
    return out if done else None

# ---- the extended image of cyconv.ndimage -----------------------------------

# numpy.pad modes, in the order of their codes below.
PAD_MODES = ("constant", "edge", "wrap", "symmetric", "reflect")

cdef enum:
    PAD_CONSTANT = 0
    PAD_EDGE = 1
    PAD_WRAP = 2
    PAD_SYMMETRIC = 3
    PAD_REFLECT = 4


cdef inline Py_ssize_t _source(Py_ssize_t s, Py_ssize_t n, int mode) noexcept nogil:
    """The index in [0, n) that position s of the extended axis copies; -1 for the constant.

    np.pad extends again and again when the padding is wider than the axis:
    periodically with period n ('wrap'), 2n ('symmetric', edge repeated) or
    2n - 2 ('reflect', edge not repeated; a single pixel is repeated).
    """
    cdef Py_ssize_t period
    if 0 <= s < n:
        return s
    if mode == PAD_CONSTANT:
        return -1
    if mode == PAD_EDGE:
        return 0 if s < 0 else n - 1
    if mode == PAD_WRAP:
        period = n
    elif mode == PAD_SYMMETRIC:
        period = 2 * n
    elif n == 1:
        return 0
    else:
        period = 2 * n - 2
    # s modulo period, on non-negative values (C's % truncates toward zero).
    s = s % period if s >= 0 else period - 1 - (-s - 1) % period
    if s < n:
        return s
    return (2 * n - 1 - s) if mode == PAD_SYMMETRIC else (2 * n - 2 - s)


cdef int _pad_plane(const floating *image, floating *out, Py_ssize_t h, Py_ssize_t w,
                    Py_ssize_t hp, Py_ssize_t wp, Py_ssize_t top, Py_ssize_t left, int mode,
                    double cval) noexcept nogil:
    """out (hp, wp) = image (h, w) extended by ``mode``, its pixel (0, 0) at (top, left).

    Returns -1 when the column map cannot be allocated, else 0. Invariants:
    h, w >= 1, hp >= h + top, wp >= w + left, both arrays C-contiguous.
    """
    cdef Py_ssize_t *cols = <Py_ssize_t *>malloc(wp * sizeof(Py_ssize_t))
    cdef Py_ssize_t i, j, y
    cdef floating fill = <floating>cval
    cdef const floating *row
    cdef floating *out_row
    if cols == NULL:
        return -1
    for j in range(wp):
        cols[j] = _source(j - left, w, mode)
    for i in range(hp):
        y = _source(i - top, h, mode)
        out_row = out + i * wp
        if y < 0:
            for j in range(wp):
                out_row[j] = fill
            continue
        row = image + y * w
        for j in range(wp):
            out_row[j] = row[cols[j]] if cols[j] >= 0 else fill
    free(cols)
    return 0


def pad(cnp.ndarray image, Py_ssize_t top, Py_ssize_t bottom, Py_ssize_t left,
        Py_ssize_t right, int mode, double cval):
    """``np.pad(image, ((top, bottom), (left, right)), PAD_MODES[mode])``, in one call.

    With ``constant_values=cval`` for 'constant' (cast to the image's dtype).
    ``image`` must be a non-empty C-contiguous float32 or float64 2-D array
    in native byte order (ValueError otherwise), the paddings >= 0.
    """
    cdef int typenum = cnp.PyArray_TYPE(image)
    if not (cnp.PyArray_NDIM(image) == 2 and cnp.PyArray_ISCARRAY_RO(image)
            and (typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE)
            and cnp.PyArray_SIZE(image) > 0 and top >= 0 and bottom >= 0 and left >= 0
            and right >= 0 and 0 <= mode < len(PAD_MODES)):
        raise ValueError("cyconv._small.pad: needs a non-empty C-contiguous float32 or "
                         "float64 2-D array, paddings >= 0 and a mode code of PAD_MODES")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1]
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = h + top + bottom, w + left + right
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        status = _pad_plane[float](<float *>cnp.PyArray_DATA(image),
                                   <float *>cnp.PyArray_DATA(out), h, w, dims[0], dims[1],
                                   top, left, mode, cval)
    else:
        status = _pad_plane[double](<double *>cnp.PyArray_DATA(image),
                                    <double *>cnp.PyArray_DATA(out), h, w, dims[0], dims[1],
                                    top, left, mode, cval)
    if status:
        raise MemoryError()
    return out


def truncate_to_int64(cnp.ndarray sums):
    """``sums`` (float64, C-contiguous, native) cast to int64 as C casts it, or None.

    SciPy's ndimage filters cast each float64 sum to the output type in C;
    this is that cast for an int64 output, without NumPy's cast warnings
    (SciPy's is silent) and without the ``np.errstate`` that would silence
    them, which costs more than a small filtering. Truncation toward zero
    wherever the result fits; NaN, inf and sums beyond the int64 range give
    what the platform's conversion gives (x86-64: the minimum, as NumPy's).
    None for any other array: the caller casts it.
    """
    if not (cnp.PyArray_TYPE(sums) == cnp.NPY_DOUBLE and cnp.PyArray_ISCARRAY_RO(sums)
            and cnp.PyArray_ISNOTSWAPPED(sums)):
        return None
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(sums), cnp.PyArray_DIMS(sums),
                                             cnp.NPY_INT64, 0)
    cdef const double *src = <const double *>cnp.PyArray_DATA(sums)
    cdef cnp.int64_t *dst = <cnp.int64_t *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(sums)
    for i in range(n):
        dst[i] = <cnp.int64_t>src[i]
    return out
