"""Winograd F(m x m, 3x3) convolution at stride 1: transforms in C loops, products by GEMM.

Each m x m tile of the output is computed from the n x n tile of the
(zero-padded) input above it, n = m + 2, as
``Y = AT @ [sum_c (G @ w[k, c] @ G.T) * (BT @ d[c] @ BT.T)] @ AT.T``
(`cyconv._winograd_transforms` derives AT, G and BT). Per group and block of
tiles (over all images), with ``a`` one of the n*n transformed positions:

    V[a, c, t] = (BT @ d[c, t] @ BT.T)[a]       input transform, per tile t
    M[a] = U[a] @ V[a]                          (Kg x Cg) @ (Cg x tiles): n*n GEMMs
    out tile t of kernel k = AT @ M[:, k, t] @ AT.T + bias[k]

``U[a, k, c] = (G @ w[k, c] @ G.T)[a]`` is computed once per call, in double
and rounded once. A block's V and M live in one scratch row per thread, sized
by the caller to stay in L2; the transforms run over the block's tiles in the
innermost loop (contiguous: the compiler vectorizes them), which is also the
GEMMs' column order. Each task (group, block of tiles) is one thread's: it
gathers and transforms its input tiles, runs its GEMMs with BLAS on one
thread (see cyconv._threads) and writes its own output tiles, so tasks share
nothing but the read-only input and U.
"""
from cython.parallel cimport prange, threadid

from cython cimport floating
from cyconv._blas cimport gemm
from cyconv._openmp cimport PARALLEL_WORK
from cyconv._split cimport even_part

# The largest input tile: n = 6 for F(4x4, 3x3).
cdef enum:
    MAX_N = 6


cdef void _kernel_one(const floating *w, const double *g_mat, floating *u,
                      Py_ssize_t n, Py_ssize_t stride) noexcept nogil:
    """u[a*n + b] (every ``stride`` elements) = (G @ w @ G.T)[a, b] for one 3x3 kernel."""
    cdef double half[MAX_N * 3]
    cdef double s
    cdef Py_ssize_t a, b, i, j
    for a in range(n):
        for j in range(3):
            s = 0
            for i in range(3):
                s = s + g_mat[a * 3 + i] * w[i * 3 + j]
            half[a * 3 + j] = s
    for a in range(n):
        for b in range(n):
            s = 0
            for j in range(3):
                s = s + half[a * 3 + j] * g_mat[b * 3 + j]
            u[(a * n + b) * stride] = <floating> s


def transform_kernels(const floating[:, :, :, ::1] w, const double[:, ::1] g_mat,
                      floating[:, :, ::1] u, int n_threads):
    """u[a*n + b, k, c] = (G @ w[k, c] @ G.T)[a, b], summed in double.

    Invariants (checked in Python): w (K, Cg, 3, 3), g_mat (n, 3),
    u (n*n, K, Cg), all non-empty and C-contiguous; n <= 6.
    """
    cdef Py_ssize_t n_out = w.shape[0], cg = w.shape[1], n = g_mat.shape[0]
    cdef Py_ssize_t k, c
    cdef Py_ssize_t stride = n_out * cg
    cdef const floating *w_p = &w[0, 0, 0, 0]
    cdef const double *g_p = &g_mat[0, 0]
    cdef floating *u_p = &u[0, 0, 0]
    with nogil:
        for k in prange(n_out, schedule='static', num_threads=n_threads,
                        use_threads_if=n_threads > 1 and n_out * cg * 16 * n * n >= PARALLEL_WORK):
            for c in range(cg):
                _kernel_one(w_p + (k * cg + c) * 9, g_p, u_p + k * cg + c, n, stride)


cdef void _combine(const floating *src, Py_ssize_t src_step, floating *dst,
                   const floating *coef, Py_ssize_t n_terms, Py_ssize_t nt) noexcept nogil:
    """dst[t] = sum_j coef[j] * src[j*src_step + t] for t < nt, skipping zero coefficients."""
    cdef Py_ssize_t j, t
    cdef bint first = True
    cdef floating f
    cdef const floating *s
    for j in range(n_terms):
        f = coef[j]
        if f == 0:
            continue
        s = src + j * src_step
        if first:
            for t in range(nt):
                dst[t] = f * s[t]
            first = False
        else:
            for t in range(nt):
                dst[t] = dst[t] + f * s[t]
    if first:
        for t in range(nt):
            dst[t] = 0


