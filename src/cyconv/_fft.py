"""method='fft': correlation of planes through ``scipy.fft``.

One routine, `correlate_into`, serves `conv2d` (through `conv2d_forward`,
which has the direct kernel's signature) and the SciPy drop-ins: both reduce
to the sum ``out[i, j] = sum_{p,q} k[p, q] * x[i*sh - top + p, j*sw - left + q]``
over a zero-extended plane ``x``. That sum is entry ``i*sh + kh - 1 - top``
(likewise for columns) of the full linear convolution of ``x`` with the
flipped kernel, computed as a product of spectra, as SciPy's
``fftconvolve`` (``_freq_domain_conv`` and ``_apply_conv_mode``) does.

Unlike SciPy, which always transforms at the full length ``h + kh - 1`` and
crops, only the entries the output needs are made exact: a circular
convolution of length ``n`` folds full entry ``m + n`` onto ``m``, so entries
``[start, end)`` of a full convolution of length ``L`` are exact once
``n >= max(end, L - start)`` (and ``n`` holds both operands). A ``'valid'``
output thus needs only ``n >= h``. Lengths are rounded up with
``scipy.fft.next_fast_len``.

A large plane is cut into tiles of a few hundred pixels (overlap-save; SciPy's
``oaconvolve`` does overlap-add): the kernel's spectrum is computed once, at
the tile size, each tile's transforms stay in a core's cache, and runs of
tiles are tasks for the kernels' threads (scipy.fft releases the GIL). A cost
model measured on this project's machine (`fft_plan`) picks the tiles and
tells method='auto' when the FFT beats the direct loops (`fft_is_faster`).
"""
import cmath
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import scipy.fft as sp_fft

# The function, not the module: tests spy on the compiled modules for kernels
# that keep the GIL, and this query is none.
from cyconv._openmp import max_threads

# The dtypes scipy.fft transforms in their own precision: float32 and
# float64 through rfft2/irfft2, complex64 and complex128 through fft2/ifft2.
# Everything else runs the direct kernel: long double (there is no
# long-double FFT path here) and the integers, whose results stay exact.
FFT_DTYPES = frozenset(np.dtype(c) for c in "fdFD")


# all_finite's shortcut is for small arrays (kernels) only: OpenBLAS hands a
# dot product of more than 10000 entries to its thread pool, and waking the
# pool costs milliseconds on a busy machine (measured: 7.6 ms for 12000
# entries between other work, against 10 us for np.isfinite).
_DOT_MAX = 4096


def all_finite(array):
    """True when no value of a floating or complex array is NaN or inf.

    For a small array, ``vdot(a, a) = sum |a|**2`` (no temporary array, half
    the time of ``np.isfinite`` on a 3x3 kernel) is finite exactly when every
    value is, unless the squares overflow; only then, when some value is not
    finite, or for a large array does ``np.isfinite`` decide.
    """
    if array.size <= _DOT_MAX and cmath.isfinite(np.vdot(array, array)):
        return True
    return bool(np.isfinite(array).all())


def fft_applies(*arrays):
    """True when the FFT agrees with the direct sum to rounding on these arrays.

    Their dtype must be one of FFT_DTYPES and every value finite: a transform
    spreads one NaN or inf over the whole output, where the direct sum keeps
    it to the windows that contain it.
    """
    return all(a.dtype in FFT_DTYPES for a in arrays) and all(map(all_finite, arrays))


# 'auto' keeps the FFT only while its rounding error, about eps * max|x| *
# sum|k| times a small factor, stays below 1e-4 of a typical output, about
# typical|x| * sum|k|: max|x| / typical|x| below these ratios. A float32 problem
# past its ratio is transformed in float64; past float64's, the sum is direct.
_RANGE_LIMIT = {np.dtype("f"): 1e2, np.dtype("d"): 1e8}
_SAMPLE = 4096
_F32_SAFE = float(np.finfo(np.float32).max) / 16


