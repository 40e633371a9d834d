"""Chunked 2-D filtering of Dask arrays with cyconv kernels (optional module).

Requires ``pip install 'cyconv[dask]'``; ``import cyconv`` never imports dask.

Each output chunk is computed by the in-memory function ('valid') on its
input chunk plus the narrowest halo it needs (``map_overlap`` with an
asymmetric depth: the rows and columns the kernel reaches before and after
it), so the result equals the in-memory call on the whole array: to rounding
for floats, exactly for integers. The image border (``boundary``) is padded
onto the edge chunks first.

Output chunks: the input's chunks, with the last one along each axis grown
by ``k - 1`` ('full'), kept ('same') or shortened by ``k - 1`` ('valid').
Input chunks shorter than a side of the halo are merged with their
neighbours first (and, in 'valid' mode, a last chunk that would have no
output), as is an axis shorter than the halo into one chunk.

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

from cyconv._dask_layers import (_check_threads, avg_pool2d, conv2d, conv2d_backward,
                                 max_pool2d, task_threads)
from cyconv._signal import convolve2d as _convolve2d
from cyconv._signal import correlate2d as _correlate2d
from cyconv._threads import thread_limit

__all__ = ["correlate2d", "convolve2d", "conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d"]

_PAD_MODES = {"fill": "constant", "wrap": "wrap", "symm": "symmetric",
              "circular": "wrap", "symmetric": "symmetric"}
_MODES = ("full", "same", "valid")


def _valid_block(block: npt.NDArray[Any], *, kernel: npt.NDArray[Any], func: Any,
                 out_dtype: np.dtype, threads: int | None) -> npt.NDArray[Any]:
    """'valid' filtering of a block with its halo: exactly the block's output chunk."""
    with thread_limit(task_threads(threads)):
        return np.ascontiguousarray(func(block, kernel, mode="valid"), dtype=out_dtype)


def _axis_plan(chunks: tuple[int, ...], pad_before: int, pad_after: int,
               k: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, int] | int]:
    """Input chunks, output chunks and halo of one axis filtered with ``k`` taps.

    Output row ``i`` reads rows ``i .. i + k - 1`` of the padded axis. With
    each boundary pad joined to its edge chunk, block ``j`` of the padded
    axis therefore needs ``pad_before`` rows from the block before it and
    ``k - 1 - pad_before`` from the block after it, no more: its 'valid'
    filtering is then exactly output chunk ``j``, which has input chunk
    ``j``'s length, except the last, which gains the mode's padding beyond
    ``k - 1`` ('full': ``k - 1``; 'same': 0; 'valid': ``-(k - 1)``). Chunks
    shorter than a side of the halo (dask's overlap takes it from one
    neighbour) are merged first, and so is a last chunk with no output row.
    """
    from dask.array.overlap import ensure_minimum_chunksize

    before, after = pad_before, k - 1 - pad_before
    grow = pad_before + pad_after - (k - 1)
    need = max(before, after, 1)
    chunks = ensure_minimum_chunksize(need, chunks) if need <= sum(chunks) else (sum(chunks),)
    while len(chunks) > 1 and chunks[-1] + grow < 1:
        chunks = chunks[:-2] + (chunks[-2] + chunks[-1],)
    out = chunks[:-1] + (chunks[-1] + grow,)
    return chunks, out, (before, after) if len(chunks) > 1 else 0


def _pad(x: da.Array, pads: tuple[tuple[int, int], tuple[int, int]], pad_mode: str,
         fillvalue: npt.ArrayLike) -> da.Array:
    """``np.pad`` of a Dask array, also where a pad is wider than the axis."""
    if pad_mode == "constant":
        value = np.asarray(fillvalue).astype(x.dtype).item()
        return da.pad(x, pads, mode="constant", constant_values=value)
    if all(max(p) <= n for p, n in zip(pads, x.shape)):
        return da.pad(x, pads, mode=pad_mode)
    # da.pad reflects or wraps once; np.pad repeats: gather by np.pad's indices.
    for axis, (p, n) in enumerate(zip(pads, x.shape)):
        index = np.pad(np.arange(n), p, mode=pad_mode)
        x = x[(slice(None),) * axis + (index,)]
    return x


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
    plans = [_axis_plan(c, *p, k) for c, p, k in zip(in1.chunks, pads, kernel.shape)]
    padded = in1.rechunk(tuple(plan[0] for plan in plans))
    if mode != "valid":
        padded = _pad(padded, pads, _PAD_MODES[boundary], fillvalue)
        # Each pad joins its edge chunk: block j of `padded` holds input chunk j.
        joined = []
        for plan, (pad_before, pad_after) in zip(plans, pads):
            chunks = list(plan[0])
            chunks[0] += pad_before
            chunks[-1] += pad_after
            joined.append(tuple(chunks))
        padded = padded.rechunk(tuple(joined))
    return padded.map_overlap(
        functools.partial(_valid_block, kernel=kernel, func=func, out_dtype=out_dtype,
                          threads=threads),
        depth={0: plans[0][2], 1: plans[1][2]}, boundary="none", trim=False,
        allow_rechunk=False, chunks=tuple(plan[1] for plan in plans),
        dtype=out_dtype, meta=np.empty((0, 0), out_dtype))


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
