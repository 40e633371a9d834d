"""Winograd F(m x m, 3x3) convolution at stride 1: transforms and products in C loops.

Each m x m tile of the output is computed from the n x n tile of the
(zero-padded) input above it, n = m + 2, as
``Y = AT @ [sum_c (G @ w[k, c] @ G.T) * (BT @ d[c] @ BT.T)] @ AT.T``
(`cyconv._winograd_transforms` derives AT, G and BT). Per group and block of
tiles (over all images), with ``a`` one of the n*n transformed positions:

    V[a, c, t] = (BT @ d[c, t] @ BT.T)[a]       input transform, per tile t
    M[a] = U[a] @ V[a]                          (Kg x Cg) @ (Cg x tiles): n*n products
    out tile t of kernel k = AT @ M[:, k, t] @ AT.T + bias[k]

``U[a, k, c] = (G @ w[k, c] @ G.T)[a]`` is computed once per call, in the
data's type (in double it ran N8-C256-14-K256 float32 3% slower on one
thread, for U within 1.6e-7 of its largest value instead of 3e-8). A block's V and M live in one scratch row per thread, sized
by the caller to stay in L2; the transforms run over the block's tiles in the
innermost loop (contiguous: the compiler vectorizes them), which is also the
products' column order. The products are register-tiled loops over U and V
as they lie (`_wgemm.h`: V's and M's rows padded to whole vectors), where
OpenBLAS's GEMMs packed both on every call; blocks of so few tiles that more
than a fifth of their rows would be padding (4 tiles of a 7x7 image: 16
columns computed) still go to BLAS, held at one thread (cyconv._threads).
Each task (group, block of
tiles) is one thread's: it gathers and transforms its input tiles, runs
its products and writes its own output tiles, so tasks share
nothing but the read-only input and U. The transforms of tiles are BT and AT
written out (`_wtrans.h`: N8-C64-56-K64 float32 0.83x, C256-14 0.95x the
time on one thread, against applying BT's and AT's rows passed in). The
input transform also checks its output for NaN and inf, which would spread
over the tile's outputs: the caller then recomputes by another method, and
no pass over the input is needed beforehand.
"""
from cython.parallel cimport prange, threadid

from cython cimport floating
from libc.stdint cimport uintptr_t

from cyconv._blas cimport gemm
from cyconv._openmp cimport PARALLEL_WORK
from cyconv._split cimport even_part
from cyconv._tiles cimport WINDOW_SLACK, tile_run, window_rows
from cyconv._wgemm cimport (CYCONV_WG_MAX_LANES, cyconv_wg_gemm_double, cyconv_wg_gemm_float,
                            packed_gemm)

cdef extern from "_wtrans.h" nogil:
    void cyconv_wt_input_float(const float *src, Py_ssize_t src_step, float *dst,
                               Py_ssize_t dst_step, float *chk, Py_ssize_t nt, int m)
    void cyconv_wt_input_double(const double *src, Py_ssize_t src_step, double *dst,
                                Py_ssize_t dst_step, double *chk, Py_ssize_t nt, int m)
    void cyconv_wt_input_tiles_float(const float *src, float *dst, Py_ssize_t dst_step,
                                     Py_ssize_t count, int m)
    void cyconv_wt_input_tiles_double(const double *src, double *dst, Py_ssize_t dst_step,
                                      Py_ssize_t count, int m)
    void cyconv_wt_output_float(const float *src, Py_ssize_t src_step, float *dst,
                                Py_ssize_t dst_step, Py_ssize_t nt, int m)
    void cyconv_wt_output_double(const double *src, Py_ssize_t src_step, double *dst,
                                 Py_ssize_t dst_step, Py_ssize_t nt, int m)

# The largest input tile: n = 6 for F(4x4, 3x3). The kernel transform runs
# over KERNEL_CHUNK channels of one kernel at a time. Images of fewer than
# SHORT_RUN tiles to a row are gathered a tile at a time (`_gather`).
cdef enum:
    MAX_N = 6
    KERNEL_CHUNK = 64
    SHORT_RUN = 8


