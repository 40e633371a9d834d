# OpenMP shim (sklearn utils/_openmp_helpers.pxd): without OpenMP the prange
# loops run serially and omp_get_max_threads() is 1.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CYCONV_OPENMP 1
    #else
    #define CYCONV_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static void omp_set_num_threads(int n) { (void)n; }
    #endif
    """
    bint CYCONV_OPENMP
    int omp_get_max_threads() noexcept nogil
    void omp_set_num_threads(int n) noexcept nogil

# Multiply-adds below which a kernel loop stays on the calling thread:
# starting the team costs microseconds (sklearn's _use_threads_for_workload).
cdef enum:
    PARALLEL_WORK = 65536

# The threads a kernel loop may use now: OpenMP's setting, capped at the CPUs
# the process may run on, and 1 in a child forked from a threaded parent.
cdef int kernel_threads() noexcept nogil
