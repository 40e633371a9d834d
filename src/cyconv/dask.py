"""Chunked 2-D filtering of Dask arrays with cyconv kernels (optional module).

Requires ``pip install 'cyconv[dask]'``; ``import cyconv`` never imports dask.

Each output chunk is one task: it gathers its input chunk plus the narrowest
halo it needs (the rows and columns the kernel reaches before and after it,
read from however many neighbouring chunks they span, with the image border
``boundary`` filled in or mirrored or wrapped as np.pad does) into one array
and runs the in-memory function on it in 'valid' mode. So the result equals
the in-memory call on the whole array: to rounding for floats, exactly for
integers; there is no rechunking, padding or overlap step in the graph.

Output chunks: the input's chunks, with the last one along each axis grown
by ``k - 1`` ('full'), kept ('same') or shortened by ``k - 1`` ('valid'; a
last chunk left with no row is merged with the ones before it).

The layers `conv2d`, `conv2d_backward`, `max_pool2d` and `avg_pool2d` take
``(N, C, H, W)`` arrays chunked along N, H and W (`cyconv._dask_layers`):
each output chunk is one task that gathers the input region its windows
read, from however many chunks it spans, and runs the in-memory function on
it. Output row ``i`` lands in the chunk of the input row at its window's
centre (``i*stride - pad + dilation*(k - 1)//2``), so ``padding='same'``
keeps the input's chunks and a stride divides them; K is one chunk. The
weight and bias gradients are tree reductions (``da.sum``) of per-chunk
partial gradients; the input gradient has the input's chunks.

Threads: a worker runs several tasks at once, each calling cyconv, so every
function's ``threads=`` argument sets the kernels' OpenMP threads per task
(OpenMP's count is per calling thread; nothing global changes). Its default:
in a dask.distributed worker, the worker's cores divided by its threads
(at least 1); under the threaded scheduler, 1; under the synchronous
scheduler, OpenMP's setting.
"""
from __future__ import annotations

import functools
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from cyconv._dask_layers import (_check_threads, avg_pool2d, conv2d, conv2d_backward,
                                 max_pool2d, task_threads)
from cyconv._signal import convolve2d as _convolve2d
from cyconv._signal import _fill_scalar
from cyconv._signal import correlate2d as _correlate2d
from cyconv._threads import thread_limit

__all__ = ["correlate2d", "convolve2d", "conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d"]

_PAD_MODES = {"fill": "constant", "wrap": "wrap", "symm": "symmetric",
              "circular": "wrap", "symmetric": "symmetric"}
_MODES = ("full", "same", "valid")


def _source_index(n: int, pads: tuple[int, int], pad_mode: str) -> npt.NDArray[np.int64]:
    """Row of the input each row of the padded axis copies (-1: the fill value), as np.pad."""
    index = np.arange(n, dtype=np.int64)
    if pad_mode == "constant":
        return np.concatenate((np.full(pads[0], -1, np.int64), index,
                               np.full(pads[1], -1, np.int64)))
    return np.pad(index, pads, mode=pad_mode)


def _runs(source: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64]) -> list[tuple]:
    """Copies that gather ``source`` (`_source_index` rows) from chunks with ``bounds``.

    Each run is ``(chunk, src, dst)``: rows ``src`` (a slice, step 1 or -1) of
    input chunk ``chunk`` go to rows ``dst`` of the gathered block. Fill rows
    are left out. A run ends where the chunk changes or the rows stop being
    consecutive (np.pad's wraps and reflections jump or repeat a row).
    """
    chunk = np.where(source < 0, -1, np.searchsorted(bounds, source, side="right") - 1)
    starts = np.flatnonzero(np.diff(chunk) != 0) + 1
    steps = np.diff(source)
    jumps = np.flatnonzero((np.abs(steps) != 1) & (source[1:] >= 0)) + 1
    edges = np.unique(np.concatenate(([0], starts, jumps, [len(source)])))
    runs = []
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        c = int(chunk[a])
        if c < 0:
            continue
        first = int(source[a] - bounds[c])
        if b - a > 1 and source[a + 1] < source[a]:
            src = slice(first, first - (b - a) if first - (b - a) >= 0 else None, -1)
        else:
            src = slice(first, first + b - a)
        runs.append((c, src, slice(a, b)))
    return runs


