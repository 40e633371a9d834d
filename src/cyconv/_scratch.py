"""Scratch arrays reused from call to call: large ones then fault in no fresh pages.

A fresh NumPy array that glibc serves by ``mmap`` (above its mmap threshold,
which adapts up to 32 MiB) comes as untouched pages, and the first touch of
each 4 KiB page costs a page fault: about 1 us here, 2.3 ms for the 9.4 MB of
transformed kernels of a 256x256 3x3 Winograd layer, a quarter of its time.
`scratch` lends a buffer kept from an earlier call instead, while it holds at
most `MAX_CACHED` buffers of `MAX_CACHED_BYTES` together (the oldest go
first). Each buffer is lent to one caller at a time, so calls from several
Python threads at once each get their own.
"""
import contextlib
import math
import threading

import numpy as np

MAX_CACHED = 4
MAX_CACHED_BYTES = 64 * 2**20
# Arrays start on a cache line (a 512-bit vector).
ALIGN = 64

_lock = threading.Lock()
_free = []  # 1-D uint8 buffers that no call holds, oldest first


@contextlib.contextmanager
def scratch(shape, dtype):
    """An uninitialized C-contiguous array of ``shape`` and ``dtype`` for the ``with`` block.

    It is a view of the smallest cached buffer large enough, or of a new one;
    at the end of the block the buffer returns to the cache (the array must
    not be used after it).
    """
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    with _lock:
        fits = [i for i, buf in enumerate(_free) if buf.nbytes >= nbytes + ALIGN]
        buf = _free.pop(min(fits, key=lambda i: _free[i].nbytes)) if fits else None
    if buf is None:
        buf = np.empty(nbytes + ALIGN, np.uint8)
    start = -buf.ctypes.data % ALIGN
    try:
        yield buf[start:start + nbytes].view(dtype).reshape(shape)
    finally:
        with _lock:
            _free.append(buf)
            while len(_free) > MAX_CACHED or sum(b.nbytes for b in _free) > MAX_CACHED_BYTES:
                del _free[0]
