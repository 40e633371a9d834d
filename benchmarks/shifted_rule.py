"""The grid behind SHIFTED_MAX_WASTE (_shifted_gemm.py): the shifted GEMMs against im2col.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/shifted_rule.py \
        [--rounds 9] [--first cyconv|torch]

The shifted GEMMs (_shifted.pyx) compute every pixel of each image's
padded cell, (ho + kh - 1) x (wo + kw - 1), and drop the border: on small
images that is most of the work (7x7 outputs of a 3x3 kernel: 81 computed
for 49). For stride-1 layers that 'auto' gives no Winograd, this times
the shifted GEMMs and method='im2col', forward and input gradient, float32,
padding kh // 2, steady allocator (run.py), interleaved call by call (best
of 3 per round), and prints the medians over rounds of each time and of
the per-round ratio shifted / im2col, with the waste factor the rule reads,
(ho + kh - 1) * (wo + kw - 1) / (ho * wo).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the steady allocator and the import order, as run.py)
from run import best_of, cyconv, np  # noqa: E402
import cyconv._conv as conv  # noqa: E402
import cyconv._winograd_gemm as wg  # noqa: E402
import cyconv._shifted_gemm as sg  # noqa: E402


def layers():
    for ks in (3, 5):
        for c in ((64, 128, 256, 512) if ks == 3 else (16, 32, 64, 128)):
            for h in (7, 14, 28, 56):
                for n in (1, 8):
                    if n * c * c * h * h * ks * ks * 2 > 8e9:
                        continue  # over ~25 ms a call: the grid's time
                    yield n, c, h, 2 * c if ks == 5 else c, ks


def main():
    opts = run.rule_options(__doc__, rounds=9)
    print(f"allocator: {run.MALLOC}; shifted / im2col, medians of {opts.rounds} rounds")
    rng = np.random.default_rng(0)
    saved = sg.SHIFTED_MAX_WASTE
    for n, c, h, k, ks in layers():
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        pad = ks // 2
        geom = conv.array_geometry("conv2d", x.shape, w.shape, 1, pad, 1, 1)
        sg.SHIFTED_MAX_WASTE = float("inf")
        try:
            if conv.choose_method(geom, x.dtype) != "shifted" or wg.winograd_pays(geom, x.dtype):
                continue
        finally:
            sg.SHIFTED_MAX_WASTE = saved
        gy = rng.standard_normal((n, k, h, h), dtype=np.float32)
        gin = dict(output_mask=(True, False, False))

        def shifted_fwd():
            sg.SHIFTED_MAX_WASTE = float("inf")
            cyconv.conv2d(x, w, padding=pad)

        def shifted_gin():
            sg.SHIFTED_MAX_WASTE = float("inf")
            cyconv.conv2d_backward(gy, x, w, padding=pad, **gin)

        cases = {
            "fwd": (shifted_fwd, lambda: cyconv.conv2d(x, w, padding=pad, method="im2col")),
            "gin": (shifted_gin, lambda: cyconv.conv2d_backward(gy, x, w, padding=pad,
                                                                method="im2col", **gin)),
        }
        waste = (h + ks - 1) ** 2 / h ** 2
        for name, (a, b) in cases.items():
            ta, tb, ratios = [], [], []
            try:
                for _ in range(opts.rounds):
                    ta.append(best_of(a, 3))
                    tb.append(best_of(b, 3))
                    ratios.append(ta[-1] / tb[-1])
            finally:
                sg.SHIFTED_MAX_WASTE = saved
            print(f"N{n}-C{c}-{h}-K{k} {ks}x{ks} {name}: waste {waste:.2f} shifted "
                  f"{np.median(ta) * 1e3:.3f} ms im2col {np.median(tb) * 1e3:.3f} ms "
                  f"ratio {np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