cdef void _kernel_chunk(const floating *w, const double *g_mat, floating *u,
                        Py_ssize_t count, Py_ssize_t n, Py_ssize_t stride) noexcept nogil:
    """u[(a*n + b)*stride + c] = (G @ w[c] @ G.T)[a, b] for count <= KERNEL_CHUNK 3x3 kernels.

    In the data's type, over the kernels in the innermost loop (vectorized):
    the taps as rows ``taps[i*3 + j, c]``, then ``half[a, j] = sum_i G[a, i]
    w[i, j]``, then ``sum_j half[a, j] G[b, j]``.
    """
    cdef floating taps[9 * KERNEL_CHUNK]
    cdef floating half[MAX_N * 3 * KERNEL_CHUNK]
    cdef floating g0, g1, g2
    cdef floating *h
    cdef floating *dst
    cdef Py_ssize_t a, b, j, c
    for j in range(9):  # c innermost: contiguous stores (the other order stored one at a time)
        for c in range(count):
            taps[j * KERNEL_CHUNK + c] = w[c * 9 + j]
    for a in range(n):
        g0, g1, g2 = <floating> g_mat[a * 3], <floating> g_mat[a * 3 + 1], <floating> g_mat[a * 3 + 2]
        for j in range(3):
            h = half + (a * 3 + j) * KERNEL_CHUNK
            for c in range(count):
                h[c] = (g0 * taps[j * KERNEL_CHUNK + c] + g1 * taps[(3 + j) * KERNEL_CHUNK + c]
                        + g2 * taps[(6 + j) * KERNEL_CHUNK + c])
    for a in range(n):
        h = half + a * 3 * KERNEL_CHUNK
        for b in range(n):
            g0, g1, g2 = <floating> g_mat[b * 3], <floating> g_mat[b * 3 + 1], <floating> g_mat[b * 3 + 2]
            dst = u + (a * n + b) * stride
            for c in range(count):
                dst[c] = h[c] * g0 + h[KERNEL_CHUNK + c] * g1 + h[2 * KERNEL_CHUNK + c] * g2


def max_lanes():
    """The multiple of which V's and M's rows are long (vectors of `_wgemm.h`), in elements.

    The scratch rows also hold that many elements more, room to start V
    on a 64-byte line.
    """
    return CYCONV_WG_MAX_LANES


def window_slack():
    """Elements past the zero-padded rows of a row of tiles that `_gather` may overwrite."""
    return WINDOW_SLACK


def _tile_transforms(const floating[:, ::1] d, floating[:, ::1] v, floating[:, ::1] y,
                     Py_ssize_t m):
    """Test hook: v = BT @ d and y = AT @ d (n x t) by `_wtrans.h`'s loops, n = m + 2.

    Invariants (the caller's): d and v (n, t), y (m, t), t >= 1.
    """
    cdef Py_ssize_t t = d.shape[1]
    with nogil:
        _input_rows(&d[0, 0], t, &v[0, 0], t, NULL, t, m)
        _output_rows(&d[0, 0], t, &y[0, 0], t, t, m)


def _products(const floating[:, ::1] u, const floating[:, ::1] v, floating[:, ::1] out,
              Py_ssize_t nt):
    """Test hook: out[:, :nt] = u @ v[:, :nt] by `_wgemm.h` (columns nt.. of out: garbage).

    Invariants (the caller's): u (kg, cg), v (cg, ld), out (kg, ld), all
    non-empty, ld a multiple of `max_lanes`, nt <= ld.
    """
    with nogil:
        if floating is float:
            cyconv_wg_gemm_float(&u[0, 0], u.shape[1], &v[0, 0], &out[0, 0], u.shape[0],
                                 u.shape[1], nt, v.shape[1])
        else:
            cyconv_wg_gemm_double(&u[0, 0], u.shape[1], &v[0, 0], &out[0, 0], u.shape[0],
                                  u.shape[1], nt, v.shape[1])


