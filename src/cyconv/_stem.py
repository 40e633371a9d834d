"""The register-blocked direct kernels of method='auto' (_regblock): where they run, and the call.

Layers with few input channels per group and a larger kernel (a network's
7x7 stride-2 stem) multiply a short weight matrix by an im2col copy as large
as the product's work. The kernels in _regblock.h instead copy the input
rows under a band of output rows once, zero-padded and split by column
phase, and sum tiles of kernels times output columns in vector registers.
Here: the rule that picks them, the copies' sizes and the taps' offsets.
"""
import numpy as np

from cyconv._dispatch import _regblock
from cyconv._openmp import max_threads
from cyconv._validate import check_alloc

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# Where 'auto' runs them: float layers with at most REGBLOCK_MAX_CHANNELS
# channels and at least 4 kernels per group and a kernel of at least
# REGBLOCK_MIN_TAPS taps, at any stride, whose output rows fill at least
# REGBLOCK_MIN_WIDTH columns (a float32 AVX-512 vector). Measured (float32, one thread, A/B in
# one process on a shared 2-core AVX-512 machine, minimum of 7, indicative;
# benchmarks/stem.py), regblock vs the GEMMs
# 'auto' ran before: N8-C3-224-K64 7x7/2 pad 3 (the stem) 11.5 vs 29.8 ms
# (im2col); 5x5/2 and 7x7/2 over C 1..32 and K 16/64 1.3x to 10x faster than
# im2col; at stride 1, C3-112-K64 7x7 18 vs 50 ms and C4-56-K64 5x5 2.1 vs
# 5.3 ms (shifted GEMMs). 3x3 kernels gain less (1.1x to 2x over im2col for
# C <= 32 at stride 2) and stay on the GEMM paths; from C = 128 the kernels
# lose (C128-28-K256 3x3/2: 46 vs 20 ms), as do 1x1 kernels (no copy to save).
REGBLOCK_MAX_CHANNELS = 16
REGBLOCK_MIN_TAPS = 25
REGBLOCK_MIN_WIDTH = 16


def regblock_pays(geom, dtype):
    """True where 'auto' runs the register-blocked kernels (see REGBLOCK_MAX_CHANNELS)."""
    return (dtype in _FLOATS and geom.channels // geom.groups <= REGBLOCK_MAX_CHANNELS
            and geom.kernels // geom.groups >= 4 and geom.kh * geom.kw >= REGBLOCK_MIN_TAPS
            and geom.wo >= REGBLOCK_MIN_WIDTH)


# Output rows per task at most: a band's input copy stays in L2 while its
# tiles sum over it.
BAND_ROWS = 8


def split_shape(geom, band, wo, dtype):
    """(hb, ws): the rows under a band of output rows and the columns per phase of their copy."""
    lanes = max(1, _regblock.vector_bytes() // dtype.itemsize)
    hb = (band - 1) * geom.sh + (geom.kh - 1) * geom.dh + 1
    ws = -(-wo // lanes) * lanes + (geom.kw - 1) * geom.dw // geom.sw
    return hb, ws


def tap_offsets(geom, hb, ws):
    """off[(c*kh + p)*kw + q]: where tap (c, p, q) of output (0, 0) reads in a band's copy."""
    c, p, q = np.indices((geom.channels // geom.groups, geom.kh, geom.kw), dtype=np.intp)
    cols = q * geom.dw
    return (((c * hb + p * geom.dh) * geom.sw + cols % geom.sw) * ws
            + cols // geom.sw).ravel()


def run_regblock_forward(func, x, w, bias, out, geom, pad_top, pad_left):
    """out = conv of x (N, C, H, W) by w (K, C/groups, kh, kw), by the register-blocked kernels."""
    band = min(out.shape[2], BAND_ROWS)
    hb, ws = split_shape(geom, band, out.shape[3], x.dtype)
    shape = (max_threads(), geom.channels // geom.groups * hb * geom.sw * ws)
    check_alloc(func, x.dtype.itemsize, band_copies=shape)
    _regblock.conv2d_forward(x, w, bias, out, geom.sh, geom.sw, pad_top, pad_left,
                             geom.groups, band, ws, tap_offsets(geom, hb, ws),
                             np.empty(shape, x.dtype))
