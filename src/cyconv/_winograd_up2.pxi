# The 4x4 stride-2 transposed convolution (a decoder's upsampling layer) by
# Winograd's F(4x4, 2x2). Included by _winograd.pyx.
#
# Along one axis, output y = 2i - p + kk sums input rows i = q - 1 and q,
# q = (y + p) // 2, with taps kk = phi + 2 and phi, phi = (y + p) % 2: every
# output is a two-tap correlation of the input, with one of two kernels
# (w[phi + 2], w[phi]) by its phase. A window of five input rows holds the
# two taps of 4 outputs of each phase, 8 consecutive output rows: F(4, 2)
# gets each phase's 4 from the window with 5 products where the sum needs 8.
# In 2-D, tile T (of the output's 8 x 8 blocks, shifted by e = -(p % 2))
# reads the 5 x 5 input window from row 4T + p // 2 - 1 and computes its
# four phases' 4 x 4 outputs with 25 products each where the sum needs 64:
# over all channels these are 25 GEMMs
#
#     M[a] = U[a] @ V[a]      (4 Kg x Cg) @ (Cg x tiles), a < 25
#
# whose 4 Kg rows are (kernel k, row phase phi, column phase psi), the
# phase kernels' transforms (`up2_transform_kernels`). The
# multiplications are 25/64 of the direct sum's (4 taps per output and
# channel); on N8-C64-28 -> K32 that is 0.69x those of F(4x4, 3x3) on the
# phase kernels laid into 3 x 3 (36 products, 4 Kg rows).
#
# Tasks are (group, block of tiles over all images), as the stride-1
# kernel's: each thread gathers and transforms its tiles' windows, runs the
# 25 products and writes its tiles' 8 x 8 outputs, the four phases
# interleaved. A NaN or inf read (or an overflow) shows in the input
# transform's check, and the caller recomputes by another method.

cdef extern from "_wup2trans.h" nogil:
    void cyconv_wu_input_float(const float *src, Py_ssize_t src_step, float *dst,
                               Py_ssize_t dst_step, float *chk, Py_ssize_t nt)
    void cyconv_wu_input_double(const double *src, Py_ssize_t src_step, double *dst,
                                Py_ssize_t dst_step, double *chk, Py_ssize_t nt)
    void cyconv_wu_input_tiles_float(const float *src, float *dst, Py_ssize_t dst_step,
                                     Py_ssize_t count)
    void cyconv_wu_input_tiles_double(const double *src, double *dst, Py_ssize_t dst_step,
                                      Py_ssize_t count)
    float cyconv_wu_output_float(const float *src, Py_ssize_t src_step, float *dst,
                                 Py_ssize_t dst_step, Py_ssize_t nt)
    double cyconv_wu_output_double(const double *src, Py_ssize_t src_step, double *dst,
                                   Py_ssize_t dst_step, Py_ssize_t nt)
    void cyconv_wu_store_float(const float *s0, const float *s1, const float *s2,
                               const float *s3, const float *s4, const float *s5,
                               const float *s6, const float *s7, float b, float *dst,
                               Py_ssize_t lo, Py_ssize_t hi)
    void cyconv_wu_store_double(const double *s0, const double *s1, const double *s2,
                                const double *s3, const double *s4, const double *s5,
                                const double *s6, const double *s7, double b, double *dst,
                                Py_ssize_t lo, Py_ssize_t hi)


# F(4, 2): 5 x 5 windows 4 apart, 25 products, 4 x 4 outputs per phase.
cdef enum:
    UP2_N = 5
    UP2_NN = 25
    UP2_M = 4


cdef inline void _up2_input(const floating *src, Py_ssize_t src_step, floating *dst,
                            Py_ssize_t dst_step, floating *chk, Py_ssize_t nt) noexcept nogil:
    if floating is float:
        cyconv_wu_input_float(src, src_step, dst, dst_step, chk, nt)
    else:
        cyconv_wu_input_double(src, src_step, dst, dst_step, chk, nt)


cdef inline void _up2_input_tiles(const floating *src, floating *dst, Py_ssize_t dst_step,
                                  Py_ssize_t count) noexcept nogil:
    if floating is float:
        cyconv_wu_input_tiles_float(src, dst, dst_step, count)
    else:
        cyconv_wu_input_tiles_double(src, dst, dst_step, count)


cdef inline floating _up2_output(const floating *src, Py_ssize_t src_step, floating *dst,
                                 Py_ssize_t dst_step, Py_ssize_t nt) noexcept nogil:
    """AT's rows over nt tiles; 0 while the outputs are finite, else NaN (`_wup2trans.h`)."""
    if floating is float:
        return cyconv_wu_output_float(src, src_step, dst, dst_step, nt)
    else:
        return cyconv_wu_output_double(src, src_step, dst, dst_step, nt)