def transform_kernels(const floating[:, :, :, ::1] w, const double[:, ::1] g_mat,
                      floating[:, :, ::1] u, int n_threads):
    """u[a*n + b, k, c] = (G @ w[k, c] @ G.T)[a, b], summed in the data's type.

    Invariants (checked in Python): w (K, Cg, 3, 3), g_mat (n, 3),
    u (n*n, K, Cg), all non-empty and C-contiguous; n <= 6.
    """
    cdef Py_ssize_t n_out = w.shape[0], cg = w.shape[1], n = g_mat.shape[0]
    cdef Py_ssize_t chunks = (cg + KERNEL_CHUNK - 1) // KERNEL_CHUNK
    cdef Py_ssize_t task, k, c0
    cdef Py_ssize_t stride = n_out * cg
    cdef const floating *w_p = &w[0, 0, 0, 0]
    cdef const double *g_p = &g_mat[0, 0]
    cdef floating *u_p = &u[0, 0, 0]
    with nogil:
        for task in prange(n_out * chunks, schedule='static', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and n_out * cg * 16 * n * n >= PARALLEL_WORK):
            k = task // chunks
            c0 = (task % chunks) * KERNEL_CHUNK
            _kernel_chunk(w_p + (k * cg + c0) * 9, g_p, u_p + k * cg + c0,
                          KERNEL_CHUNK if KERNEL_CHUNK < cg - c0 else cg - c0, n, stride)


cdef inline void _input_rows(const floating *src, Py_ssize_t src_step, floating *dst,
                             Py_ssize_t dst_step, floating *chk, Py_ssize_t nt,
                             Py_ssize_t m) noexcept nogil:
    if floating is float:
        cyconv_wt_input_float(src, src_step, dst, dst_step, chk, nt, m)
    else:
        cyconv_wt_input_double(src, src_step, dst, dst_step, chk, nt, m)


