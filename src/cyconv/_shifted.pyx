"""Stride-1 convolution as one GEMM per kernel tap, reading the image in place.

im2col copies every input pixel kh*kw times before its one GEMM. At stride 1
the copy is not needed: with one image zero-padded to (C, Hp, Wp) and each
plane read as a flat row of Hp*Wp pixels, tap (p, q) of output pixel (i, j)
reads flat position ``(i*Wp + j) + p*dh*Wp + q*dw`` -- the same matrix for
every tap, shifted. So, per image and group,

    out_ext[k, i*Wp + j] = sum_{p, q} W_pq[k, :] @ padded[:, i*Wp + j + p*dh*Wp + q*dw]

is kh*kw GEMMs of (Kg x Cg) @ (Cg x n) with ``ldb = Hp*Wp``, accumulated in a
scratch block (beta = 1 after the first). Columns ``j >= wo`` of out_ext read
across two image rows; they are dropped when the block is copied out.
(Known as the "shift" or "kn2row" formulation.) The input gradient at stride
1 is this forward pass of the flipped kernels (see _backward.py). The weight
gradient's adjoint, ``dW_pq += gy_ext @ shifted.T``, was measured 1.2-1.6x
slower than im2col's one GEMM per image (its GEMMs are 64 x 64 with a very
long inner dimension), so it is not done here.

Several images go through each GEMM, stacked one under the other in the
padded buffer (C, nb*Hp, Wp), so that small images still make large GEMMs:
virtual row ``b*Hp + i`` is output row i of image b, and the rows i >= ho
between images are dropped like the columns j >= wo.
``Hp = ho + (kh-1)*dh`` and ``Wp = wo + (kw-1)*dw``, so the last tap of the
last pixel is the last element of the last image. The caller checks that
every GEMM size fits a C int.
"""
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy

from cyconv._fused cimport blas_t
from cyconv._blas cimport gemm
from cyconv._openmp cimport PARALLEL_WORK
from cyconv._split cimport even_part


cdef void _pad_images(const blas_t *x, blas_t *padded, Py_ssize_t n_images,
                      Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                      Py_ssize_t hp, Py_ssize_t wp, Py_ssize_t rows_total,
                      Py_ssize_t ph, Py_ssize_t pw, int n_threads) noexcept nogil:
    """padded[c, b*hp + y + ph, x + pw] = x[b, c, y, x], inside each image's hp x wp cell.

    ``padded`` is (channels, rows_total, wp). Only the interiors are written:
    the borders the caller zeroed stay zero from one block of images to the
    next.
    """
    cdef Py_ssize_t c, b, y, rows = h if h < hp - ph else hp - ph
    cdef Py_ssize_t cols = w if w < wp - pw else wp - pw
    cdef bint parallel = (n_threads > 1 and channels > 1
                          and n_images * channels * rows * cols >= PARALLEL_WORK)
    if rows <= 0 or cols <= 0:
        return
    for c in prange(channels, schedule='static', num_threads=n_threads,
                    use_threads_if=parallel):
        for b in range(n_images):
            for y in range(rows):
                memcpy(padded + (c * rows_total + b * hp + y + ph) * wp + pw,
                       x + ((b * channels + c) * h + y) * w, cols * sizeof(blas_t))


