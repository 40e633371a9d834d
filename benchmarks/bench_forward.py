"""Forward-convolution benchmark: cyconv against SciPy and a NumPy im2col+GEMM.

Run on an idle machine, with OpenBLAS's slow-path variables unset for this
command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_forward.py

Every result is checked against its reference before it is timed. Times are
medians over repeats; ratios are reference time / cyconv time (above 1 means
cyconv is faster), measured in the same run.
"""
import argparse
import platform
import statistics
import time

import numpy as np
import scipy
import scipy.signal

import cyconv


def median_time(fn, repeats, min_seconds=0.2):
    """Median wall time of ``fn()`` over ``repeats`` runs (at least min_seconds in all)."""
    fn()  # warm-up: first-touch page faults, BLAS thread start-up
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeats:
            break
    return statistics.median(times)


def numpy_conv2d(x, w, stride=1, padding=0):
    """Reference layer: im2col with sliding_window_view, then one matmul."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (n, c, ho, wo, kh, kw)
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)
    return (w.reshape(k, -1) @ cols).reshape(n, k, ho, wo)


def fmt_ms(seconds):
    return f"{seconds * 1e3:9.2f}"


def bench_filtering(repeats, size):
    rng = np.random.default_rng(0)
    image = rng.standard_normal((size, size))
    print(f"\n## correlate2d, {size}x{size} float64, mode='same' "
          "(ratio = scipy time / cyconv time)")
    header = f"{'kernel':>7} {'scipy ms':>10}"
    methods = ("direct", "im2col", "auto")
    for m in methods:
        header += f" {m + ' ms':>11} {'x':>6}"
    print(header)
    for k in (3, 5, 9, 15):
        kernel = rng.standard_normal((k, k))
        ref = scipy.signal.correlate2d(image, kernel, mode="same")
        t_ref = median_time(lambda: scipy.signal.correlate2d(image, kernel, mode="same"),
                            max(1, repeats // 2))
        row = f"{k:>4}x{k:<2} {fmt_ms(t_ref):>10}"
        for m in methods:
            out = cyconv.correlate2d(image, kernel, mode="same", method=m)
            np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)
            t = median_time(lambda: cyconv.correlate2d(image, kernel, mode="same", method=m),
                            repeats)
            row += f" {fmt_ms(t):>11} {t_ref / t:6.1f}"
        print(row)


LAYERS = [
    # (name, N, C, H, K, k, stride, padding)
    ("N8-C3-64-K16-3x3", 8, 3, 64, 16, 3, 1, 1),
    ("N8-C16-32-K32-3x3", 8, 16, 32, 32, 3, 1, 1),
    ("N8-C32-16-K64-3x3/2", 8, 32, 16, 64, 3, 2, 1),
    ("N8-C64-16-K64-1x1", 8, 64, 16, 64, 1, 1, 0),
]


def bench_layers(repeats, dtype):
    rng = np.random.default_rng(1)
    print(f"\n## conv2d, {np.dtype(dtype).name} NCHW layers "
          "(ratio = numpy im2col+matmul time / cyconv time)")
    header = f"{'layer':<22} {'numpy ms':>10}"
    methods = ("direct", "im2col", "auto")
    for m in methods:
        header += f" {m + ' ms':>11} {'x':>6}"
    print(header)
    tol = 1e-3 if dtype == np.float32 else 1e-9
    for name, n, c, h, k, ks, stride, pad in LAYERS:
        x = rng.standard_normal((n, c, h, h)).astype(dtype)
        w = rng.standard_normal((k, c, ks, ks)).astype(dtype)
        ref = numpy_conv2d(x, w, stride, pad)
        t_ref = median_time(lambda: numpy_conv2d(x, w, stride, pad), repeats)
        row = f"{name:<22} {fmt_ms(t_ref):>10}"
        for m in methods:
            out = cyconv.conv2d(x, w, stride=stride, padding=pad, method=m)
            assert out.dtype == dtype
            np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
            t = median_time(lambda: cyconv.conv2d(x, w, stride=stride, padding=pad, method=m),
                            repeats)
            row += f" {fmt_ms(t):>11} {t_ref / t:6.1f}"
        print(row)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--quick", action="store_true", help="256x256 images, 3 repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    size = 256 if args.quick else 1024
    print(f"cyconv {cyconv.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"median of >= {repeats} runs")
    bench_filtering(repeats, size)
    for dtype in (np.float64, np.float32):
        bench_layers(repeats, dtype)


if __name__ == "__main__":
    main()
