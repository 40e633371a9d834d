from numpy.typing import NDArray

def transform_kernels(w: NDArray, g_mat: NDArray, u: NDArray, n_threads: int) -> None: ...
def conv2d_forward(
    x: NDArray, u: NDArray, bias: NDArray, has_bias: bool, out: NDArray,
    bt: NDArray, at: NDArray, ph: int, pw: int, groups: int, block: int,
    scratch: NDArray, n_threads: int,
) -> bool: ...
