"""A short correctness check of an installed cyconv, for wheels and emulated CPUs.

    python tools/wheel_smoke.py [LEVEL]

Checks the dispatched kernels (filtering, depthwise, pooling, the
register-blocked stem kernels, Winograd's forward and weight gradient)
against SciPy and NumPy, and, given LEVEL, that cyconv loaded that SIMD level (a CPU
emulated by ``qemu-x86_64 -cpu Haswell`` must get 'avx2'). Run from outside
the source tree so that the installed cyconv is the one imported.
"""
import sys

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

import cyconv
from cyconv import _dispatch
from cyconv._transpose_winograd import up2_layer


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
        check_layers(rng, dtype, rtol)


def conv2d_reference(x, w, stride, pad):
    """conv2d by its definition: windows of the zero-padded input times the kernels."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwpq,kcpq->nkhw", windows, w)


def check_layers(rng, dtype, rtol):
    """The stem-like layer 'auto' runs by _regblock, and Winograd's three kernels."""
    name = np.dtype(dtype).name
    x = rng.standard_normal((2, 3, 37, 41)).astype(dtype)
    w = rng.standard_normal((16, 3, 7, 7)).astype(dtype)
    check(f"stem 7x7/2 (register-blocked) {name}", cyconv.conv2d(x, w, stride=2, padding=3),
          conv2d_reference(x, w, 2, 3), rtol)
    x = rng.standard_normal((2, 16, 13, 11)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    # Winograd rounds: compare to the error bound's scale (64 eps of |x| * |w|).
    scale = conv2d_reference(np.abs(x), np.abs(w), 1, 1).max()
    tol = 64 * np.finfo(dtype).eps * scale
    np.testing.assert_allclose(cyconv.conv2d(x, w, padding=1, method="winograd"),
                               conv2d_reference(x, w, 1, 1), rtol=0, atol=tol)
    print(f"ok  winograd 3x3 forward {name}")
    scale = conv2d_reference(np.abs(x), np.abs(w), 2, 1).max()
    np.testing.assert_allclose(cyconv.conv2d(x, w, stride=2, padding=1, method="winograd"),
                               conv2d_reference(x, w, 2, 1), rtol=0,
                               atol=64 * np.finfo(dtype).eps * scale)
    print(f"ok  winograd 3x3/2 forward {name}")
    gy = rng.standard_normal((2, 16, 13, 11)).astype(dtype)
    _, gw, _ = cyconv.conv2d_backward(gy, x, w, padding=1, method="winograd",
                                      output_mask=(False, True, False))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.einsum("nkhw,nchwpq->kcpq", gy,
                     sliding_window_view(xp, (3, 3), axis=(2, 3)))
    scale = np.einsum("nkhw,nchwpq->kcpq", np.abs(gy),
                      sliding_window_view(np.abs(xp), (3, 3), axis=(2, 3))).max()
    np.testing.assert_allclose(gw, want, rtol=0, atol=64 * np.finfo(dtype).eps * scale)
    print(f"ok  winograd 3x3 weight gradient {name}")
    # conv_transpose2d's 4x4/2 by F(4x4, 2x2) (16 channels and kernels, enough windows):
    # against the definition, each input pixel stamping the kernel.
    x = rng.standard_normal((4, 16, 28, 28)).astype(dtype)
    w = rng.standard_normal((16, 16, 4, 4)).astype(dtype)
    want = np.zeros((4, 16, 58, 58))
    scale = np.zeros((4, 16, 58, 58))
    for p in range(4):
        for q in range(4):
            want[:, :, p:p + 56:2, q:q + 56:2] += np.einsum("nchw,ck->nkhw", x, w[:, :, p, q])
            scale[:, :, p:p + 56:2, q:q + 56:2] += np.einsum("nchw,ck->nkhw", np.abs(x),
                                                             np.abs(w[:, :, p, q]))
    # The kernel itself, whatever 'auto' would choose on this many threads.
    got = up2_layer("wheel_smoke", x, w, None, np.dtype(dtype), (4, 16, 56, 56), (1, 1), 1)
    assert got is not None, "F(4x4, 2x2) found a non-finite value"
    np.testing.assert_allclose(got, want[:, :, 1:57, 1:57], rtol=0,
                               atol=64 * np.finfo(dtype).eps * scale.max())
    print(f"ok  winograd 4x4/2 conv_transpose2d {name}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
