"""Who owns the cores during a call: the kernels' OpenMP threads, never two pools at once.

cyconv's GEMM paths (im2col, the stride-1 shifted GEMMs) split their work
into tasks (an image block, a band of output rows, a group of channels) that
the kernels' OpenMP threads take in turn; each thread unrolls or pads its own
block and calls BLAS *on one thread* for its own GEMM. So one pool of threads
does all of a call's work, the copies run on the core whose cache then feeds
the GEMM, and BLAS's own threads never wait between the many small GEMMs.

SciPy's OpenBLAS (pthreads) has no per-thread thread count
(``openblas_set_num_threads_local`` sets the global one in those builds), so
for the duration of a GEMM-path call BLAS is held at one thread and its
previous setting restored when the last such call ends -- scikit-learn's
KMeans does the same around its OpenMP loops. Other BLAS threading layers
need nothing: a sequential BLAS has no threads, and an OpenMP-threaded one
runs on one thread inside a parallel region by itself. Where the BLAS's
thread control cannot be found (an unknown BLAS), the GEMM paths run their
tasks on the calling thread and leave the threading of each GEMM to BLAS.

The FFT path (`cyconv._fft`) runs its tiles as tasks on a Python thread pool
of the same count, the calling thread included: the tasks are calls of
scipy.fft, which OpenMP cannot run, its idle threads sleep on a condition,
and no OpenMP loop or BLAS call runs during those tasks. Sharing tiles among
threads was measured to gain 0.8 of a thread each, where pocketfft's own
``workers`` on one transform gain 0.3 (`cyconv._fft`'s cost model).

The count is the kernels' (`cyconv._openmp`): ``OMP_NUM_THREADS`` or
threadpoolctl's OpenMP limit, capped at the CPUs this process may use. Nothing
here changes the environment, and nothing depends on which library loaded the
OpenMP runtime first.

With PyTorch in the process (benchmarks/import_order.py, which prints what it
measures): either import order maps one GNU OpenMP runtime, whose soname both
libraries link -- the system's libgomp when cyconv is imported first,
torch's bundled copy when torch is -- so torch's loops and the kernels run
on one team, whose idle threads spin a few milliseconds after a call and then
sleep; the two runtimes gave the kernels the same CPU time per call. The
threads that do keep spinning are NumPy's OpenBLAS pthreads: after a
multi-threaded NumPy product they burn CPU for about 0.1 s (2^28 cycles), so
on a machine with few cores whatever runs next, torch or cyconv, starts on
fewer. Only process-wide settings change that (``OPENBLAS_NUM_THREADS``,
OpenBLAS's build), which a library must not touch.
"""
import contextlib
import ctypes
import os
import threading

# The queries, not the compiled module: tests spy on module attributes for kernels.
from cyconv._openmp import (mark_forked, max_threads, parallel_work, set_cpu_limit,
                            set_thread_setting, thread_setting)

# (get, set, get_parallel) symbol names by BLAS, with the prefixes and
# suffixes of the builds SciPy and NumPy ship (scipy-openblas32/64). An
# OpenBLAS get_parallel() of 1 means pthreads; 0 (sequential) and 2 (OpenMP)
# need no limit.
_OPENBLAS_NAMES = [
    (prefix + "get_num_threads" + suffix, prefix + "set_num_threads" + suffix,
     prefix + "get_parallel" + suffix)
    for prefix in ("scipy_openblas_", "openblas_")
    for suffix in ("", "64_")
]
_MKL_NAMES = ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads")

OPENBLAS_PTHREADS = 1
NEEDS_NO_LIMIT = ("openblas sequential", "openblas openmp")


