"""A/B of the Python layer: this checkout's conv2d/conv2d_backward against a revision's, torch alongside.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/overhead_ab.py [REV]
        [--first torch] [--rounds 15] [--cases tiny,tiny-bwd,1x1,1x1-bwd]

The old side is the modules named in OLD_MODULES as they were at git
revision REV (default main's ``main``), executed from ``git show`` over this
checkout's compiled kernels; the new side is the installed cyconv. Each round
times torch (``torch.set_num_threads`` = cyconv's kernel threads), old and
new, in a rotating order, each the median of a few runs of ``number`` calls;
the ratios new/old and new/torch are taken per round and their medians
printed, with the medians of the times. glibc's allocator is put in the
runner's steady state first (benchmarks/run.py). ``--first torch`` imports
torch before cyconv. Times of separate processes cannot be compared on a
shared machine: only the ratios within one process mean something.
"""
import argparse
import ctypes
import pathlib
import statistics
import subprocess
import sys
import time
import types


def _options():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", nargs="?", default="main")
    ap.add_argument("--first", choices=("cyconv", "torch"), default="cyconv")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--cases", default="tiny,tiny-bwd,1x1,1x1-bwd")
    return ap.parse_args()


ARGS = _options()
libc = ctypes.CDLL(None)
libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD, as the runner's steady state
libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD
if ARGS.first == "torch":
    import torch  # noqa: F401

import numpy as np  # noqa: E402

import cyconv  # noqa: E402
from cyconv._openmp import max_threads  # noqa: E402
import torch  # noqa: E402,F811

ROOT = pathlib.Path(__file__).resolve().parents[1]
# In import order: each old module imports the old versions of those before it.
OLD_MODULES = ("_validate", "_scratch", "_threads", "_shifted_gemm", "_conv", "_backward")


def old_modules(rev):
    """The modules of OLD_MODULES at ``rev``; while they run, sys.modules maps their
    names to the old ones, so that their imports of each other get the old versions."""
    saved = {name: sys.modules.get(f"cyconv.{name}") for name in OLD_MODULES}
    olds = {}
    try:
        for name in OLD_MODULES:
            source = subprocess.run(["git", "show", f"{rev}:src/cyconv/{name}.py"], cwd=ROOT,
                                    check=True, capture_output=True, text=True).stdout
            module = types.ModuleType(f"cyconv.{name}")
            module.__package__ = "cyconv"
            sys.modules[f"cyconv.{name}"] = module
            exec(compile(source, f"{rev}:{name}.py", "exec"), module.__dict__)
            olds[name] = module
    finally:
        for name, module in saved.items():
            sys.modules[f"cyconv.{name}"] = module
    return olds


def cases(old):
    """name -> (calls per timed run, {variant: callable})."""
    rng = np.random.default_rng(0)
    out = {}

    def layer(name, n, c, h, k, ks, stride, pad, number):
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        gy = rng.standard_normal(cyconv.output_shape(x.shape, w.shape, stride, pad),
                                 dtype=np.float32)
        tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
        out[name] = (number, {
            "torch": lambda: torch.nn.functional.conv2d(tx, tw, None, stride, pad).numpy(),
            "old": lambda: old["_conv"].conv2d(x, w, None, stride, pad),
            "new": lambda: cyconv.conv2d(x, w, None, stride, pad),
        })
        mask = (True, True, False)
        out[name + "-bwd"] = (number, {
            "torch": lambda: torch.ops.aten.convolution_backward(
                tgy, tx, tw, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                list(mask)),
            "old": lambda: old["_backward"].conv2d_backward(gy, x, w, stride, pad,
                                                            output_mask=mask),
            "new": lambda: cyconv.conv2d_backward(gy, x, w, stride, pad, output_mask=mask),
        })
        # Same results before timing.
        for key in (name, name + "-bwd"):
            res = [fn() for fn in out[key][1].values()]
            if key.endswith("bwd"):
                res = [np.concatenate([np.asarray(r[0]).ravel(), np.asarray(r[1]).ravel()])
                       for r in res]
            scale = np.abs(res[0]).max()
            for r in res[1:]:
                assert np.abs(np.asarray(r) - res[0]).max() <= 1e-4 * scale, key

    layer("tiny", 1, 8, 8, 8, 3, 1, 1, 200)
    layer("1x1", 8, 256, 28, 512, 1, 1, 0, 1)
    return out


def main():
    torch.set_num_threads(max_threads())
    old = old_modules(ARGS.rev)
    table = cases(old)
    wanted = ARGS.cases.split(",")
    times = {c: {v: [] for v in table[c][1]} for c in wanted}
    for r in range(ARGS.rounds):
        for c in wanted:
            number, fns = table[c]
            variants = list(fns)
            variants = variants[r % 3:] + variants[:r % 3]  # rotate who goes first
            for v in variants:
                fn = fns[v]
                for _ in range(3 if number == 1 else 1):
                    fn()
                samples = []
                for _ in range(5):
                    t = time.perf_counter()
                    for _ in range(number):
                        fn()
                    samples.append((time.perf_counter() - t) / number)
                times[c][v].append(statistics.median(samples))
    print(f"cyconv threads {max_threads()}, torch threads {torch.get_num_threads()}, "
          f"imported first: {ARGS.first}, old = {ARGS.rev}, {ARGS.rounds} rounds")
    for c in wanted:
        t = times[c]
        med = {v: statistics.median(s) for v, s in t.items()}
        unit, scale = ("us", 1e6) if med["new"] < 1e-3 else ("ms", 1e3)
        new_old = statistics.median(a / b for a, b in zip(t["new"], t["old"]))
        new_torch = statistics.median(a / b for a, b in zip(t["new"], t["torch"]))
        old_torch = statistics.median(a / b for a, b in zip(t["old"], t["torch"]))
        print(f"{c:<10} torch {med['torch'] * scale:8.2f} {unit}  old {med['old'] * scale:8.2f}"
              f"  new {med['new'] * scale:8.2f}  new/old {new_old:.3f}  "
              f"new/torch {new_torch:.3f}  old/torch {old_torch:.3f}")


if __name__ == "__main__":
    main()
