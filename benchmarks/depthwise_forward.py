"""A/B timing of the depthwise 3x3 forward (or backward) per SIMD level against torch, in one process (indicative).

python benchmarks/depthwise_forward.py [--threads T] [--repeats R] [--cpu-time]
Interleaves, in one process, the depthwise forward kernel of every SIMD
level this CPU runs (each level's build of _direct loaded directly, on the
same prepared arrays and scratch as conv2d uses), cyconv.conv2d (the
dispatched level, with its Python layer), torch's forward, and a plain copy
of the input into an array of the output's size (np.copyto: the memory
traffic the layer cannot avoid). Prints the median and the minimum in ms.
``--backward``
times the backward kernel (both gradients) and torch's instead. Options as
benchmarks/depthwise_backward.py's, and ``--old FILE...``: other
builds of _direct (say, copies of the .so files before a change) timed beside.
"""
import argparse
import importlib.util
import os

import numpy as np

import cyconv
from cyconv import _dispatch
from cyconv._conv import depthwise_scratch
from depthwise_backward import interleave, setup


def level_module(level, path=None):
    """The ``level`` build of _direct (or the file at ``path``), loaded beside the dispatched one."""
    if path is None:
        path = importlib.util.find_spec(f"cyconv._kernels._direct_{level}").origin
    spec = importlib.util.spec_from_file_location("cyconv._direct", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", nargs="*", default=[],
                        help="other builds of _direct (.so files) to time beside these")
    parser.add_argument("--backward", action="store_true",
                        help="the backward kernel (input and weight gradients) instead")
    args, clock, torch, x, wt, gy = setup(parser)
    c = x.shape[1]
    bias = np.zeros(c, x.dtype)
    out = np.empty_like(x)
    sink = np.empty_like(x)
    flipped = np.ascontiguousarray(wt[..., ::-1, ::-1])
    if args.backward:
        # As conv2d_backward calls it (cyconv._backward._depthwise_gradients).
        extra = (x.shape[2] + 2) * (x.shape[3] + 2)
        scratch = depthwise_scratch(gy, wt, gy.shape, 1, 1, 1, 1, c, extra)
        partial = np.zeros((scratch.shape[0], wt.size), x.dtype)
    else:
        scratch = depthwise_scratch(x, wt, out.shape, 1, 1, 1, 1, c)

    def kernel(mod):
        if args.backward:
            return lambda: mod.depthwise_backward(x, gy, flipped, out, partial, 1, 1, 1, 1,
                                                  scratch)
        return lambda: mod.depthwise_forward(x, wt, bias, out, 1, 1, 1, 1, scratch)

    tx, tw, tg = map(torch.from_numpy, (x, wt, gy))
    cases = {}
    for level in [lv for lv in _dispatch.built() if lv in _dispatch.supported()]:
        cases[f"kernel {level}"] = kernel(level_module(level))
    for path in args.old:
        cases[f"old {os.path.basename(path).split('.')[0]}"] = kernel(level_module(None, path))
    if args.backward:
        cases["torch"] = lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], c, [True, True, False])
    else:
        cases["cyconv.conv2d"] = lambda: cyconv.conv2d(x, wt, stride=1, padding=1, groups=c)
        cases["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, stride=1, padding=1,
                                                            groups=c)
    cases["np.copyto"] = lambda: np.copyto(sink, x)
    results = interleave(cases, args.repeats, clock)
    torch_ms = np.median(results["torch"])
    print(f"threads={args.threads} dtype={args.dtype} shape={args.shape} "
          f"dispatched level: {_dispatch.LEVEL}")
    for name, ts in results.items():
        print(f"{name:18s} median {np.median(ts):7.3f}  min {np.min(ts):7.3f} ms"
              f"  torch/this {torch_ms / np.median(ts):5.2f}")


if __name__ == "__main__":
    main()
