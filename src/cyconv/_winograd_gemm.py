"""method='winograd' (kernels in _winograd.pyx): eligibility, tile size, buffers and calls.

F(m x m, 3x3) computes each m x m output tile with (m + 2)**2 products per
channel pair where the direct sum needs 9 m**2: F(4x4, 3x3) 36 for 16
outputs, F(2x2, 3x3) 16 for 4. The tile size is the one with fewer products
over the whole output (partial tiles at the edges count in full), F(2x2) on
ties (smaller transforms, smaller rounding errors).
"""

import numpy as np

from cyconv._dispatch import _winograd
from cyconv._openmp import max_threads
from cyconv._scratch import scratch
from cyconv._threads import gemm_team
from cyconv._validate import check_alloc, check_int_sizes
from cyconv._winograd_transforms import POINTS, transforms

# Each thread transforms a block of tiles into one scratch row: the block's
# transformed input (n*n, Cg, tiles) and products (n*n, Kg, tiles), at most
# WINOGRAD_BLOCK_BYTES so that they stay near L2 (2 MiB per core here) while
# the GEMMs read and write them, but at least WINOGRAD_MIN_TILES tiles so that
# each GEMM has columns enough to run at its rate. On N8-C64-56-K64 float32
# (CPU time, one thread, a loaded machine) 2 MiB ran 10-20% faster than 1 MiB,
# 4 MiB no faster: indicative only. Each block reads all of the group's
# transformed kernels U (n*n, Kg, Cg) once, so with many channels blocks
# have at least Kg*Cg / (Kg + Cg) tiles, where reading U costs no more than
# writing and reading V and M (by that count; timings on the loaded machine
# could not tell them apart), up to WINOGRAD_MAX_BLOCK_BYTES. Blocks are
# still cut so every thread has work.
WINOGRAD_BLOCK_BYTES = 2 * 2**20
WINOGRAD_MAX_BLOCK_BYTES = 8 * 2**20
WINOGRAD_MIN_TILES = 16


def check_winograd(func, geom, forward=False):
    """Raise ValueError unless method='winograd' applies: 3x3 kernels, dilation 1, stride 1.

    The forward (``forward``) also takes stride 2 (`cyconv._winograd_s2_gemm`).
    """
    strides = ((1, 1), (2, 2)) if forward else ((1, 1),)
    if (geom.kh, geom.kw, geom.dh, geom.dw) != (3, 3, 1, 1) or (geom.sh, geom.sw) not in strides:
        allowed = "stride 1 or 2" if forward else "stride 1"
        raise ValueError(
            f"{func}: method='winograd' needs 3x3 kernels at {allowed} and dilation 1, "
            f"got kernel {geom.kh}x{geom.kw}, stride ({geom.sh}, {geom.sw}), "
            f"dilation ({geom.dh}, {geom.dw})"
        )


# 'auto' runs F(m x m, 3x3) for 3x3 float convolutions at stride 1 whose
# groups have at least WINOGRAD_AUTO_CHANNELS input channels and kernels, if
# each kernel thread has enough tiles to reuse the transformed kernels (36
# per channel pair) on: at least as many as WINOGRAD_AUTO_KERNEL_TILES gives
# for each size they exceed (every thread reads them all from memory once
# per call: large ones cost more than the products they save on few tiles).
# And the tiles times the smaller of the channel and kernel counts per group
# must reach WINOGRAD_AUTO_WORK per kernel thread: with few tiles and few
# channels the transforms and narrow products cost more than the 2.25x
# multiplications they save.
#
# Measured against 'auto''s GEMM path, which on these small images is
# im2col (the shifted GEMMs cost more there, see SHIFTED_MAX_WASTE):
# `benchmarks/winograd_rule.py THREADS`, N 1..8, C = K 32..512, 7..16
# pixels, float32, an idle 2-core AVX-512 Xeon, Winograd's time over
# im2col's, medians of 9 interleaved calls, three runs (the third with
# im2col's small images side by side, IM2COL_BATCH_COLUMNS). Where the rule
# takes Winograd: one thread 0.35-1.17 (above 1.0 only N2-C512-14, 32
# tiles: 1.08-1.17, and N8-C512-7 1.01), two threads 0.40-0.96. Where it
# does not, the closest: two threads, C=K=256 (9.4 MB transformed) with 32
# tiles 0.85-1.17 (N8-C256-8 0.85-0.87, N2-C256-14 1.07-1.17), C=K=512
# (38 MB) with 32-36 tiles 0.87-1.50, C=K=128 (2.4 MB) with 16 tiles
# 0.98-1.28 (one thread 0.64-0.85: taken there), work 512 per thread with 32
# tiles 0.73-0.95 (with 16: 0.96-1.19; with 9 or 18 tiles 1.11-1.45); one
# thread, work below 1024 0.70-2.6. (Earlier, against the shifted GEMMs, N=8, 2 threads: C=K=8 or
# fewer, or C=3 (stem-like), Winograd 1.4-2.5x the time: the channel floor.)
WINOGRAD_AUTO_CHANNELS = 16
WINOGRAD_AUTO_KERNEL_TILES = ((2 * 2**20, 16), (8 * 2**20, 32))
WINOGRAD_AUTO_WORK = 1024


