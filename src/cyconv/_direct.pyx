"""Direct convolution: the nested sum of the definition, as C loops.

``out[n, k, i, j] = bias[k] + sum_{c, p, q} w[k, c, p, q] * x[n, g*Cg + c, y, x]``
with ``y = i*sh - ph + p*dh``, ``x = j*sw - pw + q*dw``, ``g = k // (K/groups)``
and ``Cg = C/groups``; taps that fall outside the input read zero (the zero
padding is implicit: nothing is copied). Other padding modes are materialized
by the Python layer before the call.

The loops run one output row at a time, so the row stays in L1 while every
tap adds a shifted input row into it; for each tap the in-bounds column range
is computed once, which leaves a branch-free, unit-stride inner loop when the
stride is 1.
"""
from cyconv._fused cimport direct_t
from cyconv._bounds cimport first_inside, end_inside


cdef void _conv_row(const direct_t *x_img, const direct_t *w_k, direct_t *out_row,
                    direct_t bias, Py_ssize_t i,
                    Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t wo,
                    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                    Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """out_row[j] = bias + sum_{c,p,q} w_k[c,p,q] * x_img[c, i*sh-ph+p*dh, j*sw-pw+q*dw]."""
    cdef Py_ssize_t j, c, p, q, y, offset, j_lo, j_hi
    cdef const direct_t *x_row
    cdef direct_t tap
    for j in range(wo):
        out_row[j] = bias
    for c in range(channels):
        for p in range(kh):
            y = i * sh - ph + p * dh
            if y < 0 or y >= h:
                continue
            x_row = x_img + (c * h + y) * w
            for q in range(kw):
                tap = w_k[(c * kh + p) * kw + q]
                offset = q * dw - pw
                j_lo = first_inside(offset, sw)
                j_hi = end_inside(offset, sw, w, wo)
                if sw == 1:
                    for j in range(j_lo, j_hi):
                        out_row[j] += tap * x_row[j + offset]
                else:
                    for j in range(j_lo, j_hi):
                        out_row[j] += tap * x_row[j * sw + offset]


def conv2d_forward(const direct_t[:, :, :, ::1] x,
                   const direct_t[:, :, :, ::1] weight,
                   const direct_t[::1] bias,
                   direct_t[:, :, :, ::1] out,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups):
    """out[n,k,i,j] = bias[k] + sum_{c,p,q} weight[k,c,p,q] * x[n, g*Cg+c, i*sh-ph+p*dh, j*sw-pw+q*dw].

    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    x is (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,), out
    (N, K, ho, wo) with ho, wo the floor formula of API.md for these
    parameters; strides and dilations >= 1, paddings >= 0; groups divides
    C and K.
    """
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t n_in = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t kg = n_out // groups
    cdef Py_ssize_t n, k, i, g
    cdef const direct_t *x_p = &x[0, 0, 0, 0]
    cdef const direct_t *w_p = &weight[0, 0, 0, 0]
    cdef direct_t *out_p = &out[0, 0, 0, 0]
    with nogil:
        for n in range(n_batch):
            for k in range(n_out):
                g = k // kg
                for i in range(ho):
                    _conv_row(x_p + (n * n_in + g * cg) * h * w,
                              w_p + k * cg * kh * kw,
                              out_p + ((n * n_out + k) * ho + i) * wo,
                              bias[k], i, cg, h, w, kh, kw, wo,
                              sh, sw, ph, pw, dh, dw)
