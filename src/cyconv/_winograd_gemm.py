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
# groups have at least WINOGRAD_AUTO_CHANNELS input channels and kernels, unless
# the transformed kernels (36 per channel pair) outgrow
# WINOGRAD_AUTO_KERNEL_BYTES while the output has fewer than
# WINOGRAD_AUTO_MANY_TILES tiles to reuse them on. Measured against 'auto's
# GEMM path (shifted), N=8, float32, 2 threads (benchmarks/run.py's layers and
# a grid): C=K=16..256 at 7..112 pixels, winograd 1.08-2.3x faster; C=K=8 or
# fewer, or C=3 (stem-like), 0.4-0.7x. With large transformed kernels, since
# their buffer is reused across calls (cyconv._scratch; fresh, 38 MB of them
# were faulted in each call: C=K=512 at 7x7, N=8, was 0.84x), float32, one
# thread, a loaded machine (indicative), winograd's time over 'auto''s:
# C=K=512 at 7x7: N=1 (4 tiles) 1.57, N=2 (8) 1.10, N=4 (16) 0.94, N=8 (32)
# 0.72; at 14x14: N=1 (16) 1.05, N=2 (32) 0.90; C=K=1024 at 7x7: N=1 1.69,
# N=8 (32) 0.78. Two threads pointed the same way (timings too noisy there).
#
# And the tiles times the smaller of the channel and kernel counts per group
# must reach WINOGRAD_AUTO_WORK per kernel thread: with few tiles and few
# channels the transforms and narrow products cost more than the 2.25x
# multiplications they save, and more so on two threads, where each gets
# half the tiles. Measured idle, N 1..4, C = K 32..512, 7..16 pixels,
# float32 (benchmarks/winograd_rule.py: winograd over the
# shifted GEMMs, interleaved, medians of 9): on one thread, work 512-1152
# 1.4-2.3x the time, 1024-2048 0.81-1.21, from 2304 0.41-1.08 (1.08 at
# N1-C128-14); on two threads, work below 2048 0.95-2.4x, 2048-2304
# 0.88-1.37, from 4096 0.46-1.05.
WINOGRAD_AUTO_CHANNELS = 16
WINOGRAD_AUTO_KERNEL_BYTES = 16 * 2**20
WINOGRAD_AUTO_MANY_TILES = 32
WINOGRAD_AUTO_WORK = 2048


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
    kernel_bytes = (m + 2) ** 2 * geom.kernels * cg * dtype.itemsize
    return kernel_bytes <= WINOGRAD_AUTO_KERNEL_BYTES or tiles >= WINOGRAD_AUTO_MANY_TILES


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
