"""Max and average pooling kernels, forward and backward.

Every kernel works on a stack of independent planes (N*C of them): a window
of output pixel (i, j) reads the taps

    y = i*sh - ph + p*dh,  x = j*sw - pw + q*dw    (0 <= p < kh, 0 <= q < kw)

of its own plane, and taps outside the input are skipped: for max pooling
the padding is -inf, which never wins a comparison, and for average pooling
it is 0, which adds nothing (it only counts in the divisor). The in-bounds
tap range of a window is computed once per row and per column with the
helpers of _bounds.pxd, so the inner loops carry no bounds test.

Output rows of ROW_WINDOWS or more windows are computed a whole row at a
time, so that the inner loops run over the windows of a row and vectorize:
max pooling makes one pass per tap (p, q), in the windows' row-major tap
order; average pooling sums the window rows' columns first (the divisor is
a product of a row and a column factor), and its backward pass, the
adjoint, spreads each gradient row along the columns, then over the rows.
Each thread works on whole planes, with its own scratch (_thread_scratch).

Max pooling follows PyTorch's CPU kernel (``cpu_max_pool``): the running
maximum starts at -inf with the index of the first in-bounds tap, and a tap
replaces it when ``val > max or isnan(val)``. So the first maximum in
row-major window order wins a tie, a NaN always wins (the last NaN of the
window, if there are several), and a window of -inf values reports its first
in-bounds tap.
"""
from libc.math cimport INFINITY, isnan
from libc.stdint cimport int64_t, uint64_t
from cython cimport floating

from cython.parallel cimport prange, threadid

import numpy as np

from cyconv._bounds cimport first_inside, end_inside
from cyconv._openmp cimport PARALLEL_WORK, kernel_threads


cdef enum:
    # The row kernels (one vectorized pass per tap over an output row's
    # windows) take over from the window-at-a-time loops from this many
    # windows per row (measured on AVX-512: below 8 the overhead of the short
    # passes loses), for kernels no wider than the input (they make kw
    # passes per row, and a wider kernel's taps mostly land in the padding).
    ROW_WINDOWS = 8


