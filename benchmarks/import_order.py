"""Does the import order (torch first or cyconv first) change cyconv's or torch's times?

Runs the runner's stem (N8-C3-224-K64 7x7/2 pad 3) and 1x1 (N8-C256-28-K512)
layers, forward and backward, float32, and the runner's sgemm reference, in
one process per import order, interleaved call by call (torch, cyconv,
torch, ...) as benchmarks/run.py times them, and prints medians. With
``--orders`` it runs ``--procs`` processes of each order, alternating, and
prints each case's median per order and the ratios cyconv / torch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/import_order.py --orders

``--libs`` prints (to stderr) which OpenMP runtime and BLAS libraries the
process mapped and how much CPU the process burns while its calling thread
sleeps 50 ms after a torch call, a cyconv call and a NumPy sgemm: the
threads that keep spinning after each library's calls.
"""
import argparse
import json
import subprocess
import sys
import time


def mapped(words):
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if any(w in line for w in words)})


def spin_after(calls):
    """{name: median CPU ms the process burns in 50 ms of sleep right after calling it}."""
    import numpy as np
    burnt = {}
    for name, fn in calls.items():
        got = []
        for _ in range(5):
            fn()
            start = time.process_time()
            time.sleep(0.05)
            got.append((time.process_time() - start) * 1e3)
        burnt[name] = float(np.median(got))
    return burnt


def run_one(first, rounds, libs=False):
    if first == "torch":
        import torch
        import cyconv
    else:
        import cyconv
        import torch
    import numpy as np
    rng = np.random.default_rng(0)
    cases = {}
    for name, (n, c, h, k, ks, stride, pad) in {
            "stem": (8, 3, 224, 64, 7, 2, 3), "1x1": (8, 256, 28, 512, 1, 1, 0)}.items():
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        gy = rng.standard_normal(cyconv.conv2d(x, w, stride=stride, padding=pad).shape,
                                 dtype=np.float32)
        tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
        cases[f"{name} fwd torch"] = (
            lambda tx=tx, tw=tw, s=stride, p=pad: torch.nn.functional.conv2d(tx, tw, None, s, p))
        cases[f"{name} fwd cyconv"] = (
            lambda x=x, w=w, s=stride, p=pad: cyconv.conv2d(x, w, stride=s, padding=p))
        cases[f"{name} bwd torch"] = (
            lambda tx=tx, tw=tw, tgy=tgy, s=stride, p=pad: torch.ops.aten.convolution_backward(
                tgy, tx, tw, None, [s] * 2, [p] * 2, [1, 1], False, [0, 0], 1,
                [True, True, False]))
        cases[f"{name} bwd cyconv"] = (
            lambda x=x, w=w, gy=gy, s=stride, p=pad: cyconv.conv2d_backward(
                gy, x, w, stride=s, padding=p, output_mask=(True, True, False)))
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    cases["sgemm 2048 numpy"] = lambda: a @ a
    times = {key: [] for key in cases}
    for fn in cases.values():  # warm up
        for _ in range(3):
            fn()
    for _ in range(rounds):
        for key, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    if libs:
        print(*mapped(("omp", "blas", "mkl")), sep="\n", file=sys.stderr)
        spin = spin_after({key: cases[key] for key in
                           ("stem fwd torch", "stem fwd cyconv", "sgemm 2048 numpy")})
        spin["nothing"] = spin_after({"nothing": lambda: None})["nothing"]
        for key, ms in spin.items():
            print(f"after {key:<18}: {ms:5.1f} ms CPU in 50 ms of sleep", file=sys.stderr)
    return {key: float(np.median(v)) for key, v in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", choices=("torch", "cyconv"), default="cyconv")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--orders", action="store_true")
    parser.add_argument("--procs", type=int, default=3)
    parser.add_argument("--libs", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.orders:
        got = {"cyconv": [], "torch": []}
        for i in range(args.procs):
            # Each order goes first in every other pair: a drift hits both alike.
            for first in (("cyconv", "torch") if i % 2 == 0 else ("torch", "cyconv")):
                out = subprocess.run([sys.executable, __file__, "--first", first, "--json",
                                      "--rounds", str(args.rounds)],
                                     check=True, capture_output=True, text=True).stdout
                got[first].append(json.loads(out))
        import numpy as np
        print(f"{'case':<22} {'cyconv first':>14} {'torch first':>14}  (ms, median of "
              f"{args.procs} processes' medians)")
        for key in got["cyconv"][0]:
            med = [np.median([r[key] for r in got[f]]) * 1e3 for f in got]
            print(f"{key:<22} {med[0]:14.2f} {med[1]:14.2f}")
            if key.endswith(" cyconv"):
                # Within each process, then the median over processes.
                ratio = [np.median([r[key] / r[key[:-6] + "torch"] for r in got[f]])
                         for f in got]
                print(f"{'  ratio to torch':<22} {ratio[0]:14.2f} {ratio[1]:14.2f}")
        return
    result = run_one(args.first, args.rounds, args.libs)
    if args.json:
        print(json.dumps(result))
    else:
        for key, t in result.items():
            print(f"{key:<22} {t * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
