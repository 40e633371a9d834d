from cyconv._fused cimport blas_t

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               blas_t alpha, const blas_t *a, int lda,
               const blas_t *b, int ldb,
               blas_t beta, blas_t *c, int ldc) noexcept nogil
