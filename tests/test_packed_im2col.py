"""im2col's gradients on the packed GEMM, which conv2d_backward's 'auto' runs for small weights.

cyconv._pointwise.packed_gemms() hands the per-SIMD-level packed GEMM
(_wgemm.h) to _im2col's gradient drivers (PACKED_IM2COL_WEIGHT_BYTES in
_backward.py): the input gradient multiplies the transposed weight by
grad_output and folds (gathering from one image's columns, or block by
block into a zeroed array when the workspace is small); the weight gradient
multiplies grad_output's pixels by the unrolled columns, packed transposed.
The shapes take strides, padding, dilation, groups, a 1x1 kernel at stride
2, stem-like and 5x5 layers, GEMM rows around the 8-row tile and depths
around the 128-deep chunk, batches 1..5, both dtypes; CI runs this file at
every SIMD level. Reference: method='direct' (C loops that share nothing
with the GEMMs).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import cyconv
from cyconv import _backward, _im2col

from _reference import TOL

FLOATS = (np.float32, np.float64)

# (input, weight, parameters): layers whose gradients 'auto' gives to im2col.
CASES = [
    pytest.param((2, 3, 9, 9), (8, 3, 3, 3), dict(stride=2, padding=1), id="3x3-stride2"),
    pytest.param((1, 4, 13, 11), (8, 2, 3, 3), dict(stride=(2, 1), padding=(1, 2), groups=2),
                 id="groups-uneven-stride"),
    pytest.param((3, 5, 10, 12), (6, 5, 5, 5), dict(padding=2), id="5x5-stride1"),
    pytest.param((2, 6, 15, 15), (7, 6, 1, 1), dict(stride=2), id="1x1-stride2"),
    pytest.param((5, 3, 20, 20), (17, 3, 7, 7), dict(stride=2, padding=3), id="stem"),
    pytest.param((1, 16, 12, 12), (24, 8, 3, 3), dict(stride=2, padding=1, dilation=2,
                                                      groups=2), id="dilated-groups"),
    pytest.param((2, 20, 16, 16), (33, 20, 3, 3), dict(stride=2, padding=1),
                 id="deeper-than-a-chunk"),
]


def _data(xs, ws, params, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    gy = rng.standard_normal(cyconv.output_shape(xs, ws, **params)).astype(dtype)
    return x, w, gy


def _spy_packed(monkeypatch):
    """(driver, packed capsule or None) for each im2col gradient driver called from now on."""
    calls = []
    for name in ("conv2d_grad_input", "conv2d_grad_weight"):
        real = getattr(_im2col, name)

        def spy(*args, real=real, name=name, **kwargs):
            calls.append((name, kwargs.get("packed")))
            return real(*args, **kwargs)

        monkeypatch.setattr(_im2col, name, spy)
    return calls


def _assert_gradients_close(got, expected, dtype):
    tol = TOL[np.dtype(dtype)]
    for a, e in zip(got, expected):
        assert a.dtype == dtype
        # The weight gradient and bias sum over every pixel of every image.
        assert_allclose(a, e, rtol=tol["rtol"], atol=tol["atol"] * max(1, np.abs(e).max()))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("xs", "ws", "params"), CASES)
def test_auto_gradients_match_direct(monkeypatch, xs, ws, params, dtype):
    x, w, gy = _data(xs, ws, params, dtype)
    calls = _spy_packed(monkeypatch)
    got = cyconv.conv2d_backward(gy, x, w, **params)
    assert {name for name, _ in calls} == {"conv2d_grad_input", "conv2d_grad_weight"}
    assert all(packed is _backward.PACKED_GEMMS[np.dtype(dtype).name] for _, packed in calls)
    _assert_gradients_close(got, cyconv.conv2d_backward(gy, x, w, **params, method="direct"),
                            dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("xs", "ws", "params"), CASES)
def test_blocks_of_three_pixels(monkeypatch, xs, ws, params, dtype):
    # A workspace of 3 columns per thread: the input gradient folds block by
    # block into a zeroed array, the weight gradient adds block by block.
    x, w, gy = _data(xs, ws, params, dtype, seed=1)
    q_len = w[0].size
    monkeypatch.setattr(cyconv._conv, "WORKSPACE_BYTES", 3 * q_len * np.dtype(dtype).itemsize)
    got = cyconv.conv2d_backward(gy, x, w, **params)
    _assert_gradients_close(got, cyconv.conv2d_backward(gy, x, w, **params, method="direct"),
                            dtype)


def test_large_weights_and_explicit_im2col_keep_openblas(monkeypatch):
    x, w, gy = _data((2, 8, 9, 9), (16, 8, 3, 3), dict(stride=2, padding=1), np.float32)
    calls = _spy_packed(monkeypatch)
    cyconv.conv2d_backward(gy, x, w, stride=2, padding=1, method="im2col")
    assert [packed for _, packed in calls] == [None, None]
    calls.clear()
    monkeypatch.setattr(_backward, "PACKED_IM2COL_WEIGHT_BYTES", w.nbytes - 1)
    cyconv.conv2d_backward(gy, x, w, stride=2, padding=1)
    assert [packed for _, packed in calls] == [None, None]
    calls.clear()
    monkeypatch.setattr(_backward, "PACKED_IM2COL_WEIGHT_BYTES", w.nbytes)
    cyconv.conv2d_backward(gy, x, w, stride=2, padding=1)
    assert all(packed is not None for _, packed in calls) and len(calls) == 2


def test_the_rule_reads_the_weight_size_and_dtype():
    kernels = _backward.PACKED_IM2COL_WEIGHT_BYTES // 4 // 64
    at_limit = np.zeros((kernels, 64, 1, 1), np.float32)
    assert at_limit.nbytes == _backward.PACKED_IM2COL_WEIGHT_BYTES
    assert _backward._packed_gemm(at_limit) is _backward.PACKED_GEMMS["float32"]
    assert _backward._packed_gemm(np.zeros((kernels + 1, 64, 1, 1), np.float32)) is None
    half = at_limit[:kernels // 2].astype(np.float64)
    assert _backward._packed_gemm(half) is _backward.PACKED_GEMMS["float64"]
    assert _backward._packed_gemm(np.zeros((4, 4, 3, 3), np.longdouble)) is None


def test_a_capsule_of_the_other_dtype_is_refused(monkeypatch):
    # The capsule's name is its C type: a float64 GEMM never runs on float32.
    x, w, gy = _data((1, 4, 9, 9), (8, 4, 3, 3), dict(stride=2), np.float32)
    monkeypatch.setitem(_backward.PACKED_GEMMS, "float32", _backward.PACKED_GEMMS["float64"])
    with pytest.raises(ValueError, match="PyCapsule"):
        cyconv.conv2d_backward(gy, x, w, stride=2)
