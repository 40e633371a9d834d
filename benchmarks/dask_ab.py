"""A/B of cyconv.dask.correlate2d against another version of cyconv/dask.py, in one process.

    git show main:src/cyconv/dask.py > /tmp/old_dask.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/dask_ab.py /tmp/old_dask.py \
        [--size 8192] [--kernels 3,9,31] [--repeats 5] [--store]

8192^2 float32 in 1024^2 chunks, 'same', threaded scheduler (dask's default
pool); the two versions, the graph of the input alone (the concatenation or
store floor) and the in-memory call are timed interleaved (medians), with
the minor page faults of each run. ``--store``: results by ``da.store`` into
one preallocated array instead of ``compute()``.
"""
import argparse
import importlib.util
import resource
import statistics
import time

import dask.array as da
import numpy as np

import cyconv
import cyconv.dask

parser = argparse.ArgumentParser()
parser.add_argument("old", help="path of the other version's dask.py")
parser.add_argument("--size", type=int, default=8192)
parser.add_argument("--kernels", default="3,9,31")
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--store", action="store_true")
args = parser.parse_args()
spec = importlib.util.spec_from_file_location("old_dask", args.old)
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
rng = np.random.default_rng(4)
image = rng.standard_normal((args.size, args.size), dtype=np.float32)
x = da.from_array(image, chunks=1024)
out = np.ones_like(image) if args.store else None


def run(y):
    if out is None:
        return y.compute(scheduler="threads")
    da.store(y, out, lock=False, scheduler="threads")
    return out


for k in map(int, args.kernels.split(",")):
    kernel = rng.standard_normal((k, k), dtype=np.float32)
    ref = cyconv.correlate2d(image, kernel, "same")
    cases = {"old": lambda: run(old.correlate2d(x, kernel, "same")),
             "new": lambda: run(cyconv.dask.correlate2d(x, kernel, "same")),
             "input alone": lambda: run(x),
             "in memory": lambda: cyconv.correlate2d(image, kernel, "same")}
    for name in ("old", "new"):
        np.testing.assert_allclose(cases[name](), ref, rtol=1e-5, atol=1e-4)
    times = {c: [] for c in cases}
    faults = {c: [] for c in cases}
    for _ in range(args.repeats):
        for case, fn in cases.items():
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            fn()
            times[case].append(time.perf_counter() - t0)
            faults[case].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    print(f"{args.size}^2 {k}x{k} {'store' if out is not None else 'compute'}: " + "; ".join(
        f"{c} {statistics.median(times[c]) * 1e3:.0f} ms ({statistics.median(faults[c]):.0f} "
        "faults)" for c in cases), flush=True)
