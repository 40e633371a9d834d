from numpy.typing import NDArray

def conv2d_forward(
    x: NDArray, w_taps: NDArray, bias: NDArray, has_bias: bool, out: NDArray,
    kh: int, kw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
    padded: NDArray, scratch: NDArray, n_threads: int,
) -> None: ...