cdef object _thread_scratch(int n_threads, Py_ssize_t n, dtype):
    """np.empty((n_threads, m), dtype) for n values per thread, in cache lines
    that no other thread writes: m is n rounded up to whole 64-byte lines, plus
    one line, since the array need not start on a line boundary."""
    cdef Py_ssize_t per_line = 64 // np.dtype(dtype).itemsize
    return np.empty((n_threads, (n + per_line - 1) // per_line * per_line + per_line),
                    dtype=dtype)


cdef inline void _max_window(const floating *plane, Py_ssize_t w,
                             Py_ssize_t y0, Py_ssize_t p_lo, Py_ssize_t p_hi, Py_ssize_t dh,
                             Py_ssize_t x0, Py_ssize_t q_lo, Py_ssize_t q_hi, Py_ssize_t dw,
                             floating *out, int64_t *index) noexcept nogil:
    """out = max of plane[y0 + p*dh, x0 + q*dw] over p in [p_lo, p_hi), q in [q_lo, q_hi).

    index = the flat position y*w + x of that maximum. Both ranges are in
    bounds; if either is empty (a dilated window wholly in the padding),
    out = -inf and index = -1, as nothing in the input is its maximum.
    """
    cdef Py_ssize_t p, q, pos, row
    cdef floating val
    cdef floating best = -INFINITY
    cdef Py_ssize_t best_pos = (y0 + p_lo * dh) * w + x0 + q_lo * dw
    for p in range(p_lo, p_hi):
        row = (y0 + p * dh) * w + x0
        for q in range(q_lo, q_hi):
            pos = row + q * dw
            val = plane[pos]
            if val > best or isnan(val):
                best = val
                best_pos = pos
    if p_lo >= p_hi or q_lo >= q_hi:
        best_pos = -1
    out[0] = best
    index[0] = best_pos


cdef void _max_windows(const floating *plane, Py_ssize_t h, Py_ssize_t w,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t ho, Py_ssize_t wo, floating *out,
                       int64_t *index, Py_ssize_t index_step) noexcept nogil:
    """One plane of max_pool2d_forward, a window at a time (_max_window).

    Window (i, j)'s index goes to index[(i*wo + j) * index_step]: index_step
    is 1, or 0 to drop the indices into one scratch cell.
    """
    cdef Py_ssize_t i, j, y0, x0, p_lo, p_hi
    for i in range(ho):
        y0 = i * sh - ph
        p_lo = first_inside(y0, dh)
        p_hi = end_inside(y0, dh, h, kh)
        for j in range(wo):
            x0 = j * sw - pw
            _max_window(plane, w, y0, p_lo, p_hi, dh,
                        x0, first_inside(x0, dw), end_inside(x0, dw, w, kw), dw,
                        out + i * wo + j, index + (i * wo + j) * index_step)


cdef inline void _max_tap(const floating *row, Py_ssize_t row_pos, Py_ssize_t off,
                          Py_ssize_t sw, Py_ssize_t j_lo, Py_ssize_t j_hi,
                          floating *out, int64_t *index) noexcept nogil:
    """One tap for the windows j_lo <= j < j_hi of an output row: the tap at
    row[j*sw + off] (flat position row_pos + j*sw + off) replaces out[j] and
    index[j] if it is larger or NaN."""
    cdef Py_ssize_t j, pos
    cdef floating val
    cdef bint take
    for j in range(j_lo, j_hi):
        pos = j * sw + off
        val = row[pos]
        # Select and store unconditionally: blends, not branches on the data.
        take = val > out[j] or isnan(val)
        out[j] = val if take else out[j]
        index[j] = row_pos + pos if take else index[j]


cdef void _max_plane(const floating *plane, Py_ssize_t h, Py_ssize_t w,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                     Py_ssize_t ho, Py_ssize_t wo, const Py_ssize_t *first_x,
                     const Py_ssize_t *taps, floating *out, int64_t *index,
                     Py_ssize_t index_step) noexcept nogil:
    """One plane of max_pool2d_forward, a whole output row at a time.

    The windows of an output row see the taps in the same row-major order
    (p, then q) as _max_window, each tap as one pass over the windows that
    it reaches, so the passes vectorize; each window starts from -inf at its
    first in-bounds tap. first_x[j] is the first in-bounds input column of
    window j; taps[2q], taps[2q+1] the windows [j_lo, j_hi) that tap column q
    reaches (kw <= W); every window has an in-bounds tap. Output row i's
    indices go to index + i*wo*index_step: index_step is 1, or 0 to drop
    them into one scratch row of wo values.
    """
    cdef Py_ssize_t i, j, p, q, y0, p_lo, p_hi, y
    cdef floating *out_row
    cdef int64_t *index_row
    for i in range(ho):
        y0 = i * sh - ph
        p_lo = first_inside(y0, dh)
        p_hi = end_inside(y0, dh, h, kh)
        out_row = out + i * wo
        index_row = index + i * wo * index_step
        y = y0 + p_lo * dh
        for j in range(wo):
            out_row[j] = -INFINITY
            index_row[j] = y * w + first_x[j]
        for p in range(p_lo, p_hi):
            y = y0 + p * dh
            for q in range(kw):
                # Constant strides 1 and 2 (the common ones) let the compiler
                # load the taps of 16 windows with two vector loads and a
                # shuffle rather than one by one.
                if sw == 2:
                    _max_tap(plane + y * w, y * w, q * dw - pw, 2, taps[2 * q],
                             taps[2 * q + 1], out_row, index_row)
                elif sw == 1:
                    _max_tap(plane + y * w, y * w, q * dw - pw, 1, taps[2 * q],
                             taps[2 * q + 1], out_row, index_row)
                else:
                    _max_tap(plane + y * w, y * w, q * dw - pw, sw, taps[2 * q],
                             taps[2 * q + 1], out_row, index_row)


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       int64_t[:, :, ::1] indices,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                       bint empty_windows=False):
    """out[c,i,j] = max_{p,q} x[c, i*sh-ph+p*dh, j*sw-pw+q*dw]; indices[c,i,j] = y*W + x of it.

    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    x is (planes, H, W), out and indices (planes, ho, wo); kernel sizes,
    strides and dilations >= 1, paddings >= 0. indices may be None: the
    indices then go to a scratch row per thread, and no (planes, ho, wo)
    int64 array is needed. empty_windows: some window has no in-bounds tap
    (dilation jumping over the input); those get -inf and index -1, on the
    window-at-a-time path.
    """
    cdef Py_ssize_t planes = x.shape[0], h = x.shape[1], w = x.shape[2]
    cdef Py_ssize_t ho = out.shape[1], wo = out.shape[2]
    cdef Py_ssize_t c, j, q, x0
    cdef const floating *x_p = &x[0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0]
    cdef int n_threads = kernel_threads()
    cdef int64_t[:, ::1] idx_scratch
    cdef int64_t *idx_p
    # Window (c, i, j)'s index goes to idx_p + c*plane_step
    # + thread*thread_step + (i*wo + j)*step: into indices, or with
    # indices=None into a scratch row of wo values per thread.
    cdef Py_ssize_t step = 1, plane_step = ho * wo, thread_step = 0
    if indices is None:
        idx_scratch = _thread_scratch(n_threads, wo, np.int64)
        idx_p = &idx_scratch[0, 0]
        thread_step = idx_scratch.shape[1]
        step = plane_step = 0
    else:
        idx_p = &indices[0, 0, 0]
    # A window row at a time (see ROW_WINDOWS), with per column, then per
    # tap, the windows' bounds, computed once.
    cdef bint by_rows = kw <= w and wo >= ROW_WINDOWS and not empty_windows
    cdef Py_ssize_t[::1] first_x = np.empty(wo if by_rows else 0, dtype=np.intp)
    cdef Py_ssize_t[::1] taps = np.empty(2 * kw if by_rows else 0, dtype=np.intp)
    with nogil:
        if by_rows:
            for j in range(wo):
                x0 = j * sw - pw
                first_x[j] = x0 + first_inside(x0, dw) * dw
            for q in range(kw):
                taps[2 * q] = first_inside(q * dw - pw, sw)
                taps[2 * q + 1] = end_inside(q * dw - pw, sw, w, wo)
        # Planes are independent: threads split them.
        for c in prange(planes, schedule='guided', num_threads=n_threads,
                        use_threads_if=planes > 1 and planes * h * w >= PARALLEL_WORK):
            if by_rows:
                _max_plane(x_p + c * h * w, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                           &first_x[0], &taps[0], out_p + c * ho * wo,
                           idx_p + c * plane_step + threadid() * thread_step, step)
            else:
                _max_windows(x_p + c * h * w, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                             out_p + c * ho * wo,
                             idx_p + c * plane_step + threadid() * thread_step, step)


