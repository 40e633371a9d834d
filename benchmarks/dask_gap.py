"""Why benchmarks/run.py's dask group timed cyconv.dask slower than a plain script (issue 14).

One process, one 8192^2 float32 image in 1024^2 chunks, cyconv.dask.correlate2d
'same' on the threaded scheduler, interleaved over thread pools that differ
only in what their worker threads did before the first task. Wall times
depend on the machine's load; the page faults and system time of each run
(getrusage) much less:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/dask_gap.py [--steady]

``--steady``: run.py's mallopt (mmap threshold 32 MiB, trim threshold 1 GiB).
"""
import ctypes
import resource
import statistics
import sys
import time

if "--steady" in sys.argv:
    libc = ctypes.CDLL(None)
    libc.mallopt(-3, 32 * 2**20)
    libc.mallopt(-1, 2**30)

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402

import cyconv.dask  # noqa: E402
from cyconv import _openmp  # noqa: E402


def small_allocations():
    return [bytearray(1000) for _ in range(2000)]


threads = _openmp.max_threads()
pools = {
    "dask's default pool": None,
    "pool, no initializer": ThreadPoolExecutor(threads),
    "run.py's old pool (threadpool_limits)": ThreadPoolExecutor(
        threads, initializer=lambda: threadpoolctl.threadpool_limits(1, user_api="openmp")),
    "pool, initializer: threadpool_info": ThreadPoolExecutor(
        threads, initializer=threadpoolctl.threadpool_info),
    "pool, initializer: 2 MB of small objects": ThreadPoolExecutor(
        threads, initializer=small_allocations),
}
rng = np.random.default_rng(4)
x = da.from_array(rng.standard_normal((8192, 8192), dtype=np.float32), chunks=1024)
kernel = rng.standard_normal((3, 3), dtype=np.float32)
runs = {name: [] for name in pools}
for _ in range(5):
    for name, pool in pools.items():
        extra = {} if pool is None else {"pool": pool}
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        cyconv.dask.correlate2d(x, kernel, "same").compute(scheduler="threads", **extra)
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        runs[name].append((t1 - t0, r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt))
for name, v in runs.items():
    wall, sys_t, faults = (statistics.median(s[i] for s in v) for i in range(3))
    print(f"{name:<42} wall {wall * 1e3:6.0f} ms  sys {sys_t * 1e3:5.0f} ms  "
          f"minor faults {faults:6.0f}")
