"""Register-blocked direct convolution for few input channels and strided kernels.

The kernels are in ``_regblock.h``: the input is copied once, zero-padded and
split by column phase, and a tile of kernels times output columns is summed
in vector registers over every tap (a network's 7x7 stride-2 stem runs near
the multiply-add peak where im2col's copy costs as much as its GEMM). Built
once per SIMD level like ``_direct`` (see meson.build and cyconv._dispatch).
"""
from cython cimport floating
from cython.parallel cimport prange

from cyconv._openmp cimport kernel_threads
from cyconv._split cimport even_part

cdef extern from "_regblock.h" nogil:
    int CYCONV_RB_BYTES
    void cyconv_rb_split_float(const float *x, Py_ssize_t h, Py_ssize_t w, float *xs,
                               Py_ssize_t hp, Py_ssize_t sw, Py_ssize_t ws,
                               Py_ssize_t ph, Py_ssize_t pw)
    void cyconv_rb_split_double(const double *x, Py_ssize_t h, Py_ssize_t w, double *xs,
                                Py_ssize_t hp, Py_ssize_t sw, Py_ssize_t ws,
                                Py_ssize_t ph, Py_ssize_t pw)
    void cyconv_rb_rows_float(const float *xs, Py_ssize_t row_len, const Py_ssize_t *off,
                              Py_ssize_t taps, const float *w, const float *bias, float *out,
                              Py_ssize_t kg, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t sh,
                              Py_ssize_t i0, Py_ssize_t i1)
    void cyconv_rb_rows_double(const double *xs, Py_ssize_t row_len, const Py_ssize_t *off,
                               Py_ssize_t taps, const double *w, const double *bias,
                               double *out, Py_ssize_t kg, Py_ssize_t ho, Py_ssize_t wo,
                               Py_ssize_t sh, Py_ssize_t i0, Py_ssize_t i1)

# Output rows per task at most: a band of rows shares the weights in L1.
cdef enum:
    BAND_ROWS = 8


def vector_bytes():
    """The width of the vectors the kernels sum in, in bytes; 0 where they sum scalars."""
    return CYCONV_RB_BYTES


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                   const floating[::1] bias, floating[:, :, :, ::1] out,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t groups, floating[:, :, :, ::1] xs,
                   const Py_ssize_t[::1] off):
    """out[n, k, i, j] = bias[k] + sum_t weight[k, t] * xs[n, g-channels][i*sh*sw*ws + off[t] + j].

    ``xs`` (N, C, hp*sw, ws) is filled here with the phase-split, zero-padded
    input (see _regblock.h); ``off`` holds the Cg*kh*kw tap offsets into one
    group's channels of it, dilation included.

    Invariants: x (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,), out
    (N, K, ho, wo), all C-contiguous and non-empty; ws >= ceil(wo / lanes) *
    lanes + (kw - 1)*dw // sw and hp = (ho - 1)*sh + (kh - 1)*dh + 1 with
    lanes = max(1, vector_bytes() // itemsize); off as described.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t cg = weight.shape[1], taps = cg * weight.shape[2] * weight.shape[3]
    cdef Py_ssize_t kg = n_out // groups, hp = xs.shape[2] // sw, ws = xs.shape[3]
    cdef Py_ssize_t plane = hp * sw * ws
    cdef int n_threads = kernel_threads()
    cdef Py_ssize_t band = even_part(ho, BAND_ROWS, n_batch * groups, n_threads)
    cdef Py_ssize_t n_bands = (ho + band - 1) // band, tasks = n_batch * groups * n_bands
    cdef Py_ssize_t item, task, n, g, i0
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *w_p = &weight[0, 0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0, 0]
    cdef floating *xs_p = &xs[0, 0, 0, 0]
    with nogil:
        for item in prange(n_batch * n_in, schedule='static', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and n_batch * n_in > 1):
            if floating is float:
                cyconv_rb_split_float(x_p + item * h * w, h, w, xs_p + item * plane,
                                      hp, sw, ws, ph, pw)
            else:
                cyconv_rb_split_double(x_p + item * h * w, h, w, xs_p + item * plane,
                                       hp, sw, ws, ph, pw)
        for task in prange(tasks, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1):
            n = task // (groups * n_bands)
            g = task // n_bands % groups
            i0 = task % n_bands * band
            if floating is float:
                cyconv_rb_rows_float(xs_p + (n * n_in + g * cg) * plane, sw * ws, &off[0],
                                     taps, w_p + g * kg * taps, &bias[g * kg],
                                     out_p + (n * n_out + g * kg) * ho * wo, kg, ho, wo, sh,
                                     i0, i0 + band if band < ho - i0 else ho)
            else:
                cyconv_rb_rows_double(xs_p + (n * n_in + g * cg) * plane, sw * ws, &off[0],
                                      taps, w_p + g * kg * taps, &bias[g * kg],
                                      out_p + (n * n_out + g * kg) * ho * wo, kg, ho, wo, sh,
                                      i0, i0 + band if band < ho - i0 else ho)