def auto_fft_dtype(image, kernel):
    """The dtype in which 'auto' may transform ``image`` and ``kernel``, or None.

    None (run the direct sum) when a value is NaN or inf, when the dtype has
    no FFT, or when the transforms could overflow even in float64: each
    spectrum entry is at most ``size * max|value|``. Otherwise the data's
    dtype, or float64 (complex128) for single-precision data whose dynamic
    range (max|x| / median|x|) or magnitude would cost the float32 transform
    its accuracy or overflow it. One pass over each array: small next to the
    transforms.
    """
    if not fft_applies(image, kernel):
        return None
    if not image.size or not kernel.size:
        return image.dtype
    real = np.dtype(image.dtype.char.lower())
    ax, ak = np.abs(image), np.abs(kernel)
    # Typical magnitude: the median of an even sample (one outlier cannot
    # lift it as it lifts the mean); the mean where most values are zero.
    sample = ax.ravel()[::max(1, ax.size // _SAMPLE)]
    top, mean = float(ax.max()), float(np.median(sample))
    if mean == 0:
        mean = float(ax.mean(dtype=np.float64))
    ktop = float(ak.max())
    size = float(image.size + kernel.size)
    if top * ktop * size * size >= np.finfo(np.float64).max / 16:
        return None
    if top > _RANGE_LIMIT[np.dtype("d")] * mean:
        return None  # beyond float64's accuracy too
    if real.itemsize == 4:
        if top <= _RANGE_LIMIT[real] * mean and top * ktop * size * size < _F32_SAFE:
            return image.dtype
        return np.result_type(image.dtype, np.float64)
    return image.dtype


def _span(size, k, before, step, count):
    """Along one axis: which outputs the FFT gives, from which full-convolution entries.

    Output ``i`` is entry ``i*step + k - 1 - before`` of the full convolution
    (length ``size + k - 1``) and is zero outside it (its window lies in the
    padding). Returns ``(first, stop, start, end)``: outputs ``[first, stop)``
    come from entries ``start, start + step, ... < end``; None when no output
    overlaps the input.
    """
    full = size + k - 1
    offset = k - 1 - before
    first = max(0, -(offset // step))  # ceil(-offset / step)
    stop = min(count, (full - 1 - offset) // step + 1)
    if first >= stop:
        return None
    return first, stop, first * step + offset, (stop - 1) * step + offset + 1


class Axis(NamedTuple):
    """One axis of `correlate_into` cut into tiles (see `_axis`)."""

    first: int  # outputs [first, stop) overlap the image; the others are zero
    stop: int
    per_tile: int  # outputs per tile (the last tile may have fewer)
    origin: int  # image index at position 0 of tile 0; tile t starts stride * t later
    hi: int  # image indices from min(hi, size) on are never read (zeros in the tiles)
    offset: int  # where in a tile's circular result its first output lies
    length: int  # transform length
    stride: int  # image indices (and full entries) from one tile to the next
    tiles: int


def _axis(size, k, before, step, count, real, length=None):
    """One axis cut into tiles of transform length ``length`` (None: one tile).

    Full entry ``m`` reads image indices ``m - k + 1 .. m`` (see `_span`). A
    tile holds the image from its start on and computes ``stride`` entries
    (a multiple of ``step``) from the ``stride + k - 1`` indices they read;
    ``length >= stride + k - 1`` keeps them free of wrap-around
    (overlap-save, as SciPy's ``oaconvolve`` does with overlap-add). One tile
    needs less: the linear correlation of data ``[a, b)`` with the kernel is
    nonzero on entries ``[a, b + k - 1)``, so a circular one of length
    ``n`` folds no other entry onto ``[s, e)`` once ``n >= max(e - a,
    b + k - 1 - s)``; a ``'valid'`` output thus needs only ``n = size``.
    Returns None when no output overlaps the image, and for a ``length``
    too short for one output or long enough for all of them.
    """
    span = _span(size, k, before, step, count)
    if span is None:
        return None
    first, stop, start, end = span
    hi = min(size, end)  # entries before end read no index from end on
    if length is None:
        origin = max(0, start - k + 1)
        length = sp_fft.next_fast_len(max(end - origin, hi + k - 1 - start, k), real)
        return Axis(first, stop, stop - first, origin, hi, start - origin, length, 0, 1)
    per_tile = (length - k + 1) // step
    if per_tile <= 0 or per_tile >= stop - first:
        return None
    return Axis(first, stop, per_tile, start - k + 1, hi, k - 1, length, per_tile * step,
                -(-(stop - first) // per_tile))


# The cost model behind method='auto' and the choice of tiles (SciPy's
# choose_conv_method is the model: compare the two costs, each a constant
# times its operation count). On one thread: seconds per multiply-add of the
# direct loops' register-blocked interior and of their border columns
# (column by column, where taps fall outside the image), per output row and
# tap, per output and per call; per point * log2(points) of one transform
# (with its share of the spectrum product and the copies), per tile, per
# task and per call (the Python work around the transforms). Each further
# thread adds the given share of one thread's speed. Measured on this
# project's 2-core AVX-512 machine: the direct loops on images of 32..1024
# with kernels 3..31 in 'same' and 'valid' mode (median error 5% in float32,
# 4% in float64), the FFT on the same images with the three best tilings of
# each (4%, 7%), two threads against one on images of 384..1024. Complex
# inputs cost about 4x (direct) and 2x (FFT: full instead of half spectra)
# their real precision.
_DIRECT_SECONDS_PER_MAC = {4: 24e-12, 8: 50e-12}
# The border constant was refit after the border columns' taps became a
# branch-free range: 1024x1024 'same' minus 'valid' at 31x31, one thread.
_DIRECT_SECONDS_PER_BORDER_MAC = {4: 255e-12, 8: 255e-12}
_DIRECT_SECONDS_PER_ROW_TAP = {4: 1.4e-9, 8: 0.8e-9}
_DIRECT_SECONDS_PER_OUTPUT = {4: 0.11e-9, 8: 0.14e-9}
_DIRECT_SECONDS_PER_CALL = 4e-6
_DIRECT_THREAD_GAIN = 0.95
_FFT_SECONDS_PER_POINT_LOG = {4: 0.165e-9, 8: 0.29e-9}
_FFT_SECONDS_PER_TILE = 5e-6
_FFT_SECONDS_PER_TASK = 4e-6
_FFT_SECONDS_PER_CALL = 60e-6
# For the FFT that share shrinks to share * work / (work + _FFT_THREAD_SECONDS)
# on small work: the Python work of each task holds the GIL.
_FFT_THREAD_GAIN = 0.8  # tiles shared among the threads
_FFT_WORKER_GAIN = 0.3  # a single tile: the threads share its transforms
_FFT_THREAD_SECONDS = 2e-3
# Tiles longer than this (or than twice the kernel) are not tried.
_TILE_MAX = 512
# A task is a run of tiles along a band whose spectra stay below this many
# bytes (a core's share of L2).
_TASK_BYTES = 1 << 20
# Below this predicted time on one thread the tiles run on the calling
# thread only: the tasks' Python work and the handovers of the GIL cost more
# than a second thread gains (measured: no gain below about 1 ms). Above
# it, each thread gets this many tasks, when there are enough tiles, so that
# they finish together (more tasks cost more than they balance).
_PARALLEL_SECONDS = 1e-3
_TASKS_PER_THREAD = 2


class Plan(NamedTuple):
    """The tiles of `correlate_into` and their predicted time (see `fft_plan`)."""

    rows: Axis
    cols: Axis
    per_task: int  # tiles of a band per task (tasks split a band evenly)
    threads: int  # threads the tiles run on
    seconds: float
    direct_seconds: float  # of the direct loops on the same planes, for method='auto'


def _plan(rows, cols, batch, real, itemsize, threads, direct_seconds=0.0):
    """The `Plan` of tiles ``rows x cols`` on ``batch`` planes and up to ``threads`` threads.

    ``itemsize`` is that of a real (or of a complex number's part).
    """
    points = rows.length * cols.length
    spectrum = rows.length * (cols.length // 2 + 1 if real else cols.length) * 2 * itemsize
    per_task = max(1, min(cols.tiles, _TASK_BYTES // spectrum))
    chunks = -(-cols.tiles // per_task)
    tiles = batch * rows.tiles * cols.tiles
    tasks = batch * rows.tiles * chunks
    seconds = ((2 * tiles + 1) * points * math.log2(max(points, 2))
               * _FFT_SECONDS_PER_POINT_LOG[itemsize]
               + tiles * _FFT_SECONDS_PER_TILE + tasks * _FFT_SECONDS_PER_TASK)
    seconds *= 1 if real else 2
    if seconds < _PARALLEL_SECONDS:
        threads = 1
    share = seconds / (seconds + _FFT_THREAD_SECONDS)
    if tiles > 1:
        seconds /= 1 + (min(threads, tiles) - 1) * _FFT_THREAD_GAIN * share
    else:
        seconds /= 1 + (threads - 1) * _FFT_WORKER_GAIN * share
    return Plan(rows, cols, -(-cols.tiles // chunks), threads,
                seconds + _FFT_SECONDS_PER_CALL, direct_seconds)


def _direct_seconds(batch, w, kh, kw, left, ho, wo, real, itemsize, threads):
    """Predicted time of the direct loops (stride 1) on ``batch`` planes of width ``w``.

    Output columns whose taps all fall inside the image, ``[left, w + left -
    kw + 1)``, run in vector registers; the others column by column.
    """
    interior = max(0, min(w + left - kw + 1, wo) - min(left, wo))
    taps = kh * kw
    seconds = batch * ho * (taps * (interior * _DIRECT_SECONDS_PER_MAC[itemsize]
                                    + (wo - interior) * _DIRECT_SECONDS_PER_BORDER_MAC[itemsize]
                                    + _DIRECT_SECONDS_PER_ROW_TAP[itemsize])
                            * (1 if real else 4)
                            + wo * _DIRECT_SECONDS_PER_OUTPUT[itemsize])
    return seconds / (1 + (threads - 1) * _DIRECT_THREAD_GAIN) + _DIRECT_SECONDS_PER_CALL


@functools.lru_cache(maxsize=256)
def _axis_choices(size, k, before, step, count, real, itemsize):
    """The single tile and the three tilings of one axis that look cheapest.

    A tiling is ranked by the square root of the predicted time of its
    tiles on both axes.
    """
    single = _axis(size, k, before, step, count, real)
    if single is None:
        return ()
    ranked = []
    length = sp_fft.next_fast_len(k + step - 1, real)
    while length < min(single.length, max(_TILE_MAX, 2 * (k + step))):
        axis = _axis(size, k, before, step, count, real, length)
        if axis is not None:
            ranked.append((_plan(axis, axis, 1, real, itemsize, 1).seconds, axis))
        length = sp_fft.next_fast_len(length + 1, real)
    ranked.sort()
    return (single, *(axis for _, axis in ranked[:3]))


@functools.lru_cache(maxsize=256)
def _best_plan(image_shape, kernel_shape, top, left, steps, out_shape, dtype, threads):
    """`fft_plan` for hashable arguments (a plan is made once per shape)."""
    real = dtype.kind != "c"
    itemsize = dtype.itemsize if real else dtype.itemsize // 2
    (h, w), (kh, kw), (ho, wo) = image_shape[-2:], kernel_shape, out_shape
    rows = _axis_choices(h, kh, top, steps[0], ho, real, itemsize)
    cols = _axis_choices(w, kw, left, steps[1], wo, real, itemsize)
    if not rows or not cols:
        return None
    batch = math.prod(image_shape[:-2])
    direct = _direct_seconds(batch, w, kh, kw, left, ho, wo, real, itemsize, threads)
    return min((_plan(r, c, batch, real, itemsize, threads, direct) for r in rows for c in cols),
               key=lambda plan: plan.seconds)


def fft_plan(image_shape, kernel_shape, top, left, steps, out_shape, dtype):
    """The tiles `correlate_into` runs: those with the least predicted time.

    The arguments are those of `correlate_into`: ``steps`` is ``(sh, sw)``,
    ``image_shape`` and ``out_shape`` may have leading batch axes. The tiles
    run on the kernels' thread count (OpenMP's) when there is enough work.
    Returns a `Plan`, with the predicted time of the direct loops too (at
    stride 1), or None when no output overlaps the image or ``dtype`` is not
    one of FFT_DTYPES.
    """
    dtype = np.dtype(dtype)
    if dtype not in FFT_DTYPES:
        return None
    return _best_plan(tuple(image_shape), tuple(kernel_shape), top, left, tuple(steps),
                      tuple(out_shape[-2:]), dtype, max_threads())


# Multiply-adds below which 'auto' always runs the direct loops (see
# fft_is_faster); cyconv._small's fast path takes calls below it.
DIRECT_WORK = 2**10


def fft_is_faster(image_shape, kernel_shape, top, left, out_shape, dtype):
    """True when the FFT is predicted to beat the direct sum on this stride-1 correlation.

    The arguments are `fft_plan`'s, at stride 1.
    """
    (ho, wo), (kh, kw) = out_shape[-2:], kernel_shape
    if ho * wo * kh * kw < DIRECT_WORK:
        # Far too small to plan: three transforms cost some 45 us however
        # small, 2**10 multiply-adds well under 1 us of direct loops. It is
        # below the model's smallest FFT pick with the constants above
        # (24576, complex64 32x64 kernel on a 12x1 image): no choice changes.
        return False
    plan = fft_plan(image_shape, kernel_shape, top, left, (1, 1), out_shape, dtype)
    if plan is None:  # long double and integers have no FFT, and an output
        return False  # whose windows all miss the image is zeros
    return plan.direct_seconds > plan.seconds


_pool_lock = threading.Lock()
_pool = None  # (threads, ThreadPoolExecutor) running tiles besides the calling thread


def _forget_pool():
    """In a forked child the pool's threads are gone: start a new pool when needed."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _submit(workers, function):
    """``workers`` calls of ``function`` on a pool of as many threads, shared by all calls.

    Under the lock, so that no call submits to a pool that another one, with
    another thread count, has just shut down.
    """
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != workers:
            if _pool is not None:
                _pool[1].shutdown(wait=False)  # its threads end once idle
            _pool = (workers, ThreadPoolExecutor(workers, thread_name_prefix="cyconv-fft"))
        return [_pool[1].submit(function) for _ in range(workers)]


def _run(tasks, work, threads):
    """``work(task, scratch)`` for every task, on at most ``threads`` threads.

    Each thread takes the next task as it finishes one and keeps its own
    scratch dict; the calling thread works too.
    """
    threads = min(len(tasks), threads)
    if threads <= 1:
        scratch = {}
        for task in tasks:
            work(task, scratch)
        return
    lock = threading.Lock()
    remaining = iter(tasks)

    def worker():
        scratch = {}
        while True:
            with lock:
                task = next(remaining, None)
            if task is None:
                return
            work(task, scratch)

    futures = _submit(threads - 1, worker)
    try:
        worker()
    finally:
        for future in futures:
            if not future.cancel():
                future.result()


def correlate_into(out, image, kernel, top, left, sh=1, sw=1, plan=None):
    """out[..., i, j] = sum_{p,q} kernel[p, q] * image[..., i*sh - top + p, j*sw - left + q].

    ``image`` is zero outside its bounds; leading axes of ``image`` and
    ``out`` are a batch (one kernel spectrum serves all). ``plan`` is
    `fft_plan` of these arguments (computed when None). Invariants: one dtype
    in FFT_DTYPES for all three arrays, ``image`` and ``kernel`` non-empty,
    ``top, left >= 0``, ``sh, sw >= 1``, ``out`` writable with its last
    axis contiguous.
    """
    if plan is None:
        plan = fft_plan(image.shape, kernel.shape, top, left, (sh, sw), out.shape, image.dtype)
    if plan is None:
        out[...] = 0
        return
    rows, cols, per_task, threads = plan[:4]
    real = image.dtype.kind == "f"
    forward, inverse = (sp_fft.rfft2, sp_fft.irfft) if real else (sp_fft.fft2, sp_fft.ifft)
    shape = (rows.length, cols.length)
    # Outputs whose windows miss the image.
    out[..., :rows.first, :] = 0
    out[..., rows.stop:, :] = 0
    out[..., :cols.first] = 0
    out[..., cols.stop:] = 0
    bands = math.prod(image.shape[:-2]) * rows.tiles
    if threads > 1 and bands < _TASKS_PER_THREAD * threads:
        # Shorter runs of tiles, for enough tasks to share among the threads.
        chunks = min(cols.tiles, -(-_TASKS_PER_THREAD * threads // bands))
        per_task = min(per_task, -(-cols.tiles // chunks))
    tasks = [(index, band, c0, min(cols.tiles, c0 + per_task))
             for index in np.ndindex(image.shape[:-2]) for band in range(rows.tiles)
             for c0 in range(0, cols.tiles, per_task)]
    # Fewer tasks than threads (one large tile): the transforms use the rest.
    workers = max(1, threads // len(tasks))
    spectrum = forward(kernel[::-1, ::-1], shape, workers=workers)
    buffer_width = (per_task - 1) * cols.stride + cols.length

    def work(task, scratch):
        index, band, c0, c1 = task
        plane, target = image[index], out[index]
        buffer = scratch.get("buffer")
        if buffer is None:
            buffer = scratch["buffer"] = np.empty((rows.length, buffer_width), image.dtype)
        # The tiles c0..c1-1 of this band, side by side (they overlap by
        # length - stride), with zeros outside the image.
        y0, x0 = rows.origin + band * rows.stride, cols.origin + c0 * cols.stride
        span = (c1 - c0 - 1) * cols.stride + cols.length
        # Where the image lies in the buffer: rows [ya, yb), columns [xa, xb).
        ya, yb = min(max(-y0, 0), rows.length), max(min(rows.hi - y0, rows.length), 0)
        xa, xb = min(max(-x0, 0), span), max(min(cols.hi - x0, span), 0)
        yb, xb = max(ya, yb), max(xa, xb)
        buffer[:ya, :span] = 0
        buffer[yb:, :span] = 0
        buffer[ya:yb, :xa] = 0
        buffer[ya:yb, xb:span] = 0
        buffer[ya:yb, xa:xb] = plane[y0 + ya:y0 + yb, x0 + xa:x0 + xb]
        s0, s1 = buffer.strides
        tiles = np.lib.stride_tricks.as_strided(
            buffer, (c1 - c0, rows.length, cols.length), (cols.stride * s1, s0, s1),
            writeable=False)
        product = forward(tiles, shape, workers=workers)
        product *= spectrum
        i = rows.first + band * rows.per_tile
        count = min(rows.per_tile, rows.stop - i)
        # The inverse along the rows, then along the columns of the rows kept.
        product = sp_fft.ifft(product, axis=-2, overwrite_x=True, workers=workers)
        result = inverse(product[:, rows.offset:rows.offset + count * sh:sh], cols.length,
                         overwrite_x=True, workers=workers)
        picked = result[..., cols.offset:cols.offset + cols.per_tile * sw:sw]
        # Whole tiles in one copy (target's rows as (count, tiles, per_tile)),
        # then the last tile's part that is not cut off at cols.stop.
        j = cols.first + c0 * cols.per_tile
        whole = min(c1 - c0, (cols.stop - j) // cols.per_tile)
        t0, t1 = target.strides
        np.lib.stride_tricks.as_strided(
            target[i:, j:], (count, whole, cols.per_tile), (t0, cols.per_tile * t1, t1)
        )[...] = picked[:whole].transpose(1, 0, 2)
        if whole < c1 - c0:
            j += whole * cols.per_tile
            target[i:i + count, j:cols.stop] = picked[whole, :, :cols.stop - j]

    _run(tasks, work, threads)


def conv2d_forward(x, weight, bias, out, sh, sw, ph, pw, dh, dw, groups):
    """out[n,0,i,j] = bias[0] + sum_{p,q} weight[0,0,p,q] * x[n,0,i*sh-ph+p*dh, j*sw-pw+q*dw].

    The direct kernel's signature, for one channel and one kernel
    (C == K == groups == 1); ``x`` is zero outside its bounds. Invariants:
    x (N, 1, H, W), weight (1, 1, kh, kw), bias (1,) and out (N, 1, Ho, Wo)
    share one dtype in FFT_DTYPES; x and weight are non-empty.
    """
    kernel = weight[0, 0]
    if dh > 1 or dw > 1:  # dilation: dh - 1 (dw - 1) zero rows (columns) between taps
        kh, kw = kernel.shape
        dilated = np.zeros((dh * (kh - 1) + 1, dw * (kw - 1) + 1), kernel.dtype)
        dilated[::dh, ::dw] = kernel
        kernel = dilated
    correlate_into(out[:, 0], x[:, 0], kernel, ph, pw, sh, sw)
    if bias[0]:
        out += bias[0]
