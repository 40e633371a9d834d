"""im2col unrolling and the convolution-as-GEMM driver.

The unrolled matrix of one image has a row per (channel, kernel row, kernel
column) and a column per output pixel, in Caffe's order (``im2col.cpp``), which
is the row order of API.md::

    cols[(c*kh + p)*kw + q, i*wo + j] = x[c, i*sh - ph + p*dh, j*sw - pw + q*dw]

(zero where that pixel is in the padding). Then one group's output is a single
matrix product ``out[Kg x P] = weight[Kg x Q] @ cols[Q x P]`` with
``Q = Cg*kh*kw`` and ``P = ho*wo``. The forward driver unrolls a bounded
block of output pixels at a time into a workspace the caller allocates, so
memory stays under a cap whatever the image size.

At a stride above 1 (blocks of an output row or more) the forward and the
weight gradient unroll through each channel's stride phases (_unroll_phased):
the zero-padded channel split once into sh*sw planes, wo wide, in which every
tap reads at unit stride, so a row of cols is one contiguous copy plus the
last q*dw // sw pixels of each output row. The walker (_walk_row) instead
gathers ho segments per row, each with its own bounds: at N8-C128-28 3x3/2
float32, one thread, 1.24 ms against 0.76 for the unroll alone (AMD EPYC,
AVX2). Not taken, measured on the same layer (conv2d, K=256, one thread):
unrolling a few channels at a time and accumulating their GEMMs (beta = 1)
to keep the columns in L2, 0.99-1.04x the time of one GEMM per image; the
columns of 2 or 4 images side by side in one GEMM (OpenBLAS packs the weight
once per call) and the output copied out, 0.99-1.01x, and 1.03-1.24x at 64
and 128 kernels.
"""
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from cyconv._fused cimport blas_t
from cyconv._blas cimport gemm
from cyconv._bounds cimport first_inside, end_inside
from cyconv._openmp cimport PARALLEL_WORK, kernel_threads
from cyconv._split cimport even_part

cdef extern from "_gather.h" nogil:
    void cyconv_gather2_float(float *dst, const float *src, Py_ssize_t n)
    void cyconv_gather2_double(double *dst, const double *src, Py_ssize_t n)
    void cyconv_phase_rows_float(float *dst, float *edge, const float *src, Py_ssize_t pitch,
                                 Py_ssize_t rows, Py_ssize_t sw, Py_ssize_t wo,
                                 Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t ew,
                                 Py_ssize_t elo, Py_ssize_t ehi)
    void cyconv_phase_rows_double(double *dst, double *edge, const double *src,
                                  Py_ssize_t pitch, Py_ssize_t rows, Py_ssize_t sw,
                                  Py_ssize_t wo, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t ew,
                                  Py_ssize_t elo, Py_ssize_t ehi)
    void cyconv_scatter_add2_float(float *dst, const float *src, Py_ssize_t n)
    void cyconv_scatter_add2_double(double *dst, const double *src, Py_ssize_t n)
    void cyconv_interleave2_float(float *dst, const float *even, const float *odd, Py_ssize_t n)
    void cyconv_interleave2_double(double *dst, const double *even, const double *odd,
                                   Py_ssize_t n)
    void cyconv_add_float(float *dst, const float *src, Py_ssize_t n)
    void cyconv_add_double(double *dst, const double *src, Py_ssize_t n)

# cyconv._pointwise's packed GEMM (_wgemm.h's cyconv_pg_gemm_*), built per
# SIMD level: the gradients below take it through a pointer where the
# caller passes one (``packed``), and OpenBLAS's GEMM where not.
ctypedef void (*packed_float_t)(const float *u, Py_ssize_t ldu, const float *v,
                                Py_ssize_t ldv, int vt, float *m, Py_ssize_t ldm,
                                Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t nt,
                                const float *bias, int accumulate) noexcept nogil
ctypedef void (*packed_double_t)(const double *u, Py_ssize_t ldu, const double *v,
                                 Py_ssize_t ldv, int vt, double *m, Py_ssize_t ldm,
                                 Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t nt,
                                 const double *bias, int accumulate) noexcept nogil


cdef void *_packed_pointer(object capsule, floating dtype_tag) except? NULL:
    """The packed GEMM in ``capsule`` (cyconv._pointwise.packed_gemms()[dtype]), or NULL for None.

    A capsule of the other dtype raises ValueError (its name is its C type).
    """
    if capsule is None:
        return NULL
    if floating is float:
        return PyCapsule_GetPointer(capsule, b"cyconv_pg_gemm_float")
    return PyCapsule_GetPointer(capsule, b"cyconv_pg_gemm_double")


cdef inline void _packed(void *fn, const floating *u, Py_ssize_t ldu, const floating *v,
                         Py_ssize_t ldv, bint vt, floating *m, Py_ssize_t ldm,
                         Py_ssize_t rows, Py_ssize_t depth, Py_ssize_t cols,
                         bint accumulate) noexcept nogil:
    """m (rows x cols) = (m if accumulate else 0) + u (rows x depth) @ v (transposed if vt)."""
    if floating is float:
        (<packed_float_t> fn)(u, ldu, v, ldv, vt, m, ldm, rows, depth, cols, NULL, accumulate)
    else:
        (<packed_double_t> fn)(u, ldu, v, ldv, vt, m, ldm, rows, depth, cols, NULL, accumulate)


