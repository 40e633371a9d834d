"""The course exercise (Exercise 08: Conv Nets) that cyconv comes from.

Its hand-computed numbers are the specification here: stride s = 2, padding
p = 0 and the definition

    (I * K)_ij = sum_{m=1}^{k1} sum_{n=1}^{k2} K_mn * I_{s(i-1)+m, s(j-1)+n}

(cross-correlation: the kernel is not flipped).
"""
import numpy as np
import pytest
import scipy.signal
from numpy.testing import assert_array_equal

import cyconv

from _reference import conv2d_ref

I = np.array([[1, 1, -2, 0, 1],
              [1, 0, 0, 2, 1],
              [0, 1, 0, 5, -1],
              [-2, 1, 0, -1, 1],
              [0, 1, 0, 5, -1]])
K = np.array([[0, 1, 1],
              [1, 0, 0],
              [0, 1, 0]])

# By hand (1-based indices as in the exercise). K's non-zero taps are
# K_12 = K_13 = K_21 = K_32 = 1, so with r = s(i-1), c = s(j-1):
#   (I * K)_ij = I_{r+1,c+2} + I_{r+1,c+3} + I_{r+2,c+1} + I_{r+3,c+2}
#   (1,1): r=0, c=0: I_12 + I_13 + I_21 + I_32 = 1 + (-2) + 1 + 1 = 1
#   (1,2): r=0, c=2: I_14 + I_15 + I_23 + I_34 = 0 + 1 + 0 + 5  = 6
#   (2,1): r=2, c=0: I_32 + I_33 + I_41 + I_52 = 1 + 0 + (-2) + 1 = 0
#   (2,2): r=2, c=2: I_34 + I_35 + I_43 + I_54 = 5 + (-1) + 0 + 5 = 9
# Output size: c1 = c2 = (5 + 2*0 - 3)/2 + 1 = 2.
HAND = np.array([[1, 6],
                 [0, 9]])

METHODS = ("direct", "im2col", "auto")


def definition(image, kernel, s):
    """Equation (1) of the exercise, index for index (1-based, then shifted)."""
    k1, k2 = kernel.shape
    c1 = (image.shape[0] - k1) // s + 1
    c2 = (image.shape[1] - k2) // s + 1
    out = np.zeros((c1, c2))
    for i in range(1, c1 + 1):
        for j in range(1, c2 + 1):
            out[i - 1, j - 1] = sum(kernel[m - 1, n - 1] * image[s * (i - 1) + m - 1,
                                                                s * (j - 1) + n - 1]
                                    for m in range(1, k1 + 1) for n in range(1, k2 + 1))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_convolution_as_a_sum(method):
    out = cyconv.conv2d(I, K, stride=2, padding=0, method=method)
    assert out.dtype == np.float64  # integer inputs are computed as float64
    assert_array_equal(out, HAND)
    # The four sums written out, K_mn * I_.. row by row over the 3x3 window.
    o11 = (0 * 1 + 1 * 1 + 1 * -2
           + 1 * 1 + 0 * 0 + 0 * 0
           + 0 * 0 + 1 * 1 + 0 * 0)
    o12 = (0 * -2 + 1 * 0 + 1 * 1
           + 1 * 0 + 0 * 2 + 0 * 1
           + 0 * 0 + 1 * 5 + 0 * -1)
    o21 = (0 * 0 + 1 * 1 + 1 * 0
           + 1 * -2 + 0 * 1 + 0 * 0
           + 0 * 0 + 1 * 1 + 0 * 0)
    o22 = (0 * 0 + 1 * 5 + 1 * -1
           + 1 * 0 + 0 * -1 + 0 * 1
           + 0 * 0 + 1 * 5 + 0 * -1)
    assert_array_equal(out, [[o11, o12], [o21, o22]])
    assert_array_equal(out, definition(I, K, 2))


@pytest.mark.parametrize("method", METHODS)
def test_convolution_with_bias(method):
    # Question 3a: a bias b adds b to every output entry.
    assert_array_equal(cyconv.conv2d(I, K, 0.5, stride=2, method=method), HAND + 0.5)


def test_convolution_as_a_matrix_multiplication():
    cols = cyconv.im2col(I, 3, stride=2)
    # Each column is one 3x3 patch read row by row, in output order:
    # patch (1,1) = rows 1-3, columns 1-3; (1,2) = rows 1-3, columns 3-5;
    # (2,1) = rows 3-5, columns 1-3; (2,2) = rows 3-5, columns 3-5.
    by_hand = np.array([
        [1, 1, -2, 1, 0, 0, 0, 1, 0],
        [-2, 0, 1, 0, 2, 1, 0, 5, -1],
        [0, 1, 0, -2, 1, 0, 0, 1, 0],
        [0, 5, -1, 0, -1, 1, 0, 5, -1],
    ]).T
    assert cols.shape == (9, 4)
    assert_array_equal(cols, by_hand)
    patches = [I[r:r + 3, c:c + 3].ravel() for r in (0, 2) for c in (0, 2)]
    assert_array_equal(cols, np.stack(patches, axis=1))
    # I * K = K as a row vector times the patch matrix, reshaped to 2x2.
    assert_array_equal((K.ravel() @ cols).reshape(2, 2), HAND)