cdef Py_ssize_t _scatter_plane(const floating *g, const int64_t *idx, floating *plane,
                               Py_ssize_t n_out, Py_ssize_t n_in) noexcept nogil:
    """plane = 0, then plane[idx[t]] += g[t] for t < n_out, skipping idx[t] = -1;
    returns how many other idx[t] lie outside [0, n_in)."""
    cdef Py_ssize_t t, bad = 0
    cdef int64_t i
    # Zeroed here, just before the scatter, the plane is still in cache for
    # it: no separate pass over the whole output.
    for t in range(n_in):
        plane[t] = 0
    for t in range(n_out):
        i = idx[t]
        # One unsigned compare tests both bounds (Caffe's trick).
        if <uint64_t> i < <uint64_t> n_in:
            plane[i] += g[t]
        elif i != -1:  # -1: a window wholly in the padding, whose gradient goes nowhere
            bad += 1
    return bad


def max_pool2d_backward(const floating[:, ::1] grad_out, const int64_t[:, ::1] indices,
                        floating[:, ::1] grad_in):
    """grad_in[c] = 0, then grad_in[c, indices[c, t]] += grad_out[c, t] for every output pixel t.

    Returns the number of indices outside [0, H*W), which are skipped: the
    range check happens here, in the same pass, rather than in two extra
    passes over the indices in Python (the caller raises if it is not 0).
    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    grad_out and indices are (planes, ho*wo), grad_in (planes, H*W), which
    need not be zero-filled.
    """
    cdef Py_ssize_t planes = grad_out.shape[0], n_out = grad_out.shape[1]
    cdef Py_ssize_t n_in = grad_in.shape[1], c, bad = 0
    cdef const floating *g_p = &grad_out[0, 0]
    cdef const int64_t *idx_p = &indices[0, 0]
    cdef floating *gi_p = &grad_in[0, 0]
    with nogil:
        # Planes are independent: threads split them.
        for c in prange(planes, schedule='guided', num_threads=kernel_threads(),
                        use_threads_if=planes > 1 and planes * (n_in + n_out) >= PARALLEL_WORK):
            bad += _scatter_plane(g_p + c * n_out, idx_p + c * n_out, gi_p + c * n_in,
                                  n_out, n_in)
    return bad


