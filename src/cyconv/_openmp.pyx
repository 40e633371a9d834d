"""The kernels' thread count: OpenMP's setting, capped, and one thread after fork.

Every parallel kernel loop asks ``kernel_threads()`` for its team size. The
count is OpenMP's (``OMP_NUM_THREADS``, or threadpoolctl's
``threadpool_limits(n, user_api='openmp')`` at run time), capped at the CPUs
this process may run on (scikit-learn caps its OpenMP threads the same way):
``OMP_NUM_THREADS=100000`` must not create 100000 threads.

GNU libgomp's thread pool does not survive ``fork``: a child whose parent
ran a parallel loop hangs in its first one. So a forked child runs every
kernel loop on its own thread (`cyconv._threads` marks it); spawn and
forkserver children start afresh and use every CPU.
"""
from cyconv._openmp cimport (CYCONV_OPENMP, PARALLEL_WORK, omp_get_max_threads,
                             omp_set_num_threads)

# Set from Python at import and after fork (cyconv._threads).
cdef int _cpu_limit = 1
cdef bint _forked = False


cdef int kernel_threads() noexcept nogil:
    if _forked:
        return 1
    cdef int n = omp_get_max_threads()
    return n if n < _cpu_limit else _cpu_limit


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(CYCONV_OPENMP)


def max_threads():
    """Threads a parallel kernel loop would use now (see the module docstring)."""
    return kernel_threads()


def parallel_work():
    """Multiply-adds below which a kernel loop stays on the calling thread (PARALLEL_WORK)."""
    return PARALLEL_WORK


def thread_setting():
    """OpenMP's thread count for loops started from the calling thread, before the cap."""
    return omp_get_max_threads()


def set_thread_setting(int n):
    """Set OpenMP's thread count (at least 1) for loops started from the calling thread.

    OpenMP keeps this count per thread (the ``nthreads-var`` of the thread's
    implicit task, in GNU and LLVM OpenMP alike): other threads keep theirs.
    A no-op without OpenMP.
    """
    omp_set_num_threads(n if n > 1 else 1)


def set_cpu_limit(int n):
    """Cap the kernels' threads at ``n`` (the CPUs this process may use)."""
    global _cpu_limit
    _cpu_limit = n if n > 1 else 1


def cpu_limit():
    """The cap set by `set_cpu_limit`."""
    return _cpu_limit


def mark_forked():
    """In a forked child: run every kernel loop on the calling thread from now on."""
    global _forked
    _forked = True


def forked():
    """True in a forked child (see `mark_forked`)."""
    return bool(_forked)