def winograd_pays(geom, dtype):
    """True when 'auto' should run method='winograd' (3x3, stride 1, dilation 1, see above)."""
    if (geom.kh, geom.kw, geom.sh, geom.sw, geom.dh, geom.dw) != (3, 3, 1, 1, 1, 1):
        return False
    cg, kg = geom.channels // geom.groups, geom.kernels // geom.groups
    if min(cg, kg) < WINOGRAD_AUTO_CHANNELS:
        return False
    m = tile_size(geom.ho, geom.wo)
    tiles = geom.batch * -(-geom.ho // m) * -(-geom.wo // m)
    if tiles * min(cg, kg) < WINOGRAD_AUTO_WORK * max_threads():
        return False
    return enough_tiles(tiles, transformed_bytes(geom, dtype), WINOGRAD_AUTO_KERNEL_TILES)


def transformed_bytes(geom, dtype):
    """The size of a layer's transformed kernels: (m+2)^2 per channel pair."""
    m = tile_size(geom.ho, geom.wo)
    return (m + 2) ** 2 * geom.kernels * (geom.channels // geom.groups) * dtype.itemsize


def enough_tiles(tiles, kernel_bytes, tiers):
    """True when ``tiles`` reach ``least`` per kernel thread for each (size, least) of
    ``tiers`` whose size ``kernel_bytes`` exceeds."""
    threads = max_threads()
    return all(tiles >= least * threads for size, least in tiers if kernel_bytes > size)


def tile_size(ho, wo):
    """m of F(m x m, 3x3) for an ho x wo output: 2 or 4, whichever needs fewer products."""
    def products(m):
        return (m + 2) ** 2 * -(-ho // m) * -(-wo // m)
    return 4 if products(4) < products(2) else 2


def _matrices(m):
    """G of F(m, 3) (float64, read-only); the kernels have BT and AT written out."""
    return transforms(m, 3, POINTS[m])[1]


def block_tiles(tile_bytes, kg, cg, n_tiles, lanes):
    """Tiles per block (see WINOGRAD_BLOCK_BYTES) for U of (Kg, Cg) per position and group."""
    def fitting(limit):
        tiles = limit // tile_bytes
        return tiles // lanes * lanes if tiles >= lanes else tiles

    balanced = min(kg * cg // (kg + cg), fitting(WINOGRAD_MAX_BLOCK_BYTES))
    return min(n_tiles, max(WINOGRAD_MIN_TILES, balanced, fitting(WINOGRAD_BLOCK_BYTES)))


def run_winograd_forward(func, x, w, bias, has_bias, out, groups, pad_top, pad_left):
    """out = conv of x (N, C, H, W) by 3x3 w (K, C/groups, 3, 3), stride 1, by F(m x m, 3x3).

    ``out`` (N, K, ho, wo) may be any size (the input gradient uses it with
    the input's); x is read as zero beyond what the output needs. Returns
    False when an input value read was NaN or inf (or a transform
    overflowed): the transforms spread it over whole tiles, and ``out``
    must be computed another way. The transformed kernels and the threads'
    blocks live in reused buffers (`cyconv._scratch`).
    """
    dtype = x.dtype
    n_out, cg = w.shape[:2]
    kg = n_out // groups
    m = tile_size(out.shape[2], out.shape[3])
    n = m + 2
    g_mat = _matrices(m)
    n_tiles = out.shape[0] * -(-out.shape[2] // m) * -(-out.shape[3] // m)
    # Per tile: V, M, the input and output tiles, and one value of the NaN check.
    row = n * n * (cg + kg + 2) + 1
    tile_bytes = row * dtype.itemsize
    # The products' rows are padded to whole vectors (`_winograd.max_lanes`):
    # the byte limits count in whole vectors of tiles.
    lanes = _winograd.max_lanes()
    block = block_tiles(tile_bytes, kg, cg, n_tiles, lanes)
    padded = -(-block // lanes) * lanes
    # Each thread's row also holds the zero-padded input rows of a row of tiles
    # (and the elements their copy may write past them), and room to start V
    # on a 64-byte line (max_lanes elements: 64 or more bytes).
    line = n * (-(-out.shape[3] // m) * m + 2) + _winograd.window_slack() + lanes
    check_int_sizes(func, kernels_per_group=kg, channels_per_group=cg,
                    transformed_block=max(cg, kg) * padded)
    with gemm_team() as n_threads:
        check_alloc(func, dtype.itemsize, transformed_kernels=(n * n, n_out, cg),
                    blocks=(n_threads, row * padded + line))
        with scratch((n * n, n_out, cg), dtype, shared=True) as u, \
                scratch((n_threads, row * padded + line), dtype) as blocks:
            _winograd.transform_kernels(w, g_mat, u, n_threads)
            return _winograd.conv2d_forward(x, u, bias, has_bias, out, m, pad_top, pad_left,
                                            groups, block, blocks, n_threads)
