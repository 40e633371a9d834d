"""The grid behind SIDE_BY_SIDE_SUMS (_backward.py): the two Winograd gradients side by side or not.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/side_by_side_rule.py \
        [--first cyconv|torch]

For 3x3 stride-1 layers (float32, padding 1, 2 threads) whose gradients both
take Winograd, times conv2d_backward (input and weight gradients) with the
two side by side (each on one thread) and one after the other (each on both
threads), alternating call by call (best of 5 calls per round, 11 rounds;
the allocator in run.py's steady state, cyconv imported first unless
``--first torch``), and prints the medians, their ratio and the weight gradient's transformed
sums (36 * K * C/groups) that the rule looks at.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402,F401  (sets the steady allocator and the import order, as run.py does)
from run import best_of, cyconv, np  # noqa: E402
import cyconv._backward as backward  # noqa: E402
from cyconv._threads import thread_limit  # noqa: E402

LAYERS = [  # N, C = K, pixels
    (8, 16, 112), (8, 32, 112), (8, 64, 56), (1, 64, 56), (32, 64, 56), (8, 64, 28),
    (8, 32, 16), (8, 128, 28), (8, 128, 14), (2, 128, 28), (8, 192, 14), (8, 256, 14),
    (4, 256, 14), (16, 256, 14), (32, 256, 14), (8, 256, 28), (1, 256, 28), (8, 384, 14),
    (8, 512, 7),
]
OFF = 2**62  # a threshold no layer reaches: one after the other


def main():
    rng = np.random.default_rng(0)
    default = backward.SIDE_BY_SIDE_SUMS
    print("layer                 sums      side by side  one after other  ratio")
    with thread_limit(2):
        for n, c, size in LAYERS:
            x = rng.standard_normal((n, c, size, size), dtype=np.float32)
            w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
            gy = rng.standard_normal((n, c, size, size), dtype=np.float32)

            def call():
                cyconv.conv2d_backward(gy, x, w, padding=1, output_mask=(True, True, False))

            times = {"side": [], "seq": []}
            for rnd in range(11):
                for mode in (("side", "seq") if rnd % 2 else ("seq", "side")):
                    backward.SIDE_BY_SIDE_SUMS = 0 if mode == "side" else OFF
                    times[mode].append(best_of(call))
            backward.SIDE_BY_SIDE_SUMS = default
            side, seq = (np.median(times[k]) * 1e3 for k in ("side", "seq"))
            print(f"N{n}-C{c}-{size}-K{c}".ljust(20), f"{36 * c * c:9d}",
                  f"{side:11.2f} ms {seq:13.2f} ms  {side / seq:5.2f}", flush=True)


if __name__ == "__main__":
    main()
