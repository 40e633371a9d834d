# Index arithmetic shared by the kernels. With cdivision, C `//` truncates
# toward zero, so both helpers divide non-negative numbers only.

cdef inline Py_ssize_t first_inside(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    """Smallest j >= 0 with j*stride + offset >= 0 (stride > 0)."""
    if offset >= 0:
        return 0
    return (-offset + stride - 1) // stride


cdef inline Py_ssize_t end_inside(Py_ssize_t offset, Py_ssize_t stride,
                                  Py_ssize_t size, Py_ssize_t limit) noexcept nogil:
    """One past the largest j < limit with j*stride + offset < size (stride > 0)."""
    cdef Py_ssize_t last = size - 1 - offset
    if last < 0:
        return 0
    last = last // stride + 1
    return last if last < limit else limit
