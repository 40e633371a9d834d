"""Register-blocked direct convolution for few input channels and larger kernels.

The kernels are in ``_regblock.h``: a band of output rows reads a copy of the
input rows under it, zero-padded and split by column phase, and a tile of
kernels times output columns is summed in vector registers over every tap (a
network's 7x7 stride-2 stem runs near the multiply-add peak, where im2col's
copy costs as much as its GEMM). Built once per SIMD level like ``_direct``
(see meson.build and cyconv._dispatch).
"""
from cython cimport floating
from cython.parallel cimport prange, threadid

from cyconv._openmp cimport PARALLEL_WORK, kernel_threads

cdef extern from "_regblock.h" nogil:
    int CYCONV_RB_BYTES
    void cyconv_rb_split_float(const float *x, Py_ssize_t h, Py_ssize_t w, float *xs,
                               Py_ssize_t y0, Py_ssize_t hp, Py_ssize_t sw, Py_ssize_t ws,
                               Py_ssize_t ph, Py_ssize_t pw)
    void cyconv_rb_split_double(const double *x, Py_ssize_t h, Py_ssize_t w, double *xs,
                                Py_ssize_t y0, Py_ssize_t hp, Py_ssize_t sw, Py_ssize_t ws,
                                Py_ssize_t ph, Py_ssize_t pw)
    void cyconv_rb_rows_float(const float *xs, Py_ssize_t row_len, const Py_ssize_t *off,
                              Py_ssize_t taps, const float *w, const float *bias, float *out,
                              Py_ssize_t kg, Py_ssize_t plane, Py_ssize_t wo, Py_ssize_t sh,
                              Py_ssize_t rows)
    void cyconv_rb_rows_double(const double *xs, Py_ssize_t row_len, const Py_ssize_t *off,
                               Py_ssize_t taps, const double *w, const double *bias,
                               double *out, Py_ssize_t kg, Py_ssize_t plane, Py_ssize_t wo,
                               Py_ssize_t sh, Py_ssize_t rows)


def vector_bytes():
    """The width of the vectors the kernels sum in, in bytes; 0 where they sum scalars."""
    return CYCONV_RB_BYTES


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                   const floating[::1] bias, floating[:, :, :, ::1] out,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t groups, Py_ssize_t band, Py_ssize_t hb, Py_ssize_t ws,
                   const Py_ssize_t[::1] off, floating[:, ::1] scratch):
    """out[n, k, i, j] = bias[k] + sum_t weight[k, t] * xs[(i - i0)*sh*sw*ws + off[t] + j].

    Tasks of (image, group, band of at most ``band`` output rows from i0),
    taken in turn by the kernel threads: each copies the group's input rows
    under its band into its own scratch row as ``xs`` (Cg, hb, sw, ws),
    phase-split and zero-padded (see _regblock.h), and sums the band's
    tiles. ``off`` holds the Cg*kh*kw tap offsets into xs, dilation included.

    Invariants: x (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,), out
    (N, K, ho, wo), all C-contiguous and non-empty; 1 <= band <= ho;
    ws >= ceil(wo / lanes) * lanes + (kw - 1)*dw // sw with lanes =
    max(1, vector_bytes() // itemsize); hb = (band - 1)*sh + (kh - 1)*dh + 1
    (the rows under a band); scratch (>= kernel threads, >= Cg*hb*sw*ws);
    off as described, for this hb and ws.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t kh = weight.shape[2], cg = weight.shape[1]
    cdef Py_ssize_t taps = cg * kh * weight.shape[3], kg = n_out // groups
    cdef Py_ssize_t n_bands = (ho + band - 1) // band, tasks = n_batch * groups * n_bands
    # One channel's copy: the hb rows under a whole band, sw phases of ws columns.
    cdef Py_ssize_t channel_len = hb * sw * ws
    cdef int n_threads = kernel_threads()
    cdef Py_ssize_t task, n, g, i0, rows, c
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *w_p = &weight[0, 0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0, 0]
    cdef floating *xs
    with nogil:
        for task in prange(tasks, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1
                           and n_batch * n_out * ho * wo * taps >= PARALLEL_WORK):
            n = task // (groups * n_bands)
            g = task // n_bands % groups
            i0 = task % n_bands * band
            rows = band if band < ho - i0 else ho - i0
            xs = &scratch[threadid(), 0]
            for c in range(cg):
                if floating is float:
                    cyconv_rb_split_float(x_p + ((n * n_in + g * cg + c) * h) * w, h, w,
                                          xs + c * channel_len, i0 * sh, hb, sw, ws, ph, pw)
                else:
                    cyconv_rb_split_double(x_p + ((n * n_in + g * cg + c) * h) * w, h, w,
                                           xs + c * channel_len, i0 * sh, hb, sw, ws, ph, pw)
            if floating is float:
                cyconv_rb_rows_float(xs, sw * ws, &off[0], taps, w_p + g * kg * taps,
                                     &bias[g * kg], out_p + ((n * n_out + g * kg) * ho + i0) * wo,
                                     kg, ho * wo, wo, sh, rows)
            else:
                cyconv_rb_rows_double(xs, sw * ws, &off[0], taps, w_p + g * kg * taps,
                                      &bias[g * kg], out_p + ((n * n_out + g * kg) * ho + i0) * wo,
                                      kg, ho * wo, wo, sh, rows)