def test_output_dimensions_of_the_rgb_layer():
    # 200x200x3 image, 12323 kernels of 40x40x3, s = 2, p = 0:
    # c1 = c2 = (200 + 2*0 - 40)/2 + 1 = 81, depth = number of kernels.
    assert cyconv.output_shape((3, 200, 200), (12323, 3, 40, 40), stride=2) == (12323, 81, 81)
    assert cyconv.output_shape((1, 3, 200, 200), (12323, 3, 40, 40),
                               stride=2, padding=0) == (1, 12323, 81, 81)


@pytest.mark.parametrize("method", ["direct", "im2col"])
def test_rgb_image_in_nchw(method):
    # The same layer with 2 of the kernels, run: the exercise's image is
    # height x width x channels, cyconv wants (N, C, H, W).
    rng = np.random.default_rng(30)
    image_hwc = rng.integers(-2, 3, (200, 200, 3))
    kernels_hwc = rng.integers(-2, 3, (2, 40, 40, 3))
    x = image_hwc.transpose(2, 0, 1)[None]  # (1, 3, 200, 200), a strided view
    w = kernels_hwc.transpose(0, 3, 1, 2)   # (2, 3, 40, 40)
    out = cyconv.conv2d(x, w, stride=2, method=method)
    assert out.shape == (1, 2, 81, 81)
    assert_array_equal(out, conv2d_ref(x, w, stride=(2, 2)))  # integer sums: exact
    # One entry by equation (1), summed over the three channels.
    i, j = 40, 7
    window = image_hwc[2 * i:2 * i + 40, 2 * j:2 * j + 40, :]
    assert out[0, 1, i, j] == np.sum(kernels_hwc[1] * window)


# A 3-D toy example (question 3b): a 5x5x2 image and a 3x3x2 kernel. Channel 0
# is the exercise's I and K; channel 1 is the image I1_yx = 5y + x (0-based)
# with the kernel [[1, 0, 0], [0, 0, 0], [0, 0, -1]], which gives
# I1_{r,c} - I1_{r+2,c+2} = 5r + c - 5(r+2) - (c+2) = -12 at every position.
# The 3-D convolution sums over the channels: with s = 2,
#   [[1, 6], [0, 9]] + [[-12, -12], [-12, -12]] = [[-11, -6], [-12, -3]].
IMAGE_HWC = np.stack([I, np.arange(25).reshape(5, 5)], axis=-1)      # 5x5x2
KERNEL_HWC = np.stack([K, [[1, 0, 0], [0, 0, 0], [0, 0, -1]]], axis=-1)  # 3x3x2
HAND_3D = np.array([[-11, -6],
                    [-12, -3]])


@pytest.mark.parametrize("method", METHODS)
def test_3d_example_as_a_sum(method):
    x = IMAGE_HWC.transpose(2, 0, 1)            # (C, H, W) = (2, 5, 5)
    w = KERNEL_HWC.transpose(2, 0, 1)[None]     # (K, C, kh, kw) = (1, 2, 3, 3)
    out = cyconv.conv2d(x, w, stride=2, method=method)
    assert out.shape == (1, 2, 2)
    assert_array_equal(out[0], HAND_3D)
    # As a sum: the 2-D convolutions of the channels, added.
    per_channel = sum(definition(IMAGE_HWC[:, :, c], KERNEL_HWC[:, :, c], 2) for c in range(2))
    assert_array_equal(out[0], per_channel)


def test_3d_example_as_a_matrix_multiplication():
    x = IMAGE_HWC.transpose(2, 0, 1)
    cols = cyconv.im2col(x, 3, stride=2)
    # 18 rows: channel 0's nine taps, then channel 1's; one column per output.
    assert cols.shape == (18, 4)
    assert_array_equal(cols[:9], cyconv.im2col(I, 3, stride=2))
    k_vec = KERNEL_HWC.transpose(2, 0, 1).ravel()  # channel, row, column
    assert_array_equal((k_vec @ cols).reshape(2, 2), HAND_3D)


@pytest.mark.parametrize("method", METHODS)
def test_correlation_versus_convolution(method):
    # Question 3c. cyconv.conv2d is cross-correlation (the kernel is not
    # flipped); convolution flips the kernel in both axes. With padding 0 and
    # stride 1 both are SciPy's 'valid' mode.
    correlation = cyconv.conv2d(I, K, method=method)
    assert_array_equal(correlation, scipy.signal.correlate2d(I, K, mode="valid"))
    # By hand (0-based), taps K_01, K_02, K_10, K_21: e.g. at (1, 1)
    # I_12 + I_13 + I_21 + I_32 = 0 + 2 + 1 + 0 = 3.
    assert_array_equal(correlation, [[1, -2, 6], [1, 3, 2], [0, 6, 9]])
    # Stride 2 keeps every second row and column of the stride-1 result.
    assert_array_equal(correlation[::2, ::2], HAND)

    flipped = K[::-1, ::-1]  # [[0, 1, 0], [0, 0, 1], [1, 1, 0]]
    convolution = cyconv.conv2d(I, flipped, method=method)
    assert_array_equal(convolution, scipy.signal.convolve2d(I, K, mode="valid"))
    # By hand at (0, 0), taps of the flipped kernel (0,1), (1,2), (2,0), (2,1):
    # I_01 + I_12 + I_20 + I_21 = 1 + 0 + 0 + 1 = 2, not the correlation's 1.
    assert convolution[0, 0] == 2
    assert not np.array_equal(convolution, correlation)
