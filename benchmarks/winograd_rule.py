"""The grid behind WINOGRAD_AUTO_WORK (_winograd_gemm.py): Winograd against the shifted GEMMs.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/winograd_rule.py THREADS

For each 3x3 stride-1 layer of N 1..4, C = K 32..512, 7..16 pixels (float32,
padding 1) that the rule without its work floor would give to Winograd,
times 'auto' as it is and 'auto' with Winograd ruled out (the shifted
GEMMs), interleaved call by call, and prints the median over 9 rounds of
the per-round ratio with the tiles times channels the floor looks at.
"""
import sys
import time

import numpy as np

import cyconv
import cyconv._conv as conv
import cyconv._winograd_gemm as wg
from cyconv._threads import thread_limit


def wall(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    rng = np.random.default_rng(0)
    rule = conv.winograd_pays
    with thread_limit(threads):
        for n in (1, 2, 4):
            for c in (32, 64, 128, 256, 512):
                for h in (7, 8, 12, 14, 16):
                    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
                    w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
                    geom = conv.array_geometry("conv2d", x.shape, w.shape, 1, 1, 1, 1)
                    floor = wg.WINOGRAD_AUTO_WORK
                    wg.WINOGRAD_AUTO_WORK = 0
                    try:
                        eligible = rule(geom, x.dtype)
                    finally:
                        wg.WINOGRAD_AUTO_WORK = floor
                    if not eligible:
                        continue

                    def winograd():
                        cyconv.conv2d(x, w, padding=1, method="winograd")

                    def shifted():
                        conv.winograd_pays = lambda *args: False
                        try:
                            cyconv.conv2d(x, w, padding=1)
                        finally:
                            conv.winograd_pays = rule
                    winograd(), shifted()
                    ratios = [wall(winograd) / wall(shifted) for _ in range(9)]
                    m = wg.tile_size(h, h)
                    work = n * (-(-h // m)) ** 2 * c
                    print(f"N{n}-C{c}-{h}  work {work:6d}  winograd/shifted "
                          f"{np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
