"""1x1 convolution at stride 1 without padding: one packed GEMM per image and group.

A pointwise layer is the product of the (K, C) weight and each image's
(C, H*W) planes, with no copy to make (Caffe's ``is_1x1_``). OpenBLAS ran
that GEMM (512 x 256 @ 256 x 784) at 145 GFLOP/s on one AVX-512 core with
the operands in cache (MKL, in PyTorch, 166; the core's multiply-add peak
214): it packs both operands on every call for a product it then sums only
256 deep. `_wgemm.h`'s packed GEMM copies a panel of the image's columns at
a time into a buffer that stays in L1, and ran it at 168-171 (see there).
The gradients take the same GEMM: the input gradient with the weight
transposed first, the weight gradient with the panels copied transposed.
Built once per SIMD level like ``_winograd`` (see meson.build and
cyconv._dispatch).
"""
from cython cimport floating
from cpython.pycapsule cimport PyCapsule_New
from cython.parallel cimport prange, threadid

from cyconv._openmp cimport PARALLEL_WORK, kernel_threads
from cyconv._split cimport even_part
from cyconv._wgemm cimport (CYCONV_WG_MAX_LANES, cyconv_pg_gemm_double, cyconv_pg_gemm_float,
                            cyconv_pg_transpose_double, cyconv_pg_transpose_float, packed_gemm)


def packed_gemms():
    """This build's packed GEMM as capsules, {'float32': ..., 'float64': ...}.

    For _im2col's gradients: that module is built once, at the baseline
    SIMD level, and runs this one through the pointer (see
    _im2col.conv2d_grad_weight). The capsule names are the C types.
    """
    return {"float32": PyCapsule_New(<void *> cyconv_pg_gemm_float,
                                     b"cyconv_pg_gemm_float", NULL),
            "float64": PyCapsule_New(<void *> cyconv_pg_gemm_double,
                                     b"cyconv_pg_gemm_double", NULL)}


def transpose(const floating[:, :, ::1] src, floating[:, :, ::1] dst):
    """dst[g] = src[g].T for every g: each group's block of a 1x1 weight, for its input gradient.

    NumPy's transposed copy of a 512 x 2048 float32 weight took 5.3 ms, its
    power-of-two strides striding through few cache sets; _wgemm.h's
    blocked transpose does it in one pass. Invariants: src (G, R, S) and dst
    (G, S, R) C-contiguous and non-empty.
    """
    cdef Py_ssize_t groups = src.shape[0], rows = src.shape[1], cols = src.shape[2], g
    with nogil:
        for g in range(groups):
            if floating is float:
                cyconv_pg_transpose_float(&src[g, 0, 0], cols, &dst[g, 0, 0], rows, cols, rows)
            else:
                cyconv_pg_transpose_double(&src[g, 0, 0], cols, &dst[g, 0, 0], rows, cols, rows)


