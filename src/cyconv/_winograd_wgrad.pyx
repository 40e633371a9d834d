"""Winograd F(3x3, 4x4) weight gradient at stride 1: transforms in C loops, products by GEMM.

The weight gradient of a 3x3 convolution at stride 1 is the correlation of
the input with ``grad_output``, 3x3 outputs per (kernel, channel) pair. Cut
``grad_output`` into 4x4 tiles; the part of the sum a tile ``t`` holds comes
from the 6x6 input tile under it (the tiles overlap by 2) by F(3x3, 4x4):
``AT @ [(G @ gy_t @ G.T) * (BT @ d_t @ BT.T)] @ AT.T``
(`cyconv._winograd_transforms`). The output transform is linear, so it is
applied once to the sum over all tiles of all images. Per group and block of
tiles (over all images), with ``a`` one of the 36 transformed positions:

    V[a, c, t] = (BT @ d[c, t] @ BT.T)[a]       input transform, per tile t
    U[a, k, t] = (G @ gy[k, t] @ G.T)[a]        grad_output transform
    S[a] += U[a] @ V[a].T                       (Kg x tiles) @ (tiles x Cg): 36 GEMMs

and ``grad_weight[k, c] = AT @ S[:, k, c] @ AT.T`` at the end
(`weights_from_sums`). Each task (group, block of tiles) is one
thread's: it gathers its tiles from the input and grad_output in place
(zeros beyond their edges: `cyconv._tiles`) and transforms them into its
scratch row (BT and G written out in `_wtrans.h`, over the block's tiles
in the innermost loop, vectorized: 0.91-1.00x the weight gradient's time
of a row of the matrix per call, N8-C64-56 0.94), runs its
GEMMs with BLAS on one thread (see cyconv._threads) and writes (its
first task of the group) or adds into its own partial sums S, which are
added up at the end. With few tiles for many weights the tasks are
(group, range of its kernels) instead, each over all tiles block by
block, into its own rows of one S (each transforms the input tiles
again). Either way the tasks never wait for each other (one parallel
loop): a two-phase form (all transforms of a chunk, then its GEMMs split
by position, shared sums) waited twice per chunk and ran 5-8x slower at
2 threads on a loaded machine.
"""
from cython.parallel cimport prange, threadid

from cython cimport floating
from cyconv._blas cimport gemm
from cyconv._openmp cimport PARALLEL_WORK
from cyconv._split cimport even_part
from cyconv._tiles cimport gather_tiles

# Tiles: 4x4 of grad_output, 6x6 of the input (the transformed size), so
# 36 transformed positions.
cdef enum:
    STEP = 4
    SPAN = 6
    POSITIONS = 36


cdef extern from "_wtrans.h" nogil:
    void cyconv_wt_input_float(const float *src, Py_ssize_t src_step, float *dst,
                               Py_ssize_t dst_step, float *chk, Py_ssize_t nt, int m)
    void cyconv_wt_input_double(const double *src, Py_ssize_t src_step, double *dst,
                                Py_ssize_t dst_step, double *chk, Py_ssize_t nt, int m)
    void cyconv_wt_grad_float(const float *src, Py_ssize_t src_step, float *dst,
                              Py_ssize_t dst_step, Py_ssize_t nt)
    void cyconv_wt_grad_double(const double *src, Py_ssize_t src_step, double *dst,
                               Py_ssize_t dst_step, Py_ssize_t nt)


cdef inline void _rows(const floating *src, Py_ssize_t src_step, floating *dst,
                       Py_ssize_t dst_step, Py_ssize_t nt, bint input) noexcept nogil:
    """dst[a*dst_step + t] = sum_j M[a, j] src[j*src_step + t], a < 6, t < nt.

    M is BT (6 x 6, the forward's: F(3, 4) at its points has the same) for
    an input tile, G (6 x 4) for a grad_output tile; both written out in
    `_wtrans.h`.
    """
    if floating is float:
        if input:
            cyconv_wt_input_float(src, src_step, dst, dst_step, NULL, nt, 4)
        else:
            cyconv_wt_grad_float(src, src_step, dst, dst_step, nt)
    else:
        if input:
            cyconv_wt_input_double(src, src_step, dst, dst_step, NULL, nt, 4)
        else:
            cyconv_wt_grad_double(src, src_step, dst, dst_step, nt)