cdef void _up2_scatter(const floating *y, floating b, floating *out_k, Py_ssize_t t0,
                       Py_ssize_t nt, Py_ssize_t tiles_w, Py_ssize_t tiles_img,
                       Py_ssize_t img_step, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t eh,
                       Py_ssize_t ew) noexcept nogil:
    """Tile t0 + t's 8 x 8 outputs to out_k: row 8r + eh + 2i + phi, column 8tj + ew + 2j + psi.

    y[((phi*2 + psi)*16 + i*4 + j)*nt + t] is phase (phi, psi)'s output
    (i, j) (bias ``b`` added here); ``out_k`` one kernel's plane (ho, wo) in
    image 0, image b's ``img_step`` further; what falls outside is dropped.
    By runs along a row of tiles, whole tiles in one interleaving pass.
    """
    cdef Py_ssize_t t = 0, tile, r, tj, run, lo, hi, i, phi, row, u, q, col
    cdef const floating *s
    cdef floating *dst
    while t < nt:
        tile = t0 + t
        r = tile % tiles_img
        tj = r % tiles_w
        run = tiles_w - tj if tiles_w - tj < nt - t else nt - t
        # Tiles lo <= u < hi of the run lie inside the row's columns.
        lo = 0 if 8 * tj + ew >= 0 else 1
        hi = (wo - ew) // 8 - tj
        hi = run if hi > run else (lo if hi < lo else hi)
        for i in range(UP2_M):
            for phi in range(2):
                row = 8 * (r // tiles_w) + eh + 2 * i + phi
                if row < 0 or row >= ho:
                    continue
                s = y + (phi * 32 + i * 4) * nt + t + lo
                dst = out_k + (tile // tiles_img) * img_step + row * wo  # the row
                # Tile u's columns start at 8*(tj + u) + ew (>= 0 from lo on).
                if floating is float:
                    cyconv_wu_store_float(s, s + 16 * nt, s + nt, s + 17 * nt, s + 2 * nt,
                                          s + 18 * nt, s + 3 * nt, s + 19 * nt, b,
                                          dst + 8 * (tj + lo) + ew, 0, hi - lo)
                else:
                    cyconv_wu_store_double(s, s + 16 * nt, s + nt, s + 17 * nt, s + 2 * nt,
                                           s + 18 * nt, s + 3 * nt, s + 19 * nt, b,
                                           dst + 8 * (tj + lo) + ew, 0, hi - lo)
                s -= lo
                for u in range(run):
                    if lo <= u < hi:
                        continue
                    for q in range(8):
                        col = 8 * (tj + u) + ew + q
                        if 0 <= col < wo:
                            dst[col] = s[((q % 2) * 16 + q // 2) * nt + u] + b
        t += run


cdef int _up2_task(const floating *x_p, const floating *u_p, const floating *bias,
                   bint has_bias, floating *out_p, floating *scratch, Py_ssize_t g,
                   Py_ssize_t t0, Py_ssize_t nt, Py_ssize_t n_in, Py_ssize_t h, Py_ssize_t w,
                   Py_ssize_t n_k, Py_ssize_t cg, Py_ssize_t kg, Py_ssize_t ho, Py_ssize_t wo,
                   Py_ssize_t top, Py_ssize_t left, Py_ssize_t eh, Py_ssize_t ew,
                   Py_ssize_t tiles_w, Py_ssize_t tiles_img) noexcept nogil:
    """Tiles t0..t0+nt-1 (over all images) of group g.

    Returns 1 if a transformed input value or an output was not finite, else 0.
    """
    cdef Py_ssize_t rows4 = 4 * kg, c, k, a, i, t, run, ld_src, ph
    # V's and M's rows, ld apart, in whole vectors from a 64-byte line (as _task's).
    cdef Py_ssize_t ld = (nt + CYCONV_WG_MAX_LANES - 1) // CYCONV_WG_MAX_LANES * CYCONV_WG_MAX_LANES
    cdef floating *v = <floating *> ((<uintptr_t> scratch + 63) & ~(<uintptr_t> 63))  # (25, cg, ld)
    cdef floating *prod = v + UP2_NN * cg * ld      # (25, 4 kg, ld)
    cdef floating *tmp = prod + UP2_NN * rows4 * ld  # (25, nt)
    cdef floating *y = tmp + UP2_NN * nt             # (4 phases, 16, nt)
    cdef floating *chk = y + 4 * 16 * nt            # (nt,)
    cdef floating *line = chk + nt                  # (5, 4*tiles_w + 1) + WINDOW_SLACK
    cdef const floating *base
    cdef floating b, total = 0
    for t in range(nt):
        chk[t] = 0
    for i in range(UP2_NN * cg):  # the padding columns: read by the products, never used
        for t in range(nt, ld):
            v[i * ld + t] = 0
    for c in range(cg):
        # Rows, from the pixels where they lie: tmp[i, b] = sum_j BT[b, j] d[i, j];
        # columns: V[a, b] = sum_i BT[a, i] tmp[i, b].
        t = 0
        while t < nt:
            run = tile_run(x_p + (g * cg + c) * h * w, n_in * h * w, w, h, w, top, left,
                           UP2_M, UP2_N, line, t0 + t, nt - t, tiles_w, tiles_img, &base,
                           &ld_src)
            for i in range(UP2_N):
                _up2_input_tiles(base + i * ld_src, tmp + i * UP2_N * nt + t, nt, run)
            t += run
        for i in range(UP2_N):
            _up2_input(tmp + i * nt, UP2_N * nt, v + (i * cg + c) * ld, UP2_N * cg * ld, chk,
                       nt)
    for a in range(UP2_NN):
        _product(u_p + (a * 4 * n_k + g * rows4) * cg, v + a * cg * ld, prod + a * rows4 * ld,
                 rows4, cg, nt, ld)
    for k in range(kg):
        for ph in range(4):
            # Columns: tmp[i, b] = sum_a AT[i, a] M[a, b]; rows: Y[i, j] = sum_b AT[j, b] tmp[i, b].
            for i in range(UP2_N):
                _up2_output(prod + (i * rows4 + 4 * k + ph) * ld, UP2_N * rows4 * ld,
                            tmp + i * nt, UP2_N * nt, nt)
            for i in range(UP2_M):  # (overflows of U or M show here, not in V's check)
                total += _up2_output(tmp + i * UP2_N * nt, nt, y + (ph * 16 + i * UP2_M) * nt,
                                     nt, nt)
        b = bias[g * kg + k] if has_bias else 0
        _up2_scatter(y, b, out_p + (g * kg + k) * ho * wo, t0, nt, tiles_w, tiles_img,
                     n_k * ho * wo, ho, wo, eh, ew)
    for t in range(nt):
        total += chk[t]
    return total != 0


cdef void _up2_kernel_chunk(const floating *w, Py_ssize_t c_step, const floating *gm,
                            floating *u, Py_ssize_t count, Py_ssize_t stride, Py_ssize_t phi,
                            Py_ssize_t psi) noexcept nogil:
    """u[(a*5 + b)*stride + c] = (G @ p_c @ G.T)[a, b] for count <= KERNEL_CHUNK channels.

    p_c is the phase (phi, psi) kernel of the 4x4 taps at w + c*c_step.
    Over the channels in the innermost loop (vectorized), as `_kernel_chunk`.
    """
    cdef floating taps[4 * KERNEL_CHUNK]
    cdef floating half[2 * UP2_N * KERNEL_CHUNK]
    cdef floating *h
    cdef floating *dst
    cdef Py_ssize_t a, b, j, c
    for j in range(4):  # p[i, j] = w[phi + 2 - 2i, psi + 2 - 2j], j fastest
        for c in range(count):
            taps[j * KERNEL_CHUNK + c] = w[c * c_step + (phi + 2 - 2 * (j // 2)) * 4
                                           + psi + 2 - 2 * (j % 2)]
    for a in range(UP2_N):
        for j in range(2):
            h = half + (2 * a + j) * KERNEL_CHUNK
            for c in range(count):
                h[c] = (gm[2 * a] * taps[j * KERNEL_CHUNK + c]
                        + gm[2 * a + 1] * taps[(2 + j) * KERNEL_CHUNK + c])
    for a in range(UP2_N):
        h = half + 2 * a * KERNEL_CHUNK
        for b in range(UP2_N):
            dst = u + (a * UP2_N + b) * stride
            for c in range(count):
                dst[c] = h[c] * gm[2 * b] + h[KERNEL_CHUNK + c] * gm[2 * b + 1]


def up2_transform_kernels(const floating[:, :, :, ::1] w, const double[:, ::1] g_mat,
                          floating[:, :, ::1] u, Py_ssize_t groups, int n_threads):
    """u[a*5 + b, r, c] = (G @ p @ G.T)[a, b] for the phase kernel p of row r and channel c.

    Row r = (g*Kg + k)*4 + phi*2 + psi holds, for input channel c of group
    g, the taps of w[g*Cg + c, k] that meet an output of row phase phi and
    column phase psi: p[i, j] = w[..., phi + 2 - 2i, psi + 2 - 2j] (window
    rows q - 1 and q, columns likewise). In the data's type, as
    `transform_kernels`.

    Invariants (checked in Python): w (C, Kg, 4, 4), g_mat (5, 2) F(4, 2)'s
    G, u (25, 4*groups*Kg, C/groups); all C-contiguous; n_threads >= 1.
    """
    cdef Py_ssize_t cg = w.shape[0] // groups, kg = w.shape[1]
    cdef Py_ssize_t rows = groups * kg * 4, stride = rows * cg
    cdef Py_ssize_t chunks = (cg + KERNEL_CHUNK - 1) // KERNEL_CHUNK
    cdef Py_ssize_t task, r, c0
    cdef floating gm[2 * UP2_N]
    cdef Py_ssize_t a
    for a in range(2 * UP2_N):
        gm[a] = <floating> g_mat[a // 2, a % 2]
    with nogil:
        for task in prange(rows * chunks, schedule='static', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and stride * UP2_NN >= PARALLEL_WORK):
            r = task // chunks
            c0 = (task % chunks) * KERNEL_CHUNK
            _up2_kernel_chunk(&w[(r // (4 * kg)) * cg + c0, r // 4 % kg, 0, 0], kg * 16, gm,
                              &u[0, r, c0], KERNEL_CHUNK if KERNEL_CHUNK < cg - c0 else cg - c0,
                              stride, r // 2 % 2, r % 2)


def up2_scratch_row(Py_ssize_t block, Py_ssize_t cg, Py_ssize_t kg, Py_ssize_t tiles_w):
    """Elements of one thread's scratch row for blocks of ``block`` tiles (a multiple of max_lanes).

    V, M, the row pass, the four phases' outputs and the check per tile;
    the zero-padded window rows of a row of tiles and WINDOW_SLACK more; 64
    elements' room to align V.
    """
    return (block * (UP2_NN * (cg + 4 * kg) + UP2_NN + 64 + 1)
            + UP2_N * (4 * tiles_w + 1) + WINDOW_SLACK + 64)


def up2_conv_transpose(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u,
                       const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] out,
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t groups, Py_ssize_t block,
                       floating[:, ::1] scratch, int n_threads):
    """out = conv_transpose2d(x, w, bias, stride=2, padding=(ph, pw)) for 4x4 w, by F(4x4, 2x2).

    Tasks of (group, block of at most ``block`` tiles over all images) that
    the ``n_threads`` threads take in turn. Returns True when every
    transformed input value and every output was finite; False when an
    input value read was NaN or inf, or a transform or product overflowed:
    the caller recomputes ``out`` by another method.

    ``out`` may be of any size: it is the output canvas from row ph and
    column pw (conv_transpose2d's output is 2H + 2 - 2ph rows, output_padding
    and conv2d_backward's input gradient make it another).

    Invariants (checked in Python): x (N, C, H, W); u (25, 4K, C/groups) the
    transformed phase kernels; bias (K,) even when has_bias is False; out
    (N, K, ho, wo) non-empty; scratch (>=
    n_threads, >= up2_scratch_row(block rounded up to a multiple of
    max_lanes, Cg, Kg, tiles_w)); all non-empty and C-contiguous; GEMM
    sizes fit a C int; n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_k = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t cg = u.shape[2], kg = n_k // groups
    # Tile T's window starts at input row 4T + p // 2 - 1, its outputs at 8T + eh.
    cdef Py_ssize_t top = 1 - ph // 2, left = 1 - pw // 2, eh = -(ph % 2), ew = -(pw % 2)
    cdef Py_ssize_t tiles_w = (wo - ew + 7) // 8
    cdef Py_ssize_t tiles_img = (ho - eh + 7) // 8 * tiles_w
    cdef Py_ssize_t n_tiles = n_batch * tiles_img
    cdef Py_ssize_t part = even_part(n_tiles, block, groups, n_threads)
    cdef Py_ssize_t n_parts = (n_tiles + part - 1) // part
    cdef Py_ssize_t task, g, t0, nt
    cdef Py_ssize_t scratch_row = scratch.shape[1]
    cdef int bad = 0
    cdef bint parallel = (n_threads > 1 and groups * n_parts > 1
                          and n_tiles * UP2_NN * cg * 4 * n_k >= PARALLEL_WORK)
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *u_p = &u[0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0, 0]
    cdef floating *scratch_p = &scratch[0, 0]
    with nogil:
        for task in prange(groups * n_parts, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=parallel):
            g = task // n_parts
            t0 = (task % n_parts) * part
            nt = part if part < n_tiles - t0 else n_tiles - t0
            bad += _up2_task(x_p, u_p, &bias[0], has_bias, out_p,
                             scratch_p + threadid() * scratch_row, g, t0, nt, n_in, h, w, n_k,
                             cg, kg, ho, wo, top, left, eh, ew, tiles_w, tiles_img)
    return bad == 0
