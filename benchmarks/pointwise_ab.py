"""Where the 1x1 layer's time goes: cyconv's N8-C256-28-K512 1x1 forward against GEMMs of its flops.

In one process, interleaved call by call, medians over ``--rounds``:
cyconv.conv2d (method 'auto': one 512x256 @ 256x784 GEMM per image, images
shared by the kernel threads, BLAS on one thread each); the same per-image
GEMMs through SciPy's BLAS from Python on the calling thread; one GEMM of all
images' flops (512x256 @ 256x6272, gathered beforehand) through SciPy's BLAS
on its own threads; and the runner's sgemm reference (NumPy, 2048^2). Rates
in GFLOP/s, wall and CPU time. Use ``OMP_NUM_THREADS=1`` / ``2`` to compare
thread counts (each is its own process):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 python benchmarks/pointwise_ab.py

Measured on a shared, heavily loaded 2-core AVX-512 machine (indicative):
cyconv's forward took the CPU time of the same per-image GEMMs called from
Python (1 thread: 11.9-15.0 vs 13.3-13.5 ms) and at most that of one GEMM
of all images' flops (13.4-16.2 ms); on 2 threads it was faster than that
one GEMM on SciPy's two BLAS threads. Single-thread rates of the shapes
involved (512x256 @ 256x784 and the backward's) matched the 2048^2 sgemm's.
Cutting each image's GEMM into 2, 4 or 8 column blocks was slower on 1 and
2 threads (2 threads: 28 / 32 / 39 / 52 ms for 1 / 2 / 4 / 8 blocks), so
the kernel keeps one GEMM per image. The input gradient into np.empty
instead of np.zeros saved its zero fill (0.2 ms; CPU 18.0 -> 17.2 ms).

On the 2-core AMD EPYC (AVX2) at one thread, CPU time, 10 interleaved
rounds, a loaded machine: the per-image GEMMs with beta = 0 take 17.74 ms
(92.7 GFLOP/s), the same GEMMs with beta = 1 onto the output as it is
17.03 ms (96.5, the "beta=1" case: a lower bound, not a result): OpenBLAS
zeroes C in a pass of its own before the product for any beta != 1, 4% of
the layer. Zeroing it ourselves (memset) and passing beta = 1 costs the same
(19.14 vs 19.08 ms in another run), as does the bias fill; GEMMs of 392 or
196 output pixels, whose C would stay in L2 between the two passes, took
1.036x and 1.061x the time (OpenBLAS packs the weight again per call).
"""
import argparse
import ctypes
import time

import numpy as np
from scipy.linalg import blas

import cyconv
from cyconv import _im2col
from cyconv._fft import all_finite
from cyconv._threads import gemm_team


def grad_input_1x1(gy, w, alloc):
    """conv2d_backward's 1x1 input gradient (im2col's kernel) into ``alloc``'s array."""
    n, c = gy.shape[0], w.shape[1]
    gx = alloc((n, c) + gy.shape[2:], gy.dtype)
    with gemm_team() as n_threads:
        _im2col.conv2d_grad_input(gy, w, gx, 1, 1, 0, 0, 1, 1, 1, None, None,
                                  np.empty((n_threads, c * gy[0, 0].size), gy.dtype), n_threads)
    return gx