def products(const floating[:, :, ::1] x, const floating[:, ::1] weight,
             const floating[::1] bias, bint has_bias, floating[:, :, ::1] out,
             Py_ssize_t groups):
    """out[n, g-rows] = W_g @ x[n, g-rows of x] (+ bias[g-rows]), for every image and group.

    W_g is group g's block of rows of weight (R = rows_out, S = rows_in):
    a 1x1 layer's forward (weight (K, C/groups)), or its input gradient
    (grad_output for x and each group's block of the weight transposed).
    Tasks of (image, group, block of columns), taken in turn by the kernel
    threads.

    Invariants: x (N, groups*S, P), out (N, groups*R, P) and weight
    (groups*R, S) C-contiguous and non-empty; bias (groups*R,) even when
    has_bias is False.
    """
    cdef Py_ssize_t n_batch = x.shape[0], n_pos = x.shape[2]
    cdef Py_ssize_t rows_in = x.shape[1] // groups, rows_out = out.shape[1] // groups
    cdef int n_threads = kernel_threads()
    cdef Py_ssize_t lanes = CYCONV_WG_MAX_LANES
    # Blocks of whole vectors, so that only an image's last one has a partial one.
    cdef Py_ssize_t block = even_part(n_pos, n_pos, n_batch * groups, n_threads)
    block = (block + lanes - 1) // lanes * lanes
    cdef Py_ssize_t n_blocks = (n_pos + block - 1) // block
    cdef Py_ssize_t tasks = n_batch * groups * n_blocks, task, n, g, start
    cdef const floating *x_p = &x[0, 0, 0]
    cdef const floating *w_p = &weight[0, 0]
    cdef floating *out_p = &out[0, 0, 0]
    cdef const floating *b_p
    with nogil:
        for task in prange(tasks, schedule='dynamic', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1
                           and n_batch * out.shape[1] * n_pos * rows_in >= PARALLEL_WORK):
            n = task // (groups * n_blocks)
            g = task // n_blocks % groups
            start = task % n_blocks * block
            b_p = &bias[g * rows_out] if has_bias else NULL
            packed_gemm(w_p + g * rows_out * rows_in, rows_in,
                        x_p + (n * groups + g) * rows_in * n_pos + start, n_pos, False,
                        out_p + (n * groups + g) * rows_out * n_pos + start, n_pos,
                        rows_out, rows_in, block if block < n_pos - start else n_pos - start,
                        b_p, False)


def weight_products(const floating[:, :, ::1] x, const floating[:, :, ::1] grad_out,
                    floating[:, ::1] grad_weight, Py_ssize_t groups):
    """grad_weight[t] += sum over thread t's tasks of grad_out[n, g-block] @ x[n, g-channels].T.

    A 1x1 layer's weight gradient. Tasks of (image, group, block of
    pixels), split statically over at most ``grad_weight.shape[0]`` kernel
    threads (the same split, so the same sums, on every run); thread t adds
    into its own row ``grad_weight[t]`` (a flattened (K, C/groups) gradient)
    and the caller adds the rows.

    Invariants: x (N, C, P), grad_out (N, K, P) and grad_weight (threads,
    K*C/groups) C-contiguous and non-empty, grad_weight zero-filled.
    """
    cdef Py_ssize_t n_batch = x.shape[0], n_pos = x.shape[2]
    cdef Py_ssize_t cg = x.shape[1] // groups, kg = grad_out.shape[1] // groups
    cdef int n_threads = kernel_threads()
    if n_threads > grad_weight.shape[0]:
        n_threads = <int> grad_weight.shape[0]
    cdef Py_ssize_t block = even_part(n_pos, n_pos, n_batch * groups, n_threads)
    cdef Py_ssize_t n_blocks = (n_pos + block - 1) // block
    cdef Py_ssize_t tasks = n_batch * groups * n_blocks, task, n, g, start
    cdef const floating *x_p = &x[0, 0, 0]
    cdef const floating *gy_p = &grad_out[0, 0, 0]
    cdef floating *gw_p = &grad_weight[0, 0]
    cdef Py_ssize_t gw_row = grad_weight.shape[1]
    with nogil:
        for task in prange(tasks, schedule='static', num_threads=n_threads,
                           use_threads_if=n_threads > 1 and tasks > 1
                           and n_batch * grad_out.shape[1] * n_pos * cg >= PARALLEL_WORK):
            n = task // (groups * n_blocks)
            g = task // n_blocks % groups
            start = task % n_blocks * block
            # (kg x cg) += grad_out block (kg x count) @ its pixels of x, transposed.
            packed_gemm(gy_p + (n * groups + g) * kg * n_pos + start, n_pos,
                        x_p + (n * groups + g) * cg * n_pos + start, n_pos, True,
                        gw_p + threadid() * gw_row + g * kg * cg, cg,
                        kg, block if block < n_pos - start else n_pos - start, cg, NULL, True)