cdef void _sandwich(const floating *src, Py_ssize_t size, floating *tmp, floating *dst,
                    Py_ssize_t dst_step, Py_ssize_t nt) noexcept nogil:
    """dst[(a*6 + b)*dst_step + t] = (M @ tile_t @ M.T)[a, b] for nt tiles (M: `_rows`).

    ``src[(i*size + j)*nt + t]`` is pixel (i, j) of the size x size tile t,
    size 6 (an input tile, BT) or 4 (grad_output, G); ``tmp`` holds
    size*6*nt elements.
    """
    cdef Py_ssize_t i, b
    cdef bint input = size == SPAN
    # Along rows: tmp[i, b] = sum_j M[b, j] tile[i, j].
    for i in range(size):
        _rows(src + i * size * nt, nt, tmp + i * SPAN * nt, nt, nt, input)
    # Along columns: dst[a, b] = sum_i M[a, i] tmp[i, b].
    for b in range(SPAN):
        _rows(tmp + b * nt, SPAN * nt, dst + b * dst_step, SPAN * dst_step, nt, input)


def _tile_transforms(const floating[:, ::1] d, floating[:, ::1] v, floating[:, ::1] u):
    """Test hook: v = BT @ d[:6] and u = G @ d[:4] (columns t) by `_wtrans.h`'s loops.

    Invariants (the caller's): d, v and u (6, t), t >= 1.
    """
    cdef Py_ssize_t t = d.shape[1]
    with nogil:
        _rows(&d[0, 0], t, &v[0, 0], t, t, True)
        _rows(&d[0, 0], t, &u[0, 0], t, t, False)


cdef void _task(const floating *x_p, const floating *gy_p, floating *sums,
                floating *scratch, floating *line, floating beta, Py_ssize_t g, Py_ssize_t k0,
                Py_ssize_t nk, Py_ssize_t t0, Py_ssize_t nt, Py_ssize_t n_in, Py_ssize_t n_out,
                Py_ssize_t cg, Py_ssize_t kg,
                Py_ssize_t h, Py_ssize_t w, Py_ssize_t h_lim, Py_ssize_t w_lim,
                Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t ho, Py_ssize_t wo,
                Py_ssize_t tiles_w, Py_ssize_t tiles_img) noexcept nogil:
    """Tiles t0..t0+nt-1 (over all images), kernels k0..k0+nk-1 of group g: transforms, 36 GEMMs.

    The GEMMs add into ``sums`` with ``beta == 1``, overwrite it with 0.
    """
    cdef Py_ssize_t c, k, a
    cdef floating *v = scratch                      # (36, cg, nt)
    cdef floating *u = v + POSITIONS * cg * nt      # (36, nk, nt)
    cdef floating *d = u + POSITIONS * nk * nt      # (36, nt)
    cdef floating *tmp = d + POSITIONS * nt         # (36, nt)
    for c in range(cg):
        gather_tiles(x_p + (g * cg + c) * h * w, n_in * h * w, w, h_lim, w_lim,
                     pad_top, pad_left, STEP, SPAN, d, line, t0, nt, tiles_w, tiles_img)
        _sandwich(d, SPAN, tmp, v + c * nt, cg * nt, nt)
    for k in range(nk):
        gather_tiles(gy_p + (g * kg + k0 + k) * ho * wo, n_out * ho * wo, wo, ho, wo, 0, 0,
                     STEP, STEP, d, line, t0, nt, tiles_w, tiles_img)
        _sandwich(d, STEP, tmp, u + k * nt, nk * nt, nt)
    for a in range(POSITIONS):
        gemm(False, True, nk, cg, nt, 1, u + a * nk * nt, nt, v + a * cg * nt, nt,
             beta, sums + (a * n_out + g * kg + k0) * cg, cg)


