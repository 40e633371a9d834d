"""The deep-learning layers of `cyconv.dask`: conv2d, its backward, and pooling on Dask arrays.

Every output chunk is one task: it gathers the input rows and columns its
windows read (from as many input chunks as they span, so chunks smaller than
the kernel's halo need no rechunking) and runs the in-memory function on
them. Output row ``i`` belongs to the input chunk holding the centre of its
window, ``i*stride - pad_top + (dilation*(k - 1)) // 2``, so 'same' keeps the
input's chunks and a stride divides them; chunks left empty (a chunk smaller
than the stride) are dropped. Modes other than zeros pad the Dask array
first (``da.pad``), and the backward pass folds that padding's gradient home.
"""
from __future__ import annotations

import functools
import operator
import sys
import threading
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from cyconv._backward import conv2d_backward as _conv2d_backward
from cyconv._conv import conv2d as _conv2d
from cyconv._conv import geometry, output_shape
from cyconv._openmp import max_threads
from cyconv._pool import avg_pool2d as _avg_pool2d
from cyconv._pool import max_pool2d as _max_pool2d
from cyconv._pool import pool_geometry
from cyconv._threads import thread_limit
from cyconv._typing import IntPair, Method, Padding, PaddingMode
from cyconv._validate import PAD_MODES, as_int, float_dtype

# ----------------------------------------------------------------------------
# Threads


def _check_threads(func: str, threads: int | None) -> int | None:
    return None if threads is None else as_int(func, "threads", threads, 1)


def task_threads(threads: int | None) -> int | None:
    """The kernels' thread count for a task running now (None: leave OpenMP's setting).

    An explicit ``threads`` wins. Otherwise: in a dask.distributed worker,
    its cores shared by the tasks it runs at once (``max_threads() //
    nthreads``, at least 1); in a thread of another pool (the threaded
    scheduler), 1; on the main thread (the synchronous scheduler, one task at
    a time), OpenMP's setting.
    """
    if threads is not None:
        return threads
    if "distributed" in sys.modules:
        from distributed import get_worker
        try:
            worker = get_worker()
        except ValueError:  # not in a worker
            worker = None
        if worker is not None:
            return max(1, max_threads() // max(1, worker.state.nthreads))
    if threading.current_thread() is threading.main_thread():
        return None
    return 1


# ----------------------------------------------------------------------------
# Gathering regions: one task per output block


def _bounds(chunks: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(chunks, dtype=np.int64)))