cdef struct AvgPool:
    # An average pooling's geometry; divisor 0 means "count the cells".
    Py_ssize_t h, w, kh, kw, sh, sw, ph, pw, divisor
    bint count_include_pad


cdef inline double _axis_count(Py_ssize_t start, Py_ssize_t k, Py_ssize_t size, Py_ssize_t pad,
                               bint count_include_pad, Py_ssize_t *lo,
                               Py_ssize_t *hi) noexcept nogil:
    """Cells [lo, hi) of window [start, start+k) inside the input; returns its
    length along this axis for the divisor: within the padded input
    [-pad, size+pad) (PyTorch's pool_size) if count_include_pad, else hi - lo."""
    cdef Py_ssize_t end = start + k
    lo[0] = start + first_inside(start, 1)
    hi[0] = start + end_inside(start, 1, size, k)
    if not count_include_pad:
        return <double>(hi[0] - lo[0])
    if end > size + pad:
        end = size + pad
    return <double>(end - start)


cdef void _column_counts(const AvgPool *pool, Py_ssize_t wo, double *count_w) noexcept nogil:
    """count_w[j] = the column factor of window column j's divisor: its count
    along W (_axis_count), or pool.divisor if nonzero (the row factor is then 1)."""
    cdef Py_ssize_t j, x_lo, x_hi
    for j in range(wo):
        count_w[j] = _axis_count(j * pool.sw - pool.pw, pool.kw, pool.w, pool.pw,
                                 pool.count_include_pad, &x_lo, &x_hi)
        if pool.divisor != 0:
            count_w[j] = <double>pool.divisor


cdef inline double _row_count(const AvgPool *pool, Py_ssize_t i, Py_ssize_t *y_lo,
                              Py_ssize_t *y_hi) noexcept nogil:
    """The rows [y_lo, y_hi) of window row i inside the input, and the row
    factor of its divisor (1 if pool.divisor is nonzero: see _column_counts)."""
    cdef double count_h = _axis_count(i * pool.sh - pool.ph, pool.kh, pool.h, pool.ph,
                                      pool.count_include_pad, y_lo, y_hi)
    return 1 if pool.divisor != 0 else count_h


cdef inline void _add_taps(const double *src, Py_ssize_t sw, double *acc,
                           Py_ssize_t n) noexcept nogil:
    """acc[j] += src[j*sw] for j < n."""
    cdef Py_ssize_t j
    for j in range(n):
        acc[j] += src[j * sw]


