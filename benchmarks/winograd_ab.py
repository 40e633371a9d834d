"""A/B of two builds of cyconv's Winograd kernels in one process, interleaved.

    python benchmarks/winograd_ab.py A.so B.so [threads] [--shifted]

A.so and B.so are copies of ``_winograd_<level>*.so`` from two builds (copy
the build directory's file aside before rebuilding). Each round times
PyTorch (when installed, median of 7 calls), then A and B call by call
(A, B, A, B ..., 7 calls each, their medians) on the runner's two 3x3 layers
(N8, float32, padding 1); at one thread CPU time of the calling thread
(less sensitive to a loaded machine), else wall time. Prints the medians
over 9 rounds and the per-round ratio B/A. With ``--shifted`` the threads'
scratch rows start 4 bytes past a 64-byte line (as the second thread's row
may), to time that case at one thread.
"""
import contextlib
import importlib.util
import sys
import time

import numpy as np

import cyconv
import cyconv._winograd_gemm as wg
from cyconv._threads import thread_limit

try:
    import torch
except ImportError:
    torch = None

LAYERS = [(8, 64, 56, 64), (8, 256, 14, 256)]
ROUNDS = 9


def load(path):
    """The kernel module in ``path``, imported under its own name but not registered."""
    spec = importlib.util.spec_from_file_location("cyconv._winograd", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "max_lanes"):  # a build from before _wgemm.h: rows of any length
        module.max_lanes = lambda: 1
    return module


@contextlib.contextmanager
def shifted_scratch(shape, dtype, real=wg.scratch):
    """cyconv._scratch.scratch, its buffer 4 bytes past the start of a larger one."""
    size = int(np.prod(shape))
    with real((size + 64,), dtype) as buf:
        yield buf[1:1 + size].reshape(shape)


def main():
    args = [a for a in sys.argv[1:] if a != "--shifted"]
    if "--shifted" in sys.argv:
        wg.scratch = shifted_scratch
    builds = {"A": load(args[0]), "B": load(args[1])}
    threads = int(args[2]) if len(args) > 2 else 1
    clock = time.thread_time if threads == 1 else time.perf_counter
    if torch is not None:
        torch.set_num_threads(threads)

    def median_ms(fn, repeats=7):
        times = []
        for _ in range(repeats):
            start = clock()
            fn()
            times.append(clock() - start)
        return 1e3 * float(np.median(times))

    rng = np.random.default_rng(0)
    saved = wg._winograd
    for n, c, h, k in LAYERS:
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c, 3, 3), dtype=np.float32)
        res = {}
        with thread_limit(threads):
            for _ in range(ROUNDS):
                if torch is not None:
                    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
                    res.setdefault("torch", []).append(
                        median_ms(lambda: torch.nn.functional.conv2d(tx, tw, None, 1, 1)))
                # A and B call by call (A, B, A, B ...): both see the same neighbours.
                times = {name: [] for name in builds}
                for _ in range(7):
                    for name, module in builds.items():
                        wg._winograd = module
                        try:
                            times[name].append(median_ms(
                                lambda: cyconv.conv2d(x, w, padding=1, method="winograd"),
                                repeats=1))
                        finally:
                            wg._winograd = saved
                for name, t in times.items():
                    res.setdefault(name, []).append(float(np.median(t)))
        ratio = np.array(res["B"]) / np.array(res["A"])
        print(f"threads={threads} N{n}-C{c}-{h}-K{k}:",
              {name: round(float(np.median(t)), 2) for name, t in res.items()},
              "B/A: median", round(float(np.median(ratio)), 3), "per round", np.round(ratio, 3),
              flush=True)


if __name__ == "__main__":
    main()
