"""cyconv: fast 2-D convolution on the CPU.

Direct (nested-sum) and im2col + BLAS GEMM kernels written in Cython, under a
``torch.nn.functional``-style API for batched multi-channel convolution and
``scipy.signal``-compatible image filtering.
"""
from cyconv._backward import conv2d_backward
from cyconv._conv import conv2d, output_shape
from cyconv._unfold import col2im, im2col

__version__ = "0.1.0"

__all__ = [
    "col2im",
    "conv2d",
    "conv2d_backward",
    "im2col",
    "output_shape",
]
