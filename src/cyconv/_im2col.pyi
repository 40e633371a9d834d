from typing import Any

from numpy.typing import NDArray

def im2col(
    x: NDArray, cols: NDArray, kh: int, kw: int, wo: int,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
) -> None: ...
def conv2d_forward(
    x: NDArray, weight: NDArray, bias: NDArray, has_bias: bool, out: NDArray,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
    workspace: NDArray, phases: NDArray, n_threads: int, images: int = 1,
) -> None: ...
def phase_scratch(
    block: int, ho: int, wo: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
) -> int: ...
def col2im(
    cols: NDArray, x: NDArray, kh: int, kw: int, wo: int,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int,
) -> None: ...
def conv2d_grad_weight(
    x: NDArray, grad_out: NDArray, grad_weight: NDArray, kh: int, kw: int,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
    workspace: NDArray, phases: NDArray, n_threads: int, packed: Any = None,
) -> None: ...
def conv2d_grad_input(
    grad_out: NDArray, weight: NDArray, grad_input: NDArray,
    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
    tap_rows: NDArray | None, tap_cols: NDArray | None, workspace: NDArray, n_threads: int,
    packed: Any = None, weight_t: NDArray | None = None, images: int = 1,
) -> None: ...
def gather_workspace(cg: int, kh: int, kw: int, n_pos: int, w: int, sw: int) -> int: ...