cdef void _walk_row(blas_t *x_plane, Py_ssize_t h, Py_ssize_t w, Py_ssize_t wo,
                    Py_ssize_t row_offset, Py_ssize_t col_offset,
                    Py_ssize_t sh, Py_ssize_t sw,
                    Py_ssize_t pos_start, Py_ssize_t pos_count,
                    blas_t *row, bint fold) noexcept nogil:
    """Pair row[t] with x_plane[y, x] for output pixel pos_start + t = i*wo + j.

    y = i*sh + row_offset, x = j*sw + col_offset (one kernel tap of one channel).
    fold False (im2col): row[t] = x_plane[y, x], 0 where (y, x) is padding.
    fold True (col2im, the adjoint): x_plane[y, x] += row[t], padding dropped.
    """
    cdef Py_ssize_t t = 0, i, j, seg, y, jj, lo, hi, off
    cdef blas_t *x_row
    # The in-bounds columns (0 <= j*sw + col_offset < w) of every output row
    # form one range [full_lo, full_hi): computed once per call, not per row
    # (the divisions cost more than a short row's copy).
    cdef Py_ssize_t full_lo = first_inside(col_offset, sw)
    cdef Py_ssize_t full_hi = end_inside(col_offset, sw, w, wo)
    if full_lo > wo:
        full_lo = wo
    if full_hi < full_lo:
        full_hi = full_lo
    i = pos_start // wo
    j = pos_start - i * wo
    y = i * sh + row_offset
    # Walk the block one output-row segment at a time: output columns
    # j..j+seg-1 of output row i sit at row[off + j..off + j+seg-1].
    while t < pos_count:
        seg = wo - j
        if seg > pos_count - t:
            seg = pos_count - t
        off = t - j
        if y < 0 or y >= h:
            if not fold:
                for jj in range(j, j + seg):
                    row[off + jj] = 0
        else:
            x_row = x_plane + y * w
            lo = j if full_lo < j else (full_lo if full_lo < j + seg else j + seg)
            hi = full_hi if full_hi < j + seg else j + seg
            hi = lo if hi < lo else hi
            if fold:
                # Constant-stride loops, which the compiler vectorizes (_gather.h).
                if sw == 1:
                    for jj in range(lo, hi):
                        x_row[jj + col_offset] += row[off + jj]
                elif sw == 2 and hi > lo:
                    if blas_t is float:
                        cyconv_scatter_add2_float(x_row + 2 * lo + col_offset, row + off + lo,
                                                  hi - lo)
                    elif blas_t is double:
                        cyconv_scatter_add2_double(x_row + 2 * lo + col_offset, row + off + lo,
                                                   hi - lo)
                    else:
                        for jj in range(lo, hi):
                            x_row[2 * jj + col_offset] += row[off + jj]
                else:
                    for jj in range(lo, hi):
                        x_row[jj * sw + col_offset] += row[off + jj]
            else:
                for jj in range(j, lo):
                    row[off + jj] = 0
                if sw == 1:
                    memcpy(row + off + lo, x_row + lo + col_offset,
                           (hi - lo) * sizeof(blas_t))
                elif sw == 2 and hi > lo:
                    if blas_t is float:
                        cyconv_gather2_float(row + off + lo, x_row + 2 * lo + col_offset, hi - lo)
                    elif blas_t is double:
                        cyconv_gather2_double(row + off + lo, x_row + 2 * lo + col_offset,
                                              hi - lo)
                    else:
                        for jj in range(lo, hi):
                            row[off + jj] = x_row[2 * jj + col_offset]
                else:
                    for jj in range(lo, hi):
                        row[off + jj] = x_row[jj * sw + col_offset]
                for jj in range(hi, j + seg):
                    row[off + jj] = 0
        t += seg
        j = 0
        y += sh


