"""cyconv: fast 2-D convolution on the CPU.

Direct (nested-sum) and im2col + BLAS GEMM kernels written in Cython, under a
``torch.nn.functional``-style API for batched multi-channel convolution and
``scipy.signal``-compatible image filtering.
"""
# The thread count's cap and the fork handler are set up before any kernel runs.
from cyconv import _threads  # noqa: F401
from cyconv._backward import conv2d_backward
from cyconv._conv import conv2d, output_shape
from cyconv._operator import conv_matrix, conv_operator
from cyconv._pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from cyconv._signal import convolve2d, correlate2d
from cyconv._transpose import conv_transpose2d, conv_transpose2d_backward
from cyconv._unfold import col2im, im2col

__version__ = "0.1.0"

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_matrix",
    "conv_operator",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "convolve2d",
    "correlate2d",
    "im2col",
    "max_pool2d",
    "max_pool2d_backward",
    "output_shape",
]