cdef inline void _input_tiles(const floating *src, floating *dst, Py_ssize_t dst_step,
                              Py_ssize_t count, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cyconv_wt_input_tiles_float(src, dst, dst_step, count, m)
    else:
        cyconv_wt_input_tiles_double(src, dst, dst_step, count, m)


cdef inline void _output_rows(const floating *src, Py_ssize_t src_step, floating *dst,
                              Py_ssize_t dst_step, Py_ssize_t nt, Py_ssize_t m) noexcept nogil:
    if floating is float:
        cyconv_wt_output_float(src, src_step, dst, dst_step, nt, m)
    else:
        cyconv_wt_output_double(src, src_step, dst, dst_step, nt, m)


cdef void _copy_tiles(const floating *src, floating *dst, Py_ssize_t step, Py_ssize_t count,
                      Py_ssize_t m) noexcept nogil:
    """dst[j*step + u] = src[u*m + j] for u < count, j < m + 2 (m 2 or 4): a row of short runs.

    One tile's n values of the row at a time, unrolled: for the few tiles
    of a row of a small image, where n stride-m loops of ``count`` values
    each cost more in loop overhead than in copies.
    """
    cdef Py_ssize_t u
    cdef const floating *s
    if m == 4:
        for u in range(count):
            s = src + 4 * u
            dst[u] = s[0]
            dst[step + u] = s[1]
            dst[2 * step + u] = s[2]
            dst[3 * step + u] = s[3]
            dst[4 * step + u] = s[4]
            dst[5 * step + u] = s[5]
    else:
        for u in range(count):
            s = src + 2 * u
            dst[u] = s[0]
            dst[step + u] = s[1]
            dst[2 * step + u] = s[2]
            dst[3 * step + u] = s[3]


cdef void _store_row(const floating *src, Py_ssize_t src_step, floating b, floating *dst,
                     Py_ssize_t count, Py_ssize_t m) noexcept nogil:
    """dst[u*m + j] = src[j*src_step + u] + b for u < count, j < m (2 or 4).

    One output row of ``count`` whole tiles: the m columns of each tile
    interleaved in one pass of contiguous stores (the compiler's permutes),
    where a pass per column stored one value at a time.
    """
    cdef Py_ssize_t u
    cdef const floating *s0 = src
    cdef const floating *s1 = src + src_step
    cdef const floating *s2
    cdef const floating *s3
    if m == 4:
        s2, s3 = src + 2 * src_step, src + 3 * src_step
        for u in range(count):
            dst[4 * u] = s0[u] + b
            dst[4 * u + 1] = s1[u] + b
            dst[4 * u + 2] = s2[u] + b
            dst[4 * u + 3] = s3[u] + b
    else:
        for u in range(count):
            dst[2 * u] = s0[u] + b
            dst[2 * u + 1] = s1[u] + b


cdef void _gather(const floating *plane, floating *d, floating *line, Py_ssize_t t0,
                  Py_ssize_t nt, Py_ssize_t tiles_w, Py_ssize_t tiles_img, Py_ssize_t img_step,
                  Py_ssize_t h_lim, Py_ssize_t w_lim, Py_ssize_t w,
                  Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t m, Py_ssize_t n,
                  bint rows) noexcept nogil:
    """d[(i*n + j)*nt + t] = input pixel (i, j) of tile t0 + t of one channel, 0 outside.

    With ``rows``, the row pass of the input transform instead,
    d[(i*n + b)*nt + t] = sum_j BT[b, j] * pixel (i, j) (`_input_tiles`,
    from the pixels where they lie): for rows of many tiles, where copying
    the pixels first (a stride-m copy per column) stored and loaded each
    once more (N8-C64-56-K64 0.87x the time). Without, for rows of fewer
    than SHORT_RUN tiles, the pixels are copied a tile at a time
    (`_copy_tiles`), and the caller's row pass runs vectorized over the
    block's tiles. ``plane`` is the channel's plane in image 0; image b's is
    ``plane + b*img_step``. Rows >= h_lim and columns >= w_lim count as
    zero padding (no output inside the image reads them). The tiles go by
    runs along a row of tiles, read in place where the run's window lies inside the
    image, else from a zero-padded copy of its n rows in ``line`` (n rows
    of run*m + 2, and WINDOW_SLACK more: `cyconv._tiles.window_rows`),
    where reading pixel by pixel with bounds checks cost about a sixth of
    a C64-56 layer.
    """
    cdef Py_ssize_t t = 0, run, ld, i
    cdef const floating *base
    while t < nt:
        run = tile_run(plane, img_step, w, h_lim, w_lim, ph, pw, m, n, line, t0 + t, nt - t,
                       tiles_w, tiles_img, &base, &ld)
        for i in range(n):
            if rows:
                _input_tiles(base + i * ld, d + i * n * nt + t, nt, run, m)
            else:
                _copy_tiles(base + i * ld, d + i * n * nt + t, nt, run, m)
        t += run


cdef void _scatter(const floating *y, floating b, floating *out_k, Py_ssize_t t0,
                   Py_ssize_t nt, Py_ssize_t tiles_w, Py_ssize_t tiles_img,
                   Py_ssize_t img_step, Py_ssize_t ho, Py_ssize_t wo,
                   Py_ssize_t m) noexcept nogil:
    """Output pixel (i, j) of tile t0 + t, y[(i*m + j)*nt + t] + b, to its place in out_k.

    ``out_k`` is one kernel's output plane in image 0; the parts of partial
    tiles beyond ho x wo are dropped. By runs along a row of tiles, as
    `_gather` reads them.
    """
    cdef Py_ssize_t t = 0, tile, r, tj, run, full, rows, cols, i, j
    cdef floating *dst
    while t < nt:
        tile = t0 + t
        r = tile % tiles_img
        tj = r % tiles_w
        run = tiles_w - tj if tiles_w - tj < nt - t else nt - t
        rows = m if m < ho - (r // tiles_w) * m else ho - (r // tiles_w) * m
        dst = out_k + (tile // tiles_img) * img_step + (r // tiles_w) * m * wo + tj * m
        # Only the last tile of a row can be narrower than m.
        full = run if (tj + run) * m <= wo else run - 1
        for i in range(rows):
            _store_row(y + i * m * nt + t, nt, b, dst + i * wo, full, m)
        if full < run:
            cols = wo - (tj + full) * m
            for i in range(rows):
                for j in range(cols):
                    dst[i * wo + full * m + j] = y[(i * m + j) * nt + t + full] + b
        t += run


cdef inline void _product(const floating *u, const floating *v, floating *prod, Py_ssize_t kg,
                          Py_ssize_t cg, Py_ssize_t nt, Py_ssize_t ld) noexcept nogil:
    """prod (kg, ld) = u (kg, cg, rows cg apart) @ v (cg, ld): one transformed position's product.

    By `_wgemm.h`'s register tiles, or by BLAS (one thread) where more than
    a fifth of the rows would be padding.
    """
    if (ld - nt) * 4 > nt:
        gemm(False, False, kg, nt, cg, 1, u, cg, v, ld, 0, prod, ld)
    elif floating is float:
        cyconv_wg_gemm_float(u, cg, v, prod, kg, cg, nt, ld)
    else:
        cyconv_wg_gemm_double(u, cg, v, prod, kg, cg, nt, ld)


cdef int _task(const floating *x_p, const floating *u_p, const floating *bias, bint has_bias,
                floating *out_p, floating *scratch, Py_ssize_t g, Py_ssize_t t0, Py_ssize_t nt,
                Py_ssize_t n_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t n_out,
                Py_ssize_t cg, Py_ssize_t kg, Py_ssize_t ho, Py_ssize_t wo,
                Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t m, Py_ssize_t n,
                Py_ssize_t tiles_w, Py_ssize_t tiles_img) noexcept nogil:
    """Tiles t0..t0+nt-1 (over all images) of group g: transform, n*n GEMMs, transform back.

    Returns 1 when a transformed input value is NaN or inf (a NaN or inf in
    the input pixels read, or an overflow), else 0; the output is written
    either way.
    """
    cdef Py_ssize_t nn = n * n, c, k, a, i, j, t
    cdef Py_ssize_t h_lim = ho + 2 - ph, w_lim = wo + 2 - pw
    # V's and M's rows, ld apart, end in whole vectors for _wgemm.h, and
    # start on a 64-byte line (vector loads across two lines ran its products
    # 10-20% slower).
    cdef Py_ssize_t ld = (nt + CYCONV_WG_MAX_LANES - 1) // CYCONV_WG_MAX_LANES * CYCONV_WG_MAX_LANES
    cdef floating *v = <floating *> ((<uintptr_t> scratch + 63) & ~(<uintptr_t> 63))  # (nn, cg, ld)
    cdef floating *prod = v + nn * cg * ld         # (nn, kg, ld)
    cdef floating *d = prod + nn * kg * ld         # (nn, nt)
    cdef floating *tmp = d + nn * nt               # (nn, nt)
    cdef floating *chk = tmp + nn * nt             # (nt,)
    cdef floating *line = chk + nt                 # (n, tiles_w*m + 2) + WINDOW_SLACK
    cdef floating b, total = 0
    cdef bint rows = tiles_w >= SHORT_RUN
    for t in range(nt):
        chk[t] = 0
    if h_lim > h:
        h_lim = h
    if w_lim > w:
        w_lim = w
    for i in range(nn * cg):  # the padding columns: read by the products, never used
        for t in range(nt, ld):
            v[i * ld + t] = 0
    for c in range(cg):
        # Rows: tmp[i, b] = sum_j BT[b, j] d[i, j]; columns: V[a, b] = sum_i BT[a, i] tmp[i, b].
        if rows:
            _gather(x_p + (g * cg + c) * h * w, tmp, line, t0, nt, tiles_w, tiles_img,
                    n_in * h * w, h_lim, w_lim, w, ph, pw, m, n, True)
        else:
            _gather(x_p + (g * cg + c) * h * w, d, line, t0, nt, tiles_w, tiles_img,
                    n_in * h * w, h_lim, w_lim, w, ph, pw, m, n, False)
            for i in range(n):
                _input_rows(d + i * n * nt, nt, tmp + i * n * nt, nt, NULL, nt, m)
        for j in range(n):
            _input_rows(tmp + j * nt, n * nt, v + (j * cg + c) * ld, n * cg * ld, chk, nt, m)
    for a in range(nn):
        _product(u_p + (a * n_out + g * kg) * cg, v + a * cg * ld, prod + a * kg * ld,
                 kg, cg, nt, ld)
    for k in range(kg):
        # Columns: tmp[i, b] = sum_a AT[i, a] M[a, b]; rows: Y[i, j] = sum_b AT[j, b] tmp[i, b].
        for j in range(n):
            _output_rows(prod + (j * kg + k) * ld, n * kg * ld, tmp + j * nt, n * nt, nt, m)
        for i in range(m):
            _output_rows(tmp + i * n * nt, nt, d + i * m * nt, nt, nt, m)
        b = bias[g * kg + k] if has_bias else 0
        _scatter(d, b, out_p + (g * kg + k) * ho * wo, t0, nt, tiles_w, tiles_img,
                 n_out * ho * wo, ho, wo, m)
    for t in range(nt):
        total += chk[t]
    return total != 0


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u,
                   const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] out,
                   Py_ssize_t m, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t groups, Py_ssize_t block,
                   floating[:, ::1] scratch, int n_threads):
    """out[n,k,i,j] = bias[k] + sum_{c,p,q} w[k, c, p, q] * x[n, g*Cg+c, i-ph+p, j-pw+q] by F(m, 3).

    Stride 1, dilation 1, 3x3 kernels; x is zero outside its bounds (and
    beyond the rows and columns the output reads). Tasks of (group, block
    of at most ``block`` tiles) that the ``n_threads`` threads take in turn.
    Returns True when every transformed input value was finite; False
    when an input pixel read was NaN or inf (or a transform overflowed):
    the caller recomputes ``out`` by another method.

    Invariants (checked in Python): x (N, C, H, W); u (n*n, K, C/groups) the
    transformed kernels (`transform_kernels`); bias (K,) even when has_bias
    is False; out (N, K, ho, wo); m 4 or 2 (F(4x4, 3x3) or F(2x2, 3x3)),
    n = m + 2; scratch (>= n_threads, >= b*(n*n*(Cg + Kg + 2) + 1)
    + n*(tiles_w*m + 2) + `window_slack` + `max_lanes`, b = block rounded up to a multiple of `max_lanes`,
    tiles_w = ceil(wo / m)); all non-empty and C-contiguous; GEMM sizes fit a C
    int; n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t n = m + 2
    cdef Py_ssize_t cg = u.shape[2], kg = n_out // groups
    cdef Py_ssize_t tiles_w = (wo + m - 1) // m
    cdef Py_ssize_t tiles_img = (ho + m - 1) // m * tiles_w
    cdef Py_ssize_t n_tiles = n_batch * tiles_img
    cdef Py_ssize_t part = even_part(n_tiles, block, groups, n_threads)
    cdef Py_ssize_t n_parts = (n_tiles + part - 1) // part
    cdef Py_ssize_t task, g, t0, nt
    cdef Py_ssize_t scratch_row = scratch.shape[1]
    cdef int bad = 0
    # The products' multiply-adds: small problems stay on the calling thread.
    cdef bint parallel = (n_threads > 1 and groups * n_parts > 1
                          and n_tiles * n * n * cg * n_out >= PARALLEL_WORK)
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
            bad += _task(x_p, u_p, &bias[0], has_bias, out_p,
                         scratch_p + threadid() * scratch_row, g, t0, nt, n_in, h, w, n_out, cg, kg, ho, wo, ph, pw, m, n,
                         tiles_w, tiles_img)
    return bad == 0


include "_winograd_s2.pxi"
include "_winograd_up2.pxi"
