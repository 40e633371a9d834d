# Fused types shared by the kernels (skimage _shared/fused_numerics.pxd).

ctypedef float complex cfloat
ctypedef double complex cdouble
ctypedef long double complex clongdouble
ctypedef unsigned long long uint64

# The element types a BLAS GEMM exists for: sgemm, dgemm, cgemm, zgemm.
ctypedef fused blas_t:
    float
    double
    cfloat
    cdouble

# The element types the direct (nested-sum) kernel runs on: the four above,
# long double and its complex for SciPy's longdouble inputs, and uint64, in
# which every integer input is summed exactly modulo 2**64 (see _signal.py).
ctypedef fused direct_t:
    float
    double
    long double
    cfloat
    cdouble
    clongdouble
    uint64
