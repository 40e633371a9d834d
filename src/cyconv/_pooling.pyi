from numpy.typing import NDArray

def max_pool2d_forward(
    x: NDArray, out: NDArray, indices: NDArray,
    kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
) -> None: ...
def max_pool2d_backward(grad_out: NDArray, indices: NDArray, grad_in: NDArray) -> int: ...
def avg_pool2d_forward(
    x: NDArray, out: NDArray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
    count_include_pad: bool, divisor: int,
) -> None: ...
def avg_pool2d_backward(
    grad_out: NDArray, grad_in: NDArray, kh: int, kw: int, sh: int, sw: int,
    ph: int, pw: int, count_include_pad: bool, divisor: int,
) -> None: ...