def _piece(block: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    return block[..., r0:r1, c0:c1]


def _stitch(rows: list[list[np.ndarray]]) -> np.ndarray:
    """The pieces ``rows`` (along H, each a list along W) as one array. np.block
    copies each piece once into the result (nested concatenates copied twice:
    1.8x slower on a 4x16x1026x1026 float32 region of 3x3 pieces)."""
    if len(rows) == 1 and len(rows[0]) == 1:
        return rows[0][0]
    return np.block(rows)


def _spans(bounds: np.ndarray, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(chunk, start, stop) of the chunks covering [lo, hi); one empty piece if lo == hi."""
    if lo >= hi:
        b = min(int(np.searchsorted(bounds, lo, side="right")) - 1, len(bounds) - 2)
        start = min(lo, int(bounds[b + 1])) - int(bounds[b])
        return [(b, start, start)]
    first = int(np.searchsorted(bounds, lo, side="right")) - 1
    last = int(np.searchsorted(bounds, hi, side="left")) - 1
    return [(b, max(lo, int(bounds[b])) - int(bounds[b]),
             min(hi, int(bounds[b + 1])) - int(bounds[b])) for b in range(first, last + 1)]


def _region_task(name: str, lead: tuple[int, ...], rows: list, cols: list) -> tuple:
    """A task stitching pieces ``rows`` x ``cols`` (`_spans`) of blocks ``(name, *lead, i, j)``."""
    return (_stitch, [[(_piece, (name, *lead, i, j), r0, r1, c0, c1) for j, c0, c1 in cols]
                      for i, r0, r1 in rows])


def _map_regions(name: str, func: Any, sources: list[tuple[da.Array, list, list]],
                 lead_chunks: tuple[tuple[int, ...], ...], out_lead: tuple[tuple[int, ...], ...],
                 out_rows: tuple[int, ...], out_cols: tuple[int, ...], dtype: Any,
                 outputs: int = 1) -> list[da.Array]:
    """Dask arrays whose block ``(*lead, t, u)`` is ``func(t, u, *regions)``.

    Each source is ``(array, row_intervals, col_intervals)``: block ``(*lead, t,
    u)`` gets ``array[lead block][..., rows[t], cols[u]]``. All sources share
    the block structure ``lead_chunks`` of the leading axes; the output's
    leading chunks are ``out_lead`` (one block for each source block). With
    ``outputs > 1`` func returns a tuple and each entry is an array (``dtype``
    then a tuple of as many dtypes).
    """
    token = tokenize(name, func, [(a.name, r, c) for a, r, c in sources], out_rows, out_cols)
    base = f"{name}-{token}"
    # The pieces of each source's region for each output row and column of blocks.
    spans = [([_spans(_bounds(a.chunks[-2]), *r) for r in rows],
              [_spans(_bounds(a.chunks[-1]), *c) for c in cols]) for a, rows, cols in sources]
    dsk = {}
    for lead in np.ndindex(*(len(c) for c in lead_chunks)):
        for t in range(len(out_rows)):
            for u in range(len(out_cols)):
                regions = [_region_task(a.name, lead, r[t], c[u])
                           for (a, _, _), (r, c) in zip(sources, spans)]
                dsk[(base, *lead, t, u)] = (func, t, u, *regions)
    deps = [a for a, _, _ in sources]
    chunks = (*out_lead, out_rows, out_cols)
    empty = (0,) * len(chunks)
    if outputs == 1:
        graph = HighLevelGraph.from_collections(base, dsk, dependencies=deps)
        return [da.Array(graph, base, chunks=chunks, meta=np.empty(empty, dtype))]
    arrays = []
    for k in range(outputs):
        part = f"{base}-{k}"
        layer = dict(dsk)
        layer.update({(part, *key[1:]): (operator.getitem, key, k) for key in dsk})
        graph = HighLevelGraph.from_collections(part, layer, dependencies=deps)
        arrays.append(da.Array(graph, part, chunks=chunks, meta=np.empty(empty, dtype[k])))
    return arrays


# ----------------------------------------------------------------------------
# Axis plans: which output rows each block holds and which input rows it reads


def _out_bounds(in_chunks: tuple[int, ...], n_out: int, stride: int, pad: int,
                span: int) -> np.ndarray:
    """Output boundaries: row i goes to the input chunk holding its window's centre.

    The centre of window i is ``i*stride - pad + (span - 1) // 2`` in input
    coordinates; the first and last chunks take everything before and after.
    Empty output chunks are dropped.
    """
    inner = _bounds(in_chunks)[1:-1] + pad - (span - 1) // 2
    cuts = np.clip(-(-inner // stride), 0, n_out)
    return np.unique(np.concatenate(([0], cuts, [n_out])))


def _chunks(bounds: np.ndarray) -> tuple[int, ...]:
    return tuple(int(c) for c in np.diff(bounds))


def _intervals(bounds: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each chunk."""
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _window_rows(bounds: np.ndarray, stride: int, span: int) -> list[tuple[int, int]]:
    """Input rows (padded coordinates) read by the windows of each output chunk."""
    return [(lo * stride, (hi - 1) * stride + span) for lo, hi in _intervals(bounds)]


# ----------------------------------------------------------------------------
# Ranks and arguments


def _check_dask(func: str, name: str, array: Any) -> da.Array:
    if not isinstance(array, da.Array):
        raise TypeError(f"{func}: {name} must be a dask.array.Array, got {type(array).__name__}")
    if any(np.isnan(c) for chunks in array.chunks for c in chunks):
        raise ValueError(f"{func}: {name} has unknown chunk sizes (shape {array.shape}); "
                         "call its compute_chunk_sizes() first")
    return array


def _nchw(x: da.Array, w: np.ndarray) -> tuple[da.Array, np.ndarray]:
    """Input and weight as 4-D (N, C, H, W) / (K, C/g, kh, kw), checked as conv2d checks them."""
    if x.ndim == 2 and w.ndim == 2:
        return x[None, None], w[None, None]
    if x.ndim == 3 and w.ndim == 4:
        return x[None], w
    return x, w


def _undo(array: da.Array, ndim: int) -> da.Array:
    return array[(0,) * (4 - ndim)] if ndim < 4 else array


def _bias4(func: str, bias: Any, ndim: int, dtype: np.dtype) -> Any:
    """A 2-D call's scalar or (1,) bias as (1,) of the result dtype; others unchanged."""
    if bias is None or ndim != 2:
        return bias
    b = np.asarray(bias)
    if b.shape not in ((), (1,)):
        raise ValueError(f"{func}: bias must have shape (1,), got {b.shape}")
    return b.reshape(1).astype(dtype) if type(bias) in (int, float) else b.reshape(1)


def _one_channel_chunk(x: da.Array) -> da.Array:
    """(N, C, H, W) with C in one chunk."""
    return x if len(x.chunks[1]) == 1 else x.rechunk({1: -1})


class _Conv:
    """A conv2d call's geometry on Dask arrays: padded input, output chunks, regions."""

    def __init__(self, func: str, x: da.Array, w: np.ndarray, stride: IntPair,
                 padding: Padding, dilation: IntPair, groups: int, padding_mode: str):
        self.geom = g = geometry(func, x.shape, w.shape, stride, padding, dilation, groups)
        self.x = _one_channel_chunk(x)
        self.spans = (g.dh * (g.kh - 1) + 1, g.dw * (g.kw - 1) + 1)
        top, bottom, left, right = g.pads
        self.mode = PAD_MODES[padding_mode]
        self.xp = self.x
        if any(g.pads):
            kwargs = {"mode": self.mode} if self.mode else {"mode": "constant",
                                                            "constant_values": 0}
            self.xp = da.pad(self.x, ((0, 0), (0, 0), (top, bottom), (left, right)), **kwargs)
        self.out_bounds = (
            _out_bounds(x.chunks[2], g.ho, g.sh, top, self.spans[0]),
            _out_bounds(x.chunks[3], g.wo, g.sw, left, self.spans[1]))
        self.out_chunks = tuple(_chunks(b) for b in self.out_bounds)
        self.in_rows = _window_rows(self.out_bounds[0], g.sh, self.spans[0])
        self.in_cols = _window_rows(self.out_bounds[1], g.sw, self.spans[1])

    def kwargs(self) -> dict:
        g = self.geom
        return dict(stride=(g.sh, g.sw), dilation=(g.dh, g.dw), groups=g.groups)


# ----------------------------------------------------------------------------
# Block functions (run on the workers)


def _conv_block(t: int, u: int, region: np.ndarray, *, weight: np.ndarray, bias: Any,
                conv: dict, method: str, threads: int | None) -> np.ndarray:
    with thread_limit(task_threads(threads)):
        return _conv2d(region, weight, bias, padding=0, method=method, **conv)


def _grad_weight_block(t: int, u: int, grad: np.ndarray, region: np.ndarray, *,
                       weight: np.ndarray, conv: dict, method: str,
                       threads: int | None) -> np.ndarray:
    with thread_limit(task_threads(threads)):
        gw = _conv2d_backward(grad, region, weight, padding=0, method=method,
                              output_mask=(False, True, False), **conv)[1]
    return gw.reshape(1, -1, 1, 1)


def _grad_input_block(t: int, u: int, grad: np.ndarray, *, weight: np.ndarray, conv: dict,
                      method: str, threads: int | None, frames: tuple, starts: tuple,
                      spans: tuple, channels: int, dtype: np.dtype) -> np.ndarray:
    """The input gradient on frame (t, u) from the grad_output rows whose windows touch it."""
    (f0, f1), (g0, g1) = frames[0][t], frames[1][u]
    out = np.zeros((grad.shape[0], channels, f1 - f0, g1 - g0), dtype)
    if grad.size == 0:
        return out
    (sh, sw), (s0, c0) = conv["stride"], (starts[0][t], starts[1][u])
    rows = (grad.shape[2] - 1) * sh + spans[0]
    cols = (grad.shape[3] - 1) * sw + spans[1]
    # Only the shape of the input matters for its gradient.
    shape_only = np.broadcast_to(np.zeros((), dtype), (grad.shape[0], channels, rows, cols))
    with thread_limit(task_threads(threads)):
        gi = _conv2d_backward(grad, shape_only, weight, padding=0, method=method,
                              output_mask=(True, False, False), **conv)[0]
    r0, r1 = max(f0, s0), min(f1, s0 + rows)
    q0, q1 = max(g0, c0), min(g1, c0 + cols)
    if r0 < r1 and q0 < q1:
        out[..., r0 - f0:r1 - f0, q0 - g0:q1 - g0] = gi[..., r0 - s0:r1 - s0, q0 - c0:q1 - c0]
    return out


def _fold_block(core: np.ndarray, pads: np.ndarray, matrix: np.ndarray, *,
                axis: int) -> np.ndarray:
    """``core`` plus the padding gradients that ``matrix`` sends to its rows (along ``axis``)."""
    if not matrix.any():
        return core
    return core + np.moveaxis(np.tensordot(pads, matrix, axes=([axis], [1])), -1, axis)


def _fold(grad: da.Array, axis: int, size: int, before: int, after: int,
          mode: str) -> da.Array:
    """Adjoint of ``da.pad`` along one axis: each padded cell's gradient goes home.

    ``grad`` has one chunk for each padding side and the input's chunks
    between them; the result has the input's chunks.
    """
    if not before and not after:
        return grad
    index = [slice(None)] * 4
    index[axis] = slice(before, before + size)
    core = grad[tuple(index)]
    source = np.pad(np.arange(size), (before, after), mode=mode)
    outside = np.r_[0:before, before + size:before + size + after]
    matrix = np.zeros((size, outside.size), grad.dtype)
    matrix[source[outside], np.arange(outside.size)] = 1
    index[axis] = outside
    pads = grad[tuple(index)].rechunk({axis: -1})
    m = da.from_array(matrix, chunks=(core.chunks[axis], -1))
    letters = "nchw"
    sub = letters.replace(letters[axis], "j")
    return da.blockwise(functools.partial(_fold_block, axis=axis), letters,
                        core, letters, pads, sub, m, letters[axis] + "j",
                        concatenate=True, dtype=grad.dtype)


# ----------------------------------------------------------------------------
# Public functions


def conv2d(input: da.Array, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1, groups: int = 1,
           *, padding_mode: PaddingMode = "zeros", method: Method = "auto",
           threads: int | None = None) -> da.Array:
    """2-D convolution of a chunked batch of images, lazily (`cyconv.conv2d` on Dask).

    Parameters
    ----------
    input : dask.array.Array, shape (N, C, H, W), (C, H, W) or (H, W)
        Images, chunked along N, H and W in any way (uneven chunks, and
        chunks smaller than the kernel, included); split channels are
        merged into one chunk.
    weight : array_like, shape (K, C // groups, kh, kw), or (kh, kw) with a 2-D input
        Kernels, in memory.
    bias : array_like, shape (K,), optional
        In memory; a scalar or shape (1,) with a 2-D input.
    stride : int or tuple of 2 ints, default 1
    padding : int, tuple of 2 ints, 'valid' or 'same', default 0
    dilation : int or tuple of 2 ints, default 1
    groups : int, default 1
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in `cyconv.conv2d`; the whole image's borders are padded, not
        the chunks'.
    method : {'auto', 'direct', 'im2col', 'fft'}, default 'auto'
        The method of each chunk's in-memory call.
    threads : int, optional
        The kernels' threads in each task. Default: a dask.distributed
        worker's cores divided by its threads, 1 under the threaded
        scheduler, OpenMP's setting under the synchronous one.

    Returns
    -------
    dask.array.Array, shape (N, K, Ho, Wo), (K, Ho, Wo) or (Ho, Wo)
        Lazy; equal to `cyconv.conv2d` on the whole array to rounding, with
        its dtype. Chunks: the input's along N, K in one chunk, and along H
        and W output row ``i`` in the chunk of the input row at its window's
        centre, ``i*sh - ph + dh*(kh - 1)//2`` (so 'same' keeps the input's
        chunks; chunks left empty by a stride are dropped).

    Raises
    ------
    TypeError
        If ``input`` is not a Dask array, or as `cyconv.conv2d` raises.
    ValueError
        As `cyconv.conv2d` raises for these shapes and parameters, and for
        a ``threads`` below 1.

    See Also
    --------
    cyconv.conv2d : the in-memory function each chunk runs.

    Notes
    -----
    Each output chunk is one task: the input rows and columns its windows
    read, gathered from the chunks they span, go through the in-memory
    `cyconv.conv2d` with ``padding=0``; the image is padded first
    (``da.pad``, with the ``padding_mode``).

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import cyconv, cyconv.dask
    >>> x = np.arange(2 * 2 * 9 * 9, dtype=float).reshape(2, 2, 9, 9)
    >>> w = np.ones((3, 2, 3, 3))
    >>> y = cyconv.dask.conv2d(da.from_array(x, chunks=(1, 2, 4, 5)), w, stride=2,
    ...                        padding=1)
    >>> y.chunks
    ((1, 1), (3,), (2, 2, 1), (3, 2))
    >>> bool(np.allclose(y.compute(), cyconv.conv2d(x, w, stride=2, padding=1)))
    True
    """
    func = "conv2d"
    x = _check_dask(func, "input", input)
    w = np.asarray(weight)
    output_shape(x.shape, w.shape, stride, padding, dilation, groups)  # the rank rules
    threads = _check_threads(func, threads)
    weak = type(bias) in (int, float)
    dtype = float_dtype(np.empty(0, x.dtype), w,
                        None if bias is None or weak else np.asarray(bias))
    b = _bias4(func, bias, x.ndim, dtype)
    x4, w4 = _nchw(x, w)
    # Every other check (and the result dtype) as the in-memory call makes them.
    dtype = _conv2d(np.broadcast_to(np.zeros((), x.dtype), (0, *x4.shape[1:])), w4, b,
                    stride, padding, dilation, groups, padding_mode=padding_mode,
                    method=method).dtype
    conv = _Conv(func, x4, w4, stride, padding, dilation, groups, padding_mode)
    block = functools.partial(_conv_block, weight=w4, bias=b, conv=conv.kwargs(),
                              method=method, threads=threads)
    (out,) = _map_regions("cyconv-conv2d", block, [(conv.xp, conv.in_rows, conv.in_cols)],
                          conv.xp.chunks[:2], (conv.xp.chunks[0], (w4.shape[0],)),
                          *conv.out_chunks, dtype)
    return _undo(out, x.ndim)


def conv2d_backward(grad_output: da.Array, input: da.Array, weight: npt.ArrayLike,
                    stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                    groups: int = 1, *, padding_mode: PaddingMode = "zeros",
                    method: Method = "auto",
                    output_mask: tuple[bool, bool, bool] = (True, True, True),
                    threads: int | None = None
                    ) -> tuple[da.Array | None, da.Array | None, da.Array | None]:
    """Gradients of `conv2d` on chunked arrays, lazily (`cyconv.conv2d_backward` on Dask).

    Parameters
    ----------
    grad_output : dask.array.Array or array_like, shape of conv2d's output
        ``dL/d(output)``; rechunked to the chunks `conv2d` gives.
    input : dask.array.Array, shape (N, C, H, W), (C, H, W) or (H, W)
        The forward pass's input, chunked along N, H and W in any way.
    weight : array_like, shape (K, C // groups, kh, kw), or (kh, kw) with a 2-D input
        In memory.
    stride : int or tuple of 2 ints, default 1
    padding : int, tuple of 2 ints, 'valid' or 'same', default 0
    dilation : int or tuple of 2 ints, default 1
    groups : int, default 1
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        Gradients that fall on the padding go back to the cells it copies.
    method : {'auto', 'direct', 'im2col'}, default 'auto'
    output_mask : sequence of 3 bools, default (True, True, True)
        Which of (grad_input, grad_weight, grad_bias) to build.
    threads : int, optional
        The kernels' threads in each task (the default as in `conv2d`).

    Returns
    -------
    grad_input : dask.array.Array or None
        Shape and chunks of ``input`` (channels in one chunk).
    grad_weight : dask.array.Array or None
        Shape of ``weight``, one chunk: the sum of each output chunk's
        partial gradient, a tree reduction over the batch and spatial chunks.
    grad_bias : dask.array.Array or None
        Shape (K,) ((1,) for a 2-D input): ``grad_output`` summed over the
        batch and the image, a tree reduction too.

    Raises
    ------
    TypeError
        If ``input`` is not a Dask array, or as `cyconv.conv2d_backward` raises.
    ValueError
        As `cyconv.conv2d_backward` raises, and for a ``threads`` below 1.

    See Also
    --------
    cyconv.conv2d_backward : the in-memory function each chunk runs.

    Notes
    -----
    The weight gradient of output chunk ``b`` is the in-memory
    ``conv2d_backward`` of its ``grad_output`` block and the input region its
    windows read; ``da.sum`` adds them up. The input gradient of each input
    chunk comes from the ``grad_output`` rows whose windows touch it; only
    the input's shape enters it.

    Examples
    --------
    >>> import numpy as np, dask, dask.array as da
    >>> import cyconv, cyconv.dask
    >>> x = np.arange(2 * 2 * 7 * 7, dtype=float).reshape(2, 2, 7, 7)
    >>> w = np.ones((3, 2, 3, 3))
    >>> g = np.ones((2, 3, 7, 7))
    >>> lazy = cyconv.dask.conv2d_backward(da.from_array(g, chunks=(1, 3, 4, 4)),
    ...                                    da.from_array(x, chunks=(1, 2, 4, 4)), w,
    ...                                    padding="same", padding_mode="reflect")
    >>> grads = dask.compute(*lazy)
    >>> want = cyconv.conv2d_backward(g, x, w, padding="same", padding_mode="reflect")
    >>> all(np.allclose(a, b) for a, b in zip(grads, want))
    True
    """
    func = "conv2d_backward"
    x = _check_dask(func, "input", input)
    gy = grad_output if isinstance(grad_output, da.Array) else da.asarray(grad_output)
    w = np.asarray(weight)
    expected = output_shape(x.shape, w.shape, stride, padding, dilation, groups)
    if gy.shape != expected:
        raise ValueError(
            f"{func}: grad_output has shape {gy.shape}, but conv2d of input shape "
            f"{x.shape} and weight shape {w.shape} gives shape {expected}")
    threads = _check_threads(func, threads)
    x4, w4 = _nchw(x, w)
    gy4 = gy.reshape((1,) * (4 - gy.ndim) + gy.shape) if gy.ndim < 4 else gy
    dummies = [np.broadcast_to(np.zeros((), a.dtype), (0, *a.shape[1:])) for a in (gy4, x4)]
    want = _conv2d_backward(*dummies, w4, stride, padding, dilation, groups,
                            padding_mode=padding_mode, method=method, output_mask=output_mask)
    mask = [a is not None for a in want]
    dtype = float_dtype(gy4, x4, w4)
    conv = _Conv(func, x4, w4, stride, padding, dilation, groups, padding_mode)
    g = conv.geom
    gy4 = gy4.rechunk((conv.x.chunks[0], -1, conv.out_chunks[0], conv.out_chunks[1]))
    kw = dict(weight=np.ascontiguousarray(w4, dtype), conv=conv.kwargs(), method=method,
              threads=threads)
    grad_input = grad_weight = grad_bias = None
    if mask[2]:
        grad_bias = gy4.astype(dtype).sum(axis=(0, 2, 3))
    if mask[1]:
        out_rows, out_cols = (_intervals(b) for b in conv.out_bounds)
        (parts,) = _map_regions(
            "cyconv-conv2d-grad-weight", functools.partial(_grad_weight_block, **kw),
            [(gy4, out_rows, out_cols), (conv.xp, conv.in_rows, conv.in_cols)],
            gy4.chunks[:1] + ((g.kernels,),), ((1,) * len(gy4.chunks[0]), (w4.size,)),
            (1,) * len(out_rows), (1,) * len(out_cols), dtype)
        grad_weight = parts.sum(axis=(0, 2, 3)).reshape(w.shape)
    if mask[0]:
        grad_input = _grad_input(conv, gy4, kw, dtype)
        grad_input = _undo(grad_input, x.ndim)
    return grad_input, grad_weight, grad_bias


def _frames(in_chunks: tuple[int, ...], before: int, after: int, keep_pads: bool) -> list:
    """(start, stop) in padded coordinates of each chunk the input gradient is made in."""
    edges = _bounds(in_chunks) + before
    frames = _intervals(edges)
    if keep_pads:
        total = int(edges[-1])
        frames = ([(0, before)] if before else []) + frames + (
            [(total, total + after)] if after else [])
    return frames


def _grad_input(conv: _Conv, gy4: da.Array, kw: dict, dtype: np.dtype) -> da.Array:
    g = conv.geom
    top, bottom, left, right = g.pads
    keep = conv.mode is not None  # the padding's gradient is folded home, not dropped
    frames = (_frames(conv.x.chunks[2], top, bottom, keep),
              _frames(conv.x.chunks[3], left, right, keep))
    intervals, starts = [], []
    for axis_frames, stride, span, n_out in ((frames[0], g.sh, conv.spans[0], g.ho),
                                             (frames[1], g.sw, conv.spans[1], g.wo)):
        lo = [min(n_out, max(0, -(-(f0 - span + 1) // stride))) for f0, _ in axis_frames]
        hi = [max(a, min(n_out, -(-f1 // stride))) for a, (_, f1) in zip(lo, axis_frames)]
        intervals.append(list(zip(lo, hi)))
        starts.append(tuple(a * stride for a in lo))
    block = functools.partial(_grad_input_block, **kw, frames=frames, starts=tuple(starts),
                              spans=conv.spans, channels=g.channels, dtype=dtype)
    (grad,) = _map_regions(
        "cyconv-conv2d-grad-input", block, [(gy4, *intervals)], gy4.chunks[:2],
        (gy4.chunks[0], (g.channels,)), *(tuple(b - a for a, b in f) for f in frames), dtype)
    if keep:
        grad = _fold(grad, 2, g.height, top, bottom, conv.mode)
        grad = _fold(grad, 3, g.width, left, right, conv.mode)
    return grad


def _pool_regions(in_chunks: tuple[int, ...], size: int, n_out: int, stride: int, pad: int,
                  span: int) -> tuple[np.ndarray, list, list]:
    """Output boundaries, input regions and first wanted row of a pooling along one axis.

    Each region is called with the in-memory padding: it starts early enough
    (at a multiple of the stride, ``j0`` windows before the first wanted one)
    that the in-memory padding before it falls only on unwanted windows, or
    at the image's top where that padding is the image's.
    """
    bounds = _out_bounds(in_chunks, n_out, stride, pad, span)
    regions, firsts = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        j0 = min(int(lo), -(-pad // stride))
        r0 = (int(lo) - j0) * stride
        r1 = min(size, max((int(hi) - 1) * stride - pad + span, r0 + 1))
        regions.append((r0, r1))
        firsts.append(j0)
    return bounds, regions, firsts


def _pool_block(t: int, u: int, region: np.ndarray, *, pool: Any, kwargs: dict,
                firsts: tuple, counts: tuple, origins: tuple, width: int,
                threads: int | None) -> Any:
    j, k = firsts[0][t], firsts[1][u]
    rows, cols = slice(j, j + counts[0][t]), slice(k, k + counts[1][u])
    with thread_limit(task_threads(threads)):
        result = pool(region, **kwargs)
    if not isinstance(result, tuple):
        return result[..., rows, cols]
    out, idx = result[0][..., rows, cols], result[1][..., rows, cols]
    # Flat positions in the region's plane to positions in the image's; -1 stays.
    r, c = np.divmod(idx, region.shape[-1])
    glob = (r + origins[0][t]) * width + c + origins[1][u]
    return out, np.where(idx < 0, idx, glob)


def _pool(func: str, pool: Any, x: da.Array, kernel_size: IntPair, stride: IntPair | None,
          padding: IntPair, dilation: IntPair, ceil_mode: bool, kwargs: dict,
          threads: int | None) -> Any:
    x = _check_dask(func, "input", x)
    threads = _check_threads(func, threads)
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{func}: input must be 2-D (H, W), 3-D (C, H, W) or 4-D "
                         f"(N, C, H, W), got shape {x.shape}")
    *lead, h, w = x.shape
    # Every check and the result dtype(s) as the in-memory call gives them.
    meta = pool(np.broadcast_to(np.zeros((), x.dtype), (0, h, w)), **kwargs)
    g = pool_geometry(func, (0, h, w), kernel_size, stride, padding, dilation, ceil_mode)
    plans = [_pool_regions(x.chunks[-2], h, g.ho, g.sh, g.ph, g.dh * (g.kh - 1) + 1),
             _pool_regions(x.chunks[-1], w, g.wo, g.sw, g.pw, g.dw * (g.kw - 1) + 1)]
    counts = tuple(_chunks(b) for b, _, _ in plans)
    block = functools.partial(
        _pool_block, pool=pool, kwargs=kwargs, firsts=tuple(tuple(f) for _, _, f in plans),
        counts=counts, origins=tuple(tuple(r0 for r0, _ in r) for _, r, _ in plans),
        width=w, threads=threads)
    tuple_out = isinstance(meta, tuple)
    dtypes = tuple(m.dtype for m in meta) if tuple_out else meta.dtype
    arrays = _map_regions(f"cyconv-{func}", block, [(x, plans[0][1], plans[1][1])],
                          x.chunks[:-2], x.chunks[:-2], *counts, dtypes,
                          outputs=2 if tuple_out else 1)
    return tuple(arrays) if tuple_out else arrays[0]


def max_pool2d(input: da.Array, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
               return_indices: bool = False, *,
               threads: int | None = None) -> da.Array | tuple[da.Array, da.Array]:
    """Max pooling of chunked images, lazily (`cyconv.max_pool2d` on Dask).

    Parameters
    ----------
    input : dask.array.Array, shape (N, C, H, W), (C, H, W) or (H, W)
        Any chunking, along every axis.
    kernel_size : int or tuple of 2 ints
    stride : int or tuple of 2 ints, optional
        Default: ``kernel_size``.
    padding : int or tuple of 2 ints, default 0
        At most half the kernel; counts as -inf.
    dilation : int or tuple of 2 ints, default 1
    ceil_mode : bool, default False
    return_indices : bool, default False
        Also return the int64 flat positions of the maxima in each ``H*W``
        plane of the whole image (-1 for a window wholly in the padding).
    threads : int, optional
        The kernels' threads in each task (the default as in `conv2d`).

    Returns
    -------
    out : dask.array.Array
        Equal to `cyconv.max_pool2d` on the whole array. Chunks: the
        input's along the leading axes; along H and W output row ``i`` is in
        the chunk of the input row at its window's centre (empty chunks
        dropped).
    indices : dask.array.Array
        With ``return_indices``; the chunks of ``out``.

    Raises
    ------
    TypeError
        If ``input`` is not a Dask array, or as `cyconv.max_pool2d` raises.
    ValueError
        As `cyconv.max_pool2d` raises, and for a ``threads`` below 1.

    See Also
    --------
    cyconv.max_pool2d : the in-memory function each chunk runs.

    Notes
    -----
    Each output chunk's windows are pooled by the in-memory function on the
    input region they read, with the same padding: the region starts so that
    the padding it adds falls only on windows that are discarded, or is the
    image's own.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import cyconv, cyconv.dask
    >>> x = np.arange(64.0).reshape(8, 8) % 7
    >>> out, idx = cyconv.dask.max_pool2d(da.from_array(x, chunks=3), 3, stride=2,
    ...                                   padding=1, return_indices=True)
    >>> want, want_idx = cyconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    >>> bool(np.array_equal(out.compute(), want)), bool(np.array_equal(idx.compute(), want_idx))
    (True, True)
    """
    kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                  ceil_mode=ceil_mode, return_indices=return_indices)
    return _pool("max_pool2d", _max_pool2d, input, kernel_size, stride, padding, dilation,
                 ceil_mode, kwargs, threads)


def avg_pool2d(input: da.Array, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, *,
               threads: int | None = None) -> da.Array:
    """Average pooling of chunked images, lazily (`cyconv.avg_pool2d` on Dask).

    Parameters
    ----------
    input : dask.array.Array, shape (N, C, H, W), (C, H, W) or (H, W)
        Any chunking, along every axis.
    kernel_size : int or tuple of 2 ints
    stride : int or tuple of 2 ints, optional
        Default: ``kernel_size``.
    padding : int or tuple of 2 ints, default 0
        At most half the kernel.
    ceil_mode : bool, default False
    count_include_pad : bool, default True
    divisor_override : int, optional
    threads : int, optional
        The kernels' threads in each task (the default as in `conv2d`).

    Returns
    -------
    dask.array.Array
        Equal to `cyconv.avg_pool2d` on the whole array to rounding; chunks
        as `max_pool2d`'s.

    Raises
    ------
    TypeError
        If ``input`` is not a Dask array, or as `cyconv.avg_pool2d` raises.
    ValueError
        As `cyconv.avg_pool2d` raises, and for a ``threads`` below 1.

    See Also
    --------
    cyconv.avg_pool2d : the in-memory function each chunk runs.

    Notes
    -----
    Chunked as `max_pool2d`: the windows a chunk keeps see the image's
    padding and divisors, never a chunk edge's.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import cyconv, cyconv.dask
    >>> x = np.arange(49.0).reshape(7, 7)
    >>> y = cyconv.dask.avg_pool2d(da.from_array(x, chunks=(2, 5)), 2, ceil_mode=True)
    >>> y.chunks
    ((1, 1, 1, 1), (3, 1))
    >>> bool(np.allclose(y.compute(), cyconv.avg_pool2d(x, 2, ceil_mode=True)))
    True
    """
    kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    return _pool("avg_pool2d", _avg_pool2d, input, kernel_size, stride, padding, 1, ceil_mode,
                 kwargs, threads)