def forward_1x1(x, w, block):
    """conv2d's 1x1 forward (im2col's kernel) in GEMMs of at most ``block`` output pixels."""
    out = np.empty((x.shape[0], w.shape[0]) + x.shape[2:], x.dtype)
    bias = np.zeros(w.shape[0], x.dtype)
    with gemm_team() as n_threads:
        _im2col.conv2d_forward(x, w, bias, False, out, 1, 1, 0, 0, 1, 1, 1,
                               np.empty((n_threads, x.shape[1] * block), x.dtype),
                               np.empty((n_threads, 1), x.dtype), n_threads)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backward", action="store_true", help="time conv2d_backward too")
    parser.add_argument("--malloc", choices=("steady", "default"), default="steady",
                        help="steady: glibc's mallopt as benchmarks/run.py sets it")
    args = parser.parse_args()
    if args.malloc == "steady":  # M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 * 2**20)
        libc.mallopt(-1, 2**30)
    rng = np.random.default_rng(0)
    n, c, h, k = 8, 256, 28, 512
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
    w2 = w.reshape(k, c)
    planes = x.reshape(n, c, h * h)
    wide = np.ascontiguousarray(planes.transpose(1, 0, 2)).reshape(c, n * h * h)
    gy = rng.standard_normal((n, k, h, h), dtype=np.float32)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    flops = 2 * n * k * c * h * h

    def per_image():
        # C = W @ X_n as C.T = X_n.T @ W.T: Fortran-ordered views, no copies.
        return [blas.sgemm(1.0, planes[i].T, w2.T).T for i in range(n)]

    out = np.empty((n, k, h * h), np.float32)

    def per_image_beta1():
        # Without OpenBLAS's zeroing pass (beta = 1 onto whatever out holds).
        for i in range(n):
            blas.sgemm(1.0, planes[i].T, w2.T, beta=1.0, c=out[i].T, overwrite_c=True)

    cases = {
        "cyconv.conv2d 1x1": (lambda: cyconv.conv2d(x, w), flops),
        "per-image sgemm, SciPy BLAS": (per_image, flops),
        "per-image sgemm, beta=1": (per_image_beta1, flops),
        "one sgemm 512x256x6272, SciPy": (lambda: blas.sgemm(1.0, wide.T, w2.T), flops),
        "sgemm 2048^2, NumPy (runner)": (lambda: a @ a, 2 * 2048**3),
    }
    # im2col's kernel with each image's GEMM cut into 1, 2, 4 or 8 column blocks
    # (the workspace row's length sets the block; the 1x1 case reads no workspace).
    for parts in (1, 2, 4, 8):
        cases[f"forward kernel, {parts} block(s)/image"] = (
            lambda parts=parts: forward_1x1(x, w, -(-h * h // parts)), flops)
    if args.backward:
        cases["cyconv.conv2d_backward 1x1"] = (
            lambda: cyconv.conv2d_backward(gy, x, w, output_mask=(True, True, False)),
            2 * flops)
        # Before: conv2d_backward also passed over grad_output for NaN and inf
        # with no padding for them to meet.
        cases["conv2d_backward + all_finite(gy)"] = (
            lambda: (all_finite(gy), cyconv.conv2d_backward(
                gy, x, w, output_mask=(True, True, False))), 2 * flops)
        # Its input gradient's kernel call, into a zeroed array (before) or
        # an uninitialized one (after: the 1x1 GEMMs overwrite every cell).
        for label, alloc in (("zeros", np.zeros), ("empty", np.empty)):
            cases[f"grad_input 1x1, np.{label}"] = (
                lambda alloc=alloc: grad_input_1x1(gy, w, alloc), flops)
    wall = {key: [] for key in cases}
    cpu = {key: [] for key in cases}
    for fn, _ in cases.values():
        for _ in range(3):
            fn()
    for _ in range(args.rounds):
        for key, (fn, _) in cases.items():
            t, p = time.perf_counter(), time.process_time()
            fn()
            wall[key].append(time.perf_counter() - t)
            cpu[key].append(time.process_time() - p)
            if key.startswith("sgemm"):
                time.sleep(0.3)  # NumPy's OpenBLAS threads spin ~0.1 s after it
    print(f"kernel threads {cyconv._openmp.max_threads()}, medians of {args.rounds}")
    ref = 2 * 2048**3 / np.median(wall["sgemm 2048^2, NumPy (runner)"])
    for key, (_, f) in cases.items():
        t, p = np.median(wall[key]), np.median(cpu[key])
        print(f"{key:<32} {t * 1e3:8.2f} ms  {f / t / 1e9:6.0f} GFLOP/s "
              f"({100 * f / t / ref:4.0f}% of sgemm)  CPU {p * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