cdef void _avg_forward_windows(const floating *plane, floating *out, const AvgPool *pool,
                               Py_ssize_t ho, Py_ssize_t wo,
                               const double *count_w) noexcept nogil:
    """One plane of avg_pool2d_forward, a window at a time: each window's
    in-bounds cells summed in double, row by row, so float32 loses nothing."""
    cdef Py_ssize_t w = pool.w, i, j, x, y, x0, x_lo, x_hi, y_lo, y_hi
    cdef double count_h, total
    for i in range(ho):
        count_h = _row_count(pool, i, &y_lo, &y_hi)
        for j in range(wo):
            x0 = j * pool.sw - pool.pw
            x_lo = x0 if x0 > 0 else 0
            x_hi = x0 + pool.kw if x0 + pool.kw < w else w
            total = 0
            for y in range(y_lo, y_hi):
                for x in range(x_lo, x_hi):
                    total += plane[y * w + x]
            out[i * wo + j] = <floating>(total / (count_h * count_w[j]))


cdef void _avg_forward_plane(const floating *plane, floating *out, const AvgPool *pool,
                             Py_ssize_t ho, Py_ssize_t wo, const double *count_w,
                             double *sums) noexcept nogil:
    """One plane of avg_pool2d_forward, a whole output row at a time (kw <= W).

    The window row's input rows are first summed into column totals (in
    double), laid out with pool.pw zeros on the left and zeros past the
    input, so that window j's sum is that of the kw totals from j*sw on,
    added as one vectorized pass per tap. sums is scratch for
    (wo-1)*sw + kw + pw + W + wo doubles.
    """
    cdef Py_ssize_t w = pool.w, kw = pool.kw, sw = pool.sw, pw = pool.pw
    cdef Py_ssize_t n = (wo - 1) * sw + kw + pw + w  # covers the padding and overhang
    cdef double *total = sums + pw
    cdef double *acc = sums + n
    cdef double count_h
    cdef Py_ssize_t i, j, t, x, y, y_lo, y_hi
    for x in range(n):
        sums[x] = 0
    for i in range(ho):
        count_h = _row_count(pool, i, &y_lo, &y_hi)
        for x in range(w):
            total[x] = 0
        for y in range(y_lo, y_hi):
            for x in range(w):
                total[x] += plane[y * w + x]
        for j in range(wo):
            acc[j] = 0
        for t in range(kw):
            # Constant strides 1 and 2 (the common ones) load the column
            # totals of several windows at once.
            if sw == 2:
                _add_taps(sums + t, 2, acc, wo)
            elif sw == 1:
                _add_taps(sums + t, 1, acc, wo)
            else:
                _add_taps(sums + t, sw, acc, wo)
        for j in range(wo):
            out[i * wo + j] = <floating>(acc[j] / (count_h * count_w[j]))


def avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                       Py_ssize_t divisor):
    """out[c,i,j] = sum_{p,q} x[c, i*sh-ph+p, j*sw-pw+q] / divisor(i, j) (0 in the padding).

    divisor(i, j) is ``divisor`` if nonzero, else the number of window cells
    inside the padded input (count_include_pad) or inside the input.
    Invariants (checked in Python): all arrays C-contiguous and non-empty;
    x is (planes, H, W), out (planes, ho, wo); kernel sizes and strides >= 1,
    0 <= padding <= kernel // 2; every window has an in-bounds cell.
    """
    cdef Py_ssize_t planes = x.shape[0], h = x.shape[1], w = x.shape[2]
    cdef Py_ssize_t ho = out.shape[1], wo = out.shape[2]
    cdef AvgPool pool = AvgPool(h, w, kh, kw, sh, sw, ph, pw, divisor, count_include_pad)
    cdef int n_threads = kernel_threads()
    cdef Py_ssize_t c
    cdef const floating *x_p = &x[0, 0, 0]
    cdef floating *out_p = &out[0, 0, 0]
    # A window row at a time (see ROW_WINDOWS), with the column factors of
    # the divisors and, per thread, _avg_forward_plane's scratch.
    cdef bint by_rows = kw <= w and wo >= ROW_WINDOWS
    cdef double[::1] count_w = np.empty(wo, dtype=np.float64)
    cdef double[:, ::1] sums = _thread_scratch(
        n_threads, (wo - 1) * sw + kw + pw + w + wo if by_rows else 0, np.float64)
    with nogil:
        _column_counts(&pool, wo, &count_w[0])
        # Planes are independent: threads split them.
        for c in prange(planes, schedule='guided', num_threads=n_threads,
                        use_threads_if=planes > 1 and planes * h * w >= PARALLEL_WORK):
            if by_rows:
                _avg_forward_plane(x_p + c * h * w, out_p + c * ho * wo, &pool, ho, wo,
                                   &count_w[0], &sums[threadid(), 0])
            else:
                _avg_forward_windows(x_p + c * h * w, out_p + c * ho * wo, &pool, ho, wo,
                                     &count_w[0])


cdef inline void _spread_row(const floating *g, const double *count_w, double count_h,
                             bint exact, Py_ssize_t w, Py_ssize_t wo, Py_ssize_t kw,
                             Py_ssize_t sw, Py_ssize_t pw, floating *share,
                             floating *spread, floating *row) noexcept nogil:
    """row[x] = sum of g[j] / (count_h * count_w[j]) over the windows j holding x,
    that is with j*sw - pw <= x < j*sw - pw + kw, in increasing j.

    exact: every count_h * count_w[j] is an integer of at most 2**24 (a float).
    share is scratch for wo values; spread is NULL (window by window), or
    scratch for W + kw - 1 values (one pass per tap; needs kw <= W).
    """
    cdef Py_ssize_t j, x, t, x0, x_end
    cdef Py_ssize_t base = kw - 1 - pw
    # The divisions first, apart from the sums, so that they vectorize.
    if floating is float:
        if exact:
            # A float quotient of float operands rounds like the double one
            # rounded to float (53 >= 2*24 + 2 bits), at twice the lanes.
            for j in range(wo):
                share[j] = g[j] / <float>(count_h * count_w[j])
        else:
            for j in range(wo):
                share[j] = <float>(g[j] / (count_h * count_w[j]))
    else:
        for j in range(wo):
            share[j] = g[j] / (count_h * count_w[j])
    for x in range(w):
        row[x] = 0
    if spread != NULL:
        # A box filter: share[j] at spread[j*sw + base] among zeros, then
        # row[x] = sum_t spread[x + t] for t < kw, as kw vectorized passes
        # (the zeros in between add nothing).
        for x in range(w + kw - 1):
            spread[x] = 0
        for j in range(wo):
            spread[j * sw + base] = share[j]
        for t in range(kw):
            for x in range(w):
                row[x] += spread[x + t]
    else:
        # Window by window, over its cells inside the row only.
        for j in range(wo):
            x0 = j * sw - pw
            x_end = x0 + kw
            if x_end > w:
                x_end = w
            for x in range(x0 if x0 > 0 else 0, x_end):
                row[x] += share[j]


cdef inline void _add_row(floating *dst, const floating *src, Py_ssize_t n) noexcept nogil:
    """dst[x] += src[x] for x < n."""
    cdef Py_ssize_t x
    for x in range(n):
        dst[x] += src[x]


cdef inline void _set_row(floating *dst, const floating *src, Py_ssize_t n) noexcept nogil:
    """dst[x] = src[x] for x < n, or 0 if src is NULL."""
    cdef Py_ssize_t x
    if src == NULL:
        for x in range(n):
            dst[x] = 0
    else:
        for x in range(n):
            dst[x] = src[x]


