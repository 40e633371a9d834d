"""method='fft': correlation of planes through ``scipy.fft``.

One routine, `correlate_into`, serves `conv2d` (through `conv2d_forward`,
which has the direct kernel's signature) and the SciPy drop-ins: both reduce
to the sum ``out[i, j] = sum_{p,q} k[p, q] * x[i*sh - top + p, j*sw - left + q]``
over a zero-extended plane ``x``. That sum is entry ``i*sh + kh - 1 - top``
(likewise for columns) of the full linear convolution of ``x`` with the
flipped kernel, computed as a product of spectra, as SciPy's
``fftconvolve`` (``_freq_domain_conv`` and ``_apply_conv_mode``) does.

Unlike SciPy, which always transforms at the full length ``h + kh - 1`` and
crops, only the entries the output needs are made exact: a circular
convolution of length ``n`` folds full entry ``m + n`` onto ``m``, so entries
``[start, end)`` of a full convolution of length ``L`` are exact once
``n >= max(end, L - start)`` (and ``n`` holds both operands). A ``'valid'``
output thus needs only ``n >= h``. Lengths are rounded up with
``scipy.fft.next_fast_len``.
"""
import cmath

import numpy as np
import scipy.fft as sp_fft

# The dtypes scipy.fft transforms in their own precision: float32 and
# float64 through rfft2/irfft2, complex64 and complex128 through fft2/ifft2.
# Everything else runs the direct kernel: long double (there is no
# long-double FFT path here) and the integers, whose results stay exact.
FFT_DTYPES = frozenset(np.dtype(c) for c in "fdFD")


# all_finite's shortcut is for small arrays (kernels) only: OpenBLAS hands a
# dot product of more than 10000 entries to its thread pool, and waking the
# pool costs milliseconds on a busy machine (measured: 7.6 ms for 12000
# entries between other work, against 10 us for np.isfinite).
_DOT_MAX = 4096


def all_finite(array):
    """True when no value of a floating or complex array is NaN or inf.

    For a small array, ``vdot(a, a) = sum |a|**2`` (no temporary array, half
    the time of ``np.isfinite`` on a 3x3 kernel) is finite exactly when every
    value is, unless the squares overflow; only then, when some value is not
    finite, or for a large array does ``np.isfinite`` decide.
    """
    if array.size <= _DOT_MAX and cmath.isfinite(np.vdot(array, array)):
        return True
    return bool(np.isfinite(array).all())


def fft_applies(*arrays):
    """True when the FFT agrees with the direct sum to rounding on these arrays.

    Their dtype must be one of FFT_DTYPES and every value finite: a transform
    spreads one NaN or inf over the whole output, where the direct sum keeps
    it to the windows that contain it.
    """
    return all(a.dtype in FFT_DTYPES for a in arrays) and all(map(all_finite, arrays))


