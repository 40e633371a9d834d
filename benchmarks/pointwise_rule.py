"""1x1 layers: the packed GEMM ('auto', cyconv._pointwise) against OpenBLAS ('im2col') and torch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/pointwise_rule.py \
        [--first cyconv|torch] [--rounds 11]

For 1x1 stride-1 layers of ResNet-like networks (float32, 2 threads), times
conv2d and conv2d_backward (input and weight gradients) by method 'auto'
(which runs the packed GEMM on 1x1 float layers), by method='im2col' (one
OpenBLAS GEMM per image and group) and by PyTorch where it is installed,
alternating call by call (best of 5 calls per round; the allocator in
run.py's steady state, cyconv imported first unless ``--first torch``), and
prints the medians in ms and the ratios auto / im2col and auto / torch.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402,F401  (sets the steady allocator and the import order, as run.py does)
from run import best_of, cyconv, np, try_import  # noqa: E402
from cyconv._threads import thread_limit  # noqa: E402

LAYERS = [  # N, C, pixels, K, groups
    (8, 256, 28, 512, 1), (1, 256, 28, 512, 1), (8, 64, 56, 256, 1), (8, 256, 56, 64, 1),
    (8, 512, 28, 128, 1), (8, 1024, 14, 256, 1), (8, 256, 14, 1024, 1), (8, 2048, 7, 512, 1),
    (8, 512, 7, 2048, 1), (8, 32, 112, 64, 1), (8, 240, 28, 240, 4), (8, 64, 56, 64, 1),
]


def main():
    rounds = 11
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
    torch = try_import("torch")
    if torch is not None:
        torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    print(f"{'layer':26} pass  {'auto':>8} {'im2col':>8} {'torch':>8}  auto/im2col  auto/torch")
    with thread_limit(2):
        for n, c, size, k, groups in LAYERS:
            x = rng.standard_normal((n, c, size, size), dtype=np.float32)
            w = rng.standard_normal((k, c // groups, 1, 1), dtype=np.float32)
            gy = rng.standard_normal((n, k, size, size), dtype=np.float32)
            calls = {
                "fwd": {m: (lambda m=m: cyconv.conv2d(x, w, groups=groups, method=m))
                        for m in ("auto", "im2col")},
                "bwd": {m: (lambda m=m: cyconv.conv2d_backward(
                            gy, x, w, groups=groups, method=m, output_mask=(True, True, False)))
                        for m in ("auto", "im2col")},
            }
            if torch is not None:
                tx, tw, tgy = (torch.from_numpy(a) for a in (x, w, gy))
                calls["fwd"]["torch"] = lambda: torch.nn.functional.conv2d(
                    tx, tw, None, 1, 0, 1, groups).numpy()
                calls["bwd"]["torch"] = lambda: torch.ops.aten.convolution_backward(
                    tgy, tx, tw, None, [1, 1], [0, 0], [1, 1], False, [0, 0], groups,
                    [True, True, False])
            for which, fns in calls.items():
                times = {name: [] for name in fns}
                for rnd in range(rounds):
                    order = list(fns) if rnd % 2 else list(fns)[::-1]
                    for name in order:
                        times[name].append(best_of(fns[name]))
                med = {name: np.median(t) * 1e3 for name, t in times.items()}
                peer = med.get("torch", float("nan"))
                print(f"N{n}-C{c}-{size}-K{k}" + (f"-g{groups}" if groups > 1 else ""),
                      " " * max(0, 20 - len(f"N{n}-C{c}-{size}-K{k}")), which,
                      f"{med['auto']:8.2f} {med['im2col']:8.2f} {peer:8.2f}",
                      f"{med['auto'] / med['im2col']:11.2f} {med['auto'] / peer:11.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
