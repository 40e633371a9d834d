"""A/B timing of the depthwise 3x3 backward against torch, in one process (indicative).

python benchmarks/depthwise_backward.py [--threads T] [--repeats R] [--cpu-time]
Interleaves cyconv's conv2d_backward (input and weight gradients), its two
halves, its forward, and torch's, and prints the median and the minimum in
ms. On a loaded machine, ``--threads 1 --cpu-time`` (process CPU time, not
wall time) is the steadier comparison.
"""
import argparse
import time

import numpy as np

import cyconv
from cyconv._backward import conv2d_backward
from cyconv._openmp import set_thread_setting


def best_ms(fn, clock, inner=3):
    """The fastest of ``inner`` calls, in ms."""
    times = []
    for _ in range(inner):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return 1e3 * min(times)


def setup(parser=None):
    """The command line's options (``parser``'s and these), and the problem:
    (args, clock, torch, x, weight, grad_out)."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--shape", default="8,128,56,56")
    parser.add_argument("--cpu-time", action="store_true")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    import torch
    torch.set_num_threads(args.threads)
    set_thread_setting(args.threads)
    n, c, h, w = map(int, args.shape.split(","))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(args.dtype)
    wt = rng.standard_normal((c, 1, 3, 3)).astype(args.dtype)
    gy = rng.standard_normal((n, c, h, w)).astype(args.dtype)
    return args, clock, torch, x, wt, gy


def interleave(cases, repeats, clock):
    """{name: [ms per repeat]}: every case once per repeat, in turn, after a warm-up call each."""
    for fn in cases.values():
        fn()
    results = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            results[name].append(best_ms(fn, clock))
    return results


def main():
    args, clock, torch, x, wt, gy = setup()
    c = x.shape[1]
    tx, tw, tg = map(torch.from_numpy, (x, wt, gy))
    conv = dict(stride=1, padding=1, groups=c)
    cases = {
        "cyconv fwd": lambda: cyconv.conv2d(x, wt, **conv),
        "torch fwd": lambda: torch.nn.functional.conv2d(tx, tw, **conv),
        "cyconv bwd": lambda: conv2d_backward(gy, x, wt, **conv, output_mask=(True, True, False)),
        "cyconv bwd input": lambda: conv2d_backward(gy, x, wt, **conv,
                                                    output_mask=(True, False, False)),
        "cyconv bwd weight": lambda: conv2d_backward(gy, x, wt, **conv,
                                                     output_mask=(False, True, False)),
        "torch bwd": lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], c, [True, True, False]),
    }
    results = interleave(cases, args.repeats, clock)
    for name, ts in results.items():
        print(f"{name:20s} median {np.median(ts):7.3f}  min {np.min(ts):7.3f} ms")


if __name__ == "__main__":
    main()
