"""cyconv's benchmark runner: every case against every installed peer.

Run it on an idle machine, with OpenBLAS's slow-path variables unset for this
one command:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick]

Peers: SciPy always (``scipy.signal.correlate2d``, ``scipy.signal.correlate``
with its automatic method, ``scipy.ndimage.correlate`` for ``cyconv.ndimage``,
and a NumPy im2col + matmul layer); OpenCV
(``cv2.filter2D``) with the ``bench`` extra; PyTorch's CPU convolution and
pooling when torch is installed (the layers include a conv_transpose2d
decoder layer). Each result is checked against a reference
before it is timed; times are medians over repeats; ratios are
peer time / cyconv time (above 1: cyconv is faster). The sgemm rate of the
BLAS SciPy uses is measured in the same run, and the layers report the
percentage of it they reach. The ``small`` group times the course exercise's
5x5 image and 3x3 kernel, where the Python layer's microseconds are the
whole cost: correlate2d/convolve2d against SciPy in every dtype and mode,
and conv2d at stride 2 against the exercise's hand-computed answer, and
cyconv.ndimage's correlate/convolve against scipy.ndimage's. The
``dask`` group (``--only dask``; skipped with a message without dask and
dask-image) filters an 8192x8192 float32 image (``--size`` to change it) in
1024x1024 chunks, 'same', with 3x3, 9x9 and 31x31 kernels: ``cyconv.dask``
against ``dask_image.ndfilters.correlate`` and ``map_overlap`` with
``scipy.signal.correlate2d``, all on the threaded scheduler with one pool of
as many threads as cyconv's kernels have (each task's kernels on one
thread), and against the in-memory ``cyconv.correlate2d`` of the whole image
(the engine's overhead), with the time of the same graph copying its
blocks instead of filtering them. Each graph's result is ``compute()``d (one
new array) or, with ``--dask-result store``, written by ``da.store`` into one
preallocated array (what a user filtering out of core runs).

What a long-running process sees: by default glibc's allocator is put in its
steady state first (``mallopt``: mmap threshold 32 MiB, trim threshold 1 GiB,
so freed blocks are reused instead of handed back and faulted in afresh);
``--malloc default`` keeps glibc's dynamic threshold, under which a case's
time depends on what the process did before. ``--first torch`` imports
PyTorch before cyconv (as most scripts with conv layers do: cyconv's kernels
then run on torch's OpenMP runtime); ``--orders`` runs the layer and pooling
groups in each import order, each in a process of its own, and prints both
columns side by side; ``--rounds N`` alternates the two orders N times and
prints each case's median (a drift of a shared machine's speed then hits
both orders alike).
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def _process_options():
    """The options that must act before cyconv (and torch) are imported."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--first", choices=("cyconv", "torch"), default="cyconv")
    parser.add_argument("--malloc", choices=("steady", "default"), default="steady")
    return parser.parse_known_args()[0]


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def steady_allocator():
    """Put glibc's allocator in a long-running process's state; returns how, in words."""
    try:
        libc = ctypes.CDLL(None)
        ok = (libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1
              and libc.mallopt(M_TRIM_THRESHOLD, 2**30) == 1)
    except (OSError, AttributeError):
        ok = False
    return ("steady: mallopt M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB" if ok
            else "default (mallopt not available)")


PROCESS = _process_options()
MALLOC = steady_allocator() if PROCESS.malloc == "steady" else "glibc default (dynamic mmap threshold)"
if PROCESS.first == "torch":
    try:
        import torch  # noqa: F401  (before cyconv: its libgomp is the process's)
    except ImportError:
        sys.exit("--first torch: PyTorch is not installed")

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.ndimage  # noqa: E402
import scipy.signal  # noqa: E402

import cyconv  # noqa: E402
import cyconv.ndimage  # noqa: E402
# The timing helper, optional imports and NumPy reference layer of `python -m cyconv bench`.
from cyconv._cli_bench import median_time, numpy_conv2d, optional_import as try_import  # noqa: E402