cdef void _avg_backward_plane(const floating *g, floating *plane, const AvgPool *pool,
                              Py_ssize_t ho, Py_ssize_t wo, const double *count_w,
                              bint exact, floating *u, floating *spread) noexcept nogil:
    """One plane of avg_pool2d_backward: g is (ho, wo), plane (H, W); count_w
    holds the column factors of the divisors; exact and spread as _spread_row
    takes them; u is scratch for W + wo values."""
    cdef Py_ssize_t h = pool.h, w = pool.w, i, y, y_lo, y_hi
    cdef Py_ssize_t done = 0  # rows [0, done) of the plane are written
    cdef double count_h
    for i in range(ho):
        count_h = _row_count(pool, i, &y_lo, &y_hi)
        _spread_row(g + i * wo, count_w, count_h, exact, w, wo, pool.kw, pool.sw, pool.pw,
                    u + w, spread, u)
        for y in range(done, y_lo):
            _set_row(plane + y * w, NULL, w)
        for y in range(y_lo, y_hi):
            if y < done:
                _add_row(plane + y * w, u, w)
            else:
                _set_row(plane + y * w, u, w)
        if y_hi > done:
            done = y_hi
    for y in range(done, h):
        _set_row(plane + y * w, NULL, w)


def avg_pool2d_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                        Py_ssize_t divisor):
    """grad_in[c, y, x] = sum_{windows (i, j) holding (y, x)} grad_out[c, i, j] / divisor(i, j).

    The adjoint of avg_pool2d_forward with the same parameters. The divisor
    is a product count_h(i) * count_w(j) (or the constant ``divisor``), so
    the sum is separable: each grad_out row i is first spread along its
    columns into a row u_i of W values, then added to the input rows its
    windows hold. Every grad_in row is written while in cache, first a copy
    of its first u_i, then the adds; rows and columns no window holds get 0
    (grad_in need not be zero-filled). Invariants: as avg_pool2d_forward,
    with grad_out (planes, ho, wo) and grad_in (planes, H, W).
    """
    cdef Py_ssize_t planes = grad_in.shape[0], h = grad_in.shape[1], w = grad_in.shape[2]
    cdef Py_ssize_t ho = grad_out.shape[1], wo = grad_out.shape[2]
    cdef AvgPool pool = AvgPool(h, w, kh, kw, sh, sw, ph, pw, divisor, count_include_pad)
    cdef int n_threads = kernel_threads()
    cdef Py_ssize_t c
    # Per window column j: the column factor of its divisor.
    cdef double[::1] count_w = np.empty(wo, dtype=np.float64)
    # Divisors of at most kh*kw cells, or the given one.
    cdef double largest = abs(<double>divisor) if divisor != 0 else <double>kh * <double>kw
    cdef bint exact = largest <= 2.0**24
    # Per thread: the row u_i (W values), the shares of one grad_out row (wo),
    # and _spread_row's buffer for its passes per tap (see ROW_WINDOWS).
    cdef bint by_taps = kw <= w and wo >= ROW_WINDOWS
    cdef floating[:, ::1] scratch = _thread_scratch(
        n_threads, w + wo + (w + kw - 1 if by_taps else 0),
        np.float32 if floating is float else np.float64)
    cdef const floating *g_p = &grad_out[0, 0, 0]
    cdef floating *gi_p = &grad_in[0, 0, 0]
    with nogil:
        _column_counts(&pool, wo, &count_w[0])
        # Planes are independent: threads split them.
        for c in prange(planes, schedule='guided', num_threads=n_threads,
                        use_threads_if=planes > 1 and planes * h * w >= PARALLEL_WORK):
            _avg_backward_plane(g_p + c * ho * wo, gi_p + c * h * w, &pool, ho, wo,
                                &count_w[0], exact, &scratch[threadid(), 0],
                                &scratch[threadid(), w + wo] if by_taps else NULL)
