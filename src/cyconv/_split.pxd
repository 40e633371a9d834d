# How the GEMM drivers cut their work into tasks for the kernels' threads
# (cyconv._threads): shared by _im2col.pyx and _shifted.pyx.

cdef inline Py_ssize_t even_part(Py_ssize_t n, Py_ssize_t max_part, Py_ssize_t jobs,
                                 int n_threads) noexcept nogil:
    """The size of each part when ``jobs`` items of length ``n`` are cut into tasks.

    Parts are at most ``max_part`` long and of equal size, and the task count
    (jobs times parts per job) is rounded up to a multiple of the threads, so
    that every thread has work and none waits on another's longer last task.
    """
    cdef Py_ssize_t parts = (n + max_part - 1) // max_part
    cdef Py_ssize_t tasks = (jobs * parts + n_threads - 1) // n_threads * n_threads
    parts = (tasks + jobs - 1) // jobs
    if parts > n:
        parts = n
    return (n + parts - 1) // parts
