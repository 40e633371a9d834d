"""float32 error of the Winograd weight gradient (and im2col's) against float64, in eps units.

Relative to the largest weight gradient of the absolute values, the scale
conv2d_backward's docstring states its bound in. Usage: python benchmarks/wgrad_accuracy.py
"""
import numpy as np, cyconv
eps = np.finfo(np.float32).eps
rng = np.random.default_rng(0)
for c, n, hw in [(3, 4, 28), (16, 4, 28), (64, 2, 28), (256, 2, 14), (512, 2, 14), (64, 8, 56)]:
    for scale in (1e-3, 1.0, 1e3):
        for dist in ("normal", "uniform", "heavy"):
            if dist == "normal":
                x = rng.standard_normal((n, c, hw, hw)); gy = rng.standard_normal((n, 8, hw, hw))
            elif dist == "uniform":
                x = rng.random((n, c, hw, hw)); gy = rng.random((n, 8, hw, hw))
            else:
                x = rng.standard_cauchy((n, c, hw, hw)).clip(-1e3, 1e3); gy = rng.standard_t(2, (n, 8, hw, hw))
            x = (x * scale).astype(np.float32); gy = (gy * scale).astype(np.float32)
            w = np.zeros((8, c, 3, 3), np.float32)
            ref = cyconv.conv2d_backward(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64), padding=1, method="direct", output_mask=(False, True, False))[1]
            sums = cyconv.conv2d_backward(np.abs(gy).astype(np.float64), np.abs(x).astype(np.float64), w.astype(np.float64), padding=1, method="direct", output_mask=(False, True, False))[1]
            res = []
            for m in ("winograd", "im2col"):
                got = cyconv.conv2d_backward(gy, x, w, padding=1, method=m, output_mask=(False, True, False))[1]
                res.append(np.abs(got - ref).max() / sums.max() / eps)
            print(f"C{c} N{n} {hw}x{hw} scale {scale:g} {dist}: winograd {res[0]:.2f} eps, im2col {res[1]:.2f} eps", flush=True)
