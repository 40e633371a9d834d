"""Where the 3x3 stride-1 backward's time goes: input gradient, weight gradient and the rest, against torch.

Per layer, interleaved in one process (medians of --repeats runs; indicative
under load): torch's backward (input and weight gradients), cyconv's 'auto'
backward with that mask, each gradient alone, and the parts around the
kernels: grad_output's and the input's finiteness checks. With --threads 1 the times are the
process's CPU time (less disturbed by a loaded machine), else wall time.
Usage: python benchmarks/wgrad_split.py [--threads 1] [--repeats 9]
"""
import argparse
import time

import numpy as np

import cyconv
from cyconv import _fft
from cyconv._threads import thread_limit
from wgrad_ab import _time  # this directory

LAYERS = [(8, 64, 56, 56, 64), (8, 256, 14, 14, 256)]  # (N, C, H, W, K), padding 1


def cases(x, wt, gy):
    """name -> callable for one layer (padding 1)."""
    import torch
    tx, tw, tgy = (torch.from_numpy(a) for a in (x, wt, gy))

    def backward(mask):
        return lambda: cyconv.conv2d_backward(gy, x, wt, padding=1, output_mask=mask)

    out = {
        "torch": lambda: torch.ops.aten.convolution_backward(
            tgy, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False]),
        "auto": backward((True, True, False)),
        "gin": backward((True, False, False)),
        "wgrad": backward((False, True, False)),
        "gy finite": lambda: _fft.all_finite(gy),
        "x finite": lambda: _fft.all_finite(x),
    }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--layer", action="append", default=[],
                    help="N,C,H,W,K instead of the default list (repeatable)")
    args = ap.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    layers = [tuple(int(v) for v in text.split(",")) for text in args.layer] or LAYERS
    with thread_limit(args.threads):
        for n, c, h, w, k in layers:
            x = rng.standard_normal((n, c, h, w)).astype(np.float32)
            wt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
            gy = rng.standard_normal((n, k, h, w)).astype(np.float32)
            fns = cases(x, wt, gy)
            for fn in fns.values():
                fn()
            rounds = [[_time(fn, clock) for fn in fns.values()] for _ in range(args.repeats)]
            med = dict(zip(fns, 1e3 * np.median(rounds, axis=0)))
            print(f"N{n}-C{c}-{h}x{w}-K{k} threads={args.threads}: "
                  + ", ".join(f"{a} {b:.2f}" for a, b in med.items())
                  + f" ms | auto/torch {med['auto'] / med['torch']:.2f}", flush=True)


if __name__ == "__main__":
    main()