def usable_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _BlasThreads:
    """The thread count of the BLAS behind ``scipy.linalg.cython_blas``, held at one on demand.

    ``hold_single()`` is re-entrant across threads: the first holder saves
    the count and sets 1, the last one out restores it.
    """

    def __init__(self):
        self.name, self._get, self._set = _find_blas_controls()
        self._lock = threading.Lock()
        self._holders = 0
        self._saved = 1

    @property
    def controlled(self):
        """True when GEMM-path calls can hold BLAS at one thread (or need not)."""
        return self._get is not None or self.name in NEEDS_NO_LIMIT

    def get(self):
        """BLAS's thread count now, or None where it is not known."""
        return self._get() if self._get is not None else None

    def acquire(self):
        """Hold BLAS at one thread until the matching `release` (no-op where no limit is needed)."""
        if self._get is None:
            return
        with self._lock:
            if self._holders == 0:
                self._saved = self._get()
                if self._saved != 1:
                    self._set(1)
            self._holders += 1

    def release(self):
        """End one `acquire`: the last holder out restores BLAS's setting."""
        if self._get is None:
            return
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._saved != 1:
                self._set(self._saved)

    @contextlib.contextmanager
    def hold_single(self):
        """BLAS on one thread inside the block (a no-op where it needs no limit)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def after_fork_in_child(self):
        """Only the forking thread lives on: no holders, a fresh lock."""
        self._lock = threading.Lock()
        if self._holders:
            self._holders = 0
            if self._saved != 1:
                self._set(self._saved)


def _find_blas_controls():
    """``(name, get, set)`` for the BLAS that SciPy's cython_blas calls.

    ``dlsym`` on the handle of cython_blas's own shared object searches that
    object and the libraries it links, so this finds SciPy's BLAS and not
    another one loaded in the process (NumPy's, PyTorch's). ``get``/``set``
    are None where no limit is needed or none can be found.
    """
    try:
        from scipy.linalg import cython_blas
        lib = ctypes.CDLL(cython_blas.__file__)
    except (ImportError, OSError, AttributeError):
        return "unknown", None, None
    for get_name, set_name, parallel_name in _OPENBLAS_NAMES:
        get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
        if get is None or set_ is None:
            continue
        get.restype, get.argtypes = ctypes.c_int, []
        set_.restype, set_.argtypes = None, [ctypes.c_int]
        parallel = getattr(lib, parallel_name, None)
        if parallel is not None:
            parallel.restype, parallel.argtypes = ctypes.c_int, []
            layer = parallel()
            if layer != OPENBLAS_PTHREADS:
                return ("openblas " + ("sequential" if layer == 0 else "openmp"),
                        None, None)
        return "openblas pthreads", get, set_
    get, set_ = (getattr(lib, name, None) for name in _MKL_NAMES)
    if get is not None and set_ is not None:
        get.restype, get.argtypes = ctypes.c_int, []
        set_.restype, set_.argtypes = None, [ctypes.c_int]
        return "mkl", get, set_
    return "unknown", None, None


blas_threads = _BlasThreads()


def _after_fork_in_child():
    mark_forked()
    blas_threads.after_fork_in_child()


set_cpu_limit(usable_cpus())
os.register_at_fork(after_in_child=_after_fork_in_child)


# Multiply-adds below which a GEMM-path call runs on the calling thread, as the
# kernels' own loops do (_openmp.pxd): its GEMMs then take microseconds, and
# waking the team costs more than it saves (and far more when the other
# cores are busy: a 1x8x8x8 3x3 layer took 10x the time on two threads).
_PARALLEL_WORK = parallel_work()


class gemm_team:
    """The OpenMP team size for a GEMM-path kernel call; BLAS on one thread meanwhile.

    ``with gemm_team(work) as n_threads:`` gives ``kernel threads`` when
    BLAS can be held at one thread, else 1 (the tasks then run on the
    calling thread and BLAS threads each GEMM as it is set to). ``work``,
    the call's multiply-adds, below the kernels' PARALLEL_WORK also gives 1
    (BLAS still held). A class, not a generator: this is on every GEMM-path
    call, and the generator and hold_single's cost 7 us, a tenth of a small call.
    """

    __slots__ = ("_work", "_held")

    def __init__(self, work=None):
        self._work = work
        self._held = None

    def __enter__(self):
        # Looked up per call: tests replace blas_threads.
        held = blas_threads
        if not held.controlled:
            return 1
        held.acquire()
        self._held = held
        return max_threads() if self._work is None or self._work >= _PARALLEL_WORK else 1

    def __exit__(self, *exc_info):
        if self._held is not None:
            self._held.release()
            self._held = None
        return False


def kernel_team(work):
    """The OpenMP team size for a kernel call that runs no BLAS: the kernel threads,
    or 1 below PARALLEL_WORK multiply-adds (``work``), as gemm_team but holding nothing."""
    return max_threads() if work >= _PARALLEL_WORK else 1


@contextlib.contextmanager
def thread_limit(n):
    """Kernels called from this thread run on at most ``n`` threads inside the block.

    OpenMP's thread count is per thread (`cyconv._openmp.set_thread_setting`),
    so threads running side by side (a Dask worker's tasks) each set their
    own, and the setting is restored on the way out. ``n=None`` changes
    nothing. The FFT path's thread pool and the GEMM teams follow the same
    count (`max_threads`).
    """
    if n is None:
        yield
        return
    saved = thread_setting()
    set_thread_setting(n)
    try:
        yield
    finally:
        set_thread_setting(saved)
