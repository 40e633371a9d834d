"""A/B of two builds of the register-blocked kernels on the stem, interleaved in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/stem_ab.py A.so B.so \
        [--threads 2] [--rounds 9] [--torch-first] [--layer N C H K k s p]

A.so and B.so are copies of ``_regblock_<level>*.so`` from two builds (copy
the build directory's file aside before rebuilding). Each round times
PyTorch's conv2d (when installed, torch.set_num_threads(threads)), then A
and B call by call (A, B, A, B ..., 7 calls each, their medians), each
called as cyconv._stem.run_regblock_forward calls it. With --torch-first
torch is imported before cyconv (one libgomp team for both). Prints the
medians over the rounds and the medians of the per-round ratios B/A and
B/torch; wall time (at one thread the calling thread's CPU time). The
output's and scratch's addresses change from process to process, and with
them main's times before the output prefetches (1.00x to 1.27x torch's at
one thread, AMD EPYC AVX2): compare builds in one process, as here.
"""
import argparse
import ctypes
import importlib.util
import sys
import time

import numpy as np

if "--torch-first" in sys.argv:
    import torch

from cyconv import _conv, _stem  # noqa: E402
from cyconv._openmp import max_threads  # noqa: E402
from cyconv._threads import thread_limit  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def steady_allocator():
    """glibc's allocator in a long-running process's state, as benchmarks/run.py --malloc steady."""
    libc = ctypes.CDLL(None)
    libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD


def load(path):
    """The kernel module in ``path``, imported under its own name but not registered."""
    spec = importlib.util.spec_from_file_location("cyconv._regblock", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forward(module, x, w, bias, geom, pad):
    """The stem by ``module``'s kernels, called as run_regblock_forward calls them."""
    ho = (x.shape[2] + 2 * pad - w.shape[2]) // geom.sh + 1
    out = np.empty((x.shape[0], w.shape[0], ho, ho), x.dtype)
    band = min(ho, _stem.BAND_ROWS)
    hb, ws = _stem.split_shape(geom, band, ho, x.dtype)
    scratch = np.empty((max_threads(), geom.channels // geom.groups * hb * geom.sw * ws),
                       x.dtype)
    module.conv2d_forward(x, w, bias, out, geom.sh, geom.sw, pad, pad, geom.groups, band,
                          hb, ws, _stem.tap_offsets(geom, hb, ws), scratch)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--torch-first", action="store_true")
    parser.add_argument("--layer", type=int, nargs=7, default=[8, 3, 224, 64, 7, 2, 3])
    args = parser.parse_args()
    steady_allocator()
    n, c, h, k, kk, s, p = args.layer
    builds = {"A": load(args.a), "B": load(args.b)}
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = rng.standard_normal((k, c, kk, kk), dtype=np.float32)
    bias = np.zeros(k, np.float32)
    geom = _conv.geometry("conv2d", x.shape, w.shape, s, p, 1, 1)
    ref = forward(builds["A"], x, w, bias, geom, p)
    assert np.allclose(forward(builds["B"], x, w, bias, geom, p), ref, rtol=1e-4, atol=1e-3)
    times = {name: [] for name in ["torch"] * (torch is not None) + ["A", "B"]}
    with thread_limit(args.threads):
        if torch is not None:
            torch.set_num_threads(args.threads)
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        for _ in range(args.rounds):
            if torch is not None:
                runs = []
                for _ in range(7):
                    start = clock()
                    torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)
                    runs.append(clock() - start)
                times["torch"].append(np.median(runs))
            runs = {"A": [], "B": []}
            for _ in range(7):
                for name in ("A", "B"):
                    start = clock()
                    forward(builds[name], x, w, bias, geom, p)
                    runs[name].append(clock() - start)
            for name in ("A", "B"):
                times[name].append(np.median(runs[name]))
    first = "torch" if args.torch_first else "cyconv"
    cells = "  ".join(f"{m} {1e3 * np.median(v):.2f}" for m, v in times.items())
    ratio = np.median(np.array(times["B"]) / np.array(times["A"]))
    line = (f"N{n}-C{c}-{h}-K{k} {kk}x{kk}/{s} p{p} t{args.threads} {first} first: "
            f"{cells} ms  B/A {ratio:.3f}")
    if torch is not None:
        line += f"  A/torch {np.median(np.array(times['A']) / np.array(times['torch'])):.3f}"
        line += f"  B/torch {np.median(np.array(times['B']) / np.array(times['torch'])):.3f}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