cdef void _band(const blas_t *w_p, const blas_t *bias, bint has_bias, blas_t *out_p,
                const blas_t *group_plane, blas_t *block,
                Py_ssize_t r0, Py_ssize_t count, Py_ssize_t n0, Py_ssize_t g,
                Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t n_out, Py_ssize_t plane,
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t hp, Py_ssize_t wp, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """Rows r0..r0+count-1 of group g's out_ext: kh*kw GEMMs into ``block``, then copied out.

    The copy drops the columns j >= wo and the rows between images, and adds
    the bias, while the block is still in this thread's cache.
    """
    cdef Py_ssize_t t, k, r, i, j
    # The last row's dropped tail is not computed.
    cdef Py_ssize_t n_cols = (count - 1) * wp + wo
    cdef blas_t b
    cdef blas_t *src
    cdef blas_t *dst
    for t in range(kh * kw):
        gemm(False, False, kg, n_cols, cg, 1,
             w_p + (t * n_out + g * kg) * cg, cg,
             group_plane + (r0 + (t // kw) * dh) * wp + (t % kw) * dw, plane,
             0 if t == 0 else 1, block, n_cols)
    for k in range(kg):
        b = bias[g * kg + k] if has_bias else 0
        for r in range(r0, r0 + count):
            i = r % hp
            if i >= ho:
                continue  # between two images
            src = block + k * n_cols + (r - r0) * wp
            dst = out_p + (((n0 + r // hp) * n_out + g * kg + k) * ho + i) * wo
            for j in range(wo):
                dst[j] = src[j] + b


def conv2d_forward(const blas_t[:, :, :, ::1] x,
                   const blas_t[:, :, ::1] w_taps,
                   const blas_t[::1] bias, bint has_bias,
                   blas_t[:, :, :, ::1] out,
                   Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                   blas_t[:, :, ::1] padded, blas_t[:, ::1] scratch, int n_threads):
    """out[n,k,i,j] = bias[k] + sum_{c,p,q} w_taps[p*kw+q, k, c] * x[n, g*Cg+c, i-ph+p*dh, j-pw+q*dw].

    Stride 1, x zero outside its bounds. Per block of images: the padded
    copy (threads split the channels), then tasks of (group, band of
    virtual rows) that the ``n_threads`` threads take in turn, each with its
    own scratch row and BLAS on one thread (see cyconv._threads).

    Invariants (checked in Python): x (N, C, H, W), w_taps (kh*kw, K,
    C/groups) -- weight[k, c, p, q] at [p*kw + q, k, c] --, bias (K,) even
    when has_bias is False, out (N, K, ho, wo) of any size (pixels of x
    beyond an image's padded cell are never read), padded (C, nb*Hp, Wp)
    zero-filled for nb >= 1 images at a time, scratch (>= n_threads, at
    least (K/groups) * Wp); all non-empty and C-contiguous; GEMM sizes fit a
    C int; n_threads >= 1.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t hp = ho + (kh - 1) * dh, wp = padded.shape[2]
    cdef Py_ssize_t rows_total = padded.shape[1], per_block = rows_total // hp
    cdef Py_ssize_t plane = rows_total * wp
    cdef Py_ssize_t cg = w_taps.shape[2], kg = n_out // groups
    cdef Py_ssize_t max_rows = scratch.shape[1] // (kg * wp)
    cdef Py_ssize_t n0, n_images, n_rows, band, n_bands, task, g, r0, count
    cdef const blas_t *x_p = &x[0, 0, 0, 0]
    cdef const blas_t *w_p = &w_taps[0, 0, 0]
    cdef blas_t *out_p = &out[0, 0, 0, 0]
    cdef blas_t *pad_p = &padded[0, 0, 0]
    cdef blas_t *scratch_p = &scratch[0, 0]
    cdef Py_ssize_t scratch_row = scratch.shape[1]
    with nogil:
        n0 = 0
        while n0 < n_batch:
            n_images = per_block if per_block < n_batch - n0 else n_batch - n0
            _pad_images(x_p + n0 * n_in * h * w, pad_p, n_images, n_in, h, w, hp, wp,
                        rows_total, ph, pw, n_threads)
            # Virtual rows up to the last image's last output row.
            n_rows = (n_images - 1) * hp + ho
            band = even_part(n_rows, max_rows if max_rows > 1 else 1, groups, n_threads)
            n_bands = (n_rows + band - 1) // band
            for task in prange(groups * n_bands, schedule='dynamic', num_threads=n_threads,
                               use_threads_if=n_threads > 1 and groups * n_bands > 1):
                g = task // n_bands
                r0 = (task % n_bands) * band
                count = band if band < n_rows - r0 else n_rows - r0
                _band(w_p, &bias[0], has_bias, out_p, pad_p + g * cg * plane,
                      scratch_p + threadid() * scratch_row, r0, count, n0, g, kg, cg,
                      n_out, plane, kh, kw, dh, dw, hp, wp, ho, wo)
            n0 += n_images
