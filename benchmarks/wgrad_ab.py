"""A/B of the 3x3 stride-1 weight gradient: Winograd F(3x3, 4x4) vs im2col, and the input gradient's methods.

Interleaved in one process, medians of --repeats runs (indicative under
load). With --threads 1 the times are the process's CPU time, which a loaded
machine disturbs less than wall time; else wall time.
Usage: python benchmarks/wgrad_ab.py [--threads 1] [--repeats 9] [--dtype float64]
"""
import argparse
import time

import numpy as np

import cyconv
import cyconv._backward
from cyconv._threads import thread_limit


def _old_auto(*args, **kwargs):
    """'auto' as it was before the Winograd backward rules: shifted input gradient, im2col's weight gradient."""
    real = cyconv._backward.winograd_pays, cyconv._backward.winograd_wgrad_pays
    cyconv._backward.winograd_pays = cyconv._backward.winograd_wgrad_pays = (
        lambda geom, dtype: False)
    try:
        return cyconv.conv2d_backward(*args, **kwargs)
    finally:
        cyconv._backward.winograd_pays, cyconv._backward.winograd_wgrad_pays = real


def _shifted(*args, **kwargs):
    """'auto' with its input gradient held to the shifted GEMMs (Winograd's rule off)."""
    real = cyconv._backward.winograd_pays
    cyconv._backward.winograd_pays = lambda geom, dtype: False
    try:
        return cyconv.conv2d_backward(*args, **kwargs)
    finally:
        cyconv._backward.winograd_pays = real

LAYERS = [  # (N, C, H, W, K)
    (8, 64, 56, 56, 64),
    (8, 256, 14, 14, 256),
    (8, 128, 28, 28, 128),
    (8, 16, 56, 56, 16),
    (8, 8, 56, 56, 8),
    (8, 512, 7, 7, 512),
    (1, 64, 56, 56, 64),
    (8, 3, 56, 56, 64),
]


def _time(fn, clock):
    t0 = clock()
    fn()
    return clock() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--auto", action="store_true",
                    help="whole backward (input and weight gradients): 'auto' against the old 'auto'")
    ap.add_argument("--layer", action="append", default=[],
                    help="N,C,H,W,K instead of the default list (repeatable)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    with thread_limit(args.threads):
        layers = [tuple(int(v) for v in text.split(",")) for text in args.layer] or LAYERS
        for n, c, h, w, k in layers:
            x = rng.standard_normal((n, c, h, w)).astype(args.dtype)
            wt = rng.standard_normal((k, c, 3, 3)).astype(args.dtype)
            gy = rng.standard_normal((n, k, h, w)).astype(args.dtype)
            cases = {
                "wgrad im2col": lambda: cyconv.conv2d_backward(
                    gy, x, wt, padding=1, method="im2col", output_mask=(False, True, False)),
                "wgrad winograd": lambda: cyconv.conv2d_backward(
                    gy, x, wt, padding=1, method="winograd", output_mask=(False, True, False)),
                "gin shifted": lambda: _shifted(
                    gy, x, wt, padding=1, method="auto", output_mask=(True, False, False)),
                "gin winograd": lambda: cyconv.conv2d_backward(
                    gy, x, wt, padding=1, method="winograd", output_mask=(True, False, False)),
            }
            if args.auto:
                mask = (True, True, False)
                cases = {
                    "old auto": lambda: _old_auto(gy, x, wt, padding=1, output_mask=mask),
                    "auto": lambda: cyconv.conv2d_backward(gy, x, wt, padding=1,
                                                           output_mask=mask),
                    "winograd": lambda: cyconv.conv2d_backward(
                        gy, x, wt, padding=1, method="winograd", output_mask=mask),
                }
            times = {name: [] for name in cases}
            for fn in cases.values():
                fn()
            for _ in range(args.repeats):
                for name, fn in cases.items():
                    times[name].append(_time(fn, clock))
            med = {name: 1e3 * np.median(v) for name, v in times.items()}
            line = f"N{n}-C{c}-{h}x{w}-K{k}: " + ", ".join(f"{a} {b:.2f} ms" for a, b in med.items())
            if args.auto:
                print(line + f" | old auto/auto {med['old auto'] / med['auto']:.2f}x", flush=True)
                continue
            print(line
                  + f" | wgrad im2col/winograd {med['wgrad im2col'] / med['wgrad winograd']:.2f}x"
                  + f", gin shifted/winograd {med['gin shifted'] / med['gin winograd']:.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
