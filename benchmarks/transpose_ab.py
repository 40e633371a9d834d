"""conv_transpose2d (and strided input gradients): gathering fold against main's scatter-add.

    python benchmarks/transpose_ab.py [threads] [rounds] [--first torch] [--cpu]

im2col's input gradient is ``col2im(W.T @ dY)``. Main zeroes grad_input and
adds each tap's unrolled row into it (_im2col._fold); the gathering fold
(_im2col._gather_fold) writes every element once from the sum of the taps
that land there. Both are timed interleaved in one process (each round
every entry, median of 7 calls; at one thread CPU time of the calling
thread, else wall time) with PyTorch on the same thread count, on the
runner's transposed layer (N8-C64-28 -> K32, 4x4/2 pad 1) and the input
gradient of its 3x3/2 layer (N8-C128-28-K256, pad 1). Prints the medians
and the median per-round ratios to main's path ("scatter").
"""
import sys
import time

FIRST_TORCH = "--first" in sys.argv and sys.argv[sys.argv.index("--first") + 1] == "torch"
if FIRST_TORCH:
    import torch
import numpy as np

import cyconv
from cyconv import _backward
from cyconv._conv import gemm_workspace
from strided_ab import ab_rounds  # noqa: E402  (the script's folder is on sys.path)

try:
    import torch
except ImportError:
    torch = None

gather_workspace = _backward._grad_input_workspace


def scatter_workspace(func, geom, xp_shape, dtype, n_threads, pad_top, pad_left):
    return gemm_workspace(func, geom, dtype, n_threads), None


def with_fold(workspace, fn):
    def run():
        _backward._grad_input_workspace = workspace
        try:
            return fn()
        finally:
            _backward._grad_input_workspace = gather_workspace
    return run


def cases():
    rng = np.random.default_rng(0)
    xt = rng.standard_normal((8, 64, 28, 28), dtype=np.float32)
    wt = rng.standard_normal((64, 32, 4, 4), dtype=np.float32)
    x = rng.standard_normal((8, 128, 28, 28), dtype=np.float32)
    w = rng.standard_normal((256, 128, 3, 3), dtype=np.float32)
    gy = rng.standard_normal((8, 256, 14, 14), dtype=np.float32)
    transpose = lambda: cyconv.conv_transpose2d(xt, wt, None, 2, 1)
    grad = lambda: cyconv.conv2d_backward(gy, x, w, stride=2, padding=1,
                                          output_mask=(True, False, False))[0]
    out = {"4x4/2 conv_transpose2d": {"scatter": with_fold(scatter_workspace, transpose),
                                      "gather": transpose},
           "3x3/2 grad_input": {"scatter": with_fold(scatter_workspace, grad), "gather": grad}}
    if torch is not None:
        txt, twt, tx, tw, tg = (torch.from_numpy(a) for a in (xt, wt, x, w, gy))
        out["4x4/2 conv_transpose2d"]["torch"] = (
            lambda: torch.nn.functional.conv_transpose2d(txt, twt, None, 2, 1))
        out["3x3/2 grad_input"]["torch"] = lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, None, (2, 2), (1, 1), (1, 1), False, (0, 0), 1, (True, False, False))
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--") and a not in ("torch", "cyconv")]
    threads = int(args[0]) if args else 1
    rounds = int(args[1]) if len(args) > 1 else 7
    clock = time.thread_time if threads == 1 else time.perf_counter
    if "--cpu" in sys.argv:  # process CPU time: the work of all threads, spinning included
        clock = time.process_time
    if torch is not None:
        torch.set_num_threads(threads)
    for name, entries in cases().items():
        ab_rounds(f"first={'torch' if FIRST_TORCH else 'cyconv'} threads={threads} {name}",
                  entries, "scatter", "gather", threads, rounds, clock, 1e-6)


if __name__ == "__main__":
    main()
