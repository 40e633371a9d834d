"""Scratch arrays reused from call to call: large ones then fault in no fresh pages.

A fresh NumPy array that glibc serves by ``mmap`` (above its mmap threshold,
which adapts up to 32 MiB) comes as untouched pages, and the first touch of
each 4 KiB page costs a page fault: about 1 us here, 2.3 ms for the 9.4 MB of
transformed kernels of a 256x256 3x3 Winograd layer, a quarter of its time.
`scratch` lends a buffer kept from an earlier call instead, while it holds at
most `MAX_CACHED` buffers of `MAX_CACHED_BYTES` together (the oldest go
first). Each buffer is lent to one caller at a time, so calls from several
Python threads at once each get their own.

An array written on one core and then read on every kernel thread's (the
transformed kernels) asks for a ``shared`` one: it does not get the buffer
that the last shared array had, whose lines the other cores may still
hold, so that writing them costs no invalidations. Measured on the 2-core
VM, 2 threads: the 2 MB of kernel slots of N8-C128-28-K256 3x3/2
(cyconv._winograd_s2_gemm) took 1.0 ms to write into the buffer that both
threads had just read, 0.33 ms into another one.
"""
import contextlib
import math
import threading
import weakref

import numpy as np

MAX_CACHED = 4
MAX_CACHED_BYTES = 64 * 2**20
# Arrays start on a cache line (a 512-bit vector).
ALIGN = 64

_lock = threading.Lock()
_free = []  # 1-D uint8 buffers that no call holds, oldest first
_last_shared = None  # a weak reference to the buffer of the last shared array


@contextlib.contextmanager
def scratch(shape, dtype, shared=False):
    """An uninitialized C-contiguous array of ``shape`` and ``dtype`` for the ``with`` block.

    It is a view of the smallest cached buffer large enough, or of a new one;
    at the end of the block the buffer returns to the cache (the array must
    not be used after it). A ``shared`` array (see above) never gets the
    buffer the last shared array had.
    """
    global _last_shared
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    with _lock:
        avoid = _last_shared() if shared and _last_shared is not None else None
        fits = [i for i, buf in enumerate(_free)
                if buf.nbytes >= nbytes + ALIGN and buf is not avoid]
        buf = _free.pop(min(fits, key=lambda i: _free[i].nbytes)) if fits else None
    if buf is None:
        buf = np.empty(nbytes + ALIGN, np.uint8)
    if shared:
        _last_shared = weakref.ref(buf)
    try:
        yield _aligned_view(buf, nbytes, shape, dtype)
    finally:
        with _lock:
            _free.append(buf)
            while len(_free) > MAX_CACHED or sum(b.nbytes for b in _free) > MAX_CACHED_BYTES:
                del _free[0]


def aligned_empty(shape, dtype):
    """An uninitialized C-contiguous array that starts on a cache line (ALIGN bytes).

    For results that vector kernels store to whole rows of: NumPy starts
    large arrays 16 bytes into a line, and a 64-byte store across two lines
    costs two. The 1x1 layer's packed GEMM (cyconv._pointwise) took
    1.06-1.09x its time on such an output (N8-C256-28-K512, both threads,
    a C harness of _wgemm.h).
    """
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    return _aligned_view(np.empty(nbytes + ALIGN, np.uint8), nbytes, shape, dtype)


def _aligned_view(buf, nbytes, shape, dtype):
    """The ``shape`` and ``dtype`` array in ``buf`` (nbytes + ALIGN bytes), cache-line aligned."""
    start = -buf.ctypes.data % ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)
