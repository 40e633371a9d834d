"""The stride-1 GEMMs of method='auto' (_shifted.pyx): one GEMM per kernel tap.

They read several zero-padded images stacked in one buffer and accumulate
into an output block; the rows and columns that straddle two image rows or
two images are dropped. The block sizes are module globals read at call time:
shrinking them makes a small problem cross every boundary (one row per block,
blocks that end inside an image or between two, a last block of fewer images).
'auto' leaves images this small to im2col (SHIFTED_MAX_WASTE): the tests lift
that limit, but for the one that checks it.
References: tests/_reference.py (the sum by NumPy), and the direct and im2col
methods, which share no code with these GEMMs.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import cyconv
import cyconv._conv
import cyconv._shifted_gemm

from _reference import TOL, conv2d_api_ref

FLOATS = (np.float32, np.float64)

# (input NCHW, weight (K, C/groups, kh, kw), parameters): all stride 1 and at
# least 4 kernels per group, so 'auto' takes the shifted GEMMs.
CASES = [
    pytest.param((5, 3, 6, 7), (4, 3, 3, 3), dict(padding=1), id="pad1-batch5"),
    pytest.param((3, 4, 5, 9), (8, 2, 2, 3), dict(padding="same", dilation=(2, 1), groups=2),
                 id="same-even-dilated-groups"),
    pytest.param((2, 2, 7, 6), (4, 2, 3, 2), dict(padding=(0, 3)), id="pad-beyond-kernel-cols"),
    pytest.param((2, 2, 4, 5), (5, 2, 2, 2), dict(padding=(3, 1)), id="pad-beyond-kernel-rows"),
    pytest.param((3, 2, 6, 6), (4, 2, 3, 3), dict(padding=2, padding_mode="reflect"),
                 id="reflect"),
    pytest.param((2, 3, 5, 5), (6, 3, 5, 5), {}, id="valid-1x1-output"),
]

# (images per buffer, output rows per block) forced through the byte limits.
BLOCKS = [(1, 1), (2, 3), (4, 100)]
RULE_WASTE = cyconv._shifted_gemm.SHIFTED_MAX_WASTE
# Those whose input gradient is a stride-1 forward (zero padding within the kernel).
GRAD_CASES = [case for case in CASES
              if case.id not in ("pad-beyond-kernel-cols", "pad-beyond-kernel-rows", "reflect")]


@pytest.fixture(autouse=True)
def _shifted_on_small_images(monkeypatch):
    monkeypatch.setattr(cyconv._shifted_gemm, "SHIFTED_MAX_WASTE", float("inf"))


def _set_blocks(monkeypatch, geom_cell, images, rows, kernels_per_group, wp, itemsize):
    monkeypatch.setattr(cyconv._shifted_gemm, "SHIFTED_IMAGES_BYTES", images * geom_cell * itemsize)
    monkeypatch.setattr(cyconv._shifted_gemm, "SHIFTED_BLOCK_BYTES",
                        rows * kernels_per_group * wp * itemsize)


def _cell(xs, ws, params):
    """(C*Hp*Wp of the largest direction, Wp of the forward): what the limits count."""
    geom = cyconv._conv.geometry("test", xs, ws, params.get("stride", 1),
                                 params.get("padding", 0), params.get("dilation", 1),
                                 params.get("groups", 1))
    hp, wp = cyconv._shifted_gemm.shifted_plane(geom, max(geom.ho, geom.height),
                                                max(geom.wo, geom.width))
    return geom, max(geom.channels, geom.kernels) * hp * wp


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("blocks", BLOCKS, ids=lambda b: f"img{b[0]}-rows{b[1]}")
@pytest.mark.parametrize(("xs", "ws", "params"), CASES)
def test_forward_matches_reference(monkeypatch, xs, ws, params, blocks, dtype):
    geom, cell = _cell(xs, ws, params)
    _, wp = cyconv._shifted_gemm.shifted_plane(geom, geom.ho, geom.wo)
    _set_blocks(monkeypatch, cell, *blocks, geom.kernels // geom.groups, wp,
                np.dtype(dtype).itemsize)
    assert cyconv._conv.choose_method(geom, np.dtype(dtype)) == "shifted"
    rng = np.random.default_rng(31)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    for bias in (None, b):
        out = cyconv.conv2d(x, w, bias, **params)
        assert out.dtype == dtype
        assert_allclose(out, conv2d_api_ref(x, w, bias, **params), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("blocks", BLOCKS, ids=lambda b: f"img{b[0]}-rows{b[1]}")
@pytest.mark.parametrize(("xs", "ws", "params"), GRAD_CASES)
def test_input_gradient_matches_im2col(monkeypatch, xs, ws, params, blocks, dtype):
    # The input gradient as the shifted forward of grad_output: what the
    # Winograd input gradient falls back to where a transformed tile
    # overflows ('auto' runs im2col's otherwise, see conv2d_backward).
    geom, cell = _cell(xs, ws, params)
    _, pad_top, pad_left = cyconv._conv.padding_plan("test", geom, "zeros")
    assert cyconv._backward._transposes_to_forward(geom, pad_top, pad_left)
    # The input gradient pads grad_output (K channels) to the input's size.
    _, wp = cyconv._shifted_gemm.shifted_plane(geom, geom.height, geom.width)
    kernels = max(geom.kernels, geom.channels) // geom.groups
    _set_blocks(monkeypatch, cell, *blocks, kernels, wp, np.dtype(dtype).itemsize)
    rng = np.random.default_rng(32)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    gy = rng.standard_normal(cyconv.output_shape(xs, ws, **params))
    expected = cyconv.conv2d_backward(gy, x, w, **params, method="im2col")[0]
    got = np.empty(xs, dtype)
    cyconv._backward._grad_input_as_forward(
        "test", gy.astype(dtype), cyconv._conv.weight4(w, geom).astype(dtype), got, geom,
        pad_top, pad_left, "shifted")
    assert_allclose(got, expected, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_backward_auto_takes_im2col_input_gradient(monkeypatch, dtype):
    # The shifted input gradient took 1.06-6.3x im2col's time
    # (benchmarks/shifted_rule.py): 'auto' runs im2col's on a shifted layer.
    calls = []
    monkeypatch.setattr(cyconv._backward, "run_shifted_forward",
                        lambda *args: calls.append("shifted"))
    rng = np.random.default_rng(33)
    x = rng.standard_normal((2, 4, 9, 9)).astype(dtype)
    w = rng.standard_normal((8, 4, 3, 3)).astype(dtype)
    gy = rng.standard_normal((2, 8, 9, 9)).astype(dtype)
    got = cyconv.conv2d_backward(gy, x, w, padding=1)
    assert calls == []
    expected = cyconv.conv2d_backward(gy, x, w, padding=1, method="im2col")
    for a, e in zip(got, expected):
        assert_allclose(a, e, **TOL[np.dtype(dtype)])


def test_auto_picks_shifted_only_where_it_applies(monkeypatch):
    f32 = np.dtype(np.float32)

    def pick(xs, ws, **params):
        geom = cyconv._conv.geometry("test", xs, ws, params.get("stride", 1),
                                     params.get("padding", 0), 1, params.get("groups", 1))
        return cyconv._conv.choose_method(geom, f32)

    monkeypatch.setattr(cyconv._shifted_gemm, "SHIFTED_MAX_WASTE", RULE_WASTE)
    assert pick((8, 64, 56, 56), (64, 64, 3, 3), padding=1) == "shifted"
    assert pick((8, 32, 56, 56), (64, 32, 5, 5), padding=2) == "shifted"  # 60*60 / 56*56
    # Small images: the padded border the GEMMs also compute costs more than
    # im2col's copy (16*16 for 14*14 pixels; 11*11 for 7*7).
    assert pick((8, 256, 14, 14), (256, 256, 3, 3), padding=1) == "im2col"
    assert pick((8, 128, 7, 7), (256, 128, 5, 5), padding=2) == "im2col"
    assert pick((8, 64, 56, 56), (64, 64, 3, 3), padding=1, stride=2) == "im2col"
    assert pick((8, 64, 56, 56), (64, 64, 1, 1)) == "pointwise"  # no copy either
    assert pick((8, 64, 56, 56), (64, 64, 1, 1), padding=1) == "im2col"
    assert pick((8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64) == "direct"
    # One image's padded cell above the limit: im2col's bounded blocks instead.
    monkeypatch.setattr(cyconv._shifted_gemm, "SHIFTED_IMAGES_BYTES", 64 * 58 * 58 * 4 - 1)
    assert pick((8, 64, 56, 56), (64, 64, 3, 3), padding=1) == "im2col"


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_stays_in_its_windows(dtype):
    # A NaN in one image reaches only that image's windows over it, not the
    # dropped rows between images nor the next image of the same GEMM.
    x = np.ones((3, 2, 5, 6), dtype)
    x[1, 0, 4, 5] = np.nan
    w = np.ones((4, 2, 3, 3), dtype)
    out = cyconv.conv2d(x, w, padding=1)
    ref = conv2d_api_ref(x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    assert np.isnan(out).sum() == 4 * 4
