"""Direct convolution: the nested sum of the definition, as C loops.

``out[n, k, i, j] = bias[k] + sum_{c, p, q} w[k, c, p, q] * x[n, g*Cg + c, y, x]``
with ``y = i*sh - ph + p*dh``, ``x = j*sw - pw + q*dw``, ``g = k // (K/groups)``
and ``Cg = C/groups``; taps that fall outside the input read zero (the zero
padding is implicit: nothing is copied). Other padding modes are materialized
by the Python layer before the call.

The loops run one output row at a time. At stride 1 in float32/float64, the
row's interior columns (where every tap reads inside the input) are summed in
vector registers by ``_rowblock.h`` and its few border columns one by one.
Otherwise every tap adds a shifted input row into the output row, which stays
in L1; for each tap the in-bounds column range is computed once, which leaves
a branch-free inner loop.
"""
from cython cimport floating

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy

from cyconv._fused cimport direct_t
from cyconv._openmp cimport PARALLEL_WORK, kernel_threads
from cyconv._bounds cimport first_inside, end_inside

cdef extern from "_rowblock.h" nogil:
    void cyconv_rowblock_float(const float *x_img, const float *w_k, float *out_row,
                               float bias, Py_ssize_t y0, Py_ssize_t p_lo, Py_ssize_t p_hi,
                               Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t pw,
                               Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t j_a, Py_ssize_t j_b)
    void cyconv_rowblock_double(const double *x_img, const double *w_k, double *out_row,
                                double bias, Py_ssize_t y0, Py_ssize_t p_lo, Py_ssize_t p_hi,
                                Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t pw,
                                Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t j_a, Py_ssize_t j_b)
    void cyconv_tapdots_float(const float *gy, const float *padded, Py_ssize_t ho, Py_ssize_t wo,
                              Py_ssize_t wp, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t dh,
                              Py_ssize_t dw, float *sums)
    void cyconv_tapdots_double(const double *gy, const double *padded, Py_ssize_t ho,
                               Py_ssize_t wo, Py_ssize_t wp, Py_ssize_t kh, Py_ssize_t kw,
                               Py_ssize_t dh, Py_ssize_t dw, double *sums)
    void cyconv_backrows3x3_float(const float *x_plane, const float *gpad, const float *f,
                                  float *gi, Py_ssize_t h, Py_ssize_t w, Py_ssize_t wb,
                                  Py_ssize_t dh, Py_ssize_t dw, float *sums)
    void cyconv_backrows3x3_double(const double *x_plane, const double *gpad, const double *f,
                                   double *gi, Py_ssize_t h, Py_ssize_t w, Py_ssize_t wb,
                                   Py_ssize_t dh, Py_ssize_t dw, double *sums)
    void cyconv_plane3x3_float(const float *padded, const float *k, float *out, float bias,
                               Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t wp, Py_ssize_t dh,
                               Py_ssize_t dw)
    void cyconv_plane3x3_double(const double *padded, const double *k, double *out,
                                double bias, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t wp,
                                Py_ssize_t dh, Py_ssize_t dw)
    # The weight gradient alone: f and gi NULL.
    void cyconv_gradrows3x3_float(const float *x_plane, const float *gpad, const float *f,
                                  float *gi, Py_ssize_t h, Py_ssize_t w, Py_ssize_t wb,
                                  Py_ssize_t dh, Py_ssize_t dw, float *sums)
    void cyconv_gradrows3x3_double(const double *x_plane, const double *gpad, const double *f,
                                   double *gi, Py_ssize_t h, Py_ssize_t w, Py_ssize_t wb,
                                   Py_ssize_t dh, Py_ssize_t dw, double *sums)


