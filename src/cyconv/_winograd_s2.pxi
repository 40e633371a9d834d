# 3-wide kernels at stride 2 along the rows: Winograd's F(2, 3) in the row direction.
#
# Included by _winograd.pyx (compiled in the Winograd kernels' module: a
# module of its own, per SIMD level, made the wheel 367 KB larger).
#
# Two neighbouring outputs of a row, y0 and y1, read the five pixels
# x0..x4 (x_r = x[4j - pw + r] for output columns 2j and 2j + 1) with the
# kernel's taps g0, g1, g2 (one kernel row): y0 = g0 x0 + g1 x1 + g2 x2 and
# y1 = g0 x2 + g1 x3 + g2 x4. The even taps meet the even pixels as a
# stride-1 correlation of two taps, whose two outputs F(2, 2) gets with three
# products; the odd tap needs two. So five products where the sum needs six:
#
#     M1 = (g0 + g2) x2,  M0 = g0 (x0 - x2),  M3 = g1 x1,
#     M2 = g2 (x4 - x2),  M4 = g1 x3
#     y0 = M1 + M0 + M3,  y1 = M1 + M2 + M4
#
# The transforms are exact sums and differences (no fractions). Over all
# channels and kernel rows, each M is a GEMM: with q = Cg*kh rows (c, p)
# and the tiles t (two outputs each) as columns,
#
#     V[s, (c, p), t]  the pixels or differences above for channel c, kernel row p
#     C1 = U[:, 0] @ V[0],  C2 = U[:, 1:3] @ V[1:3],  C3 = U[:, 2:4] @ V[3:5]
#     y0 = C1 + C2 + bias,  y1 = C1 + C3 + bias
#
# with V's five slots in the order (1, 0, 3, 4, 2) of M above and U's four
# (g0 + g2, g0, g1, g2: M3 and M4 share g1), so that the pairs summed into
# one output are one GEMM of depth 2q (``u[k, s, (c, p)]``,
# `s2_kernel_slots`). Rows
# run at any stride and dilation (a row of taps per kernel row); the width
# needs stride 2, three taps and dilation 1. 5/6 of the multiplications of
# im2col's single GEMM, of depth 3q: on N8-C128-28-K256 3x3/2 the three
# GEMMs over four images ran in 0.81x the time of im2col's per-image GEMMs
# (one thread, OpenBLAS, idle).
#
# Tasks are (group, block of output rows over all images): each thread
# transforms its block's pixels into its scratch row, runs the three GEMMs
# (_wgemm.h's packed GEMM: the layer in 0.87x the time it took with
# OpenBLAS's, which packs U again on every call) and writes the block's
# outputs.
# The input transform also checks its values: a NaN or inf read (or a
# difference that overflows) would meet the others in differences (inf -
# inf), so the caller recomputes by another method.


# The slots of V and of U (above).
cdef enum:
    S2_SLOTS = 5
    S2_KERNEL_SLOTS = 4


cdef void _s2_fill_phases(const floating *plane, Py_ssize_t h, Py_ssize_t w, Py_ssize_t sh,
                          Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t y0, Py_ssize_t rows,
                          Py_ssize_t tiles, floating *buf, floating *last) noexcept nogil:
    """The input rows a segment of output rows reads, by row phase, 4*tiles pixels wide.

    buf[(s*rows + r)*4*tiles + col] = x[(y0 + r)*sh + s - ph, col - pw] and
    last[s*rows + r] = x[that row, 4*tiles - pw] (the last tile's x4, one
    past the row), 0 outside the plane, for s < sh and r < rows; ``buf``
    has WINDOW_SLACK elements more (`window_rows`). A kernel row p then
    reads the consecutive rows of phase (p*dh) % sh from row (p*dh) // sh:
    its tiles, over all the segment's rows, one flat run of stride 4
    (`_s2_transform`).
    """
    cdef Py_ssize_t width = 4 * tiles, s, r, y
    for s in range(sh):
        for r in range(rows):
            y = (y0 + r) * sh + s - ph
            window_rows(plane, w, y, -pw, h, w, 1, width, buf + (s * rows + r) * width)
            last[s * rows + r] = (plane[y * w + width - pw]
                                  if 0 <= y < h and pw <= width < w + pw else 0)


cdef extern from "_ws2trans.h" nogil:
    float cyconv_s2_transform_float(const float *src, Py_ssize_t count, float *v,
                                    Py_ssize_t slot_step)
    double cyconv_s2_transform_double(const double *src, Py_ssize_t count, double *v,
                                      Py_ssize_t slot_step)


cdef inline floating _s2_transform(const floating *src, Py_ssize_t count, floating *v,
                                   Py_ssize_t slot_step) noexcept nogil:
    """The five slots of ``count`` tiles 4 pixels apart (src[4t .. 4t + 4]): v[s*slot_step + t].

    Returns 0 while the values are finite, else NaN (`_ws2trans.h`).
    """
    if floating is float:
        return cyconv_s2_transform_float(src, count, v, slot_step)
    else:
        return cyconv_s2_transform_double(src, count, v, slot_step)


