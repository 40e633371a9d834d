"""Chunked 2-D filtering of Dask arrays with cyconv kernels (optional module).

Requires ``pip install 'cyconv[dask]'``; ``import cyconv`` never imports dask.

Each output chunk is computed by the in-memory function on its input chunk
plus a halo (``map_overlap``), so the result equals the in-memory call on the
whole array: to rounding for floats, exactly for integers.

Output chunks: the chunks of the input after the boundary padding the mode
needs ('full' adds ``k - 1`` rows/columns, split onto the first and last
chunks; 'same' keeps the input's chunks; 'valid' trims the last chunks).

The layers `conv2d`, `conv2d_backward`, `max_pool2d` and `avg_pool2d` take
``(N, C, H, W)`` arrays chunked along N, H and W (`cyconv._dask_layers`):
each output chunk is one task that gathers the input region its windows
read, from however many chunks it spans, and runs the in-memory function on
it. Output row ``i`` lands in the chunk of the input row at its window's
centre (``i*stride - pad + dilation*(k - 1)//2``), so ``padding='same'``
keeps the input's chunks and a stride divides them; K is one chunk. The
weight and bias gradients are tree reductions (``da.sum``) of per-chunk
partial gradients; the input gradient has the input's chunks.

Threads: a worker runs several tasks at once, each calling cyconv, so the
layers' ``threads=`` argument sets the kernels' OpenMP threads per task
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

from cyconv._dask_layers import avg_pool2d, conv2d, conv2d_backward, max_pool2d
from cyconv._signal import convolve2d as _convolve2d
from cyconv._signal import correlate2d as _correlate2d

__all__ = ["correlate2d", "convolve2d", "conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d"]

_PAD_MODES = {"fill": "constant", "wrap": "wrap", "symm": "symmetric",
              "circular": "wrap", "symmetric": "symmetric"}
_MODES = ("full", "same", "valid")


def _valid_block(block: npt.NDArray[Any], *, kernel: npt.NDArray[Any], func: Any,
                 depth: tuple[int, int], out_dtype: np.dtype) -> npt.NDArray[Any]:
    """'valid' filtering of an overlapped block, keeping the block's own extent."""
    full = func(block, kernel, mode="valid")
    rows = block.shape[0] - 2 * depth[0]
    cols = block.shape[1] - 2 * depth[1]
    return np.ascontiguousarray(
        full[depth[0]:depth[0] + rows, depth[1]:depth[1] + cols], dtype=out_dtype)


def _filter(in1: da.Array, in2: npt.ArrayLike, mode: str, boundary: str,
            fillvalue: npt.ArrayLike, func: Any, flip: bool) -> da.Array:
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
        padded = in1
    else:
        if mode == "full":
            pads = ((kh - 1, kh - 1), (kw - 1, kw - 1))
        else:
            top = (kh - 1) // 2 if flip else kh // 2
            left = (kw - 1) // 2 if flip else kw // 2
            pads = ((kh - 1 - top, top), (kw - 1 - left, left))
        kwargs: dict[str, Any] = {}
        pad_mode = _PAD_MODES[boundary]
        if pad_mode == "constant":
            kwargs["constant_values"] = np.asarray(fillvalue).astype(in1.dtype).item()
        padded = da.pad(in1, pads, mode=pad_mode, **kwargs)
    depth = (kh - 1, kw - 1)
    out = padded.map_overlap(
        functools.partial(_valid_block, kernel=kernel, func=func, depth=depth,
                          out_dtype=out_dtype),
        depth={0: depth[0], 1: depth[1]}, boundary=0, trim=False,
        dtype=out_dtype, meta=np.empty((0, 0), out_dtype))
    return out[: padded.shape[0] - kh + 1, : padded.shape[1] - kw + 1]


def correlate2d(in1: da.Array, in2: npt.ArrayLike, mode: str = "full",
                boundary: str = "fill", fillvalue: npt.ArrayLike = 0) -> da.Array:
    """Cross-correlate a 2-D Dask array with an in-memory kernel, lazily.

    Same arguments and result as :func:`cyconv.correlate2d` on the whole array.

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
    return _filter(in1, in2, mode, boundary, fillvalue, _correlate2d, flip=False)


def convolve2d(in1: da.Array, in2: npt.ArrayLike, mode: str = "full",
               boundary: str = "fill", fillvalue: npt.ArrayLike = 0) -> da.Array:
    """Convolve a 2-D Dask array with an in-memory kernel, lazily.

    Same arguments and result as :func:`cyconv.convolve2d` on the whole array.

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
    return _filter(in1, in2, mode, boundary, fillvalue, _convolve2d, flip=True)