cdef direct_t _conv_col(const direct_t *x_img, const direct_t *w_k, direct_t bias,
                        Py_ssize_t y0, Py_ssize_t p_lo, Py_ssize_t p_hi, Py_ssize_t x0,
                        Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """bias + sum_{c, p_lo<=p<p_hi, q} w_k[c,p,q] * x_img[c, y0+p*dh, x0+q*dw] over columns inside.

    The taps q whose column x0 + q*dw lies in [0, w) are a range, computed
    once: the inner loop is a branch-free dot product.
    """
    cdef Py_ssize_t c, p, q
    cdef Py_ssize_t q_lo = first_inside(x0, dw), q_hi = end_inside(x0, dw, w, kw)
    cdef const direct_t *x_row
    cdef const direct_t *w_row
    cdef direct_t acc = bias
    for c in range(channels):
        for p in range(p_lo, p_hi):
            x_row = x_img + (c * h + y0 + p * dh) * w
            w_row = w_k + (c * kh + p) * kw
            for q in range(q_lo, q_hi):
                acc = acc + w_row[q] * x_row[x0 + q * dw]
    return acc


cdef void _conv_row_blocked(const direct_t *x_img, const direct_t *w_k, direct_t *out_row,
                            direct_t bias, Py_ssize_t y0,
                            Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                            Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """_conv_row at stride 1 for float and double: register-blocked interior, scalar borders."""
    cdef Py_ssize_t p_lo = first_inside(y0, dh)
    cdef Py_ssize_t p_hi = end_inside(y0, dh, h, kh)
    # Interior: columns j whose taps j - pw + q*dw, q = 0..kw-1, all lie in [0, w).
    cdef Py_ssize_t j_a = pw if pw < wo else wo
    cdef Py_ssize_t j_b = w + pw - (kw - 1) * dw
    cdef Py_ssize_t j
    if j_b > wo:
        j_b = wo
    if j_b < j_a:
        j_b = j_a
    for j in range(j_a):
        out_row[j] = _conv_col(x_img, w_k, bias, y0, p_lo, p_hi, j - pw,
                               channels, h, w, kh, kw, dh, dw)
    for j in range(j_b, wo):
        out_row[j] = _conv_col(x_img, w_k, bias, y0, p_lo, p_hi, j - pw,
                               channels, h, w, kh, kw, dh, dw)
    if direct_t is float:
        cyconv_rowblock_float(x_img, w_k, out_row, bias, y0, p_lo, p_hi, channels, h, w,
                              kh, kw, pw, dh, dw, j_a, j_b)
    elif direct_t is double:
        cyconv_rowblock_double(x_img, w_k, out_row, bias, y0, p_lo, p_hi, channels, h, w,
                               kh, kw, pw, dh, dw, j_a, j_b)


cdef void _conv_row(const direct_t *x_img, const direct_t *w_k, direct_t *out_row,
                    direct_t bias, Py_ssize_t i,
                    Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                    Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """out_row[j] = bias + sum_{c,p,q} w_k[c,p,q] * x_img[c, i*sh-ph+p*dh, j*sw-pw+q*dw]."""
    cdef Py_ssize_t j, c, p, q, y, offset, j_lo, j_hi
    cdef const direct_t *x_row
    cdef direct_t tap
    if (direct_t is float or direct_t is double) and sw == 1:
        _conv_row_blocked(x_img, w_k, out_row, bias, i * sh - ph, channels, h, w, kh, kw, wo,
                          pw, dh, dw)
        return
    for j in range(wo):
        out_row[j] = bias
    for c in range(channels):
        for p in range(kh):
            y = i * sh - ph + p * dh
            if y < 0 or y >= h:
                continue
            x_row = x_img + (c * h + y) * w
            for q in range(kw):
                tap = w_k[(c * kh + p) * kw + q]
                offset = q * dw - pw
                j_lo = first_inside(offset, sw)
                j_hi = end_inside(offset, sw, w, wo)
                if sw == 1:
                    for j in range(j_lo, j_hi):
                        out_row[j] += tap * x_row[j + offset]
                else:
                    for j in range(j_lo, j_hi):
                        out_row[j] += tap * x_row[j * sw + offset]


cdef inline void _output_row(const direct_t *x_p, const direct_t *w_p, direct_t *out_p,
                             const direct_t *bias, Py_ssize_t row,
                             Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t ho, Py_ssize_t kg,
                             Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """Output row ``row`` = (n*K + k)*ho + i of conv2d_forward: kernel k over image n's group."""
    cdef Py_ssize_t i = row % ho
    cdef Py_ssize_t k = (row // ho) % n_out
    cdef Py_ssize_t n = row // (ho * n_out)
    cdef Py_ssize_t g = k // kg
    _conv_row(x_p + (n * n_in + g * cg) * h * w, w_p + k * cg * kh * kw, out_p + row * wo,
              bias[k], i, cg, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw)


def conv2d_forward(const direct_t[:, :, :, ::1] x,
                   const direct_t[:, :, :, ::1] weight,
                   const direct_t[::1] bias,
                   direct_t[:, :, :, ::1] out,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups):
    """out[n,k,i,j] = bias[k] + sum_{c,p,q} weight[k,c,p,q] * x[n, g*Cg+c, i*sh-ph+p*dh, j*sw-pw+q*dw].

    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    x is (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,), out
    (N, K, ho, wo); strides and dilations >= 1, paddings >= 0; groups divides
    C and K. Every read is bounds-checked against H and W, so any ho, wo are
    safe: conv2d passes the floor formula of API.md, the input gradient
    (which pads its bottom/right differently) the input's size.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t kg = n_out // groups
    cdef Py_ssize_t row
    cdef Py_ssize_t n_rows = n_batch * n_out * ho
    cdef const direct_t *x_p = &x[0, 0, 0, 0]
    cdef const direct_t *w_p = &weight[0, 0, 0, 0]
    cdef direct_t *out_p = &out[0, 0, 0, 0]
    if n_rows == 1 or n_rows * wo * cg * kh * kw < PARALLEL_WORK:
        # Small work stays on this thread, outside OpenMP: entering a parallel
        # region, even with use_threads_if=False, costs about a microsecond.
        with nogil:
            for row in range(n_rows):
                _output_row(x_p, w_p, out_p, &bias[0], row, n_in, n_out, ho, kg, cg,
                            h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw)
        return
    with nogil:
        # Output rows are independent: threads split them, so one image with
        # one kernel still uses every core.
        for row in prange(n_rows, schedule='guided', num_threads=kernel_threads()):
            _output_row(x_p, w_p, out_p, &bias[0], row, n_in, n_out, ho, kg, cg,
                        h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw)


cdef inline void _pad_plane(const floating *plane, floating *padded, Py_ssize_t rows,
                            Py_ssize_t cols, Py_ssize_t w, Py_ssize_t wp,
                            Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """padded[y + ph, x + pw] = plane[y, x] for y < rows, x < cols; the rest is left alone."""
    cdef Py_ssize_t y, x
    cdef floating *dst
    cdef const floating *src
    for y in range(rows if cols > 0 else 0):
        # A loop, not memcpy: rows are short, and a call per row cost more than the copy.
        dst = padded + (y + ph) * wp + pw
        src = plane + y * w
        for x in range(cols):
            dst[x] = src[x]


def depthwise_forward(const floating[:, :, :, ::1] x,
                      const floating[:, :, :, ::1] weight,
                      const floating[::1] bias,
                      floating[:, :, :, ::1] out,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                      floating[:, ::1] scratch):
    """out[n,c,i,j] = bias[c] + sum_{p,q} weight[c,0,p,q] * x[n, c, i-ph+p*dh, j-pw+q*dw].

    Depthwise convolution (groups == C == K) at stride 1, one plane at a
    time: each thread copies its plane into a zero-padded (Hp, Wp) buffer,
    Hp = ho + (kh-1)*dh, Wp = wo + (kw-1)*dw, so that every output row is
    interior and runs the register-blocked row of _rowblock.h with no border
    columns (3x3 kernels: its plane3x3, two rows at a time with the taps in
    registers). (Reading the plane as one flat row, as the weight gradient does,
    was measured slower here: the extra copy of the output costs more than
    the wider passes save.) Invariants (checked in Python): x (N, C, H, W),
    weight (C, 1, kh, kw), bias (C,), out (N, C, ho, wo), all non-empty and
    C-contiguous; paddings >= 0, dilations >= 1; scratch (threads, >= Hp*Wp)
    zero-filled, one row per thread the loop may use.
    """
    cdef Py_ssize_t n_batch = x.shape[0], channels = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t hp = ho + (kh - 1) * dh, wp = wo + (kw - 1) * dw
    # The input rows and columns that land inside the padded buffer.
    cdef Py_ssize_t rows = h if h < hp - ph else hp - ph
    cdef Py_ssize_t cols = w if w < wp - pw else wp - pw
    cdef Py_ssize_t n_planes = n_batch * channels, plane, c, i
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *w_p = &weight[0, 0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0, 0]
    cdef floating *buffers = &scratch[0, 0]
    cdef floating *padded
    cdef int n_threads = min(kernel_threads(), scratch.shape[0])
    cdef bint parallel = n_planes > 1 and n_planes * ho * wo * kh * kw >= PARALLEL_WORK
    with nogil:
        for plane in prange(n_planes, schedule='static', num_threads=n_threads,
                            use_threads_if=parallel):
            c = plane % channels
            padded = buffers + threadid() * scratch.shape[1]
            # The border the caller zeroed is never written: only this region.
            _pad_plane(x_p + plane * h * w, padded, rows, cols, w, wp, ph, pw)
            if kh == 3 and kw == 3:
                if floating is float:
                    cyconv_plane3x3_float(padded, w_p + c * 9, out_p + plane * ho * wo, bias[c],
                                          ho, wo, wp, dh, dw)
                else:
                    cyconv_plane3x3_double(padded, w_p + c * 9, out_p + plane * ho * wo,
                                           bias[c], ho, wo, wp, dh, dw)
                continue
            for i in range(ho):
                if floating is float:
                    cyconv_rowblock_float(padded, w_p + c * kh * kw, out_p + (plane * ho + i) * wo,
                                          bias[c], i, 0, kh, 1, hp, wp, kh, kw, 0, dh, dw, 0, wo)
                else:
                    cyconv_rowblock_double(padded, w_p + c * kh * kw,
                                           out_p + (plane * ho + i) * wo,
                                           bias[c], i, 0, kh, 1, hp, wp, kh, kw, 0, dh, dw, 0, wo)


def depthwise_backward(const floating[:, :, :, ::1] x,
                       const floating[:, :, :, ::1] grad_out,
                       const floating[:, :, :, ::1] flipped,
                       floating[:, :, :, ::1] grad_input,
                       floating[:, ::1] partial,
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                       floating[:, ::1] scratch):
    """The gradients of depthwise_forward in one pass over the planes.

    ``partial[t, c*kh*kw + p*kw + q] += sum_{n,i,j} grad_out[n,c,i,j] * x[n,c,i-ph+p*dh,j-pw+q*dw]``
    over the planes (n, c) thread t takes, and, unless grad_input is None,
    ``grad_input[n,c,y,x] = sum_{p,q} grad_out[n,c,y+ph-p*dh,x+pw-q*dw] * weight[c,0,p,q]``,
    the forward (stride 1) of grad_out zero-padded by (kh-1)*dh - ph on top
    and (kw-1)*dw - pw on the left with ``flipped = weight[..., ::-1, ::-1]``.

    Each thread takes whole planes; a plane is read from memory once for
    both sums (x and grad_out once each, grad_input written once). The
    gradient plane goes into a zero-padded (H + (kh-1)*dh, W + (kw-1)*dw)
    buffer whose rows run the register-blocked row of _rowblock.h for the
    input gradient, as in depthwise_forward. For a 3x3 kernel with
    ph <= 2*dh and pw <= 2*dw, the weight gradient reads that buffer against
    the rows of x as they are (_rowblock.h's rows3x3): no other copy; with
    the input gradient, both sums run in that one loop, which loads each
    vector of the buffer once for both.
    Otherwise the plane of x goes into a zero-padded (Hp, Wp) buffer and the
    gradient plane into rows of Wp (zero in the columns j >= wo); read as
    flat rows, gradient (i, j) is flat position i*Wp + j and under tap
    (p, q) meets padded position i*Wp + j + p*dh*Wp + q*dw, so each tap is
    one long dot product, kh*kw of them at a time in _rowblock.h. Both ways,
    zeros that are no part of the definition's sum meet x (a NaN or inf in
    x can give NaN where the definition is finite), and gradrows skips the
    input's padding (an inf in grad_out can give inf where the definition
    has inf * 0 = NaN): the caller recomputes any sum that is not finite.

    Invariants (checked in Python): x (N, C, H, W), grad_out (N, C, ho, wo),
    flipped (C, 1, kh, kw), grad_input None or (N, C, H, W), all non-empty
    and C-contiguous; ho + (kh-1)*dh = H + ph + (bottom padding), likewise
    wo; paddings >= 0 and, with grad_input, ph <= (kh-1)*dh and
    pw <= (kw-1)*dw; dilations >= 1; partial (threads, C*kh*kw) zero-filled;
    scratch (threads, Hp*Wp + ho*Wp + (H + (kh-1)*dh)*(W + (kw-1)*dw))
    zero-filled; both with one row per thread the loop may use.
    """
    cdef Py_ssize_t n_batch = x.shape[0], channels = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t kh = flipped.shape[2], kw = flipped.shape[3], taps = kh * kw
    cdef Py_ssize_t ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t hp = ho + (kh - 1) * dh, wp = wo + (kw - 1) * dw
    cdef Py_ssize_t n_flat = (ho - 1) * wp + wo
    cdef Py_ssize_t rows = h if h < hp - ph else hp - ph
    cdef Py_ssize_t cols = w if w < wp - pw else wp - pw
    # The input gradient's buffer: grad_out at (top, left) in (hb, wb).
    cdef Py_ssize_t hb = h + (kh - 1) * dh, wb = w + (kw - 1) * dw
    cdef Py_ssize_t top = (kh - 1) * dh - ph, left = (kw - 1) * dw - pw
    cdef Py_ssize_t g_rows = ho if ho < hb - top else hb - top
    cdef Py_ssize_t g_cols = wo if wo < wb - left else wb - left
    cdef bint by_rows = kh == 3 and kw == 3 and top >= 0 and left >= 0
    cdef Py_ssize_t n_planes = n_batch * channels, plane, c, i
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *gy_p = &grad_out[0, 0, 0, 0]
    cdef const floating *f_p = &flipped[0, 0, 0, 0]
    cdef floating *gi_p = NULL
    cdef floating *part_p = &partial[0, 0]
    cdef floating *buffers = &scratch[0, 0]
    cdef floating *padded
    cdef floating *flat
    cdef floating *gpad
    cdef floating *sums
    cdef int n_threads = min(kernel_threads(), scratch.shape[0], partial.shape[0])
    cdef bint parallel = n_planes > 1 and n_planes * ho * wo * taps >= PARALLEL_WORK
    if grad_input is not None:
        gi_p = &grad_input[0, 0, 0, 0]
    with nogil:
        for plane in prange(n_planes, schedule='static', num_threads=n_threads,
                            use_threads_if=parallel):
            c = plane % channels
            padded = buffers + threadid() * scratch.shape[1]
            flat = padded + hp * wp
            gpad = flat + ho * wp
            sums = part_p + threadid() * partial.shape[1] + c * taps
            # The borders the caller zeroed are never written: only these regions.
            if by_rows or gi_p != NULL:
                _pad_plane(gy_p + plane * ho * wo, gpad, g_rows, g_cols, wo, wb, top, left)
            if by_rows and gi_p != NULL:
                if floating is float:
                    cyconv_backrows3x3_float(x_p + plane * h * w, gpad, f_p + c * taps,
                                             gi_p + plane * h * w, h, w, wb, dh, dw, sums)
                else:
                    cyconv_backrows3x3_double(x_p + plane * h * w, gpad, f_p + c * taps,
                                              gi_p + plane * h * w, h, w, wb, dh, dw, sums)
            elif by_rows:
                if floating is float:
                    cyconv_gradrows3x3_float(x_p + plane * h * w, gpad, NULL, NULL, h, w, wb,
                                             dh, dw, sums)
                else:
                    cyconv_gradrows3x3_double(x_p + plane * h * w, gpad, NULL, NULL, h, w, wb,
                                              dh, dw, sums)
            else:
                _pad_plane(x_p + plane * h * w, padded, rows, cols, w, wp, ph, pw)
                _pad_plane(gy_p + plane * ho * wo, flat, ho, wo, wo, wp, 0, 0)
                if floating is float:
                    cyconv_tapdots_float(flat, padded, 1, n_flat, wp, kh, kw, dh, dw, sums)
                else:
                    cyconv_tapdots_double(flat, padded, 1, n_flat, wp, kh, kw, dh, dw, sums)
            if gi_p != NULL and not by_rows:
                for i in range(h):
                    if floating is float:
                        cyconv_rowblock_float(gpad, f_p + c * taps, gi_p + (plane * h + i) * w,
                                              0, i, 0, kh, 1, hb, wb, kh, kw, 0, dh, dw, 0, w)
                    else:
                        cyconv_rowblock_double(gpad, f_p + c * taps,
                                               gi_p + (plane * h + i) * w,
                                               0, i, 0, kh, 1, hb, wb, kh, kw, 0, dh, dw, 0, w)


# Backward pass: the two adjoints of the sum above, on float32/float64.

cdef floating _weight_tap(const floating *x_plane, const floating *gy_plane,
                          Py_ssize_t n_batch, Py_ssize_t x_step, Py_ssize_t gy_step,
                          Py_ssize_t row_offset, Py_ssize_t col_offset,
                          Py_ssize_t h, Py_ssize_t w, Py_ssize_t ho, Py_ssize_t wo,
                          Py_ssize_t sh, Py_ssize_t sw) noexcept nogil:
    """sum_{n,i,j} gy_plane[n*gy_step + i*wo + j] * x_plane[n*x_step + y*w + x].

    y = i*sh + row_offset, x = j*sw + col_offset; pixels outside the h x w
    plane (the zero padding) contribute nothing, so only the in-bounds
    ranges of i and j, computed once, are visited.
    """
    cdef Py_ssize_t i_lo = first_inside(row_offset, sh)
    cdef Py_ssize_t i_hi = end_inside(row_offset, sh, h, ho)
    cdef Py_ssize_t j_lo = first_inside(col_offset, sw)
    cdef Py_ssize_t j_hi = end_inside(col_offset, sw, w, wo)
    cdef Py_ssize_t n, i, j
    cdef const floating *x_row
    cdef const floating *gy_row
    cdef floating acc = 0
    for n in range(n_batch):
        for i in range(i_lo, i_hi):
            x_row = x_plane + n * x_step + (i * sh + row_offset) * w
            gy_row = gy_plane + n * gy_step + i * wo
            if sw == 1:
                for j in range(j_lo, j_hi):
                    acc += gy_row[j] * x_row[j + col_offset]
            else:
                for j in range(j_lo, j_hi):
                    acc += gy_row[j] * x_row[j * sw + col_offset]
    return acc


cdef void _input_plane(const floating *gy, const floating *w_c, floating *plane,
                       Py_ssize_t kernels, Py_ssize_t w_step,
                       Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                       Py_ssize_t ho, Py_ssize_t wo,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                       Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """plane[y, x] += sum_{k,p,q,i,j} gy[k, i, j] * w_c[k*w_step + p*kw + q].

    Over y = i*sh - ph + p*dh, x = j*sw - pw + q*dw inside the h x w plane:
    every output gradient is scattered back through the kernel taps. gy is
    (kernels, ho, wo); w_c points at weight[k0, c, 0, 0], one kernel every
    w_step elements.
    """
    cdef Py_ssize_t k, p, q, i, j, row_offset, col_offset, i_lo, i_hi, j_lo, j_hi
    cdef const floating *gy_row
    cdef floating *x_row
    cdef floating tap
    for k in range(kernels):
        for p in range(kh):
            row_offset = p * dh - ph
            i_lo = first_inside(row_offset, sh)
            i_hi = end_inside(row_offset, sh, h, ho)
            for q in range(kw):
                tap = w_c[k * w_step + p * kw + q]
                col_offset = q * dw - pw
                j_lo = first_inside(col_offset, sw)
                j_hi = end_inside(col_offset, sw, w, wo)
                for i in range(i_lo, i_hi):
                    gy_row = gy + (k * ho + i) * wo
                    x_row = plane + (i * sh + row_offset) * w
                    if sw == 1:
                        for j in range(j_lo, j_hi):
                            x_row[j + col_offset] += tap * gy_row[j]
                    else:
                        for j in range(j_lo, j_hi):
                            x_row[j * sw + col_offset] += tap * gy_row[j]


def conv2d_grad_weight(const floating[:, :, :, ::1] x,
                       const floating[:, :, :, ::1] grad_out,
                       floating[:, :, :, ::1] grad_weight,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                       Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups):
    """grad_weight[k,c,p,q] = sum_{n,i,j} grad_out[n,k,i,j] * x[n, g*Cg+c, i*sh-ph+p*dh, j*sw-pw+q*dw].

    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    x is (N, C, H, W), grad_out (N, K, ho, wo) with ho, wo the output size of
    these parameters, grad_weight (K, C/groups, kh, kw); strides and
    dilations >= 1, paddings >= 0; groups divides C and K. Every entry of
    grad_weight is overwritten.
    """
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t n_out = grad_out.shape[1], ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t cg = grad_weight.shape[1], kh = grad_weight.shape[2]
    cdef Py_ssize_t kw = grad_weight.shape[3], kg = n_out // groups
    cdef Py_ssize_t k, g, c, p, q
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *gy_p = &grad_out[0, 0, 0, 0]
    cdef floating *gw_p = &grad_weight[0, 0, 0, 0]
    cdef bint parallel = n_out > 1 and n_batch * n_out * ho * wo * cg * kh * kw >= PARALLEL_WORK
    with nogil:
        # Each kernel's gradient is written by one thread.
        for k in prange(n_out, schedule='guided', num_threads=kernel_threads(),
                        use_threads_if=parallel):
            g = k // kg
            for c in range(cg):
                for p in range(kh):
                    for q in range(kw):
                        gw_p[((k * cg + c) * kh + p) * kw + q] = _weight_tap(
                            x_p + (g * cg + c) * h * w, gy_p + k * ho * wo,
                            n_batch, n_in * h * w, n_out * ho * wo,
                            p * dh - ph, q * dw - pw, h, w, ho, wo, sh, sw)


def conv2d_grad_input(const floating[:, :, :, ::1] grad_out,
                      const floating[:, :, :, ::1] weight,
                      floating[:, :, :, ::1] grad_input,
                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups):
    """grad_input[n, g*Cg+c, i*sh-ph+p*dh, j*sw-pw+q*dw] += grad_out[n,k,i,j] * weight[k,c,p,q].

    Summed over the kernels k of group g, taps (p, q) and output pixels
    (i, j) that land inside the input. Each (n, c) input plane is written by
    one loop nest, so planes are independent.

    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    grad_input (N, C, H, W) zero-filled, grad_out (N, K, ho, wo) with ho, wo
    the output size of these parameters, weight (K, C/groups, kh, kw);
    strides and dilations >= 1, paddings >= 0; groups divides C and K.
    """
    cdef Py_ssize_t n_batch = grad_input.shape[0], n_in = grad_input.shape[1]
    cdef Py_ssize_t h = grad_input.shape[2], w = grad_input.shape[3]
    cdef Py_ssize_t n_out = grad_out.shape[1], ho = grad_out.shape[2], wo = grad_out.shape[3]
    cdef Py_ssize_t cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t kg = n_out // groups, w_step = cg * kh * kw
    cdef Py_ssize_t plane, n, ci, g
    cdef const floating *gy_p = &grad_out[0, 0, 0, 0]
    cdef const floating *w_p = &weight[0, 0, 0, 0]
    cdef floating *gx_p = &grad_input[0, 0, 0, 0]
    cdef Py_ssize_t n_planes = n_batch * n_in
    cdef bint parallel = n_planes > 1 and n_batch * n_out * ho * wo * cg * kh * kw >= PARALLEL_WORK
    with nogil:
        # Each (n, c) input plane is written by one thread.
        for plane in prange(n_planes, schedule='guided', num_threads=kernel_threads(),
                            use_threads_if=parallel):
            n = plane // n_in
            ci = plane % n_in
            g = ci // cg
            _input_plane(gy_p + (n * n_out + g * kg) * ho * wo,
                         w_p + g * kg * w_step + (ci - g * cg) * kh * kw,
                         gx_p + plane * h * w,
                         kg, w_step, h, w, kh, kw, ho, wo,
                         sh, sw, ph, pw, dh, dw)
