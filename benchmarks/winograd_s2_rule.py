"""The grid behind 'auto''s rule for 3x3 stride-2 layers (_winograd_s2_gemm.py).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/winograd_s2_rule.py THREADS

For 3x3 stride-2 layers (float32, padding 1) of N 1 and 8, C = K 16..512
(and K = 2C), input 14..112 pixels, times method='winograd' (F(2, 3) along
the rows) and 'im2col', interleaved call by call, and prints the median
over 9 rounds of the per-round ratio with the GEMM columns per image.
"""
import sys

import numpy as np
from winograd_rule import wall  # the same timer (this script's folder is on sys.path)

import cyconv
from cyconv._threads import thread_limit


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    rng = np.random.default_rng(0)
    with thread_limit(threads):
        for n in (1, 8):
            for c, k in ((16, 16), (32, 32), (32, 64), (64, 128), (128, 256), (256, 512),
                         (512, 512)):
                for h in (14, 28, 56, 112):
                    if n * c * h * h > 8 * 128 * 56 * 56:
                        continue
                    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
                    w = rng.standard_normal((k, c, 3, 3), dtype=np.float32)

                    def winograd():
                        cyconv.conv2d(x, w, stride=2, padding=1, method="winograd")

                    def im2col():
                        cyconv.conv2d(x, w, stride=2, padding=1, method="im2col")
                    winograd(), im2col()
                    ratios = [wall(winograd) / wall(im2col) for _ in range(9)]
                    columns = (h // 2) * -(-(h // 2) // 2)
                    print(f"N{n}-C{c}-K{k}-{h}  columns/image {columns:5d}  winograd/im2col "
                          f"{np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
