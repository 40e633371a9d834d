"""The depthwise kernels (groups == C == K, stride 1): forward and weight gradient.

Each thread copies a plane into a zero-padded buffer; the forward runs its
rows without border columns; the backward pads the gradient plane, runs the
input gradient's rows on it and reads it against the rows of the input for
the weight gradient (3x3 kernels), or reads the padded input and the
gradient as flat rows (columns past the output width zero). The widths below
cross the vector blocks of _rowblock.h (its vectors are the SIMD level's
registers: 4/8/16 float32 or 2/4/8 float64 lanes with SSE2/AVX2/AVX-512, and
passes of up to 8 of them; the suite runs at every level), the paddings reach past the kernel's extent, and the dilations
spread the taps. References: tests/_reference.py (the sum by NumPy) for the
forward, and im2col/col2im (no shared code) for the gradients.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import cyconv
import cyconv._conv

from _reference import TOL, conv2d_api_ref

FLOATS = (np.float32, np.float64)
WIDTHS = (1, 3, 5, 9, 16, 17, 40, 70)
PARAMS = [
    dict(padding=1), dict(padding="same", dilation=(2, 3)), dict(padding=(4, 0)),
    dict(padding=(0, 6)), dict(padding=2, padding_mode="reflect"),
]
IDS = ["pad1", "same-dilated", "pad-rows-beyond-kernel", "pad-cols-beyond-kernel", "reflect"]


def _cases(rng, dtype, params):
    """Depthwise problems of every width that the parameters allow."""
    for width in WIDTHS:
        for kernel in ((3, 3), (2, 5), (1, 1)):
            xs, ws = (2, 3, 7, width), (3, 1) + kernel
            shape_params = {k: v for k, v in params.items() if k != "padding_mode"}
            try:
                out_shape = cyconv.output_shape(xs, ws, groups=3, **shape_params)
            except ValueError:
                continue  # the kernel does not fit this width
            if params.get("padding_mode") == "reflect" and width < 3:
                continue  # reflect needs padding < size
            yield (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
                   rng.standard_normal(3).astype(dtype),
                   rng.standard_normal(out_shape).astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("params", PARAMS, ids=IDS)
def test_forward_matches_reference(params, dtype):
    seen = 0
    for x, w, b, _ in _cases(np.random.default_rng(41), dtype, params):
        shape_params = {k: v for k, v in params.items() if k != "padding_mode"}
        geom = cyconv._conv.geometry("test", x.shape, w.shape, 1, shape_params.get("padding", 0),
                                     shape_params.get("dilation", 1), 3)
        scratch = cyconv._conv.depthwise_scratch(x, w, (2, 3, geom.ho, geom.wo), 1, 1,
                                                 geom.dh, geom.dw, 3)
        assert scratch is not None  # these take the depthwise kernel
        for method in ("direct", "auto"):
            out = cyconv.conv2d(x, w, b, groups=3, **params, method=method)
            assert out.dtype == dtype
            assert_allclose(out, conv2d_api_ref(x, w, b, groups=3, **params),
                            **TOL[np.dtype(dtype)])
        seen += 1
    assert seen >= 10


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("params", PARAMS, ids=IDS)
def test_gradients_match_im2col(params, dtype):
    for x, w, _, gy in _cases(np.random.default_rng(42), dtype, params):
        expected = cyconv.conv2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                          w.astype(np.float64), groups=3, **params,
                                          method="im2col")
        got = cyconv.conv2d_backward(gy, x, w, groups=3, **params, method="direct")
        for a, e in zip(got, expected):
            assert a.dtype == dtype
            assert_allclose(a, e, **TOL[np.dtype(dtype)])


def test_where_the_depthwise_kernels_apply(monkeypatch):
    x = np.zeros((1, 4, 9, 9), np.float32)

    def scratch(w, out_shape=(1, 4, 9, 9), stride=1, groups=4, array=x):
        return cyconv._conv.depthwise_scratch(array, w, out_shape, stride, stride, 1, 1, groups)

    w = np.zeros((4, 1, 3, 3), np.float32)
    assert scratch(w) is not None
    assert scratch(w, stride=2) is None  # strided: the general loops
    assert scratch(np.zeros((8, 1, 3, 3), np.float32), groups=4) is None  # 2 kernels per channel
    assert scratch(np.zeros((1, 1, 3, 3)), groups=1, array=np.zeros((1, 1, 9, 9))) is None
    # A plane too large for the buffer limit takes the general loops, same results.
    monkeypatch.setattr(cyconv._conv, "DEPTHWISE_PLANE_BYTES", 4 * 10 * 10)
    assert scratch(w) is None
    rng = np.random.default_rng(43)
    x, w = rng.standard_normal((2, 4, 9, 30)), rng.standard_normal((4, 1, 3, 3))
    assert_allclose(cyconv.conv2d(x, w, padding=1, groups=4),
                    conv2d_api_ref(x, w, padding=1, groups=4), **TOL[np.dtype(np.float64)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_stays_in_its_windows(dtype):
    x = np.ones((2, 3, 6, 40), dtype)
    x[1, 2, 3, 17] = np.nan
    w = np.ones((3, 1, 3, 3), dtype)
    out = cyconv.conv2d(x, w, padding=1, groups=3)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(conv2d_api_ref(x, w, padding=1,
                                                                         groups=3)))
    assert np.isnan(out).sum() == 9


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1), (1, 3)])
def test_3x3_planes_match_correlate2d(dtype, dilation):
    """The 3x3 forward's plane kernel (two output rows at a time, passes of up
    to 4 vectors, the last ending at the row's end) against
    scipy.signal.correlate2d plane by plane, at heights and widths that end
    its row pairs and passes anywhere (and rows narrower than a vector)."""
    signal = pytest.importorskip("scipy.signal")
    dh, dw = dilation
    rng = np.random.default_rng(44)
    w = rng.standard_normal((3, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    dilated = np.zeros((3, 2 * dh + 1, 2 * dw + 1), np.float64)
    dilated[:, ::dh, ::dw] = w[:, 0]
    for height in (1, 2, 3, 4, 5):
        for width in (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 66):
            x = rng.standard_normal((2, 3, height, width)).astype(dtype)
            out = cyconv.conv2d(x, w, b, padding=dilation, dilation=dilation, groups=3)
            padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (dh, dh), (dw, dw)))
            expected = np.stack([
                np.stack([signal.correlate2d(padded[n, c], dilated[c], mode="valid") + b[c]
                          for c in range(3)]) for n in range(2)])
            assert out.dtype == dtype
            assert_allclose(out, expected, **TOL[np.dtype(dtype)])
