"""Is method='auto' within 10% of the best fixed method? Interleaved A/B on the runner's layers.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/auto_check.py \
        [--first cyconv|torch] [--rounds 15]

benchmarks/run.py times each method after the other, so a drift of the
machine's speed between them (on a shared host, 10-30% within seconds)
shows as 'auto not the best' even where 'auto' runs the very code of the
fixed method. Here each round calls 'auto' and every fixed method once, in
turn (in an order rotated from round to round), for each layer of run.py's
LAYERS (forward, and backward with output_mask=(True, True, False)),
steady allocator as run.py sets it. The fixed methods more than 3x slower
than 'auto' in a first probe are left out (they cannot be the best). Prints per case the median time of each method,
the median over rounds of auto's time over the best method's in the same
round, and flags a ratio above 1.10.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (sets the steady allocator and the import order, as run.py does)
from run import LAYERS, cyconv, np  # noqa: E402
from cyconv._conv import METHODS  # noqa: E402


def probe(fn, calls=3):
    """The best of a few calls' wall time."""
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cases():
    """(name, {method: callable}) for every layer, forward and backward."""
    rng = np.random.default_rng(2)
    for name, n, c, h, k, ks, stride, pad, groups in LAYERS:
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c // groups, ks, ks), dtype=np.float32)
        args = dict(stride=stride, padding=pad, groups=groups)
        gy = rng.standard_normal(cyconv.conv2d(x, w, **args).shape, dtype=np.float32)
        fwd, bwd = {}, {}
        for method in METHODS:
            # Each direction where the method applies to this layer
            # (method='winograd' at stride 2: the forward only).
            try:
                cyconv.conv2d(x[:1], w, **args, method=method)
                fwd[method] = lambda m=method: cyconv.conv2d(x, w, **args, method=m)
            except ValueError:
                pass
            try:
                cyconv.conv2d_backward(gy[:1], x[:1], w, **args, method=method,
                                       output_mask=(True, True, False))
                bwd[method] = lambda m=method: cyconv.conv2d_backward(
                    gy, x, w, **args, method=m, output_mask=(True, True, False))
            except ValueError:
                pass
        yield f"{name} fwd", fwd
        yield f"{name} bwd", bwd


def main():
    opts = run.rule_options(__doc__, rounds=15)
    print(f"import order: {opts.first} first; allocator: {run.MALLOC}")
    flagged = 0
    for case, fns in cases():
        t_auto = probe(fns["auto"])
        fns = {m: f for m, f in fns.items() if m == "auto" or probe(f) <= 3 * t_auto}
        times = {m: [] for m in fns}
        ratios = []
        methods = list(fns)
        for round_ in range(opts.rounds):
            # Each round in another order: a call right after another
            # method's (a Winograd call's 8 MB of scratch) runs from colder
            # caches, and in a fixed order that is always the same method.
            shift = round_ % len(methods)
            for method in methods[shift:] + methods[:shift]:
                t0 = time.perf_counter()
                fns[method]()
                times[method].append(time.perf_counter() - t0)
            fixed = [times[m][-1] for m in fns if m != "auto"]
            if fixed:
                ratios.append(times["auto"][-1] / min(fixed))
        ratio = float(np.median(ratios)) if ratios else 1.0
        flag = ratio > 1.10
        flagged += flag
        medians = ", ".join(f"{m} {np.median(t) * 1e3:.2f} ms" for m, t in times.items())
        print(f"{case:<28} auto/best {ratio:5.2f}{'  > 1.10' if flag else ''}  ({medians})",
              flush=True)
    print(f"{flagged} case(s) with 'auto' more than 10% slower than the best fixed method")


if __name__ == "__main__":
    main()
