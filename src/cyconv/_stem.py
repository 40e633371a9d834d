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

# Where 'auto' runs them: float layers with at least 4 kernels per group whose
# output rows fill at least REGBLOCK_MIN_WIDTH columns (a float32 AVX-512
# vector), and either at most REGBLOCK_MAX_CHANNELS channels per group and a
# kernel of at least 5x5 (any stride), or at most REGBLOCK_MAX_CHANNELS_3X3
# channels per group, a kernel of at least 3x3 and stride 1. Measured
# (float32, A/B in one process on a shared, heavily loaded 2-core AVX-512
# machine: indicative only; benchmarks/stem.py), regblock vs the GEMMs 'auto'
# ran before:
# - N8-C3-224-K64 7x7/2 pad 3, the stem: 1 thread 11.5 vs 29.8 ms (im2col),
#   later under heavier load 55 vs 131 ms (torch 73) and on 2 threads 86 vs
#   166 ms (torch 113);
# - 5x5/2 and 7x7/2, C 1..32, K 16/64, 1 thread: 1.3x to 10x faster than im2col;
# - stride 1, 1 thread: C3-224-K64 7x7 265 vs 284 ms, C3-112-K64 7x7 18 vs
#   50 ms, C4-56-K64 5x5 2.1 vs 5.3 ms, C3-112-K64 3x3 7.4 to 20 vs 16 to
#   29 ms over four runs (shifted GEMMs), 2 threads 52 vs 92 ms;
# - 3x3 at stride 2 gains less and not always (C1..C32: 0.8x to 3.7x over
#   im2col) and stays on im2col; from C = 128 the kernels lose (C128-28-K256
#   3x3/2: 46 vs 20 ms), as do 1x1 kernels (no copy to save).
REGBLOCK_MAX_CHANNELS = 16
REGBLOCK_MAX_CHANNELS_3X3 = 4
REGBLOCK_MIN_WIDTH = 16


def regblock_pays(geom, dtype):
    """True where 'auto' runs the register-blocked kernels (see REGBLOCK_MAX_CHANNELS)."""
    if (dtype not in _FLOATS or geom.kernels // geom.groups < 4
            or geom.wo < REGBLOCK_MIN_WIDTH):
        return False
    channels, taps = geom.channels // geom.groups, geom.kh * geom.kw
    if taps >= 25 and channels <= REGBLOCK_MAX_CHANNELS:
        return True
    return (taps >= 9 and channels <= REGBLOCK_MAX_CHANNELS_3X3
            and (geom.sh, geom.sw) == (1, 1))


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
                             geom.groups, band, hb, ws, tap_offsets(geom, hb, ws),
                             np.empty(shape, x.dtype))
