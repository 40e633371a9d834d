# The direct kernel's row loop, for cyconv._small's one-plane fast path.
from cyconv._fused cimport direct_t

cdef void _conv_row(const direct_t *x_img, const direct_t *w_k, direct_t *out_row,
                    direct_t bias, Py_ssize_t i,
                    Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                    Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
