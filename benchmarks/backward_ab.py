"""A/B of the 3x3 stride-1 backward: this checkout against an older revision, torch in the same loop.

    python benchmarks/backward_ab.py REV OLD.so [--threads 1] [--rounds 5] [--layer N,C,H,W,K]
        [--mask 010]

The old side is ``_backward.py`` and ``_winograd_wgrad_gemm.py`` as they
were at git revision REV, over OLD.so, a copy of that revision's
``_winograd_wgrad_<level>*.so`` (copy it aside before rebuilding); the rest
of cyconv (the input gradient's Winograd forward among it) is this
checkout's. Each round times torch's backward, old and new (input and
weight gradients, output_mask=(True, True, False) or --mask, float32, padding 1),
median of 7 calls each, interleaved; at one thread the CPU time of the
calling thread (less disturbed by a loaded machine), else wall time.
Prints the medians over the rounds and the median per-round ratios.
"""
import argparse
import importlib.util
import pathlib
import subprocess
import sys
import time
import types

import numpy as np

import cyconv
from cyconv._threads import thread_limit
from wgrad_ab import _time  # this directory

LAYERS = [(8, 64, 56, 56, 64), (8, 256, 14, 14, 256)]  # (N, C, H, W, K)
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module_at(rev, name, **replace):
    """cyconv's module ``name`` as of git revision ``rev``, with some of its globals replaced."""
    source = subprocess.run(["git", "show", f"{rev}:src/cyconv/{name}.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(f"old_{name}")
    module.__dict__["__name__"] = f"old_{name}"
    exec(compile(source, f"{rev}:{name}.py", "exec"), module.__dict__)
    module.__dict__.update(replace)
    return module


def old_backward(rev, so_path):
    """conv2d_backward of revision ``rev`` over the kernel module ``so_path``."""
    spec = importlib.util.spec_from_file_location("cyconv._winograd_wgrad", so_path)
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    gemm = _module_at(rev, "_winograd_wgrad_gemm", _winograd_wgrad=kernels)
    backward = _module_at(rev, "_backward",
                          run_winograd_grad_weight=gemm.run_winograd_grad_weight)
    return backward.conv2d_backward


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("so")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layer", action="append", default=[])
    ap.add_argument("--mask", default="110",
                    help="output_mask as 3 digits: 110 both gradients, 010 the weight's alone")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    old = old_backward(args.rev, args.so)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    layers = [tuple(int(v) for v in text.split(",")) for text in args.layer] or LAYERS
    rng = np.random.default_rng(0)

    def median_ms(fn, repeats=7):
        return 1e3 * float(np.median([_time(fn, clock) for _ in range(repeats)]))

    mask = tuple(digit == "1" for digit in args.mask)
    for n, c, h, w, k in layers:
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        wt = rng.standard_normal((k, c, 3, 3), dtype=np.float32)
        gy = rng.standard_normal((n, k, h, w), dtype=np.float32)
        tx, tw, tgy = (torch.from_numpy(a) for a in (x, wt, gy))
        a = old(gy, x, wt, padding=1, output_mask=mask)
        b = cyconv.conv2d_backward(gy, x, wt, padding=1, output_mask=mask)
        for u, v in zip(a, b):
            if u is not None:
                np.testing.assert_allclose(u, v, rtol=0, atol=1e-3 * np.abs(u).max())
        cases = {
            "torch": lambda: torch.ops.aten.convolution_backward(
                tgy, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, list(mask)),
            "old": lambda: old(gy, x, wt, padding=1, output_mask=mask),
            "new": lambda: cyconv.conv2d_backward(gy, x, wt, padding=1, output_mask=mask),
        }
        res = {name: [] for name in cases}
        with thread_limit(args.threads):
            for _ in range(args.rounds):
                for name, fn in cases.items():
                    res[name].append(median_ms(fn))
        res = {name: np.array(v) for name, v in res.items()}
        print(f"N{n}-C{c}-{h}x{w}-K{k} threads={args.threads}: "
              + ", ".join(f"{name} {np.median(v):.2f} ms" for name, v in res.items())
              + f" | new/old {np.median(res['new'] / res['old']):.2f}"
              + f", old/torch {np.median(res['old'] / res['torch']):.2f}"
              + f", new/torch {np.median(res['new'] / res['torch']):.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