def _gather_valid(blocks: list[npt.NDArray[Any]], *, shape: tuple[int, int],
                  pieces: tuple, fill: Any, dtype: np.dtype, kernel: npt.NDArray[Any],
                  func: Any, out_dtype: np.dtype, threads: int | None) -> npt.NDArray[Any]:
    """One output chunk: its input region with the halo and border gathered into one
    array of ``dtype`` (``pieces``: block, source and destination slices; ``fill``
    where none lands, None if every element is copied), then filtered 'valid'."""
    if len(pieces) == 1 and pieces[0][2] == (slice(0, shape[0]), slice(0, shape[1])):
        region = blocks[pieces[0][0]][pieces[0][1]]  # one chunk holds it: no copy
    else:
        region = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        for block, src, dst in pieces:
            region[dst] = blocks[block][src]
    with thread_limit(task_threads(threads)):
        return np.ascontiguousarray(func(region, kernel, mode="valid"), dtype=out_dtype)


def _out_bounds(n: int, chunks: tuple[int, ...], grow: int) -> npt.NDArray[np.int64]:
    """Output chunk boundaries: the input's, the last chunk grown by ``grow`` rows
    (merged with the ones before it while it would have no row)."""
    bounds = np.concatenate(([0], np.cumsum(chunks, dtype=np.int64)))
    bounds[-1] = n + grow
    while len(bounds) > 2 and bounds[-1] <= bounds[-2]:
        bounds = np.delete(bounds, -2)
    return bounds


def _filter(in1: da.Array, in2: npt.ArrayLike, mode: str, boundary: str,
            fillvalue: npt.ArrayLike, func: Any, flip: bool,
            threads: int | None) -> da.Array:
    threads = _check_threads(func.__name__, threads)
    if not isinstance(in1, da.Array):
        raise TypeError(f"in1 must be a dask.array.Array, got {type(in1).__name__}")
    kernel = np.asarray(in2)
    if in1.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"in1 and in2 must be 2-D, got shapes {in1.shape} and {kernel.shape}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if boundary not in _PAD_MODES:
        raise ValueError(f"boundary must be one of {tuple(_PAD_MODES)}, got {boundary!r}")
    if 0 in in1.shape or 0 in kernel.shape:
        raise ValueError("in1 and in2 must not be empty")
    kh, kw = kernel.shape
    h, w = in1.shape
    if mode == "valid" and (kh > h or kw > w):
        raise ValueError(f"mode='valid' needs in2 {kernel.shape} to fit in in1 {in1.shape}")
    # dtype and argument validation exactly as the in-memory function.
    out_dtype = func(np.zeros((1, 1), in1.dtype), kernel[:1, :1], "full",
                     boundary, fillvalue).dtype
    if mode == "valid":
        pads = ((0, 0), (0, 0))
    elif mode == "full":
        pads = ((kh - 1, kh - 1), (kw - 1, kw - 1))
    else:
        top = (kh - 1) // 2 if flip else kh // 2
        left = (kw - 1) // 2 if flip else kw // 2
        pads = ((kh - 1 - top, top), (kw - 1 - left, left))
    pad_mode = _PAD_MODES[boundary]
    fill, fill_dtype = None, in1.dtype
    if pad_mode == "constant":
        # The fill value as the in-memory function casts it (to the output dtype);
        # blocks that need it are gathered in that dtype unless in1's holds it.
        fill = _fill_scalar(func.__name__, fillvalue, out_dtype)
        with np.errstate(all="ignore"):
            if not np.array_equal(fill.astype(in1.dtype).astype(out_dtype), fill,
                                  equal_nan=fill.dtype.kind in "fc"):
                fill_dtype = out_dtype
    # Output row i reads rows i .. i + k - 1 of the padded axis; output chunk
    # [o0, o1) the padded rows [o0, o1 + k - 1), gathered from the input chunks
    # they map to (any number of them: no rechunking) in one copy per block.
    axes = []
    for n, chunks, p, k in zip(in1.shape, in1.chunks, pads, kernel.shape):
        in_bounds = np.concatenate(([0], np.cumsum(chunks, dtype=np.int64)))
        out_bounds = _out_bounds(n, chunks, p[0] + p[1] - (k - 1))
        source = _source_index(n, p, pad_mode)
        axes.append([(int(o1 - o0 + k - 1), _runs(source[o0:o1 + k - 1], in_bounds))
                     for o0, o1 in zip(out_bounds[:-1], out_bounds[1:])])
    token = tokenize(in1.name, kernel, mode, boundary, fill, func, threads)
    name = f"{func.__name__}-{token}"
    dsk = {}
    for t, (rows, row_runs) in enumerate(axes[0]):
        for u, (cols, col_runs) in enumerate(axes[1]):
            keys, pieces = [], []
            for i, rsrc, rdst in row_runs:
                for j, csrc, cdst in col_runs:
                    if (in1.name, i, j) not in keys:
                        keys.append((in1.name, i, j))
                    pieces.append((keys.index((in1.name, i, j)), (rsrc, csrc), (rdst, cdst)))
            if not keys:  # all fill: any block gives the dtype
                keys = [(in1.name, 0, 0)]
            covered = (sum(d.stop - d.start for _, _, d in row_runs) == rows
                       and sum(d.stop - d.start for _, _, d in col_runs) == cols)
            gather = functools.partial(
                _gather_valid, shape=(rows, cols), pieces=tuple(pieces),
                fill=None if covered else fill,
                dtype=in1.dtype if covered else fill_dtype, kernel=kernel, func=func,
                out_dtype=out_dtype, threads=threads)
            dsk[(name, t, u)] = (gather, keys)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[in1])
    out_chunks = tuple(tuple(rows - k + 1 for rows, _ in axis)
                       for axis, k in zip(axes, kernel.shape))
    return da.Array(graph, name, chunks=out_chunks, meta=np.empty((0, 0), out_dtype))


