"""Type aliases shared by the public signatures (one definition for each)."""
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

# An int, or a pair (h, w): stride, dilation, kernel_size, pooling padding.
IntPair = int | tuple[int, int]
# conv2d's padding: an int or pair of ints, or a string asking for it.
Padding = int | tuple[int, int] | Literal["valid", "same"]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
# A shape such as ndarray.shape: (N, C, H, W), (C, H, W) or (H, W).
Shape = tuple[int, ...]
# float32 or float64: what the deep-learning functions return.
FloatArray = npt.NDArray[np.floating[Any]]
IndexArray = npt.NDArray[np.int64]
# method= of conv2d, correlate2d and convolve2d ('fft' where it applies).
Method = Literal["auto", "direct", "im2col", "fft"]
# method= of conv2d: also 'winograd' (3x3 kernels, stride 1, dilation 1).
ConvMethod = Literal["auto", "direct", "im2col", "fft", "winograd"]