cdef void _gather(const floating *plane, floating *d, Py_ssize_t t0, Py_ssize_t nt,
                  Py_ssize_t tiles_w, Py_ssize_t tiles_img, Py_ssize_t img_step,
                  Py_ssize_t h_lim, Py_ssize_t w_lim, Py_ssize_t w,
                  Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """d[(i*n + j)*nt + t] = input pixel (i, j) of tile t0 + t of one channel, 0 outside.

    ``plane`` is the channel's plane in image 0; image b's is
    ``plane + b*img_step``. Rows >= h_lim and columns >= w_lim count as
    zero padding (no output inside the image reads them).
    """
    cdef Py_ssize_t t, tile, r, y0, x0, i, j, y, xx
    cdef const floating *src
    for t in range(nt):
        tile = t0 + t
        r = tile % tiles_img
        y0 = (r // tiles_w) * m - ph
        x0 = (r % tiles_w) * m - pw
        src = plane + (tile // tiles_img) * img_step
        if y0 >= 0 and x0 >= 0 and y0 + n <= h_lim and x0 + n <= w_lim:
            src = src + y0 * w + x0
            for i in range(n):
                for j in range(n):
                    d[(i * n + j) * nt + t] = src[i * w + j]
        else:
            for i in range(n):
                y = y0 + i
                for j in range(n):
                    xx = x0 + j
                    if 0 <= y < h_lim and 0 <= xx < w_lim:
                        d[(i * n + j) * nt + t] = src[y * w + xx]
                    else:
                        d[(i * n + j) * nt + t] = 0


cdef void _scatter(const floating *y, floating *out_k, Py_ssize_t t0, Py_ssize_t nt,
                   Py_ssize_t tiles_w, Py_ssize_t tiles_img, Py_ssize_t img_step,
                   Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t m) noexcept nogil:
    """Output pixel (i, j) of tile t0 + t, y[(i*m + j)*nt + t], to its place in out_k.

    ``out_k`` is one kernel's output plane in image 0; the parts of partial
    tiles beyond ho x wo are dropped.
    """
    cdef Py_ssize_t t, tile, r, y0, x0, i, j, rows, cols
    cdef floating *dst
    for t in range(nt):
        tile = t0 + t
        r = tile % tiles_img
        y0 = (r // tiles_w) * m
        x0 = (r % tiles_w) * m
        rows = m if m < ho - y0 else ho - y0
        cols = m if m < wo - x0 else wo - x0
        dst = out_k + (tile // tiles_img) * img_step + y0 * wo + x0
        for i in range(rows):
            for j in range(cols):
                dst[i * wo + j] = y[(i * m + j) * nt + t]


cdef void _task(const floating *x_p, const floating *u_p, const floating *bias, bint has_bias,
                floating *out_p, floating *scratch, const floating *bt, const floating *at,
                Py_ssize_t g, Py_ssize_t t0, Py_ssize_t nt,
                Py_ssize_t n_in, Py_ssize_t h, Py_ssize_t w, Py_ssize_t n_out,
                Py_ssize_t cg, Py_ssize_t kg, Py_ssize_t ho, Py_ssize_t wo,
                Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t m, Py_ssize_t n,
                Py_ssize_t tiles_w, Py_ssize_t tiles_img) noexcept nogil:
    """Tiles t0..t0+nt-1 (over all images) of group g: transform, n*n GEMMs, transform back."""
    cdef Py_ssize_t nn = n * n, c, k, a, i, j
    cdef Py_ssize_t h_lim = ho + 2 - ph, w_lim = wo + 2 - pw
    cdef floating *v = scratch                     # (nn, cg, nt)
    cdef floating *prod = v + nn * cg * nt         # (nn, kg, nt)
    cdef floating *d = prod + nn * kg * nt         # (nn, nt)
    cdef floating *tmp = d + nn * nt               # (nn, nt)
    cdef floating b
    if h_lim > h:
        h_lim = h
    if w_lim > w:
        w_lim = w
    for c in range(cg):
        _gather(x_p + (g * cg + c) * h * w, d, t0, nt, tiles_w, tiles_img, n_in * h * w,
                h_lim, w_lim, w, ph, pw, m, n)
        # Rows: tmp[i, b] = sum_j BT[b, j] d[i, j]; columns: V[a, b] = sum_i BT[a, i] tmp[i, b].
        for i in range(n):
            for j in range(n):
                _combine(d + i * n * nt, nt, tmp + (i * n + j) * nt, bt + j * n, n, nt)
        for a in range(n):
            for j in range(n):
                _combine(tmp + j * nt, n * nt, v + ((a * n + j) * cg + c) * nt,
                         bt + a * n, n, nt)
    for a in range(nn):
        gemm(False, False, kg, nt, cg, 1, u_p + (a * n_out + g * kg) * cg, cg,
             v + a * cg * nt, nt, 0, prod + a * kg * nt, nt)
    for k in range(kg):
        # Columns: tmp[i, b] = sum_a AT[i, a] M[a, b]; rows: Y[i, j] = sum_b AT[j, b] tmp[i, b].
        for i in range(m):
            for j in range(n):
                _combine(prod + (j * kg + k) * nt, n * kg * nt, tmp + (i * n + j) * nt,
                         at + i * n, n, nt)
        for i in range(m):
            for j in range(m):
                _combine(tmp + i * n * nt, nt, d + (i * m + j) * nt, at + j * n, n, nt)
        if has_bias:
            b = bias[g * kg + k]
            for i in range(m * m * nt):
                d[i] = d[i] + b
        _scatter(d, out_p + (g * kg + k) * ho * wo, t0, nt, tiles_w, tiles_img,
                 n_out * ho * wo, ho, wo, m)


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u,
                   const floating[::1] bias, bint has_bias, floating[:, :, :, ::1] out,
                   const floating[:, ::1] bt, const floating[:, ::1] at,
                   Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t groups, Py_ssize_t block,
                   floating[:, ::1] scratch, int n_threads):
    """out[n,k,i,j] = bias[k] + sum_{c,p,q} w[k, c, p, q] * x[n, g*Cg+c, i-ph+p, j-pw+q] by F(m, 3).

    Stride 1, dilation 1, 3x3 kernels; x is zero outside its bounds (and
    beyond the rows and columns the output reads). Tasks of (group, block
    of at most ``block`` tiles) that the ``n_threads`` threads take in turn.

    Invariants (checked in Python): x (N, C, H, W); u (n*n, K, C/groups) the
    transformed kernels (`transform_kernels`); bias (K,) even when has_bias
    is False; out (N, K, ho, wo); bt (n, n) and at (m, n) the transforms,
    n = m + 2 <= 6; scratch (>= n_threads, >= n*n*block*(Cg + Kg + 2)); all
    non-empty and C-contiguous; GEMM sizes fit a C int; n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t n = bt.shape[0], m = at.shape[0]
    cdef Py_ssize_t cg = u.shape[2], kg = n_out // groups
    cdef Py_ssize_t tiles_w = (wo + m - 1) // m
    cdef Py_ssize_t tiles_img = (ho + m - 1) // m * tiles_w
    cdef Py_ssize_t n_tiles = n_batch * tiles_img
    cdef Py_ssize_t part = even_part(n_tiles, block, groups, n_threads)
    cdef Py_ssize_t n_parts = (n_tiles + part - 1) // part
    cdef Py_ssize_t task, g, t0, nt
    cdef Py_ssize_t scratch_row = scratch.shape[1]
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *u_p = &u[0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0, 0]
    cdef floating *scratch_p = &scratch[0, 0]
    with nogil:
        for task in prange(groups * n_parts, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and groups * n_parts > 1):
            g = task // n_parts
            t0 = (task % n_parts) * part
            nt = part if part < n_tiles - t0 else n_tiles - t0
            _task(x_p, u_p, &bias[0], has_bias, out_p, scratch_p + threadid() * scratch_row,
                  &bt[0, 0], &at[0, 0], g, t0, nt, n_in, h, w, n_out, cg, kg, ho, wo,
                  ph, pw, m, n, tiles_w, tiles_img)
