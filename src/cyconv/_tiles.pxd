# Gathering the tiles of an image plane for the Winograd kernels, read in
# place and as zeros beyond the plane's edges (no padded copy of the input).

from cython cimport floating


cdef enum:
    # Elements past the end of `window_rows`'s output that it may overwrite.
    WINDOW_SLACK = 8


cdef inline void window_rows(const floating *plane, Py_ssize_t row, Py_ssize_t y0,
                             Py_ssize_t x0, Py_ssize_t h_lim, Py_ssize_t w_lim,
                             Py_ssize_t rows, Py_ssize_t width, floating *out) noexcept nogil:
    """out[i*width + q] = plane[(y0 + i)*row + x0 + q], or 0 outside rows [0, h_lim)
    and columns [0, w_lim), for i < rows and q < width; ``out`` holds
    ``rows*width + WINDOW_SLACK`` elements (the last ones scratch)."""
    cdef Py_ssize_t i, q
    # Columns [lo, hi) of the window lie inside the plane.
    cdef Py_ssize_t lo = -x0 if x0 < 0 else 0
    cdef Py_ssize_t hi = w_lim - x0 if w_lim - x0 < width else width
    cdef bint short_edges
    cdef floating *dst
    hi = hi if hi > lo else lo
    # Up to 2 zeros on the left and WINDOW_SLACK on the right (padding up to
    # 2, partial tiles): written as fixed-size stores (the next row, written
    # after, overwrites what spills into it) rather than loops of variable
    # length, which the compiler makes into memset calls.
    short_edges = lo <= 2 and width - hi <= WINDOW_SLACK
    for i in range(rows):
        dst = out + i * width
        if 0 <= y0 + i < h_lim:
            if short_edges:
                dst[0] = 0
                dst[1] = 0
            else:
                for q in range(lo):
                    dst[q] = 0
            for q in range(lo, hi):
                dst[q] = plane[(y0 + i) * row + x0 + q]
            if short_edges:
                for q in range(WINDOW_SLACK):
                    dst[hi + q] = 0
            else:
                for q in range(hi, width):
                    dst[q] = 0
        else:
            for q in range(width):
                dst[q] = 0


cdef inline Py_ssize_t tile_run(const floating *plane, Py_ssize_t img_step, Py_ssize_t row,
                                 Py_ssize_t h_lim, Py_ssize_t w_lim, Py_ssize_t top,
                                 Py_ssize_t left, Py_ssize_t step, Py_ssize_t size,
                                 floating *line, Py_ssize_t tile, Py_ssize_t most,
                                 Py_ssize_t tiles_w, Py_ssize_t tiles_img,
                                 const floating **base, Py_ssize_t *ld) noexcept nogil:
    """The run of tiles from ``tile`` along its row of tiles (at most ``most``): its length.

    Sets ``*base`` and ``*ld`` to where the run's ``size`` rows lie (rows
    ``*ld`` apart, from the run's first column): in place where its window
    lies inside the plane, else copied zero-padded into ``line`` by
    `window_rows`. Tiles and arguments as `gather_tiles` says.
    """
    cdef Py_ssize_t r = tile % tiles_img
    cdef Py_ssize_t tj = r % tiles_w
    cdef Py_ssize_t run = tiles_w - tj if tiles_w - tj < most else most
    cdef Py_ssize_t y0 = (r // tiles_w) * step - top
    cdef Py_ssize_t x0 = tj * step - left
    cdef Py_ssize_t width = run * step + size - step  # the columns the run reads, from x0
    cdef const floating *src = plane + (tile // tiles_img) * img_step
    if y0 >= 0 and y0 + size <= h_lim and x0 >= 0 and x0 + width <= w_lim:
        base[0] = src + y0 * row + x0
        ld[0] = row
    else:
        window_rows(src, row, y0, x0, h_lim, w_lim, size, width, line)
        base[0] = line
        ld[0] = width
    return run


cdef inline void gather_tiles(const floating *plane, Py_ssize_t img_step, Py_ssize_t row,
                              Py_ssize_t h_lim, Py_ssize_t w_lim, Py_ssize_t top,
                              Py_ssize_t left, Py_ssize_t step, Py_ssize_t size, floating *d,
                              floating *line, Py_ssize_t t0, Py_ssize_t nt,
                              Py_ssize_t tiles_w, Py_ssize_t tiles_img) noexcept nogil:
    """d[(i*size + j)*nt + t] = pixel (step*r - top + i, step*tj - left + j) of tile t0 + t, 0 outside.

    Tile number ``t0 + t`` is image ``b = (t0 + t) // tiles_img``, tile row
    ``r`` and column ``tj`` (``tiles_w`` to a row); tiles are ``size`` x
    ``size`` pixels, ``step`` (4 or 2: a constant in the vectorized loops)
    apart. ``plane`` is one channel's plane (rows of ``row`` elements) in
    image 0; image b's is ``plane + b*img_step``. Rows >= h_lim, columns >=
    w_lim and negative ones read as zeros. By runs along a row of tiles,
    pixel (i, j) of all the run's tiles at a time (a stride-``step`` read):
    in place where the run's window lies inside, else from a zero-padded
    copy of its ``size`` rows in ``line`` (size rows of
    ``step*run + size - step``: at most ``size*(step*tiles_w + size - step)``
    elements, and WINDOW_SLACK more).
    """
    cdef Py_ssize_t t = 0, run, ld, i, j, u
    cdef const floating *base
    cdef floating *dst
    while t < nt:
        run = tile_run(plane, img_step, row, h_lim, w_lim, top, left, step, size, line,
                       t0 + t, nt - t, tiles_w, tiles_img, &base, &ld)
        for i in range(size):
            for j in range(size):
                dst = d + (i * size + j) * nt + t
                if step == 4:
                    for u in range(run):
                        dst[u] = base[i * ld + j + 4 * u]
                else:
                    for u in range(run):
                        dst[u] = base[i * ld + j + 2 * u]
        t += run
