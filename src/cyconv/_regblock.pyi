from numpy.typing import NDArray

def vector_bytes() -> int: ...
def conv2d_forward(
    x: NDArray, weight: NDArray, bias: NDArray, out: NDArray,
    sh: int, sw: int, ph: int, pw: int, groups: int, band: int, hb: int, ws: int,
    off: NDArray, scratch: NDArray,
) -> None: ...
