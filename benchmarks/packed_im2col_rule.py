"""The grid behind PACKED_IM2COL_WEIGHT_BYTES (_backward.py): im2col's gradients, packed GEMM.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/packed_im2col_rule.py \
        [--rounds 9] [--first cyconv|torch]

conv2d_backward's 'auto' runs the products of im2col's gradients (stride 2,
stems, 5x5, small images) on cyconv's packed GEMM (cyconv._pointwise) or
on OpenBLAS's, by the weight's size. For layers whose gradients 'auto'
gives to im2col, this times each gradient alone and both together with
the limit lifted (packed) and at zero (OpenBLAS), float32, steady
allocator (run.py), interleaved call by call (best of 3 per round), and
prints the medians over rounds of each time and of the per-round ratio
packed / OpenBLAS, with the weight's size.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the steady allocator and the import order, as run.py)
from run import best_of, cyconv, np  # noqa: E402
import cyconv._backward as bw  # noqa: E402

# (N, C, H, K, kernel, stride, padding)
LAYERS = [
    (8, 3, 224, 64, 7, 2, 3), (8, 3, 224, 32, 3, 2, 1),
    (8, 32, 56, 64, 3, 2, 1), (8, 64, 28, 64, 3, 2, 1), (8, 64, 56, 128, 3, 2, 1),
    (8, 128, 28, 256, 3, 2, 1), (8, 256, 14, 512, 3, 2, 1),
    (1, 64, 56, 128, 3, 2, 1), (1, 128, 28, 256, 3, 2, 1),
    (8, 64, 56, 128, 1, 2, 0), (8, 256, 56, 512, 1, 2, 0),
    (8, 16, 56, 32, 5, 1, 2), (8, 32, 28, 64, 5, 1, 2), (8, 64, 14, 128, 5, 1, 2),
    (8, 256, 7, 256, 3, 1, 1), (8, 512, 7, 512, 3, 1, 1),
]
MASKS = {"input": (True, False, False), "weight": (False, True, False),
         "both": (True, True, False)}


def main():
    opts = run.rule_options(__doc__, rounds=9)
    print(f"allocator: {run.MALLOC}; packed / OpenBLAS, medians of {opts.rounds} rounds")
    rng = np.random.default_rng(0)
    saved = bw.PACKED_IM2COL_WEIGHT_BYTES
    for n, c, h, k, ks, stride, pad in LAYERS:
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        args = dict(stride=stride, padding=pad)
        gy = rng.standard_normal(cyconv.conv2d(x, w, **args).shape, dtype=np.float32)
        for name, mask in MASKS.items():
            def call(limit, mask=mask):
                bw.PACKED_IM2COL_WEIGHT_BYTES = limit
                try:
                    cyconv.conv2d_backward(gy, x, w, **args, output_mask=mask)
                finally:
                    bw.PACKED_IM2COL_WEIGHT_BYTES = saved

            def packed():
                call(float("inf"))

            def openblas():
                call(-1)

            ta, tb, ratios = [], [], []
            for _ in range(opts.rounds):
                ta.append(best_of(packed, 3))
                tb.append(best_of(openblas, 3))
                ratios.append(ta[-1] / tb[-1])
            print(f"N{n}-C{c}-{h}-K{k} {ks}x{ks}/{stride} {name:6s}: weight "
                  f"{w.nbytes / 1024:7.0f} KiB  packed {np.median(ta) * 1e3:7.3f} ms  OpenBLAS "
                  f"{np.median(tb) * 1e3:7.3f} ms  ratio {np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
