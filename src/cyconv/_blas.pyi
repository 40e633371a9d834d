from numpy.typing import NDArray

def _gemm_memview(
    trans_a: bool, trans_b: bool, alpha: complex, a: NDArray, b: NDArray,
    beta: complex, c: NDArray,
) -> None: ...
