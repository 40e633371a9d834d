"""What the kernels' thread pool looks like from Python (for info and tests)."""
from cyconv._openmp cimport CYCONV_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(CYCONV_OPENMP)


def max_threads():
    """Threads a parallel kernel loop would use now.

    OpenMP reads OMP_NUM_THREADS at start-up; threadpoolctl's
    ``threadpool_limits(n, user_api='openmp')`` changes it at run time.
    """
    return omp_get_max_threads()