def _span(size, k, before, step, count):
    """Along one axis: which outputs the FFT gives, from which full-convolution entries.

    Output ``i`` is entry ``i*step + k - 1 - before`` of the full convolution
    (length ``size + k - 1``) and is zero outside it (its window lies in the
    padding). Returns ``(first, stop, start, end, n)``: outputs
    ``[first, stop)`` come from entries ``start, start + step, ... < end``,
    exact at circular length ``n``; None when no output overlaps the input.
    """
    full = size + k - 1
    offset = k - 1 - before
    first = max(0, -(offset // step))  # ceil(-offset / step)
    stop = min(count, (full - 1 - offset) // step + 1)
    if first >= stop:
        return None
    start, end = first * step + offset, (stop - 1) * step + offset + 1
    return first, stop, start, end, max(size, k, end, full - start)


# The cost model behind method='auto' (SciPy's choose_conv_method is the model:
# compare the two costs, each a constant times its operation count). Seconds
# per multiply-add of the direct loops, and per point * log2(points) of one
# correlation by FFT (three transforms), measured on this project's 2-core
# AVX-512 machine with a 1024x1024 sweep of
# kernels 9..31 (the two cost the same near 21x21 in float32 and 23x23 in
# float64). Complex inputs cost about 4x (direct) and 2x (FFT) their real
# precision.
_DIRECT_SECONDS_PER_MAC = {4: 33e-12, 8: 55e-12}
_FFT_SECONDS_PER_POINT_LOG = {4: 0.65e-9, 8: 1.3e-9}


def fft_is_faster(out_pixels, taps, transform_shape, dtype):
    """True when one FFT correlation is predicted to beat the direct sum."""
    if out_pixels * taps < 2**10:
        # Far too small to ask the model: three transforms cost some 45 us
        # however small, 2**10 multiply-adds well under 1 us of direct loops.
        # It is below the model's smallest FFT pick with the constants above
        # (3364, complex64 1x58 kernel on a 1x1 image): no choice changes.
        return False
    dtype = np.dtype(dtype)
    complex_ = dtype.kind == "c"
    itemsize = dtype.itemsize // 2 if complex_ else dtype.itemsize
    if itemsize not in _DIRECT_SECONDS_PER_MAC:
        return False  # long double: no FFT
    points = transform_shape[0] * transform_shape[1]
    direct = out_pixels * taps * _DIRECT_SECONDS_PER_MAC[itemsize] * (4 if complex_ else 1)
    fft = points * np.log2(max(points, 2)) * _FFT_SECONDS_PER_POINT_LOG[itemsize]
    return direct > fft * (2 if complex_ else 1)


def correlate_into(out, image, kernel, top, left, sh=1, sw=1):
    """out[..., i, j] += sum_{p,q} kernel[p, q] * image[..., i*sh - top + p, j*sw - left + q].

    ``image`` is zero outside its bounds; leading axes of ``image`` and
    ``out`` are a batch (one kernel spectrum serves all). Invariants: one
    dtype in FFT_DTYPES for all three arrays, ``image`` and ``kernel``
    non-empty, ``top, left >= 0``, ``sh, sw >= 1``.
    """
    rows = _span(image.shape[-2], kernel.shape[0], top, sh, out.shape[-2])
    cols = _span(image.shape[-1], kernel.shape[1], left, sw, out.shape[-1])
    if rows is None or cols is None:
        return
    real = image.dtype.kind == "f"
    shape = (sp_fft.next_fast_len(rows[4], real), sp_fft.next_fast_len(cols[4], real))
    forward, inverse = (sp_fft.rfft2, sp_fft.irfft2) if real else (sp_fft.fft2, sp_fft.ifft2)
    spectrum = forward(image, shape) * forward(kernel[::-1, ::-1], shape)
    full = inverse(spectrum, shape, overwrite_x=True)
    out[..., rows[0]:rows[1], cols[0]:cols[1]] += full[..., rows[2]:rows[3]:sh,
                                                        cols[2]:cols[3]:sw]


def conv2d_forward(x, weight, bias, out, sh, sw, ph, pw, dh, dw, groups):
    """out[n,0,i,j] = bias[0] + sum_{p,q} weight[0,0,p,q] * x[n,0,i*sh-ph+p*dh, j*sw-pw+q*dw].

    The direct kernel's signature, for one channel and one kernel
    (C == K == groups == 1); ``x`` is zero outside its bounds. Invariants:
    x (N, 1, H, W), weight (1, 1, kh, kw), bias (1,) and out (N, 1, Ho, Wo)
    share one dtype in FFT_DTYPES; x and weight are non-empty.
    """
    kernel = weight[0, 0]
    if dh > 1 or dw > 1:  # dilation: dh - 1 (dw - 1) zero rows (columns) between taps
        kh, kw = kernel.shape
        dilated = np.zeros((dh * (kh - 1) + 1, dw * (kw - 1) + 1), kernel.dtype)
        dilated[::dh, ::dw] = kernel
        kernel = dilated
    out[...] = bias[:, None, None]
    correlate_into(out[:, 0], x[:, 0], kernel, ph, pw, sh, sw)
