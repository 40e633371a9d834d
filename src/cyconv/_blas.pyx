"""The one place that calls BLAS: ?gemm from scipy.linalg.cython_blas.

Every matrix here is C-ordered (row-major). BLAS is column-major, and a
row-major ``C = op(A) @ op(B)`` is the column-major ``C.T = op(B).T @ op(A).T``,
so the operands are swapped at the call (sklearn ``utils/_cython_blas.pyx``,
RowMajor branch).
"""
from scipy.linalg.cython_blas cimport sgemm, dgemm, cgemm, zgemm

from cyconv._fused cimport blas_t, cfloat, cdouble

include "_blas_int.pxi"


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               blas_t alpha, const blas_t *a, int lda,
               const blas_t *b, int ldb,
               blas_t beta, blas_t *c, int ldc) noexcept nogil:
    """C[m x n] := alpha * op(A)[m x k] @ op(B)[k x n] + beta * C, all row-major.

    lda, ldb, ldc are the row lengths (in elements) of A, B and C as stored.
    The caller checks that every size fits in an int.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef blas_int bm = m, bn = n, bk = k, blda = lda, bldb = ldb, bldc = ldc
    # cython_blas takes non-const pointers although it never writes A or B:
    # drop const only here (scipy issue 14262, as sklearn does).
    if blas_t is float:
        sgemm(&tb, &ta, &bn, &bm, &bk, &alpha, <float *> b, &bldb,
              <float *> a, &blda, &beta, c, &bldc)
    elif blas_t is double:
        dgemm(&tb, &ta, &bn, &bm, &bk, &alpha, <double *> b, &bldb,
              <double *> a, &blda, &beta, c, &bldc)
    elif blas_t is cfloat:
        cgemm(&tb, &ta, &bn, &bm, &bk, &alpha, <cfloat *> b, &bldb,
              <cfloat *> a, &blda, &beta, c, &bldc)
    else:
        zgemm(&tb, &ta, &bn, &bm, &bk, &alpha, <cdouble *> b, &bldb,
              <cdouble *> a, &blda, &beta, c, &bldc)


def _gemm_memview(bint trans_a, bint trans_b, blas_t alpha,
                  const blas_t[:, ::1] a, const blas_t[:, ::1] b,
                  blas_t beta, blas_t[:, ::1] c):
    """Test hook: C := alpha * op(A) @ op(B) + beta * C on 2-D C-ordered arrays."""
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    with nogil:
        gemm(trans_a, trans_b, m, n, k, alpha, &a[0, 0], a.shape[1],
             &b[0, 0], b.shape[1], beta, &c[0, 0], c.shape[1])
