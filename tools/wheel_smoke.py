"""A short correctness check of an installed cyconv, for wheels and emulated CPUs.

    python tools/wheel_smoke.py [LEVEL]

Checks the dispatched kernels (filtering, depthwise, pooling) against SciPy
and NumPy, and, given LEVEL, that cyconv loaded that SIMD level (a CPU
emulated by ``qemu-x86_64 -cpu Haswell`` must get 'avx2'). Run from outside
the source tree so that the installed cyconv is the one imported.
"""
import sys

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

import cyconv
from cyconv import _dispatch


def check(name, got, want, rtol):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=name)
    print(f"ok  {name}")


def main(level=None):
    print(f"cyconv {cyconv.__version__} from {cyconv.__file__}: SIMD level {_dispatch.LEVEL} "
          f"(built: {', '.join(_dispatch.built())}; CPU runs: {', '.join(_dispatch.supported())})")
    if level is not None and _dispatch.LEVEL != level:
        sys.exit(f"expected SIMD level {level!r}, loaded {_dispatch.LEVEL!r}")
    rng = np.random.default_rng(1)
    for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        image = rng.standard_normal((67, 83)).astype(dtype)
        for size in (3, 5, 9):
            kernel = rng.standard_normal((size, size)).astype(dtype)
            check(f"correlate2d {np.dtype(dtype).name} {size}x{size} same",
                  cyconv.correlate2d(image, kernel, mode="same"),
                  scipy.signal.correlate2d(image, kernel, mode="same"), rtol)
        x = rng.standard_normal((2, 8, 29, 31)).astype(dtype)
        w = rng.standard_normal((8, 1, 3, 3)).astype(dtype)
        want = np.stack([[scipy.signal.correlate2d(x[n, c], w[c, 0], mode="same")
                          for c in range(8)] for n in range(2)])
        check(f"depthwise 3x3 {np.dtype(dtype).name}",
              cyconv.conv2d(x, w, padding=1, groups=8), want, rtol)
        windows = sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
        check(f"max_pool2d 3x3/2 {np.dtype(dtype).name}",
              cyconv.max_pool2d(x, 3, stride=2), windows.max(axis=(4, 5)), rtol)
        check(f"avg_pool2d 3x3/2 {np.dtype(dtype).name}",
              cyconv.avg_pool2d(x, 3, stride=2), windows.mean(axis=(4, 5)), rtol)


if __name__ == "__main__":
    main(*sys.argv[1:2])
