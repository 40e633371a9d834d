"""A/B of the register-blocked kernels (method 'regblock', what 'auto' runs for
stem-like layers) against im2col and, at stride 1, the shifted GEMMs that
'auto' ran before, interleaved in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/stem.py [--threads 1 2]

Prints per shape and thread count the median times (ms) over --repeats rounds
and im2col / regblock (above 1: regblock is faster), with torch's time when
torch is installed. Indicative on a shared machine.
"""
import argparse
import statistics
import time

import numpy as np

import cyconv
from cyconv import _conv
from cyconv._threads import thread_limit

SHAPES = [  # (N, C, H, K, k, stride, pad)
    (8, 3, 224, 64, 7, 2, 3),
    (8, 3, 224, 32, 5, 2, 2),
    (8, 3, 224, 32, 3, 2, 1),
    (8, 1, 128, 16, 5, 2, 2),
    (8, 4, 112, 64, 3, 2, 1),
    (8, 8, 112, 64, 3, 2, 1),
    (8, 16, 56, 64, 3, 2, 1),
    (8, 3, 224, 64, 7, 1, 3),
    (8, 3, 112, 64, 3, 1, 1),
]


def run(method, x, w, stride, pad):
    """conv2d by ``method``, 'regblock' and 'shifted' included (not public: run_forward)."""
    if method not in ("regblock", "shifted"):
        return cyconv.conv2d(x, w, stride=stride, padding=pad, method=method)
    geom = _conv.geometry("conv2d", x.shape, w.shape, stride, pad, 1, 1)
    return _conv.run_forward("conv2d", x, w, None, geom, pad, pad, method)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        n, c, h, k, kk, s, p = shape
        x = rng.standard_normal((n, c, h, h)).astype(args.dtype)
        w = rng.standard_normal((k, c, kk, kk)).astype(args.dtype)
        methods = ["im2col", "regblock", "auto"] + ["shifted"] * (s == 1)
        ref = run("direct", x[:1], w, s, p)
        for m in methods:
            got = run(m, x, w, s, p)[:1]
            assert np.allclose(got, ref, rtol=1e-3, atol=1e-3), m
        for threads in args.threads:
            times = {m: [] for m in methods + ["torch"] * (torch is not None)}
            with thread_limit(threads):
                if torch is not None:
                    torch.set_num_threads(threads)
                    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
                for _ in range(args.repeats):
                    for m in methods:
                        t0 = time.perf_counter()
                        run(m, x, w, s, p)
                        times[m].append(time.perf_counter() - t0)
                    if torch is not None:
                        t0 = time.perf_counter()
                        torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)
                        times["torch"].append(time.perf_counter() - t0)
            med = {m: 1e3 * statistics.median(v) for m, v in times.items()}
            cells = "  ".join(f"{m} {t:7.2f}" for m, t in med.items())
            print(f"N{n}-C{c}-{h}-K{k} {kk}x{kk}/{s} p{p} t{threads}: {cells}  "
                  f"im2col/regblock {med['im2col'] / med['regblock']:.2f}", flush=True)


if __name__ == "__main__":
    main()
