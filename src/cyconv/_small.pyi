from typing import Any

import numpy as np
from numpy.typing import NDArray

MODES: tuple[str, str, str]
PAD_MODES: tuple[str, str, str, str, str]

def geometry(mode: int, flip: bool, h: int, w: int, kh: int, kw: int) -> tuple[int, int, int, int]: ...
def filter2d(
    in1: Any, in2: Any, mode: Any, boundary: Any, fillvalue: Any, method: Any, flip: bool,
) -> NDArray[np.generic] | None: ...
def pad(
    image: NDArray[np.floating], top: int, bottom: int, left: int, right: int, mode: int,
    cval: float,
) -> NDArray[np.floating]: ...
def conv2d(
    input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
    padding_mode: Any, method: Any,
) -> NDArray[np.floating] | None: ...
def truncate_to_int64(sums: NDArray[np.float64]) -> NDArray[np.int64] | None: ...
