import numpy as np
from numpy.typing import NDArray

def conv2d_forward(
    x: NDArray, weight: NDArray, bias: NDArray, out: NDArray,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
) -> None: ...
def conv2d_grad_weight(
    x: NDArray, grad_out: NDArray, grad_weight: NDArray,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
) -> None: ...
def conv2d_grad_input(
    grad_out: NDArray, weight: NDArray, grad_input: NDArray,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
) -> None: ...
def depthwise_forward(
    x: NDArray, weight: NDArray, bias: NDArray, out: NDArray,
    ph: int, pw: int, dh: int, dw: int, scratch: NDArray,
) -> None: ...
def depthwise_backward(
    x: NDArray, grad_out: NDArray, flipped: NDArray, grad_input: NDArray | None,
    partial: NDArray, ph: int, pw: int, dh: int, dw: int, scratch: NDArray,
) -> None: ...
