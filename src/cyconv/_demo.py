"""The course exercise worked through with cyconv (``python -m cyconv demo``)."""
import textwrap

import numpy as np

import cyconv
from cyconv._cli_bench import median_time

# The exercise's image and kernel (exercise-conv-nets.txt, part 1).
EXERCISE_IMAGE = np.array([[1, 1, -2, 0, 1],
                           [1, 0, 0, 2, 1],
                           [0, 1, 0, 5, -1],
                           [-2, 1, 0, -1, 1],
                           [0, 1, 0, 5, -1]])
EXERCISE_KERNEL = np.array([[0, 1, 1],
                            [1, 0, 0],
                            [0, 1, 0]])


def _show(title, value):
    print(f"{title}\n{textwrap.indent(np.array2string(np.asarray(value)), '    ')}\n")


def exercise():
    """Print the exercise's questions answered with cyconv."""
    image, kernel = EXERCISE_IMAGE, EXERCISE_KERNEL
    print("# Exercise 08: Conv Nets, with cyconv (stride 2, padding 0)\n")
    shape = cyconv.output_shape((3, 200, 200), (12323, 3, 40, 40), stride=2)
    print("1a. A 200x200x3 image through 12323 kernels of 40x40x3 gives an output of\n"
          f"    cyconv.output_shape((3, 200, 200), (12323, 3, 40, 40), stride=2) = {shape}\n"
          "    i.e. 81x81 with depth 12323.\n")
    _show("1b. I * K as a sum (method='direct'):",
          cyconv.conv2d(image, kernel, stride=2, method="direct"))
    cols = cyconv.im2col(image, 3, stride=2)
    _show("2a. The im2col matrix of I: one 3x3 patch per column", cols)
    _show("2b. I * K as a matrix multiplication, K.ravel() @ im2col(I), reshaped:",
          (kernel.ravel() @ cols).reshape(2, 2))
    grad_out = np.ones((2, 2))
    _, grad_kernel, grad_bias = cyconv.conv2d_backward(grad_out, image, kernel, stride=2)
    _show("1c/2c. dL/dK with dL/d(I*K) = ones: the sum of the patches (eq. 2),\n"
          "       equal to im2col(I) @ ones:", grad_kernel)
    grad_image, _, _ = cyconv.conv2d_backward(grad_out, image, kernel, stride=2,
                                              output_mask=(True, False, False))
    _show("    dL/dI: each output gradient scattered back through K:", grad_image)
    _show("2d. Max pooling of I, 3x3 kernel, stride 2:",
          cyconv.max_pool2d(image, 3, stride=2))
    print(f"3a. A bias b adds b to every output: (I * K + b)_ij; dL/db = sum of dL/dO "
          f"= {grad_bias[0]:g} here.\n")
    image3 = np.stack([image, image.T])             # (C=2, 5, 5)
    kernel3 = np.stack([kernel, np.eye(3, dtype=int)])[None]  # (K=1, C=2, 3, 3)
    _show("3b. 3-D: a 5x5x2 image with a 3x3x2 kernel, sum over channels too:",
          cyconv.conv2d(image3, kernel3, stride=2))
    _show("    ... equal to kernel.ravel() @ im2col(image):",
          (kernel3.ravel() @ cyconv.im2col(image3, 3, stride=2)).reshape(1, 2, 2))
    _show("3c. Correlation slides K as it is; convolution flips it first.\n"
          "    correlate2d(I, K, 'valid'):", cyconv.correlate2d(image, kernel, "valid"))
    _show("    convolve2d(I, K, 'valid') == correlate2d(I, K[::-1, ::-1], 'valid'):",
          cyconv.convolve2d(image, kernel, "valid"))


def timing(size=512):
    """Time cyconv.correlate2d against scipy.signal.correlate2d."""
    import scipy.signal

    rng = np.random.default_rng(0)
    image = rng.standard_normal((size, size))
    print(f"# Timing: correlate2d on a {size}x{size} float64 image, mode='same' (median ms)\n")
    print(f"{'kernel':>7} {'scipy':>9} {'cyconv':>9} {'speed-up':>9}")
    for k in (3, 5, 9):
        kernel = rng.standard_normal((k, k))
        np.testing.assert_allclose(cyconv.correlate2d(image, kernel, "same"),
                                   scipy.signal.correlate2d(image, kernel, "same"),
                                   rtol=1e-9, atol=1e-9)
        t_scipy = 1e3 * median_time(lambda: scipy.signal.correlate2d(image, kernel, "same"), 3, 0.05)
        t_ours = 1e3 * median_time(lambda: cyconv.correlate2d(image, kernel, "same"), 7, 0.05)
        print(f"{k:>4}x{k:<2} {t_scipy:9.2f} {t_ours:9.2f} {t_scipy / t_ours:8.1f}x")
    print()


def main():
    exercise()
    timing()
