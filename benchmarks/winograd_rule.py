"""The grids behind 'auto''s Winograd rules (_winograd_gemm.py, _backward.py) against im2col.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/winograd_rule.py \
        THREADS [input-gradient]

For each 3x3 stride-1 layer of N 1..8, C = K 32..512, 7..16 pixels (float32,
padding 1) that the rule without its work floor would give to Winograd,
times 'auto' as it is and 'auto' with Winograd ruled out (im2col on these
small images, see SHIFTED_MAX_WASTE), interleaved call by call, and prints
the median over 9 rounds of the per-round ratio with the tiles times
channels the floor looks at. With ``input-gradient``: the same for
conv2d_backward's input gradient, Winograd (method='winograd') against
im2col's (method='im2col'), and whether conv2d_backward's 'auto' takes it.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402,F401  (the steady allocator, as run.py)
import numpy as np  # noqa: E402

import cyconv  # noqa: E402
import cyconv._backward  # noqa: E402
import cyconv._conv as conv  # noqa: E402
import cyconv._winograd_gemm as wg  # noqa: E402
from cyconv._threads import thread_limit  # noqa: E402


def wall(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    backward = sys.argv[2:] == ["input-gradient"]
    rng = np.random.default_rng(0)
    rule = conv.winograd_pays
    with thread_limit(threads):
        for n in (1, 2, 4, 8):
            for c in (32, 64, 128, 256, 512):
                for h in (7, 8, 12, 14, 16):
                    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
                    w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
                    geom = conv.array_geometry("conv2d", x.shape, w.shape, 1, 1, 1, 1)
                    floor, tiers = wg.WINOGRAD_AUTO_WORK, wg.WINOGRAD_AUTO_KERNEL_TILES
                    wg.WINOGRAD_AUTO_WORK, wg.WINOGRAD_AUTO_KERNEL_TILES = 0, ()
                    try:
                        eligible = rule(geom, x.dtype)
                    finally:
                        wg.WINOGRAD_AUTO_WORK, wg.WINOGRAD_AUTO_KERNEL_TILES = floor, tiers
                    if not eligible:
                        continue

                    if backward:
                        gy = rng.standard_normal(x.shape, dtype=np.float32)

                        def run(method):
                            return cyconv.conv2d_backward(gy, x, w, padding=1, method=method,
                                                          output_mask=(True, False, False))

                        def winograd():
                            run("winograd")

                        def gemm():
                            run("im2col")

                        taken = rule(geom, x.dtype) and wg.enough_tiles(
                            n * (-(-h // 4)) ** 2, wg.transformed_bytes(geom, x.dtype),
                            cyconv._backward.WINOGRAD_GRAD_TILES)
                    else:
                        def winograd():
                            cyconv.conv2d(x, w, padding=1, method="winograd")

                        def gemm():
                            conv.winograd_pays = lambda *args: False
                            try:
                                cyconv.conv2d(x, w, padding=1)
                            finally:
                                conv.winograd_pays = rule

                        taken = rule(geom, x.dtype)
                    winograd(), gemm()
                    ratios = [wall(winograd) / wall(gemm) for _ in range(9)]
                    m = wg.tile_size(h, h)
                    work = n * (-(-h // m)) ** 2 * c
                    print(f"N{n}-C{c}-{h}  work {work:6d}  tiles {work // c:4d}  "
                          f"'auto' takes it {taken!s:5}  winograd/gemm "
                          f"{np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
