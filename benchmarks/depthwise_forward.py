"""A/B timing of the depthwise 3x3 forward per SIMD level against torch, in one process (indicative).

python benchmarks/depthwise_forward.py [--threads T] [--repeats R] [--cpu-time]
Interleaves, in one process, the depthwise forward kernel of every SIMD
level this CPU runs (each level's build of _direct loaded directly, on the
same prepared arrays and scratch as conv2d uses), cyconv.conv2d (the
dispatched level, with its Python layer), torch's forward, and a plain copy
of the input into an array of the output's size (np.copyto: the memory
traffic the layer cannot avoid). Prints the median and the minimum in ms.
Options as benchmarks/depthwise_backward.py's, and ``--old FILE...``: other
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
    args, clock, torch, x, wt, _ = setup(parser)
    c = x.shape[1]
    bias = np.zeros(c, x.dtype)
    out = np.empty_like(x)
    sink = np.empty_like(x)
    scratch = depthwise_scratch(x, wt, out.shape, 1, 1, 1, 1, c)
    tx, tw = map(torch.from_numpy, (x, wt))
    cases = {}
    for level in [lv for lv in _dispatch.built() if lv in _dispatch.supported()]:
        mod = level_module(level)
        cases[f"kernel {level}"] = (
            lambda m=mod: m.depthwise_forward(x, wt, bias, out, 1, 1, 1, 1, scratch))
    for path in args.old:
        mod = level_module(None, path)
        cases[f"old {os.path.basename(path).split('.')[0]}"] = (
            lambda m=mod: m.depthwise_forward(x, wt, bias, out, 1, 1, 1, 1, scratch))
    cases["cyconv.conv2d"] = lambda: cyconv.conv2d(x, wt, stride=1, padding=1, groups=c)
    cases["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, stride=1, padding=1, groups=c)
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