cdef void _s2_store(const floating *c1, const floating *c2, const floating *c3, floating b,
                    floating *dst, Py_ssize_t rows, Py_ssize_t tiles, Py_ssize_t wo) noexcept nogil:
    """``rows`` output rows from the products at i*tiles + j.

    dst[i*wo + 2j] = c1 + c2 + b and dst[i*wo + 2j + 1] = c1 + c3 + b.
    """
    cdef Py_ssize_t t, i, j, pairs = wo // 2
    if wo % 2 == 0:  # the rows are one run of pairs
        for t in range(rows * tiles):
            dst[2 * t] = c1[t] + c2[t] + b
            dst[2 * t + 1] = c1[t] + c3[t] + b
        return
    for i in range(rows):
        for j in range(pairs):
            dst[2 * j] = c1[j] + c2[j] + b
            dst[2 * j + 1] = c1[j] + c3[j] + b
        dst[wo - 1] = c1[pairs] + c2[pairs] + b
        c1 += tiles
        c2 += tiles
        c3 += tiles
        dst += wo


cdef inline Py_ssize_t _s2_reach(Py_ssize_t kh, Py_ssize_t sh, Py_ssize_t dh) noexcept nogil:
    """Rows of each phase beyond a segment's own that its kernel rows read."""
    return (kh - 1) * dh // sh


cdef inline void _s2_products(const floating *u_g, Py_ssize_t ldu, const floating *v,
                              floating *prod, Py_ssize_t kg, Py_ssize_t q,
                              Py_ssize_t nt) noexcept nogil:
    """prod[i] (kg, nt) = U's columns i*q.. @ V's rows from 0, q, 3q (depth q, 2q, 2q), i < 3."""
    cdef Py_ssize_t i, first, depth
    for i in range(3):
        first = 0 if i == 0 else (q if i == 1 else 3 * q)
        depth = q if i == 0 else 2 * q
        packed_gemm(u_g + i * q, ldu, v + first * nt, nt, False, prod + i * kg * nt, nt,
                    kg, depth, nt, NULL, False)


cdef int _s2_task(const floating *x_p, const floating *u_p, const floating *bias, bint has_bias,
                  floating *out_p, floating *scratch, Py_ssize_t g, Py_ssize_t r0, Py_ssize_t nr,
                  Py_ssize_t n_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t n_out, Py_ssize_t cg,
                  Py_ssize_t kg, Py_ssize_t kh, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t sh,
                  Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh) noexcept nogil:
    """Output rows r0..r0+nr-1 (over all images) of group g; 1 if a value read was not finite.

    The rows go by segments, the rows of one image: per channel, the rows
    they read are copied once by phase (`_s2_fill_phases`), and each kernel
    row transforms its rows' tiles in one run.
    """
    cdef Py_ssize_t tiles = (wo + 1) // 2, nt = nr * tiles, q = cg * kh
    cdef Py_ssize_t reach = _s2_reach(kh, sh, dh), seg_most = ho if ho < nr else nr
    # V (S2_SLOTS, q, nt), then the products (3, kg, nt), then last (sh, seg_most + reach)
    cdef floating *v = <floating *> ((<uintptr_t> scratch + 63) & ~(<uintptr_t> 63))
    cdef floating *prod = v + S2_SLOTS * q * nt
    cdef floating *last = prod + 3 * kg * nt
    # (sh, seg_most + reach, 4*tiles), and WINDOW_SLACK elements more
    cdef floating *buf = last + sh * (seg_most + reach)
    cdef const floating *u_g = u_p + g * kg * S2_KERNEL_SLOTS * q
    cdef int ldu = S2_KERNEL_SLOTS * q
    cdef Py_ssize_t c, p, rr, img, i0, seg, rows, k, s, off, r, t
    cdef floating b, x4, total = 0
    cdef floating *dst
    rr = 0
    while rr < nr:  # segments: the block's rows of one image
        img, i0 = (r0 + rr) // ho, (r0 + rr) % ho
        seg = ho - i0 if ho - i0 < nr - rr else nr - rr
        rows = seg + reach
        buf[sh * rows * 4 * tiles] = 0  # read by the last tile's x4 (replaced below)
        for c in range(cg):
            _s2_fill_phases(x_p + (img * n_in + g * cg + c) * h * w, h, w, sh, ph, pw, i0, rows,
                         tiles, buf, last)
            for p in range(kh):
                s, off = p * dh % sh, p * dh // sh
                dst = v + (c * kh + p) * nt + rr * tiles
                total += _s2_transform(buf + (s * rows + off) * 4 * tiles, seg * tiles, dst,
                                    q * nt)
                # Each row's last tile read the next row's first pixel as its x4.
                for r in range(seg):
                    t = r * tiles + tiles - 1
                    x4 = last[s * rows + off + r] - dst[t]
                    dst[4 * q * nt + t] = x4
                    total += x4 - x4
        rr += seg
    _s2_products(u_g, ldu, v, prod, kg, q, nt)
    for k in range(kg):
        b = bias[g * kg + k] if has_bias else 0
        rr = 0
        while rr < nr:
            img, i0 = (r0 + rr) // ho, (r0 + rr) % ho
            seg = ho - i0 if ho - i0 < nr - rr else nr - rr
            t = k * nt + rr * tiles
            _s2_store(prod + t, prod + kg * nt + t, prod + 2 * kg * nt + t, b,
                      out_p + ((img * n_out + g * kg + k) * ho + i0) * wo, seg, tiles, wo)
            rr += seg
    return total != 0


