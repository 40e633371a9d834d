"""The grid behind IM2COL_BATCH_COLUMNS (_conv.py): small images side by side in im2col's GEMM.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/im2col_batch_rule.py \
        [--rounds 9] [--first cyconv|torch] [--input-gradient]

im2col's forward runs one GEMM per image and group; on small images those
GEMMs are narrow (49 columns for 7x7 outputs). For layers of small outputs
that 'auto' gives to im2col (and two it does not), this times
method='im2col' with images one per GEMM (IM2COL_BATCH_COLUMNS = 0) and
side by side up to 128, 256 and 512 columns, float32, steady allocator
(run.py), interleaved call by call (best of 3 per round), and prints the
medians over rounds of each time and of the per-round ratio over one image
per GEMM, with torch's time for scale where torch is installed. With
--input-gradient, the same for conv2d_backward's input gradient.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the steady allocator and the import order, as run.py)
from run import best_of, cyconv, np  # noqa: E402
import cyconv._conv as conv  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

# (N, C, H, K, kernel, stride, padding)
LAYERS = [
    (8, 512, 7, 512, 3, 1, 1), (8, 256, 7, 256, 3, 1, 1), (8, 128, 7, 128, 3, 1, 1),
    (8, 256, 14, 512, 3, 2, 1), (8, 128, 14, 256, 3, 2, 1), (8, 256, 14, 512, 1, 2, 0),
    (8, 128, 7, 256, 5, 1, 2), (8, 64, 14, 128, 5, 1, 2), (8, 128, 28, 256, 3, 2, 1),
    (4, 512, 7, 512, 3, 1, 1), (2, 256, 14, 512, 3, 2, 1),
]
LIMITS = (0, 128, 256, 512)


def main():
    backward = "--input-gradient" in sys.argv
    if backward:
        sys.argv.remove("--input-gradient")
    opts = run.rule_options(__doc__, rounds=9)
    print(f"allocator: {run.MALLOC}; im2col, medians of {opts.rounds} rounds; "
          f"limits {LIMITS[1:]} over one image per GEMM")
    rng = np.random.default_rng(0)
    saved = conv.IM2COL_BATCH_COLUMNS
    for n, c, h, k, ks, stride, pad in LAYERS:
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        gy = rng.standard_normal(cyconv.conv2d(x[:1], w, stride=stride, padding=pad).shape[1:],
                                 dtype=np.float32)
        gy = np.repeat(gy[None], n, axis=0)

        def call(limit):
            conv.IM2COL_BATCH_COLUMNS = limit
            try:
                if backward:
                    cyconv.conv2d_backward(gy, x, w, stride=stride, padding=pad,
                                           method="im2col", output_mask=(True, False, False))
                else:
                    cyconv.conv2d(x, w, stride=stride, padding=pad, method="im2col")
            finally:
                conv.IM2COL_BATCH_COLUMNS = saved

        fns = {limit: (lambda limit=limit: call(limit)) for limit in LIMITS}
        if torch is not None:
            xt, wt, gyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
            if backward:
                fns["torch"] = lambda: torch.nn.grad.conv2d_input(x.shape, wt, gyt,
                                                                  stride=stride, padding=pad)
            else:
                fns["torch"] = lambda: torch.nn.functional.conv2d(xt, wt, stride=stride,
                                                                  padding=pad)
        times = {key: [] for key in fns}
        for _ in range(opts.rounds):
            for key, fn in fns.items():
                times[key].append(best_of(fn, 3))
        base = np.array(times[0])
        ratios = "  ".join(f"{limit}: {np.median(np.array(times[limit]) / base):.2f}"
                           for limit in LIMITS[1:])
        ho = (h + 2 * pad - ks) // stride + 1
        extra = f"  torch {np.median(times['torch']) * 1e3:.2f} ms" if torch else ""
        print(f"N{n}-C{c}-{h}-K{k} {ks}x{ks}/{stride} ({ho}x{ho} out): one image "
              f"{np.median(base) * 1e3:.2f} ms  {ratios}{extra}", flush=True)


if __name__ == "__main__":
    main()
