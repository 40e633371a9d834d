"""The grid behind 'auto''s rule for 4x4 stride-2 transposed layers (_transpose_winograd.py).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/up2_rule.py THREADS

For conv_transpose2d 4x4/2 padding 1 layers (float32) of N 1 and 8, C 8..256
input channels and K = C or C/2 kernels, input 7..56 pixels, times F(4x4, 2x2)
(_transpose_winograd.run_up2) against the path it replaces (im2col's GEMM and
gathering fold), interleaved call by call, and prints the median over 9
rounds of the per-round ratio with the 8x8 output tiles per thread.
"""
import sys

import numpy as np
from winograd_rule import wall  # the same timer (this script's folder is on sys.path)

import cyconv
from cyconv import _transpose_winograd
from cyconv._threads import thread_limit


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    rng = np.random.default_rng(0)
    rule = _transpose_winograd.up2_pays

    def run(x, w, winograd):
        _transpose_winograd.up2_pays = lambda *args: winograd
        try:
            cyconv.conv_transpose2d(x, w, None, 2, 1)
        finally:
            _transpose_winograd.up2_pays = rule

    with thread_limit(threads):
        for n in (1, 8):
            for c in (8, 16, 32, 64, 128, 256):
                for k in (c, c // 2):
                    for h in (7, 14, 28, 56):
                        if n * c * h * h > 8 * 64 * 56 * 56:
                            continue
                        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
                        w = rng.standard_normal((c, k, 4, 4), dtype=np.float32)
                        run(x, w, True), run(x, w, False)
                        ratios = [wall(lambda: run(x, w, True)) / wall(lambda: run(x, w, False))
                                  for _ in range(9)]
                        tiles = _transpose_winograd.up2_tiles((n, k, 2 * h, 2 * h), (1, 1))
                        print(f"N{n}-C{c}-K{k}-{h}  tiles/thread {tiles // threads:5d}  "
                              f"winograd/gemm {np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