def s2_kernel_slots(const floating[:, :, :, ::1] w, floating[:, :, ::1] u, int n_threads):
    """u[k, s, c*kh + p] = slot s of w[k, c, p, :]: g0 + g2, g0, g1, g2 (above).

    Invariants (checked in Python): w (K, Cg, kh, 3), u (K, 4, Cg*kh), both
    non-empty and C-contiguous; n_threads >= 1.
    """
    cdef Py_ssize_t n_out = w.shape[0], q = w.shape[1] * w.shape[2], k, r
    cdef const floating *src
    cdef floating *dst
    with nogil:
        for k in prange(n_out, schedule='static', num_threads=n_threads,
                        use_threads_if=n_threads > 1 and n_out * q >= PARALLEL_WORK):
            src = &w[k, 0, 0, 0]
            dst = &u[k, 0, 0]
            for r in range(q):
                dst[r] = src[3 * r] + src[3 * r + 2]
                dst[q + r] = src[3 * r]
                dst[2 * q + r] = src[3 * r + 1]
                dst[3 * q + r] = src[3 * r + 2]


def s2_scratch_row(Py_ssize_t rows, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t q, Py_ssize_t kg,
                Py_ssize_t kh, Py_ssize_t sh, Py_ssize_t dh):
    """Elements of one thread's scratch row for blocks of ``rows`` output rows.

    V and the products per column; the phase rows of a segment (at most ho
    rows) with their last x4 and WINDOW_SLACK elements past them; 64
    elements' room to align V.
    """
    cdef Py_ssize_t tiles = (wo + 1) // 2
    cdef Py_ssize_t seg_rows = (ho if ho < rows else rows) + _s2_reach(kh, sh, dh)
    return ((S2_SLOTS * q + 3 * kg) * rows * tiles + sh * seg_rows * (4 * tiles + 1)
            + WINDOW_SLACK + 64)


def s2_conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u,
                   const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] out,
                   Py_ssize_t kh, Py_ssize_t sh, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                   Py_ssize_t groups, Py_ssize_t block, floating[:, ::1] scratch, int n_threads):
    """out[n,k,i,j] = bias[k] + sum_{c,p,q} w[k,c,p,q] x[n, g*Cg+c, i*sh-ph+p*dh, 2j-pw+q].

    By the row-wise F(2, 3) of the module docstring: kernels kh x 3, stride
    (sh, 2), dilation (dh, 1); x is zero outside its bounds. Tasks of
    (group, block of at most ``block`` output rows over all images) that
    the ``n_threads`` threads take in turn. Returns True when every value
    read was finite; False when one was NaN or inf (or a difference
    overflowed): the caller recomputes ``out`` by another method.

    Invariants (checked in Python): x (N, C, H, W); u (K, 4, Cg*kh) the
    kernels' slots (above); bias (K,) even when has_bias is
    False; out (N, K, ho, wo); scratch (>= n_threads, >= s2_scratch_row(block,
    wo, Cg*kh, Kg)); all non-empty and C-contiguous; GEMM sizes (Kg, 5*Cg*kh,
    block*ceil(wo/2)) fit a C int; n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t q = u.shape[2], cg = q // kh, kg = n_out // groups
    cdef Py_ssize_t n_rows = n_batch * ho
    cdef Py_ssize_t part = even_part(n_rows, block, groups, n_threads)
    cdef Py_ssize_t n_parts = (n_rows + part - 1) // part
    cdef Py_ssize_t task, g, r0, nr
    cdef Py_ssize_t row = scratch.shape[1]
    cdef int bad = 0
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *u_p = &u[0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0, 0]
    cdef floating *scratch_p = &scratch[0, 0]
    with nogil:
        for task in prange(groups * n_parts, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and groups * n_parts > 1):
            g = task // n_parts
            r0 = (task % n_parts) * part
            nr = part if part < n_rows - r0 else n_rows - r0
            bad += _s2_task(x_p, &u_p[0], &bias[0], has_bias, out_p, scratch_p + threadid() * row,
                         g, r0, nr, n_in, h, w, n_out, cg, kg, kh, ho, wo, sh, ph, pw, dh)
    return bad == 0
