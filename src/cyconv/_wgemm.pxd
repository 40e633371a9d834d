# _wgemm.h's GEMMs, declared once for the modules that run them:
# _winograd.pyx (the unpacked one for Winograd's products, the packed one
# for stride 2's) and _pointwise.pyx (the packed one).
from cython cimport floating

cdef extern from "_wgemm.h" nogil:
    int CYCONV_WG_MAX_LANES
    void cyconv_wg_gemm_float(const float *u, Py_ssize_t ldu, const float *v, float *m,
                              Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t nt, Py_ssize_t ld)
    void cyconv_wg_gemm_double(const double *u, Py_ssize_t ldu, const double *v, double *m,
                               Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t nt, Py_ssize_t ld)
    void cyconv_pg_gemm_float(const float *u, Py_ssize_t ldu, const float *v, Py_ssize_t ldv,
                              int vt, float *m, Py_ssize_t ldm, Py_ssize_t kg,
                              Py_ssize_t cg, Py_ssize_t nt, const float *bias, int accumulate)
    void cyconv_pg_gemm_double(const double *u, Py_ssize_t ldu, const double *v,
                               Py_ssize_t ldv, int vt, double *m, Py_ssize_t ldm,
                               Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t nt,
                               const double *bias, int accumulate)
    void cyconv_pg_transpose_float(const float *src, Py_ssize_t lds, float *dst, Py_ssize_t ldd,
                                   Py_ssize_t rows, Py_ssize_t cols)
    void cyconv_pg_transpose_double(const double *src, Py_ssize_t lds, double *dst,
                                    Py_ssize_t ldd, Py_ssize_t rows, Py_ssize_t cols)


cdef inline void packed_gemm(const floating *u, Py_ssize_t ldu, const floating *v,
                             Py_ssize_t ldv, bint vt, floating *m, Py_ssize_t ldm,
                             Py_ssize_t kg, Py_ssize_t cg, Py_ssize_t nt,
                             const floating *bias, bint accumulate) noexcept nogil:
    """The packed GEMM (cyconv_pg_gemm_* in _wgemm.h: m = start + u @ v) for either dtype."""
    if floating is float:
        cyconv_pg_gemm_float(u, ldu, v, ldv, vt, m, ldm, kg, cg, nt, bias, accumulate)
    else:
        cyconv_pg_gemm_double(u, ldu, v, ldv, vt, m, ldm, kg, cg, nt, bias, accumulate)
