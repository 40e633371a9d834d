import numpy as np
from numpy.typing import NDArray

def conv2d_forward(
    x: NDArray, weight: NDArray, bias: NDArray, out: NDArray,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
) -> None: ...