cdef inline bint _is_pointwise(Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                               Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """True when im2col is the identity: a 1x1 kernel, stride 1, no padding
    (Caffe's ``is_1x1_``); dilation does not matter for one tap."""
    return kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0


cdef void _unroll(const blas_t *x, Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                  Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                  Py_ssize_t dh, Py_ssize_t dw,
                  Py_ssize_t pos_start, Py_ssize_t pos_count,
                  blas_t *cols, Py_ssize_t ld, int n_threads) noexcept nogil:
    """cols[r, t] = x[c, y, x] for output pixel pos_start + t, r = (c*kh+p)*kw+q.

    cols is (channels*kh*kw, pos_count), rows ``ld`` apart; x is (channels, h, w).
    Rows are independent, so up to ``n_threads`` threads split them (the
    GEMM drivers call it with 1: each of their threads unrolls its own block).
    """
    cdef Py_ssize_t r, c, p, q, n_rows = channels * kh * kw
    for r in prange(n_rows, schedule='guided', num_threads=n_threads,
                    use_threads_if=n_threads > 1 and n_rows > 1
                    and n_rows * pos_count >= PARALLEL_WORK):
        c = r // (kh * kw)
        p = (r // kw) % kh
        q = r % kw
        # fold False only reads the plane: dropping const is safe.
        _walk_row(<blas_t *> x + c * h * w, h, w, wo, p * dh - ph, q * dw - pw,
                  sh, sw, pos_start, pos_count, cols + r * ld, False)


# Strides of up to this many phases in all (a 3x3/2 layer has 4) unroll
# through phase planes; beyond, the sh*sw planes would serve few taps each.
cdef enum:
    MAX_PHASES = 16


cdef void _split_phases(const blas_t *x_plane, Py_ssize_t h, Py_ssize_t w,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t dh, Py_ssize_t dw,
                        Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t y0, Py_ssize_t x0,
                        Py_ssize_t nu, Py_ssize_t wo, Py_ssize_t ew,
                        blas_t *planes, blas_t *edges) noexcept nogil:
    """One channel's zero-padded image split by stride phase (a < sh, b < sw):

    planes[a, b, u, v] = x_plane[y0 + a + u*sh, x0 + b + v*sw] for v < wo,
    edges[a, b, u, e] the same at v = wo + e, e < ew (0 outside the image),
    for the phases that a tap reads (_phase_read).
    """
    cdef Py_ssize_t a, b, u, v, e, off, lo, hi, elo, ehi, u_lo, u_hi, row
    cdef blas_t *dst
    for b in range(sw):
        if not _phase_read(b, kw, dw, sw):
            continue
        # The in-bounds columns of phase b, the same in every row.
        off = x0 + b
        lo = _clamp(first_inside(off, sw), 0, wo)
        hi = _clamp(end_inside(off, sw, w, wo), lo, wo)
        elo = _clamp(first_inside(off + wo * sw, sw), 0, ew)
        ehi = _clamp(end_inside(off + wo * sw, sw, w, ew), elo, ew)
        for a in range(sh):
            if not _phase_read(a, kh, dh, sh):
                continue
            # Rows u_lo..u_hi-1 lie in the image, the others in the padding.
            u_lo = _clamp(first_inside(y0 + a, sh), 0, nu)
            u_hi = _clamp(end_inside(y0 + a, sh, h, nu), u_lo, nu)
            row = (a * sw + b) * nu
            for u in range(u_lo):
                _zero(planes + (row + u) * wo, wo)
                _zero(edges + (row + u) * ew, ew)
            for u in range(u_hi, nu):
                _zero(planes + (row + u) * wo, wo)
                _zero(edges + (row + u) * ew, ew)
            if u_hi > u_lo:
                if blas_t is float:
                    cyconv_phase_rows_float(planes + (row + u_lo) * wo, edges + (row + u_lo) * ew,
                                            x_plane + (y0 + a + u_lo * sh) * w + off, sh * w,
                                            u_hi - u_lo, sw, wo, lo, hi, ew, elo, ehi)
                elif blas_t is double:
                    cyconv_phase_rows_double(planes + (row + u_lo) * wo,
                                             edges + (row + u_lo) * ew,
                                             x_plane + (y0 + a + u_lo * sh) * w + off, sh * w,
                                             u_hi - u_lo, sw, wo, lo, hi, ew, elo, ehi)
                else:
                    for u in range(u_lo, u_hi):
                        dst = planes + (row + u) * wo
                        for v in range(wo):
                            dst[v] = (x_plane[(y0 + a + u * sh) * w + off + v * sw]
                                      if lo <= v < hi else 0)
                        for e in range(ew):
                            edges[(row + u) * ew + e] = (
                                x_plane[(y0 + a + u * sh) * w + off + (wo + e) * sw]
                                if elo <= e < ehi else 0)


cdef inline bint _phase_read(Py_ssize_t phase, Py_ssize_t k, Py_ssize_t d,
                             Py_ssize_t s) noexcept nogil:
    """Whether a tap p < k reads phase ``phase`` (p*d % s): not all do when k*d < s."""
    cdef Py_ssize_t p
    for p in range(k if k < s else s):
        if p * d % s == phase:
            return True
    return False


cdef inline Py_ssize_t _clamp(Py_ssize_t v, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef inline void _zero(blas_t *dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t v
    for v in range(n):
        dst[v] = 0


cdef inline Py_ssize_t _phase_rows(Py_ssize_t count, Py_ssize_t wo, Py_ssize_t kh,
                                   Py_ssize_t sh, Py_ssize_t dh) noexcept nogil:
    """Rows of each phase plane that a block of ``count`` output pixels reads (at most)."""
    return (count - 1) // wo + 2 + (kh - 1) * dh // sh


cdef void _unroll_phased(const blas_t *x, Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                         Py_ssize_t dh, Py_ssize_t dw,
                         Py_ssize_t pos_start, Py_ssize_t pos_count,
                         blas_t *cols, Py_ssize_t ld, blas_t *phases) noexcept nogil:
    """_unroll's cols (one thread, rows ``ld`` apart) through each channel's phase planes.

    Tap (p, q) of output pixel (i, j) reads phase (p*dh % sh, q*dw % sw) at
    (i - i0 + p*dh // sh, j + q*dw // sw). The planes are wo wide, so a row
    of cols is one contiguous run of a plane (the image's bounds and the
    stride dealt with once per channel, not in ho segments per row), and the
    last q*dw // sw pixels of each output row, which the run takes from the
    next plane row, are then written from the edge columns. ``phases``
    holds sh*sw*nu*(wo + ew) elements, nu = _phase_rows(pos_count, ...),
    ew = (kw-1)*dw // sw.
    """
    cdef Py_ssize_t i0 = pos_start // wo, i_end = (pos_start + pos_count - 1) // wo + 1
    cdef Py_ssize_t nu = i_end - i0 + (kh - 1) * dh // sh, ew = (kw - 1) * dw // sw
    cdef Py_ssize_t plane = nu * wo, j0 = pos_start - i0 * wo
    # The edges follow the planes: a run that reads past the last plane stays in the buffer.
    cdef blas_t *edges = phases + sh * sw * plane
    cdef Py_ssize_t c, p, q, du, dv, phase, i, j, t, j_lo
    cdef const blas_t *src
    cdef blas_t *row
    for c in range(channels):
        _split_phases(x + c * h * w, h, w, kh, kw, dh, dw, sh, sw, i0 * sh - ph, -pw,
                      nu, wo, ew, phases, edges)
        for p in range(kh):
            du = p * dh // sh
            for q in range(kw):
                dv = q * dw // sw
                phase = (p * dh % sh) * sw + q * dw % sw
                src = phases + phase * plane + du * wo + dv + j0
                row = cols + ((c * kh + p) * kw + q) * ld
                memcpy(row, src, pos_count * sizeof(blas_t))
                if dv == 0:
                    continue
                # Output pixels j >= wo - dv of each row (all of a row
                # narrower than dv): edge columns j + dv - wo.
                for i in range(i0, i_end):
                    j_lo = wo - dv if dv < wo else 0
                    if i == i0 and j_lo < j0:
                        j_lo = j0
                    for j in range(j_lo, wo):
                        t = i * wo + j - pos_start
                        if t >= pos_count:
                            break
                        row[t] = edges[(phase * nu + i - i0 + du) * ew + j + dv - wo]


cdef inline Py_ssize_t _phase_len(Py_ssize_t block, Py_ssize_t ho, Py_ssize_t wo,
                                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                                  Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """Elements of the phase planes for blocks of ``block`` output pixels, or 0 where
    the walker unrolls: stride 1, blocks shorter than an output row, more than
    MAX_PHASES phases, or taps reaching further than the output plus the
    kernel (huge dilation over huge padding), where the planes would outgrow
    the image (or the sizes overflow).
    """
    if ((sh == 1 and sw == 1) or block < wo or sh > MAX_PHASES or sw > MAX_PHASES
            or sh * sw > MAX_PHASES
            or (kh > 1 and dh > (ho + kh + 1) * sh // (kh - 1))
            or (kw > 1 and dw > (wo + kw + 1) * sw // (kw - 1))):
        return 0
    cdef Py_ssize_t rows = _phase_rows(block, wo, kh, sh, dh)
    cdef Py_ssize_t most = ho + (kh - 1) * dh // sh
    return sh * sw * (rows if rows < most else most) * (wo + (kw - 1) * dw // sw)


def phase_scratch(Py_ssize_t block, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t kh,
                  Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw):
    """Elements of the phase planes (_unroll_phased) for blocks of up to ``block`` output pixels.

    0 where the unroll does not take them (_phase_len).
    """
    return _phase_len(block, ho, wo, kh, kw, sh, sw, dh, dw)


cdef void _fold(const blas_t *cols, Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t pos_start, Py_ssize_t pos_count,
                blas_t *x, int n_threads) noexcept nogil:
    """x[c, y, x] += cols[r, t] (the adjoint of _unroll; padding entries dropped).

    The taps of one channel overlap in x, so up to ``n_threads`` threads
    split channels only.
    """
    cdef Py_ssize_t c, p, q, r
    for c in prange(channels, schedule='guided', num_threads=n_threads,
                    use_threads_if=n_threads > 1 and channels > 1
                    and channels * kh * kw * pos_count >= PARALLEL_WORK):
        for p in range(kh):
            for q in range(kw):
                r = (c * kh + p) * kw + q
                # fold True only reads cols: dropping const is safe.
                _walk_row(x + c * h * w, h, w, wo, p * dh - ph, q * dw - pw,
                          sh, sw, pos_start, pos_count, <blas_t *> cols + r * pos_count, True)


cdef inline Py_ssize_t gather_row_len(Py_ssize_t w, Py_ssize_t sw) noexcept nogil:
    """The row sums _gather_fold keeps: sw phases of ceil(w / sw) values."""
    return sw * ((w + sw - 1) // sw)


cdef void _gather_fold(const floating *cols, Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t n_pos, Py_ssize_t wo,
                       Py_ssize_t sw, const Py_ssize_t *tap_rows, const Py_ssize_t *tap_cols,
                       floating *x, floating *sums) noexcept nogil:
    """x[c, y, x] = the sum of cols[r, t] over the taps that land there: _fold of whole images.

    ``cols`` holds all n_pos output pixels of ``channels`` channels. Each
    element of x is written once (no zeroed x, no read-modify-write per tap):
    per image row y and column phase rx (the columns x = rx + sw*u), tap
    (p, q) reads cols row ``i = tap_rows[y, p]`` (< 0: none) at columns
    ``u + tap_cols[rx, q]`` (wo: none), summed contiguously into ``sums``
    (gather_row_len(w, sw) values), then interleaved into the row. Taps are
    added in _fold's order (p, then q), so the sums round alike.
    """
    cdef Py_ssize_t span = (w + sw - 1) // sw, phases = sw if sw < w else w
    cdef Py_ssize_t c, y, p, q, rx, n_u, i, d, lo, hi, u
    cdef bint empty
    cdef const floating *src
    cdef floating *acc
    cdef floating *row
    for c in range(channels):
        for y in range(h):
            row = x + (c * h + y) * w
            for rx in range(phases):
                n_u = (w - rx + sw - 1) // sw
                acc = sums + rx * span
                empty = True
                for p in range(kh):
                    i = tap_rows[y * kh + p]
                    if i < 0:
                        continue
                    for q in range(kw):
                        d = tap_cols[rx * kw + q]
                        lo = -d if d < 0 else 0
                        hi = wo - d if wo - d < n_u else n_u
                        if hi <= lo:
                            continue
                        src = cols + ((c * kh + p) * kw + q) * n_pos + i * wo + d
                        if empty:
                            # The first tap is copied (0 + v is v, -0.0 aside).
                            if lo != 0 or hi != n_u:
                                memset(acc, 0, n_u * sizeof(floating))
                            else:
                                memcpy(acc, src, n_u * sizeof(floating))
                                empty = False
                                continue
                            empty = False
                        if floating is float:
                            cyconv_add_float(acc + lo, src + lo, hi - lo)
                        else:
                            cyconv_add_double(acc + lo, src + lo, hi - lo)
                if empty:
                    memset(acc, 0, n_u * sizeof(floating))
            if sw == 2 and w >= 2:
                if floating is float:
                    cyconv_interleave2_float(row, sums, sums + span, w // 2)
                else:
                    cyconv_interleave2_double(row, sums, sums + span, w // 2)
                if w % 2:
                    row[w - 1] = sums[span - 1]
            else:
                for rx in range(phases):
                    for u in range((w - rx + sw - 1) // sw):
                        row[rx + sw * u] = sums[rx * span + u]


def im2col(const blas_t[:, :, :, ::1] x, blas_t[:, :, ::1] cols,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
           Py_ssize_t dh, Py_ssize_t dw):
    """cols[n, (c*kh+p)*kw+q, i*wo+j] = x[n, c, i*sh-ph+p*dh, j*sw-pw+q*dw] (0 in the padding).

    Invariants: x (N, C, H, W) and cols (N, C*kh*kw, ho*wo) C-contiguous and
    non-empty, ho and wo the output size for these parameters.
    """
    cdef Py_ssize_t n_batch = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t rows = cols.shape[1], n_pos = cols.shape[2], n
    cdef const blas_t *x_p = &x[0, 0, 0, 0]
    cdef blas_t *cols_p = &cols[0, 0, 0]
    with nogil:
        for n in range(n_batch):
            _unroll(x_p + n * channels * h * w, channels, h, w, kh, kw, wo,
                    sh, sw, ph, pw, dh, dw, 0, n_pos, cols_p + n * rows * n_pos, n_pos,
                    kernel_threads())


cdef void _forward_block(const blas_t *x_group, const blas_t *w_group, const blas_t *bias_group,
                         bint has_bias, blas_t *out_group, blas_t *cols,
                         Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w, Py_ssize_t kg,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo, Py_ssize_t n_pos,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                         Py_ssize_t dh, Py_ssize_t dw, bint pointwise, blas_t *phases,
                         Py_ssize_t start, Py_ssize_t count) noexcept nogil:
    """Output pixels start..start+count-1 of one (image, group): unroll, then one GEMM.

    The unroll goes through phase planes where ``phases`` is not NULL.
    """
    cdef Py_ssize_t k, t, q_len = cg * kh * kw
    # beta = 1 accumulates onto the bias written first; beta = 0 overwrites.
    cdef blas_t beta = 1 if has_bias else 0
    if has_bias:
        for k in range(kg):
            for t in range(start, start + count):
                out_group[k * n_pos + t] = bias_group[k]
    if pointwise:
        gemm(False, False, kg, count, q_len, 1, w_group, q_len,
             x_group + start, n_pos, beta, out_group + start, n_pos)
        return
    _unroll_block(x_group, cg, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw, phases, start, count,
                  cols, count)
    gemm(False, False, kg, count, q_len, 1, w_group, q_len, cols, count,
         beta, out_group + start, n_pos)


cdef inline void _unroll_block(const blas_t *x_group, Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                               Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                               Py_ssize_t dh, Py_ssize_t dw, blas_t *phases,
                               Py_ssize_t start, Py_ssize_t count, blas_t *cols,
                               Py_ssize_t ld) noexcept nogil:
    """One thread's unroll of pixels start..start+count-1, through phase planes where
    ``phases`` is not NULL; rows ``ld`` apart."""
    if phases != NULL:
        _unroll_phased(x_group, cg, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw, start, count,
                       cols, ld, phases)
    else:
        _unroll(x_group, cg, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw, start, count, cols,
                ld, 1)


cdef void _forward_images(const blas_t *x_group, Py_ssize_t x_image,
                          const blas_t *w_group, const blas_t *bias_group, bint has_bias,
                          blas_t *out_group, Py_ssize_t out_image, blas_t *cols,
                          Py_ssize_t n_images, Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w,
                          Py_ssize_t kg, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                          Py_ssize_t n_pos, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                          Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                          blas_t *phases) noexcept nogil:
    """One group of ``n_images`` whole images (``x_image``, ``out_image`` apart): their
    columns side by side, one GEMM, each image's block copied out with the bias.

    A small image's own GEMM is narrow (49 columns for 7x7 outputs), which
    OpenBLAS runs well below its rate on wide ones (see
    cyconv._conv.IM2COL_BATCH_COLUMNS for the measured effect). ``cols`` holds Q * n_images * n_pos elements, then the product's
    Kg * n_images * n_pos.
    """
    cdef Py_ssize_t q_len = cg * kh * kw, width = n_images * n_pos, i, k, t
    cdef blas_t *product = cols + q_len * width
    cdef const blas_t *src
    cdef blas_t *dst
    cdef blas_t b
    for i in range(n_images):
        _unroll_block(x_group + i * x_image, cg, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw,
                      phases, 0, n_pos, cols + i * n_pos, width)
    gemm(False, False, kg, width, q_len, 1, w_group, q_len, cols, width, 0, product, width)
    for i in range(n_images):
        for k in range(kg):
            b = bias_group[k] if has_bias else 0
            src = product + k * width + i * n_pos
            dst = out_group + i * out_image + k * n_pos
            for t in range(n_pos):
                dst[t] = src[t] + b


def conv2d_forward(const blas_t[:, :, :, ::1] x,
                   const blas_t[:, :, :, ::1] weight,
                   const blas_t[::1] bias, bint has_bias,
                   blas_t[:, :, :, ::1] out,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                   blas_t[:, ::1] workspace, blas_t[:, ::1] phases, int n_threads,
                   Py_ssize_t images=1):
    """out[n, g-block] = weight[g-block] @ im2col(x[n, g-channels]) (+ bias[k]).

    Tasks of (image, group, block of output pixels), taken in turn by
    ``n_threads`` threads: each unrolls its block into its own workspace row
    and runs the GEMM on one BLAS thread (see cyconv._threads). A block holds
    at most ``workspace.shape[1] // Q`` pixels (Q = Cg*kh*kw; the caller
    makes it >= 1). A 1x1 kernel at stride 1 without padding multiplies the
    input planes directly (Caffe's ``is_1x1_``), with no unrolling. With
    ``images`` > 1 (not that 1x1 case), tasks of (group, run of that many
    whole images) instead, their columns side by side in one GEMM
    (_forward_images): workspace rows of at least (Q + Kg) * images * ho*wo.

    Invariants: as conv2d_forward in _direct, plus Kg, Q and ho*wo fit in a
    C int (checked in Python), bias (K,) even when has_bias is False,
    workspace (>= n_threads, ...), n_threads >= 1. A strided kernel unrolls
    through phase planes (_unroll_phased) where each row of ``phases``
    (>= n_threads rows) holds phase_scratch(block, ...) elements.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t kg = n_out // groups, q_len = cg * kh * kw, n_pos = ho * wo
    cdef bint pointwise = _is_pointwise(kh, kw, sh, sw, ph, pw)
    cdef bint batched = images > 1 and not pointwise
    cdef Py_ssize_t block = n_pos if batched else even_part(
        n_pos, workspace.shape[1] // q_len, n_batch * groups, n_threads)
    cdef Py_ssize_t n_blocks = (n_pos + block - 1) // block, tasks = n_batch * groups * n_blocks
    cdef Py_ssize_t runs = (n_batch + images - 1) // images
    cdef Py_ssize_t task, n, g, start
    cdef const blas_t *x_p = &x[0, 0, 0, 0]
    cdef const blas_t *w_p = &weight[0, 0, 0, 0]
    cdef blas_t *out_p = &out[0, 0, 0, 0]
    cdef blas_t *ws_p = &workspace[0, 0]
    cdef Py_ssize_t ws_row = workspace.shape[1], ph_row = phases.shape[1]
    cdef Py_ssize_t ph_len = _phase_len(block, ho, wo, kh, kw, sh, sw, dh, dw)
    cdef bint phased = not pointwise and 0 < ph_len <= ph_row
    cdef blas_t *ph_p = &phases[0, 0]
    if batched:
        if ws_row < (q_len + kg) * images * n_pos:
            raise ValueError("conv2d_forward: workspace rows too short for the images")
        with nogil:
            for task in prange(groups * runs, schedule='dynamic', num_threads=n_threads,
                               use_threads_if=n_threads > 1 and groups * runs > 1):
                g = task % groups
                n = task // groups * images
                _forward_images(x_p + (n * n_in + g * cg) * h * w, n_in * h * w,
                                w_p + g * kg * q_len, &bias[g * kg], has_bias,
                                out_p + (n * n_out + g * kg) * n_pos, n_out * n_pos,
                                ws_p + threadid() * ws_row,
                                images if images < n_batch - n else n_batch - n,
                                cg, h, w, kg, kh, kw, wo, n_pos, sh, sw, ph, pw, dh, dw,
                                ph_p + threadid() * ph_row if phased else NULL)
        return
    with nogil:
        for task in prange(tasks, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1):
            n = task // (groups * n_blocks)
            g = task // n_blocks % groups
            start = task % n_blocks * block
            _forward_block(x_p + (n * n_in + g * cg) * h * w, w_p + g * kg * q_len,
                           &bias[g * kg], has_bias, out_p + (n * n_out + g * kg) * n_pos,
                           ws_p + threadid() * ws_row, cg, h, w, kg, kh, kw, wo, n_pos,
                           sh, sw, ph, pw, dh, dw, pointwise,
                           ph_p + threadid() * ph_row if phased else NULL,
                           start, block if block < n_pos - start else n_pos - start)


# Backward pass: col2im (the adjoint of _unroll) and the gradient GEMMs
# dW = dY @ cols.T and dcols = W.T @ dY (Caffe base_conv_layer.cpp).

def col2im(const floating[:, :, ::1] cols, floating[:, :, :, ::1] x,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
           Py_ssize_t dh, Py_ssize_t dw):
    """x[n, c, i*sh-ph+p*dh, j*sw-pw+q*dw] += cols[n, (c*kh+p)*kw+q, i*wo+j] (padding dropped).

    Invariants: cols (N, C*kh*kw, ho*wo) and x (N, C, H, W) C-contiguous and
    non-empty, x zero-filled, ho and wo the output size for these parameters.
    """
    cdef Py_ssize_t n_batch = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t rows = cols.shape[1], n_pos = cols.shape[2], n
    cdef const floating *cols_p = &cols[0, 0, 0]
    cdef floating *x_p = &x[0, 0, 0, 0]
    with nogil:
        for n in range(n_batch):
            _fold(cols_p + n * rows * n_pos, channels, h, w, kh, kw, wo,
                  sh, sw, ph, pw, dh, dw, 0, n_pos, x_p + n * channels * h * w,
                  kernel_threads())


cdef void _grad_weight_block(const floating *x_group, const floating *gy_group,
                             floating *gw_group, floating *cols,
                             Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w, Py_ssize_t kg,
                             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo, Py_ssize_t n_pos,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t dh, Py_ssize_t dw, bint pointwise, floating *phases,
                             Py_ssize_t start, Py_ssize_t count, void *packed) noexcept nogil:
    """gw_group += grad_out[pixels start..start+count-1] @ their unrolled columns.T.

    The unroll goes through phase planes where ``phases`` is not NULL; the
    product is the packed GEMM's where ``packed`` is not NULL.
    """
    cdef Py_ssize_t q_len = cg * kh * kw, ld = n_pos
    cdef const floating *v = x_group + start
    if not pointwise:
        _unroll_block(x_group, cg, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw, phases, start,
                      count, cols, count)
        v, ld = cols, count
    if packed != NULL:
        _packed(packed, gy_group + start, n_pos, v, ld, True, gw_group, q_len,
                kg, count, q_len, True)
    else:
        gemm(False, True, kg, q_len, count, 1, gy_group + start, n_pos, v, ld, 1, gw_group,
             q_len)


def conv2d_grad_weight(const floating[:, :, :, ::1] x,
                       const floating[:, :, :, ::1] grad_out,
                       floating[:, ::1] grad_weight,
                       Py_ssize_t kh, Py_ssize_t kw,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                       Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                       floating[:, ::1] workspace, floating[:, ::1] phases, int n_threads,
                       object packed=None):
    """grad_weight[t] += sum over thread t's tasks of grad_out[n, g-block] @ im2col(x[n, g-channels]).T.

    Tasks of (image, group, block of output pixels), split statically over
    ``n_threads`` threads (the same split, so the same sums, on every run);
    thread t accumulates into its own row ``grad_weight[t]`` (a flattened
    (K, Cg, kh, kw) gradient, beta = 1), and the caller adds the rows. A block
    holds at most ``workspace.shape[1] // Q`` pixels (Q = Cg*kh*kw; the
    caller makes it >= 1). A 1x1 kernel at stride 1 without padding
    multiplies by the input planes directly. The products are OpenBLAS's
    (held at one thread by the caller), or with ``packed`` (a capsule of
    cyconv._pointwise.packed_gemms() for this dtype) cyconv's packed GEMM.

    Invariants: as conv2d_grad_weight in _direct, plus grad_weight
    (>= n_threads, K*Q) zero-filled, workspace (>= n_threads, ...), Kg, Q
    and ho*wo fit in a C int (checked in Python), n_threads >= 1. Phase
    planes as in conv2d_forward.
    """
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t n_out = grad_out.shape[1], wo = grad_out.shape[3]
    cdef Py_ssize_t n_pos = grad_out.shape[2] * wo
    cdef Py_ssize_t kg = n_out // groups, cg = n_in // groups, q_len = cg * kh * kw
    cdef Py_ssize_t block = even_part(n_pos, workspace.shape[1] // q_len, n_batch * groups,
                                      n_threads)
    cdef Py_ssize_t n_blocks = (n_pos + block - 1) // block, tasks = n_batch * groups * n_blocks
    cdef bint pointwise = _is_pointwise(kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t task, n, g, start, thread
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *gy_p = &grad_out[0, 0, 0, 0]
    cdef floating *gw_p = &grad_weight[0, 0]
    cdef floating *ws_p = &workspace[0, 0]
    cdef Py_ssize_t ws_row = workspace.shape[1], gw_row = grad_weight.shape[1]
    cdef Py_ssize_t ph_row = phases.shape[1]
    cdef Py_ssize_t ph_len = _phase_len(block, grad_out.shape[2], wo, kh, kw, sh, sw, dh, dw)
    cdef bint phased = not pointwise and 0 < ph_len <= ph_row
    cdef floating *ph_p = &phases[0, 0]
    cdef void *packed_p = _packed_pointer(packed, <floating> 0)
    with nogil:
        for task in prange(tasks, schedule='static', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1):
            n = task // (groups * n_blocks)
            g = task // n_blocks % groups
            start = task % n_blocks * block
            thread = threadid()
            _grad_weight_block(x_p + (n * n_in + g * cg) * h * w,
                               gy_p + (n * n_out + g * kg) * n_pos,
                               gw_p + thread * gw_row + g * kg * q_len, ws_p + thread * ws_row,
                               cg, h, w, kg, kh, kw, wo, n_pos, sh, sw, ph, pw, dh, dw,
                               pointwise, ph_p + thread * ph_row if phased else NULL, start,
                               block if block < n_pos - start else n_pos - start, packed_p)


cdef void _grad_input_channels(const floating *gy_group, const floating *w_group,
                               const floating *wt_group, floating *gx_group, floating *cols,
                               Py_ssize_t c0, Py_ssize_t n_channels, Py_ssize_t block,
                               Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w, Py_ssize_t kg,
                               Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo, Py_ssize_t n_pos,
                               Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                               Py_ssize_t dh, Py_ssize_t dw, bint pointwise,
                               const Py_ssize_t *tap_rows, const Py_ssize_t *tap_cols,
                               floating *sums, void *packed) noexcept nogil:
    """Input channels c0..c0+n_channels-1 of one (image, group): (W.T @ dY) folded, block by block.

    Their rows of W.T are columns c0*kh*kw.. of W (lda Q), or with
    ``packed`` (the packed GEMM) rows c0*kh*kw.. of ``wt_group``, the
    group's W.T; the blocks fold into the same planes, so one task does
    them all in turn. With ``sums`` (not NULL) the block is the whole image
    and _gather_fold writes the planes.
    """
    cdef Py_ssize_t q_len = cg * kh * kw, taps = kh * kw, start, count, ld
    cdef floating *dst
    cdef floating *gx_channels = gx_group + c0 * h * w
    start = 0
    while start < n_pos:
        count = n_pos - start if sums != NULL or block > n_pos - start else block
        dst, ld = cols, count
        if pointwise:  # the product lands in the planes themselves
            dst, ld = gx_channels + start, n_pos
        if packed != NULL:
            _packed(packed, wt_group + c0 * taps * kg, kg, gy_group + start, n_pos, False,
                    dst, ld, n_channels * taps, kg, count, False)
        else:
            gemm(True, False, n_channels * taps, count, kg, 1, w_group + c0 * taps, q_len,
                 gy_group + start, n_pos, 0, dst, ld)
        if sums != NULL:
            _gather_fold(cols, n_channels, h, w, kh, kw, n_pos, wo, sw, tap_rows, tap_cols,
                         gx_channels, sums)
        elif not pointwise:
            _fold(cols, n_channels, h, w, kh, kw, wo, sh, sw, ph, pw, dh, dw,
                  start, count, gx_channels, 1)
        start += count


cdef void _grad_input_images(const floating *gy_group, Py_ssize_t gy_image,
                             const floating *w_group, const floating *wt_group,
                             floating *gx_group, Py_ssize_t gx_image, floating *cols,
                             Py_ssize_t n_images, Py_ssize_t cg, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t kg, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                             Py_ssize_t n_pos, Py_ssize_t sw, const Py_ssize_t *tap_rows,
                             const Py_ssize_t *tap_cols, void *packed) noexcept nogil:
    """One group of ``n_images`` whole images: W.T @ their grad_output rows side by side
    (copied so), then each image's block of columns gathered into its planes.

    ``cols`` holds Q * n_images * n_pos elements (the product), then Kg *
    n_images * n_pos (grad_output's rows), then _gather_fold's row sums.
    """
    cdef Py_ssize_t q_len = cg * kh * kw, width = n_images * n_pos, i, k
    cdef floating *gy_rows = cols + q_len * width
    cdef floating *sums = gy_rows + kg * width
    for i in range(n_images):
        for k in range(kg):
            memcpy(gy_rows + k * width + i * n_pos, gy_group + i * gy_image + k * n_pos,
                   n_pos * sizeof(floating))
    if packed != NULL:
        _packed(packed, wt_group, kg, gy_rows, width, False, cols, width, q_len, kg, width,
                False)
    else:
        gemm(True, False, q_len, width, kg, 1, w_group, q_len, gy_rows, width, 0, cols, width)
    for i in range(n_images):
        # _gather_fold reads its n_pos argument as the columns' row stride.
        _gather_fold(cols + i * n_pos, cg, h, w, kh, kw, width, wo, sw, tap_rows, tap_cols,
                     gx_group + i * gx_image, sums)


def conv2d_grad_input(const floating[:, :, :, ::1] grad_out,
                      const floating[:, :, :, ::1] weight,
                      floating[:, :, :, ::1] grad_input,
                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                      const Py_ssize_t[:, ::1] tap_rows, const Py_ssize_t[:, ::1] tap_cols,
                      floating[:, ::1] workspace, int n_threads,
                      object packed=None, const floating[:, :, ::1] weight_t=None,
                      Py_ssize_t images=1):
    """grad_input[n, g-channels] = col2im(weight[g-block].T @ grad_out[n, g-block]).

    Tasks of (image, group, run of input channels) -- disjoint planes, so no
    two threads fold into the same cell --, taken in turn by ``n_threads``
    threads, each with its own workspace row and BLAS on one thread. Each
    task runs blocks of at most ``workspace.shape[1] // Q`` output pixels
    (Q = Cg*kh*kw; the caller makes it >= 1). A 1x1 kernel at stride 1
    without padding writes the product directly. With ``tap_rows`` (h, kh)
    and ``tap_cols`` (min(sw, w), kw) (_gather_fold's tables, which
    cyconv._backward makes; else None) and workspace rows of at least
    ``gather_workspace(...)``, each task's GEMM covers the whole image and
    _gather_fold writes every element of its planes. The products are
    OpenBLAS's (held at one thread by the caller), or with ``packed`` (as in
    conv2d_grad_weight) and ``weight_t`` (G, Q, Kg), each group's block of
    the weight transposed, cyconv's packed GEMM. With ``images`` > 1 and the
    tap tables, tasks of (group, run of that many whole images) instead
    (_grad_input_images): workspace rows of at least (Q + Kg) * images *
    ho*wo + gather_row_len(w, sw).

    Invariants: as conv2d_grad_input in _direct, plus Kg, Q and ho*wo fit in
    a C int (checked in Python), grad_input zero-filled unless gathering
    or in the pointwise case, workspace (>= n_threads, ...), n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = grad_input.shape[0], n_in = grad_input.shape[1]
    cdef Py_ssize_t h = grad_input.shape[2], w = grad_input.shape[3]
    cdef Py_ssize_t n_out = grad_out.shape[1], wo = grad_out.shape[3]
    cdef Py_ssize_t n_pos = grad_out.shape[2] * wo
    cdef Py_ssize_t cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t kg = n_out // groups, q_len = cg * kh * kw
    cdef Py_ssize_t block = workspace.shape[1] // q_len
    cdef Py_ssize_t run = even_part(cg, cg, n_batch * groups, n_threads)
    cdef Py_ssize_t n_runs = (cg + run - 1) // run, tasks = n_batch * groups * n_runs
    cdef bint pointwise = _is_pointwise(kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t task, n, g, c0
    cdef const floating *gy_p = &grad_out[0, 0, 0, 0]
    cdef const floating *w_p = &weight[0, 0, 0, 0]
    cdef floating *gx_p = &grad_input[0, 0, 0, 0]
    cdef floating *ws_p = &workspace[0, 0]
    cdef Py_ssize_t ws_row = workspace.shape[1]
    cdef floating *ws_t
    cdef bint gather = tap_rows is not None and not pointwise
    cdef const Py_ssize_t *rows_p = NULL
    cdef const Py_ssize_t *cols_p = NULL
    cdef void *packed_p = _packed_pointer(packed, <floating> 0)
    cdef const floating *wt_p = NULL
    if packed_p != NULL:
        if (weight_t is None or weight_t.shape[0] != groups or weight_t.shape[1] != q_len
                or weight_t.shape[2] != kg):
            raise ValueError("conv2d_grad_input: weight_t does not fit")
        wt_p = &weight_t[0, 0, 0]
    if gather:
        if (ws_row < gather_workspace(cg, kh, kw, n_pos, w, sw)
                or tap_rows.shape[0] != h or tap_rows.shape[1] != kh or tap_cols is None
                or tap_cols.shape[0] != (sw if sw < w else w) or tap_cols.shape[1] != kw):
            raise ValueError("conv2d_grad_input: workspace or tap tables do not fit")
        rows_p = &tap_rows[0, 0]
        cols_p = &tap_cols[0, 0]
    cdef Py_ssize_t runs = (n_batch + images - 1) // images
    if gather and images > 1:
        if ws_row < (q_len + kg) * images * n_pos + gather_row_len(w, sw):
            raise ValueError("conv2d_grad_input: workspace rows too short for the images")
        with nogil:
            for task in prange(groups * runs, schedule='dynamic', num_threads=n_threads,
                               use_threads_if=n_threads > 1 and groups * runs > 1):
                g = task % groups
                n = task // groups * images
                _grad_input_images(gy_p + (n * n_out + g * kg) * n_pos, n_out * n_pos,
                                   w_p + g * kg * q_len,
                                   wt_p + g * q_len * kg if wt_p != NULL else NULL,
                                   gx_p + (n * n_in + g * cg) * h * w, n_in * h * w,
                                   ws_p + threadid() * ws_row,
                                   images if images < n_batch - n else n_batch - n,
                                   cg, h, w, kg, kh, kw, wo, n_pos, sw, rows_p, cols_p,
                                   packed_p)
        return
    with nogil:
        for task in prange(tasks, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1):
            n = task // (groups * n_runs)
            g = task // n_runs % groups
            c0 = task % n_runs * run
            ws_t = ws_p + threadid() * ws_row
            _grad_input_channels(gy_p + (n * n_out + g * kg) * n_pos, w_p + g * kg * q_len,
                                 wt_p + g * q_len * kg if wt_p != NULL else NULL,
                                 gx_p + (n * n_in + g * cg) * h * w, ws_t,
                                 c0, run if run < cg - c0 else cg - c0, block,
                                 cg, h, w, kg, kh, kw, wo, n_pos, sh, sw, ph, pw, dh, dw,
                                 pointwise, rows_p, cols_p,
                                 ws_t + q_len * n_pos if gather else NULL, packed_p)


cpdef Py_ssize_t gather_workspace(Py_ssize_t cg, Py_ssize_t kh, Py_ssize_t kw,
                                  Py_ssize_t n_pos, Py_ssize_t w, Py_ssize_t sw):
    """The workspace row that gathering needs: one image's columns and the row sums."""
    return cg * kh * kw * n_pos + gather_row_len(w, sw)

