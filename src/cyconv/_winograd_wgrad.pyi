from numpy.typing import NDArray

def transformed_sums(
    x: NDArray, gy: NDArray, sums: NDArray, written: NDArray, bt: NDArray, g_mat: NDArray,
    groups: int, block: int, kernel_parts: int, pad_top: int, pad_left: int,
    scratch: NDArray, n_threads: int,
) -> None: ...
def weights_from_sums(sums: NDArray, at: NDArray, out: NDArray, n_threads: int) -> None: ...