def correlate2d(in1: da.Array, in2: npt.ArrayLike, mode: str = "full",
                boundary: str = "fill", fillvalue: npt.ArrayLike = 0, *,
                threads: int | None = None) -> da.Array:
    """Cross-correlate a 2-D Dask array with an in-memory kernel, lazily.

    Same arguments and result as :func:`cyconv.correlate2d` on the whole array.
    ``threads`` sets the kernels' threads in each task (default as in
    `conv2d`: a dask.distributed worker's cores divided by its threads, 1
    under the threaded scheduler, OpenMP's setting under the synchronous one).

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import cyconv, cyconv.dask
    >>> x = np.arange(36.0).reshape(6, 6)
    >>> k = np.ones((3, 3))
    >>> y = cyconv.dask.correlate2d(da.from_array(x, chunks=4), k, mode="same")
    >>> bool(np.allclose(y.compute(), cyconv.correlate2d(x, k, mode="same")))
    True
    """
    return _filter(in1, in2, mode, boundary, fillvalue, _correlate2d, flip=False,
                   threads=threads)


def convolve2d(in1: da.Array, in2: npt.ArrayLike, mode: str = "full",
               boundary: str = "fill", fillvalue: npt.ArrayLike = 0, *,
                threads: int | None = None) -> da.Array:
    """Convolve a 2-D Dask array with an in-memory kernel, lazily.

    Same arguments and result as :func:`cyconv.convolve2d` on the whole array,
    and ``threads`` as in `correlate2d`.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import cyconv, cyconv.dask
    >>> x = np.arange(35).reshape(5, 7)
    >>> k = np.array([[1, 2], [3, 4]])
    >>> y = cyconv.dask.convolve2d(da.from_array(x, chunks=3), k, boundary="wrap")
    >>> bool(np.array_equal(y.compute(), cyconv.convolve2d(x, k, boundary="wrap")))
    True
    """
    return _filter(in1, in2, mode, boundary, fillvalue, _convolve2d, flip=True,
                   threads=threads)