def environment():
    """Versions, thread counts and the BLAS core type this run used."""
    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cyconv": cyconv.__version__,
        "imported first": PROCESS.first,
        "malloc": MALLOC,
    }
    from cyconv import _build_info, _openmp
    from cyconv._info import gemm_threading, simd_levels

    info["cyconv_simd"] = _build_info.SIMD_FLAGS
    info["cyconv_simd_level"], info["cyconv_simd_levels_built"], _ = simd_levels()
    info["cyconv_threads"] = _openmp.max_threads()
    info["cyconv_gemm_threads"] = gemm_threading()
    for name in ("cv2", "torch"):
        module = try_import(name)
        if module is not None:
            info[name] = module.__version__
    torch = try_import("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    threadpoolctl = try_import("threadpoolctl")
    if threadpoolctl is not None:
        info["blas"] = [
            {key: pool.get(key) for key in ("internal_api", "version", "num_threads",
                                             "architecture", "filepath")}
            for pool in threadpoolctl.threadpool_info()
        ]
    return info


def rule_options(doc, rounds):
    """The options of the A/B scripts beside this one: --rounds, and --first and
    --malloc, which this module read at import (PROCESS), listed for --help."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--first", choices=("cyconv", "torch"), default="cyconv")
    parser.add_argument("--malloc", choices=("steady", "default"), default="steady")
    return parser.parse_args()


def best_of(fn, calls=5):
    """The shortest of ``calls`` timed calls of ``fn``, after one untimed (the rule scripts' rounds)."""
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def sgemm_rate(repeats):
    """GFLOP/s of a float32 2048x2048 matrix product through NumPy's BLAS.

    OpenBLAS's threads spin for about 0.1 s after each product
    (benchmarks/import_order.py --libs shows the CPU they burn): a pause
    lets them sleep before the next case runs.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    t = median_time(lambda: a @ b, repeats, 0.2)
    time.sleep(0.3)
    return 2 * 2048**3 / t / 1e9


# ---- image filtering -----------------------------------------------------

def filtering_cases(quick, modes=("same", "valid")):
    sizes = (3, 9, 31) if quick else (3, 5, 9, 15, 31)
    for dtype in (np.float32, np.float64):
        for mode in modes:
            for k in sizes:
                yield dtype, mode, k


def filtering_tol(ref, dtype):
    """Agreement with a float64 reference: float32 sums round at about 1e-7 each."""
    return (1e-3 if dtype == np.float32 else 1e-9) * np.abs(ref).max()


def bench_filtering(rows, repeats, quick, size, cv2):
    rng = np.random.default_rng(1)
    for dtype, mode, k in filtering_cases(quick):
        image = rng.standard_normal((size, size)).astype(dtype)
        kernel = rng.standard_normal((k, k)).astype(dtype)
        ref = scipy.signal.correlate2d(image.astype(np.float64), kernel.astype(np.float64), mode)
        tol = filtering_tol(ref, dtype)
        peers = {
            "scipy.correlate": lambda: scipy.signal.correlate(image, kernel, mode),
        }
        if k <= 9 or not quick:  # correlate2d takes seconds on large kernels
            peers["scipy.correlate2d"] = lambda: scipy.signal.correlate2d(image, kernel, mode)
        if cv2 is not None:
            half = k // 2

            def filter2d():
                out = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
                return out if mode == "same" else out[half:size - half, half:size - half]
            peers["cv2.filter2D"] = filter2d
        ours = {m: (lambda m=m: cyconv.correlate2d(image, kernel, mode, method=m))
                for m in ("auto", "direct", "im2col", "fft")}
        case = f"filter {size}^2 {k}x{k} {np.dtype(dtype).name} {mode}"
        rows.append(compare(case, ours, peers, ref, tol, repeats))


def bench_ndimage(rows, repeats, quick, size):
    """cyconv.ndimage.correlate against scipy.ndimage.correlate on the filtering
    group's images and kernels, in ndimage's default mode 'reflect' and in 'constant'."""
    rng = np.random.default_rng(1)
    for dtype, mode, k in filtering_cases(quick, ("reflect", "constant")):
        image = rng.standard_normal((size, size)).astype(dtype)
        kernel = rng.standard_normal((k, k)).astype(dtype)
        ref = scipy.ndimage.correlate(image.astype(np.float64), kernel.astype(np.float64),
                                      mode=mode)
        peers = {}
        if k <= 9 or not quick:  # SciPy's direct sums take seconds on large kernels
            peers["scipy.ndimage.correlate"] = lambda: scipy.ndimage.correlate(
                image, kernel, mode=mode)
        ours = {"auto": lambda: cyconv.ndimage.correlate(image, kernel, mode=mode)}
        case = f"ndimage {size}^2 {k}x{k} {np.dtype(dtype).name} {mode}"
        rows.append(compare(case, ours, peers, ref, filtering_tol(ref, dtype), repeats))


# ---- layers ----------------------------------------------------------------

# name, N, C, H, K, kernel, stride, padding, groups
LAYERS = [
    ("N8-C3-224-K64-7x7/2", 8, 3, 224, 64, 7, 2, 3, 1),
    ("N8-C64-56-K64-3x3", 8, 64, 56, 64, 3, 1, 1, 1),
    ("N8-C256-14-K256-3x3", 8, 256, 14, 256, 3, 1, 1, 1),
    ("N8-C256-28-K512-1x1", 8, 256, 28, 512, 1, 1, 0, 1),
    ("N8-C128-28-K256-3x3/2", 8, 128, 28, 256, 3, 2, 1, 1),
    ("N8-C128-56-dw3x3", 8, 128, 56, 128, 3, 1, 1, 128),
]


def bench_layers(rows, repeats, quick, torch, gemm_gflops):
    rng = np.random.default_rng(2)
    layers = LAYERS[1:3] + LAYERS[5:] if quick else LAYERS
    for name, n, c, h, k, ks, stride, pad, groups in layers:
        # "% of sgemm" against a reference measured next to the layer: a
        # shared host's speed drifts over a run (the one at the start is printed).
        gemm_gflops = sgemm_rate(repeats)
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c // groups, ks, ks), dtype=np.float32)
        args = dict(stride=stride, padding=pad, groups=groups)
        out = cyconv.conv2d(x, w, **args)
        gy = rng.standard_normal(out.shape, dtype=np.float32)
        # method='winograd' where it applies (3x3, stride 1), for dense layers.
        methods = ("auto", "direct", "im2col") + (
            ("winograd",) if (ks, stride, groups) == (3, 1, 1) else ())
        flops = 2 * out.size * (c // groups) * ks * ks
        # Forward.
        ref = cyconv.conv2d(x.astype(np.float64), w.astype(np.float64), **args,
                            method="direct")
        tol = 1e-3 * np.abs(ref).max()
        peers = {}
        if groups == 1:
            peers["numpy im2col"] = lambda: numpy_conv2d(x, w, stride, pad)
        if torch is not None:
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            peers["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, None, stride, pad, 1,
                                                                groups).numpy()
        ours = {m: (lambda m=m: cyconv.conv2d(x, w, **args, method=m)) for m in methods}
        row = compare(f"{name} fwd", ours, peers, ref, tol, repeats)
        row["gemm_pct"] = 100 * flops / row["cyconv"]["auto"] / 1e9 / gemm_gflops
        rows.append(row)
        # Backward: input and weight gradients (2x the forward's flops).
        ref_b = cyconv.conv2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                       w.astype(np.float64), **args, method="direct")
        ref_b = np.concatenate([ref_b[0].ravel(), ref_b[1].ravel()])
        tol = 1e-3 * np.abs(ref_b).max()

        def flat(grads):  # for the check only: the timed calls return the two arrays
            return np.concatenate([np.asarray(grads[0]).ravel(), np.asarray(grads[1]).ravel()])
        peers = {}
        if torch is not None:
            tgy = torch.from_numpy(gy)
            peers["torch"] = lambda: torch.ops.aten.convolution_backward(
                tgy, tx, tw, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0],
                groups, [True, True, False])
        ours = {m: (lambda m=m: cyconv.conv2d_backward(
                    gy, x, w, **args, method=m, output_mask=(True, True, False)))
                for m in methods}
        row = compare(f"{name} bwd", ours, peers, ref_b, tol, repeats, result=flat)
        row["gemm_pct"] = 100 * 2 * flops / row["cyconv"]["auto"] / 1e9 / gemm_gflops
        rows.append(row)
    bench_transpose(rows, repeats, rng, torch, gemm_gflops)


def bench_transpose(rows, repeats, rng, torch, gemm_gflops):
    """A decoder layer: N8-C64-28 -> K32, 4x4 stride 2 padding 1 transposed (to 56x56)."""
    x = rng.standard_normal((8, 64, 28, 28), dtype=np.float32)
    w = rng.standard_normal((64, 32, 4, 4), dtype=np.float32)
    ref = cyconv.conv_transpose2d(x.astype(np.float64), w.astype(np.float64), None, 2, 1)
    peers = {}
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        peers["torch"] = lambda: torch.nn.functional.conv_transpose2d(tx, tw, None, 2, 1).numpy()
    ours = {"auto": lambda: cyconv.conv_transpose2d(x, w, None, 2, 1)}
    row = compare("N8-C64-28-K32-4x4/2 transpose", ours, peers, ref,
                  1e-3 * np.abs(ref).max(), repeats)
    row["gemm_pct"] = 100 * 2 * x.size * 32 * 16 / row["cyconv"]["auto"] / 1e9 / gemm_gflops
    rows.append(row)


# ---- pooling ---------------------------------------------------------------

def bench_pooling(rows, repeats, torch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 64, 112, 112), dtype=np.float32)
    out, idx = cyconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    gy = rng.standard_normal(out.shape, dtype=np.float32)
    tx = torch.from_numpy(x) if torch is not None else None
    cases = [
        ("maxpool 3x3/2 (8,64,112,112) fwd", lambda: cyconv.max_pool2d(x, 3, 2, 1), out,
         (lambda: torch.nn.functional.max_pool2d(tx, 3, 2, 1).numpy()) if torch else None),
        ("maxpool 3x3/2 (8,64,112,112) bwd",
         lambda: cyconv.max_pool2d_backward(gy, idx, x.shape),
         cyconv.max_pool2d_backward(gy, idx, x.shape),
         (lambda: torch.ops.aten.max_pool2d_with_indices_backward(
             torch.from_numpy(gy), tx, [3, 3], [2, 2], [1, 1], [1, 1], False,
             torch.from_numpy(idx)).numpy()) if torch else None),
        ("avgpool 3x3/2 (8,64,112,112) fwd", lambda: cyconv.avg_pool2d(x, 3, 2, 1),
         cyconv.avg_pool2d(x, 3, 2, 1),
         (lambda: torch.nn.functional.avg_pool2d(tx, 3, 2, 1).numpy()) if torch else None),
        ("avgpool 3x3/2 (8,64,112,112) bwd",
         lambda: cyconv.avg_pool2d_backward(gy, x.shape, 3, 2, 1),
         cyconv.avg_pool2d_backward(gy, x.shape, 3, 2, 1),
         (lambda: torch.ops.aten.avg_pool2d_backward(
             torch.from_numpy(gy), tx, [3, 3], [2, 2], [1, 1], False, True, None).numpy())
         if torch else None),
    ]
    for name, ours, ref, peer in cases:
        peers = {"torch": peer} if peer is not None else {}
        rows.append(compare(name, {"auto": ours}, peers, ref, 1e-5, repeats))


# ---- small calls -----------------------------------------------------------

# The course exercise (exercise-conv-nets.txt): its image and kernel, and the
# hand-computed answer for stride 2 and no padding.
EXERCISE_IMAGE = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
                           [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
EXERCISE_KERNEL = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
EXERCISE_STRIDE2 = np.array([[1, 6], [0, 9]])
# Calls per timed run: about a millisecond of these few-microsecond calls.
SMALL_CALLS = 200


def bench_small(rows, repeats):
    """The exercise's 5x5 image and 3x3 kernel: here the Python layer is the cost."""
    for name in ("correlate2d", "convolve2d"):
        ours, peer = getattr(cyconv, name), getattr(scipy.signal, name)
        for dtype in (np.int64, np.float64, np.float32):
            image, kernel = EXERCISE_IMAGE.astype(dtype), EXERCISE_KERNEL.astype(dtype)
            for mode in ("full", "same", "valid"):
                # Small integers: every dtype gives SciPy's float64 result exactly.
                ref = peer(EXERCISE_IMAGE.astype(np.float64),
                           EXERCISE_KERNEL.astype(np.float64), mode)
                rows.append(compare(f"small {name} {np.dtype(dtype).name} {mode}",
                                    {"auto": lambda: ours(image, kernel, mode)},
                                    {f"scipy.{name}": lambda: peer(image, kernel, mode)},
                                    ref, 0.0, repeats, SMALL_CALLS))
    image, kernel = EXERCISE_IMAGE, EXERCISE_KERNEL
    rows.append(compare(
        "small conv2d stride 2 (exercise)",
        {"auto": lambda: cyconv.conv2d(image, kernel, stride=2)},
        {"scipy.correlate2d valid [::2, ::2]":
         lambda: scipy.signal.correlate2d(image, kernel, "valid")[::2, ::2]},
        EXERCISE_STRIDE2, 0.0, repeats, SMALL_CALLS))


def bench_small_ndimage(rows, repeats):
    """The exercise's case through cyconv.ndimage against scipy.ndimage, in
    ndimage's default mode 'reflect' and in 'constant'."""
    for name in ("correlate", "convolve"):
        ours, peer = getattr(cyconv.ndimage, name), getattr(scipy.ndimage, name)
        for dtype in (np.int64, np.float64, np.float32):
            image, kernel = EXERCISE_IMAGE.astype(dtype), EXERCISE_KERNEL.astype(dtype)
            for mode in ("reflect", "constant"):
                ref = peer(EXERCISE_IMAGE.astype(np.float64),
                           EXERCISE_KERNEL.astype(np.float64), mode=mode)
                rows.append(compare(f"small ndimage.{name} {np.dtype(dtype).name} {mode}",
                                    {"auto": lambda: ours(image, kernel, mode=mode)},
                                    {f"scipy.ndimage.{name}": lambda: peer(image, kernel,
                                                                           mode=mode)},
                                    ref, 0.0, repeats, SMALL_CALLS))


# ---- Dask ------------------------------------------------------------------

DASK_KERNELS = (3, 9, 31)
DASK_CHUNK = 1024


def dask_pool(threads):
    """The threaded scheduler's pool: ``threads`` tasks at once. cyconv.dask's default
    runs each task's kernels on one thread, so tasks times kernel threads stay at
    ``threads``. No initializer (it set OpenMP to 1 thread, now redundant): what a
    worker thread allocated before its first task is part of its malloc arena's
    history, and that history decides how many pages each 8192^2 run faults in
    afresh: from ~3200 to ~19000 minor faults and 0.05-0.9 s of system time for the
    same graph, depending on the pool (benchmarks/dask_gap.py): the likely cause of
    the runner's 577 ms against a script's 333 ms for main's 3x3 graph."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(threads, thread_name_prefix="dask-bench")


def copy_valid(block, kernel, mode="full", boundary="fill", fillvalue=0):
    """Stands in for correlate2d in cyconv.dask's graph: the 'valid' extent, copied, no
    arithmetic (dtype probes in other modes get a 1x1 zero)."""
    if mode != "valid":
        return np.zeros((1, 1), block.dtype)
    return block[kernel.shape[0] - 1:, kernel.shape[1] - 1:]


def bench_dask(rows, repeats, quick, size, result="compute"):
    """cyconv.dask against dask-image and SciPy per chunk, same chunks and scheduler."""
    da, ndfilters = (try_import(name) for name in ("dask.array", "dask_image.ndfilters"))
    missing = [name for name, module in (("dask[array]", da), ("dask-image", ndfilters))
               if module is None]
    if missing:
        print(f"dask group skipped: {', '.join(missing)} not installed "
              "(pip install '.[bench,dask]')\n")
        return
    import cyconv.dask
    from cyconv import _openmp

    # As many tasks at once as the in-memory call has kernel threads.
    threads = _openmp.max_threads()
    pool = dask_pool(threads)
    rng = np.random.default_rng(4)
    image = rng.standard_normal((size, size), dtype=np.float32)
    x = da.from_array(image, chunks=DASK_CHUNK)
    # --dask-result store: every peer's chunks written into one preallocated array
    # (what an out-of-core user runs: da.store to zarr or a memmap) instead of
    # compute()'s concatenation into a new one.
    store = np.ones_like(image) if result == "store" else None
    print(f"dask: {size}x{size} float32 in {DASK_CHUNK}x{DASK_CHUNK} chunks, 'same', "
          f"threaded scheduler on {threads} threads, cyconv's kernels on 1 thread per task, "
          f"results by {'da.store' if store is not None else 'compute()'}; "
          f"in memory: cyconv.correlate2d on {threads} threads")
    for k in DASK_KERNELS:
        kernel = rng.standard_normal((k, k), dtype=np.float32)
        ref = scipy.signal.correlate(image.astype(np.float64), kernel.astype(np.float64),
                                     "same", method="fft")
        tol = 1e-3 * np.abs(ref).max()

        def run(y):
            if store is None:
                return y.compute(scheduler="threads", pool=pool)
            da.store(y, store, lock=False, scheduler="threads", pool=pool)
            return store
        # Odd kernels: ndimage's origin 0 is correlate2d's 'same' centring.
        peers = {"dask-image": lambda: run(ndfilters.correlate(x, kernel, mode="constant",
                                                               cval=0.0))}
        if k <= 9 or not quick:  # scipy's correlate2d takes minutes at 31x31
            peers["map_overlap scipy.correlate2d"] = lambda: run(x.map_overlap(
                lambda b: scipy.signal.correlate2d(b, kernel, "same"), depth=k // 2,
                boundary=0, dtype=np.float32))
        peers["cyconv in memory"] = lambda: cyconv.correlate2d(image, kernel, "same")
        row = compare(f"dask {size}^2 {k}x{k} float32 same",
                      {"auto": lambda: run(cyconv.dask.correlate2d(x, kernel, "same"))},
                      peers, ref, tol, repeats)
        # The same graph (pads, halos, copies) with no arithmetic: the engine's floor.
        row["dask_floor"] = settled_median_time(lambda: run(cyconv.dask._filter(
            x, kernel, "same", "fill", 0, copy_valid, flip=False, threads=None)),
            repeats, 1)
        rows.append(row)
    pool.shutdown()
    for row in rows:
        if "dask_floor" in row:
            dask_t, memory_t = row["cyconv"]["auto"], row["peers"]["cyconv in memory"]
            print(f"{row['case']:<40} dask / in memory {dask_t / memory_t:5.2f}x; "
                  f"the same graph copying instead of filtering {seconds(row['dask_floor'])}")


# ---- table -----------------------------------------------------------------

def settled_median_time(fn, repeats, number):
    """median_time after 0.1 s of untimed calls of ``fn``: the calls checked or
    timed before leave the memory allocator (large blocks freed, fresh pages to
    fault in) and thread pools in states that the first calls of the next one
    pay for, whichever comes first."""
    end = time.perf_counter() + 0.1
    while time.perf_counter() < end:
        fn()
    return median_time(fn, repeats, 0.2, number)


def compare(case, ours, peers, ref, tol, repeats, number=1, result=None):
    """Check every callable against ref, then time them all; returns a result row.

    ``number``: calls per timed run (see ``median_time``), for microsecond calls.
    ``result`` turns what a callable returns into an array for the check
    (the timed calls return it as it is).
    """
    for label, fn in {**{"cyconv " + m: f for m, f in ours.items()}, **peers}.items():
        got = fn() if result is None else result(fn())
        got = np.asarray(got, dtype=np.float64).reshape(np.shape(ref))
        err = np.abs(got - ref).max(initial=0.0)
        if not err <= tol:
            raise AssertionError(f"{case}: {label} differs from the reference by {err:g}")
    row = {"case": case,
           "cyconv": {m: settled_median_time(f, repeats, number) for m, f in ours.items()},
           "peers": {p: settled_median_time(f, repeats, number) for p, f in peers.items()}}
    print_row(row)
    return row


def seconds(t):
    """A time for the table: in ms, or in us below a millisecond."""
    return f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.2f} us"


def print_row(row):
    ours = row["cyconv"]
    best = min(ours["auto"], *ours.values())
    text = f"{row['case']:<40} cyconv auto {seconds(ours['auto']):>10}"
    others = [f"{m} {seconds(t)}" for m, t in ours.items() if m != "auto"]
    if others:
        text += f" ({', '.join(others)})"
    for peer, t in row["peers"].items():
        text += f" | {peer} {seconds(t)} x{t / ours['auto']:.2f}"
    if best < ours["auto"] * 0.9:
        text += " | auto not the best"
    print(text, flush=True)


def run_both_orders(argv, groups, rounds):
    """Run ``groups`` in both import orders, each in its own process, ``rounds`` times
    alternating the orders (so a drift of the machine's speed hits both alike); print
    each case's median over the rounds for both orders side by side."""
    times = {"cyconv": {}, "torch": {}}
    peer = {"cyconv": {}, "torch": {}}
    for _ in range(rounds):
        for first in ("cyconv", "torch"):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "rows.json")
                cmd = [sys.executable, __file__, *argv, "--first", first, "--json", out]
                for group in groups:
                    cmd += ["--only", group]
                print(f"--- {first} imported first: {' '.join(cmd[1:])}", flush=True)
                subprocess.run(cmd, check=True)
                with open(out) as f:
                    report = json.load(f)
            for row in report["rows"]:
                times[first].setdefault(row["case"], []).append(row["cyconv"]["auto"])
                peer[first].setdefault(row["case"], []).append(row["peers"].get("torch"))
            print(f"(that run: sgemm {report['sgemm_gflops']:.0f} GFLOP/s)\n")
    print(f"medians over {rounds} round(s) of both orders")
    print(f"{'case':<40} {'cyconv first':>12} {'torch first':>12} {'ratio':>6}"
          f" {'torch (c. first)':>16} {'torch (t. first)':>16}")
    for case, ours in times["cyconv"].items():
        a, b = statistics.median(ours), statistics.median(times["torch"][case])
        text = f"{case:<40} {seconds(a):>12} {seconds(b):>12} {b / a:6.2f}"
        for first in ("cyconv", "torch"):
            t = [x for x in peer[first][case] if x]
            text += f" {seconds(statistics.median(t)) if t else '-':>16}"
        print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--size", type=int, default=None,
                        help="image side for the filter and dask groups "
                             "(default 1024 and 8192)")
    parser.add_argument("--only", choices=("filter", "layers", "pool", "small", "dask"),
                        action="append", help="run only these groups (default: all but dask)")
    parser.add_argument("--dask-result", choices=("compute", "store"), default="compute",
                        help="dask group: each graph's result by compute() (default) or "
                             "da.store into a preallocated array")
    parser.add_argument("--first", choices=("cyconv", "torch"), default="cyconv",
                        help="import this one first (default cyconv)")
    parser.add_argument("--malloc", choices=("steady", "default"), default="steady",
                        help="glibc's allocator in its steady state (default) or as it starts")
    parser.add_argument("--orders", action="store_true",
                        help="the layer and pooling groups (or --only ones) in both import "
                             "orders, one process each, side by side")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --orders: how many times to alternate the two orders")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 9)
    # The dask group takes minutes (its peers filter 8192^2 images): only on --only dask.
    groups = args.only or ("filter", "layers", "pool", "small")
    if args.orders:
        argv = ["--malloc", args.malloc] + (["--quick"] if args.quick else [])
        argv += ["--repeats", str(args.repeats)] if args.repeats else []
        run_both_orders(argv, args.only or ("layers", "pool"), args.rounds)
        return
    cv2, torch = try_import("cv2"), try_import("torch")
    env = environment()
    print(json.dumps(env, indent=1))
    gemm = sgemm_rate(repeats)
    print(f"sgemm 2048^2 float32: {gemm:.0f} GFLOP/s (median of {repeats})\n")
    rows = []
    if "filter" in groups:
        bench_filtering(rows, repeats, args.quick, args.size or 1024, cv2)
        bench_ndimage(rows, repeats, args.quick, args.size or 1024)
    if "layers" in groups:
        bench_layers(rows, repeats, args.quick, torch, gemm)
        for row in rows:
            if "gemm_pct" in row:
                print(f"{row['case']:<40} {row['gemm_pct']:5.1f}% of sgemm")
    if "pool" in groups:
        bench_pooling(rows, repeats, torch)
    if "small" in groups:
        bench_small(rows, repeats)
        bench_small_ndimage(rows, repeats)
    if "dask" in groups:
        # Each run takes seconds: medians of 3 unless --repeats says otherwise.
        bench_dask(rows, args.repeats or 3, args.quick, args.size or 8192, args.dask_result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "sgemm_gflops": gemm, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