def transformed_sums(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                     floating[:, :, :, ::1] sums, unsigned char[:, ::1] written,
                     Py_ssize_t groups, Py_ssize_t block, Py_ssize_t kernel_parts,
                     Py_ssize_t pad_top, Py_ssize_t pad_left,
                     floating[:, ::1] scratch, int n_threads):
    """sums[.., a, k, c] = sum over tiles t of U[a, k, t] * V[a, c, t] (see the module doc).

    With ``kernel_parts == 1``, tasks of (group, block of at most ``block``
    tiles) that the ``n_threads`` threads take in turn, each adding into
    its thread's ``sums[thread]`` (their total is ``S``); a thread's first
    task of group g writes its rows instead and sets ``written[thread, g]``
    (rows of a thread that ran no task of g are left as they were). Else
    tasks of (group, one of ``kernel_parts`` ranges of its kernels), each
    running over all tiles, block by block, into its own rows of
    ``sums[0]`` (all of them written; ``written[0]`` set): no sums per
    thread, but each task transforms the input tiles again.

    x (N, C, H, W) is the input, read at rows ``4*r - pad_top + i`` and
    columns ``4*tj - pad_left + j`` as zero outside and at rows (columns)
    ``>= ho + 2 - pad_top`` (``wo + 2 - pad_left``), which no output reads;
    gy (N, K, ho, wo) is grad_output, zero beyond. Invariants (checked in
    Python): sums (>= n_threads, or 1 with kernel_parts > 1; 36, K,
    C/groups); written (sums.shape[0], groups) zeroed; scratch (>= n_threads,
    >= 36*block*(Cg + Kg + 2) + 6*(4*ceil(wo/4) + 2) + 8); 1 <= kernel_parts
    <= K/groups; 0 <= pad_top, pad_left <= 2; all non-empty and C-contiguous;
    GEMM sizes fit a C int; n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = gy.shape[0], n_out = gy.shape[1]
    cdef Py_ssize_t ho = gy.shape[2], wo = gy.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t h_lim = h if h < ho + 2 - pad_top else ho + 2 - pad_top
    cdef Py_ssize_t w_lim = w if w < wo + 2 - pad_left else wo + 2 - pad_left
    cdef Py_ssize_t cg = sums.shape[3], kg = n_out // groups
    cdef Py_ssize_t tiles_w = (wo + STEP - 1) // STEP
    cdef Py_ssize_t tiles_img = (ho + STEP - 1) // STEP * tiles_w
    cdef Py_ssize_t n_tiles = n_batch * tiles_img
    cdef Py_ssize_t part = n_tiles if kernel_parts > 1 else even_part(n_tiles, block, groups,
                                                                       n_threads)
    cdef Py_ssize_t n_parts = (n_tiles + part - 1) // part
    cdef Py_ssize_t k_part = (kg + kernel_parts - 1) // kernel_parts
    cdef Py_ssize_t n_tasks = groups * (n_parts if kernel_parts == 1 else kernel_parts)
    cdef Py_ssize_t task, g, t0, nt, k0, nk, tid
    cdef Py_ssize_t scratch_row = scratch.shape[1]
    cdef Py_ssize_t line_at = POSITIONS * block * (cg + kg + 2)
    cdef Py_ssize_t sums_row = sums.shape[1] * sums.shape[2] * sums.shape[3]
    # The products' multiply-adds: small problems stay on the calling thread.
    cdef bint parallel = (n_threads > 1 and n_tasks > 1
                          and n_tiles * POSITIONS * cg * n_out >= PARALLEL_WORK)
    cdef const floating *x_p = &x[0, 0, 0, 0]
    cdef const floating *gy_p = &gy[0, 0, 0, 0]
    cdef floating *sums_p = &sums[0, 0, 0, 0]
    cdef floating *scratch_p = &scratch[0, 0]
    cdef unsigned char *written_p = &written[0, 0]
    h_lim = h_lim if h_lim > 0 else 0
    w_lim = w_lim if w_lim > 0 else 0
    if kernel_parts > 1:
        for g in range(groups):
            written_p[g] = 1
    with nogil:
        for task in prange(n_tasks, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=parallel):
            tid = threadid()
            if kernel_parts == 1:
                g = task // n_parts
                t0 = (task % n_parts) * part
                nt = part if part < n_tiles - t0 else n_tiles - t0
                _task(x_p, gy_p, sums_p + tid * sums_row, scratch_p + tid * scratch_row,
                      scratch_p + tid * scratch_row + line_at,
                      written_p[tid * groups + g], g, 0, kg, t0, nt, n_in, n_out, cg, kg,
                      h, w, h_lim, w_lim, pad_top, pad_left, ho, wo, tiles_w, tiles_img)
                written_p[tid * groups + g] = 1
            else:
                g = task // kernel_parts
                k0 = (task % kernel_parts) * k_part
                nk = k_part if k_part < kg - k0 else kg - k0
                t0 = 0
                while nk > 0 and t0 < n_tiles:
                    nt = block if block < n_tiles - t0 else n_tiles - t0
                    _task(x_p, gy_p, sums_p, scratch_p + tid * scratch_row,
                          scratch_p + tid * scratch_row + line_at,
                          t0 > 0, g, k0, nk, t0, nt, n_in, n_out, cg, kg, h, w, h_lim, w_lim,
                          pad_top, pad_left, ho, wo, tiles_w, tiles_img)
                    t0 = t0 + nt

cdef enum:
    # Weights per step of the output transform: its buffers (27 KiB in double)
    # stay in L1. At 65536 weights, one thread, float32 (loaded machine,
    # indicative): 1.05 ms against 1.27 ms with 128.
    CHUNK = 64


cdef void _weights_chunk(const floating *sums, Py_ssize_t n_parts, Py_ssize_t part_step,
                         Py_ssize_t row, const double *at, floating *out,
                         Py_ssize_t nw) noexcept nogil:
    """out[i*9 + p*3 + q] = (AT @ S[:, i] @ AT.T)[p, q] for i < nw <= CHUNK, in double.

    ``S[a, i]`` is the sum over the threads t < n_parts of
    ``sums[t*part_step + a*row + i]``.
    """
    cdef double s[POSITIONS * CHUNK]
    cdef double half[3 * SPAN * CHUNK]
    cdef double c0, c1, c2, c3, c4, c5
    cdef double *h
    cdef Py_ssize_t th, a, b, p, q, i
    cdef const floating *src
    for a in range(POSITIONS):
        src = sums + a * row
        for i in range(nw):
            s[a * CHUNK + i] = src[i]
        for th in range(1, n_parts):
            src = sums + th * part_step + a * row
            for i in range(nw):
                s[a * CHUNK + i] += src[i]
    # half[p, b] = sum_a AT[p, a] S[a, b]; out[p, q] = sum_b AT[q, b] half[p, b].
    for p in range(3):
        c0, c1, c2, c3, c4, c5 = at[p * 6], at[p * 6 + 1], at[p * 6 + 2], at[p * 6 + 3], at[p * 6 + 4], at[p * 6 + 5]
        for b in range(SPAN):
            h = half + (p * SPAN + b) * CHUNK
            for i in range(nw):
                h[i] = ((c0 * s[b * CHUNK + i] + c1 * s[(SPAN + b) * CHUNK + i])
                        + (c2 * s[(2 * SPAN + b) * CHUNK + i] + c3 * s[(3 * SPAN + b) * CHUNK + i])
                        + (c4 * s[(4 * SPAN + b) * CHUNK + i] + c5 * s[(5 * SPAN + b) * CHUNK + i]))
    for p in range(3):
        h = half + p * SPAN * CHUNK
        for q in range(3):
            c0, c1, c2, c3, c4, c5 = at[q * 6], at[q * 6 + 1], at[q * 6 + 2], at[q * 6 + 3], at[q * 6 + 4], at[q * 6 + 5]
            for i in range(nw):
                out[i * 9 + p * 3 + q] = <floating> (
                    (c0 * h[i] + c1 * h[CHUNK + i]) + (c2 * h[2 * CHUNK + i] + c3 * h[3 * CHUNK + i])
                    + (c4 * h[4 * CHUNK + i] + c5 * h[5 * CHUNK + i]))


def weights_from_sums(const floating[:, :, ::1] sums, const double[:, ::1] at,
                      floating[:, ::1] out, int n_threads):
    """out[w, p*3 + q] = (AT @ S[:, w] @ AT.T)[p, q], S[a, w] = sum over threads of sums[thread, a, w].

    In double: the threads' sums added, then the 6x6 -> 3x3 transform, over
    a chunk of weights (w = k*Cg + c) at a time in the innermost loop
    (vectorized). Invariants (checked in Python): sums (T, 36, W),
    at (3, 6), out (W, 9), all non-empty and C-contiguous.
    """
    cdef Py_ssize_t n_parts = sums.shape[0], n_weights = sums.shape[2]
    cdef Py_ssize_t n_chunks = (n_weights + CHUNK - 1) // CHUNK
    cdef Py_ssize_t chunk, w0
    cdef const floating *sums_p = &sums[0, 0, 0]
    cdef const double *at_p = &at[0, 0]
    cdef floating *out_p = &out[0, 0]
    with nogil:
        for chunk in prange(n_chunks, schedule='static', num_threads=n_threads,
                            use_threads_if=n_threads > 1 and n_weights * 36 * 9 >= PARALLEL_WORK):
            w0 = chunk * CHUNK
            _weights_chunk(sums_p + w0, n_parts, POSITIONS * n_weights, n_weights, at_p,
                           out_p + w0 * 9, CHUNK if CHUNK < n_weights - w0 else n_weights - w0)
