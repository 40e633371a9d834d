"""The register-blocked direct kernels (_regblock.h) that 'auto' runs for stem-like layers.

They copy the input once, zero-padded and split by column phase, and sum
tiles of kernels times vectors of output columns in registers (at most 24
accumulators of 16 float32 / 8 float64 lanes and 6 vectors with AVX-512, 12
and 4 with AVX2 and SSE2; narrow rows take up to 8 kernels per tile). The
shapes below cross every edge of that blocking: output widths below one
vector, at and past a vector, past one chunk of vectors (two chunks, evened
out); kernel counts around the tile's kernels and past them; strides 1..3
with phases of both parities, dilations, kernels 1..7 and non-square,
channels 1..4, groups, paddings beyond the kernel and every
padding mode, float32 and float64, batches 1..3. Reference:
tests/_reference.py (the sum by NumPy, no cyconv code).
"""
import importlib.util
import re
import shutil
import subprocess

import numpy as np
import pytest
from numpy.testing import assert_allclose

import cyconv
from cyconv import _conv, _dispatch, _stem

from _reference import TOL, conv2d_api_ref

FLOATS = (np.float32, np.float64)


def regblock(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """conv2d through the register-blocked kernels, whatever 'auto' would pick."""
    geom = _conv.geometry("conv2d", x.shape, w.shape, stride, padding, dilation, groups)
    xp, top, left = _conv.prepare_input("conv2d", x, geom, padding_mode, x.dtype)
    bias = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    return _conv.run_forward("conv2d", xp, np.ascontiguousarray(w), bias, geom, top, left,
                             "regblock")


def _check(rng, dtype, n, c, k, hw, kernel, groups=1, with_bias=True, **params):
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((k, c // groups) + kernel).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if with_bias else None
    got = regblock(x, w, b, groups=groups, **params)
    expected = conv2d_api_ref(x, w, b, groups=groups, **params)
    assert got.dtype == dtype and got.shape == expected.shape
    assert_allclose(got, expected, **TOL[np.dtype(dtype)])


# Output widths 1, 7, 16, 17, 31, 33 and 113 (8 vectors of 16: two chunks)
# at stride 2 with a 7x7 kernel and padding 3.
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("width", [1, 13, 31, 33, 61, 65, 225])
def test_widths_cross_every_vector_and_chunk_edge(dtype, width):
    rng = np.random.default_rng(width)
    _check(rng, dtype, 2, 3, 9, (5, width), (7, 7), stride=2, padding=3)


# Kernel counts around the tile of KB kernels and past it.
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kernels", [1, 2, 3, 4, 5, 7, 8, 13, 64])
def test_kernel_counts_around_the_tile(dtype, kernels):
    rng = np.random.default_rng(kernels)
    _check(rng, dtype, 1, 2, kernels, (11, 40), (5, 5), stride=2, padding=2)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("stride", [1, 2, 3, (1, 2), (3, 1), (2, 3)])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 5), (7, 7), (2, 5), (7, 3)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_strides_kernels_channels(dtype, stride, kernel, channels):
    rng = np.random.default_rng(sum(kernel) * 10 + channels)
    _check(rng, dtype, 2, channels, 6, (19, 37), kernel, stride=stride,
           padding=(kernel[0] // 2, kernel[1] // 2))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("params", [
    dict(padding=0), dict(padding=(5, 9)), dict(padding=(0, 2), dilation=2),
    dict(padding=3, dilation=(2, 3), stride=(2, 3)), dict(padding="same", dilation=(1, 2)),
    dict(padding=3, padding_mode="reflect", stride=2),
    dict(padding=(2, 4), padding_mode="replicate", stride=3),
    dict(padding=3, padding_mode="circular", stride=2),
], ids=["valid", "pad-beyond-kernel", "dilated", "dilated-strided", "same",
        "reflect", "replicate", "circular"])
def test_paddings_dilations_and_modes(dtype, params):
    rng = np.random.default_rng(7)
    _check(rng, dtype, 3, 3, 5, (23, 29), (5, 5), **params)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize(("channels", "kernels", "groups"), [(4, 10, 2), (3, 9, 3), (6, 6, 3)])
def test_groups_and_batches(dtype, batch, channels, kernels, groups):
    rng = np.random.default_rng(batch * 100 + groups)
    _check(rng, dtype, batch, channels, kernels, (17, 20), (3, 3), groups=groups,
           with_bias=batch != 2, stride=2, padding=1)


def test_auto_takes_them_for_the_stem():
    geom = _conv.geometry("conv2d", (8, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1, 1)
    for dtype in FLOATS:
        assert _conv.choose_method(geom, np.dtype(dtype)) == "regblock"
    assert _conv.choose_method(geom, np.dtype(np.longdouble)) != "regblock"
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 40, 36)).astype(np.float32)
    w = rng.standard_normal((16, 3, 7, 7)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    assert_allclose(cyconv.conv2d(x, w, b, stride=2, padding=3),
                    conv2d_api_ref(x, w, b, stride=2, padding=3), **TOL[np.dtype(np.float32)])


@pytest.mark.parametrize(("x_shape", "w_shape", "stride"), [
    ((8, 16, 56, 56), (64, 16, 5, 5), 2), ((2, 3, 30, 30), (8, 3, 3, 3), 1),
    ((2, 4, 30, 30), (8, 4, 4, 4), 1)])
def test_auto_takes_them_for_few_channels(x_shape, w_shape, stride):
    geom = _conv.geometry("conv2d", x_shape, w_shape, stride, 1, 1, 1)
    assert _conv.choose_method(geom, np.dtype(np.float32)) == "regblock"


@pytest.mark.parametrize(("x_shape", "w_shape", "stride"), [
    ((8, 64, 56, 56), (64, 64, 3, 3), 2), ((8, 32, 56, 56), (64, 32, 5, 5), 2),
    ((1, 3, 9, 9), (2, 3, 5, 5), 2), ((2, 3, 5, 5), (6, 3, 5, 5), 1),
    ((2, 3, 56, 56), (8, 3, 3, 3), 2), ((2, 6, 30, 30), (8, 6, 3, 3), 1),
    ((2, 3, 30, 30), (8, 3, 1, 1), 1)])
def test_auto_leaves_them_to_gemms_elsewhere(x_shape, w_shape, stride):
    geom = _conv.geometry("conv2d", x_shape, w_shape, stride, 1, 1, 1)
    assert _conv.choose_method(geom, np.dtype(np.float32)) != "regblock"


def test_nonfinite_values_follow_the_definition():
    # Padded taps are summed as 0 * w: an inf weight makes the border NaN,
    # as the definition (and the direct method) gives; an inf input pixel
    # spreads only over the outputs whose taps read it.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 15, 35))
    w = rng.standard_normal((8, 3, 5, 5))
    geom = _conv.geometry("conv2d", x.shape, w.shape, 2, 2, 1, 1)
    assert _conv.choose_method(geom, x.dtype) == "regblock"
    x[0, 1, 7, 7] = np.inf
    w[2, 0, 0, 0] = np.nan
    w[5, 2, 4, 4] = -np.inf
    got = cyconv.conv2d(x, w, stride=2, padding=2)
    direct = cyconv.conv2d(x, w, stride=2, padding=2, method="direct")
    assert_allclose(got, direct, **TOL[np.dtype(np.float64)])
    assert np.array_equal(np.isnan(got), np.isnan(direct))


def test_split_shape_pads_rows_to_whole_vectors():
    geom = _conv.geometry("conv2d", (1, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1, 1)
    for dtype in FLOATS:
        lanes = max(1, cyconv._regblock.vector_bytes() // np.dtype(dtype).itemsize)
        hb, ws = _stem.split_shape(geom, 8, 112, np.dtype(dtype))
        assert hb == 7 * 2 + 7 and ws % lanes == 3 % lanes and ws >= 112 + 3


@pytest.mark.parametrize("band", [1, 2, 3])
def test_bands_of_rows(monkeypatch, band):
    # Bands that end inside the output (5 rows) and one row each.
    monkeypatch.setattr(_stem, "BAND_ROWS", band)
    rng = np.random.default_rng(band)
    _check(rng, np.float64, 2, 3, 7, (9, 21), (5, 3), stride=(2, 1), padding=(2, 1),
           dilation=(1, 2))


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
@pytest.mark.skipif("avx512" not in _dispatch.built(), reason="no AVX-512 build")
def test_avx512_build_sums_tiles_in_512_bit_fmas():
    # The tiles must live in zmm registers: a fused multiply-add per kernel
    # and vector of every tile size, float32 and float64.
    path = importlib.util.find_spec("cyconv._kernels._regblock_avx512").origin
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                             capture_output=True, text=True, check=True).stdout
    for suffix in ("ps", "pd"):
        assert len(re.findall(rf"vfmadd\d+{suffix}\s+\S*zmm", listing)) >= 100, suffix


def _tap_loops(listing, function):
    """The innermost loops of ``function`` in an objdump listing that multiply vectors:
    for each backward jump, the instructions from its target to it (at most 80)."""
    body = re.search(rf"^[0-9a-f]+ <{function}>:$(.*?)(?:^$|\Z)", listing, re.M | re.S)
    lines = re.findall(r"^\s+([0-9a-f]+):\s+(.*)$", body.group(1), re.M)
    addrs = [int(a, 16) for a, _ in lines]
    loops = []
    for end, (_, text) in enumerate(lines):
        jump = re.match(r"j\w+\s+([0-9a-f]+) <", text)
        if jump and int(jump.group(1), 16) < addrs[end]:
            start = addrs.index(int(jump.group(1), 16)) if int(jump.group(1), 16) in addrs else end
            loop = [t for _, t in lines[start:end + 1]]
            if len(loop) <= 80 and sum(bool(re.match(r"v?(fmadd|mul)\w*p[sd]", t))
                                       for t in loop) >= 4:
                loops.append(loop)
    return loops


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_tiles_stay_in_registers_over_the_taps(level):
    """No tap loop of any tile touches the stack: with 16 vector registers (AVX2),
    the 4-kernel x 3-vector tile kept one accumulator on the stack while its 4
    broadcast weights stayed in registers, a load and store per tap on one chain
    (the stem ran 1.45x slower); kernels go outer there (_regblock.h)."""
    if level not in _dispatch.built():
        pytest.skip(f"no {level} build")
    path = importlib.util.find_spec(f"cyconv._kernels._regblock_{level}").origin
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                             capture_output=True, text=True, check=True).stdout
    if "__asan_" in listing or "__ubsan_" in listing:
        pytest.skip("a sanitizer-instrumented build (its checks hold registers)")
    for dtype in ("float", "double"):
        if f"<cyconv_rb_rows_{dtype}>:" not in listing:
            pytest.skip("the row kernels were inlined: no symbol of theirs to inspect")
        loops = _tap_loops(listing, f"cyconv_rb_rows_{dtype}")
        assert len(loops) >= 8, (dtype, len(loops))
        spilled = [loop for loop in loops if any(re.search(r"\((%rsp|%rbp)\)", t) for t in loop)]
        assert not spilled, f"{dtype}: {len(spilled)} tap loops use the stack: {spilled[0]}"
