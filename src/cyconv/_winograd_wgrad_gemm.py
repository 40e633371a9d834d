"""The Winograd weight gradient (kernels in _winograd_wgrad.pyx): transforms, buffers and calls.

F(3x3, 4x4) computes the 3x3 weight gradient's share of each 4x4 tile of
``grad_output`` with 36 products per (kernel, channel) pair where the sum
needs 144; the output transform runs once per pair, on the sum over all
tiles.
"""
import functools
import math
from fractions import Fraction

import numpy as np

from cyconv._dispatch import _winograd_wgrad
from cyconv._fft import all_finite
from cyconv._scratch import scratch
from cyconv._threads import gemm_team
from cyconv._validate import check_alloc, check_int_sizes
from cyconv._winograd_transforms import POINTS_F4, exact_transforms

STEP, SPAN = 4, 6  # grad_output tiles 4x4, input tiles 6x6 (overlapping by 2)
# A block's transformed tiles (see run_winograd_grad_weight). On N8 float32,
# one thread, CPU time, a loaded machine (indicative): 1-2 MiB ran 5-15%
# faster than 4-16 MiB at C=K=32, 64 on 56x56; at C=K=128 on 28x28 no
# difference beyond the noise; 0.5 MiB 5-15% slower.
WGRAD_BLOCK_BYTES = 2 * 2**20
WGRAD_MAX_BLOCK_BYTES = 32 * 2**20
WGRAD_MIN_TILES = 32
# With several threads, each group's kernels are split among them (instead
# of the tiles) when the groups have at least WGRAD_SPLIT_KERNELS kernels per
# thread and the sums (36*K*Cg) are at least WGRAD_SPLIT_RATIO times the
# transformed input (36*C*tiles). At 2 threads, N=8, float32, wall time on
# the loaded machine (indicative): C=K=512 on 7x7 (16x) 69-77 ms against
# 176-221 ms with the tiles split; C=K=256 on 14x14 (2x) 64-71 against
# 58-59 ms; C=K=128 on 28x28 (0.3x) 37-44 against 38-48 ms.
WGRAD_SPLIT_KERNELS = 8
WGRAD_SPLIT_RATIO = 4


# 'auto' runs the Winograd weight gradient for 3x3 float kernels at stride 1
# and dilation 1 whose groups have at least WGRAD_AUTO_CHANNELS input channels
# and kernels, over at least WGRAD_AUTO_PIXELS output pixels (N*ho*wo, the
# products each weight sums; its 36 transformed sums per weight cost the same
# whatever that count). Measured against im2col's weight gradient
# (benchmarks/wgrad_ab.py, CPU time, one thread, float32, AVX-512, a loaded
# machine: indicative): N*ho*wo >= 784 at C=K=16..512 (7x7..56x56, N=1..16),
# winograd 1.09-1.53x faster; at 392 or fewer (C=K=256 14x14 N=1, C=K=512
# 7x7 N=2..8) 0.34-0.75x; C=K=8 0.82-1.14x, C=4 or 3 0.66-0.80x.
WGRAD_AUTO_CHANNELS = 16
WGRAD_AUTO_PIXELS = 768


def winograd_wgrad_pays(geom, dtype):
    """True when 'auto' should take the Winograd weight gradient (see above)."""
    if (geom.kh, geom.kw, geom.sh, geom.sw, geom.dh, geom.dw) != (3, 3, 1, 1, 1, 1):
        return False
    cg, kg = geom.channels // geom.groups, geom.kernels // geom.groups
    return (min(cg, kg) >= WGRAD_AUTO_CHANNELS
            and geom.batch * geom.ho * geom.wo >= WGRAD_AUTO_PIXELS)


@functools.cache
def wgrad_transforms():
    """``(AT, G, BT)`` of F(3x3, 4x4) at the forward's points, as read-only float64 arrays.

    ``y = AT @ ((G @ g) * (BT @ d))`` gives ``y[p] = sum_i g[i] * d[p + i]``
    for a 4-tap ``g`` (a tile row of grad_output) and 6 inputs ``d``. Each
    row of G is scaled to coprime integers and the scale moved into the
    matching column of AT, which runs once per weight (in float64) where
    G runs on every tile: the tile transforms then multiply by small
    integers only.
    """
    at, g_mat, bt = exact_transforms(3, 4, POINTS_F4)
    scales = []
    for row in g_mat:
        den = math.lcm(*(v.denominator for v in row))
        scales.append(Fraction(math.gcd(*(int(v * den) for v in row)), den))
    g_int = [[v / s for v in row] for row, s in zip(g_mat, scales)]
    at = [[v * s for v, s in zip(row, scales)] for row in at]
    out = []
    for mat in (at, g_int, bt):
        arr = np.array([[float(v) for v in row] for row in mat])
        arr.flags.writeable = False
        out.append(arr)
    return tuple(out)


def run_winograd_grad_weight(func, x, gy, weight_shape, groups, pad_top, pad_left):
    """grad_weight (K, C/groups, 3, 3) of a 3x3, stride-1 convolution by F(3x3, 4x4); None if not finite.

    ``x`` (N, C, H, W) is the input the kernels see, zero-padded by
    ``(pad_top, pad_left)`` (at most 2) on top and left and as far as the
    output reads below and right; ``gy`` (N, K, ho, wo) is grad_output; both
    C-contiguous, of one float dtype and non-empty. The kernels read both
    in place, zero beyond their edges. A NaN or inf in either (the
    transforms spread it over a tile), or a transform that overflowed,
    gives a NaN or inf in the sums: then None, and the caller computes the
    gradient another way.
    """
    dtype = gy.dtype
    n_batch, n_out, ho, wo = gy.shape
    kg, cg = n_out // groups, weight_shape[1]
    th, tw = -(-ho // STEP), -(-wo // STEP)
    n_tiles = n_batch * th * tw
    row = SPAN * SPAN * (cg + kg + 2)
    tile_bytes = row * dtype.itemsize
    # Each thread transforms a block of tiles of one group into its scratch
    # row: at most WGRAD_BLOCK_BYTES (near the caches while its GEMMs read
    # them), but at least as many tiles as it takes for them to outweigh the
    # sums the GEMMs read and write per block (36*Kg*Cg), up to
    # WGRAD_MAX_BLOCK_BYTES.
    balanced = min(2 * kg * cg // (kg + cg), WGRAD_MAX_BLOCK_BYTES // tile_bytes)
    block = max(1, min(n_tiles, max(WGRAD_MIN_TILES, balanced, WGRAD_BLOCK_BYTES // tile_bytes)))
    # After the block, each row holds the zero-padded input rows of a row of
    # tiles, and the 8 elements (WINDOW_SLACK, _tiles.pxd) its copy may spill.
    line = SPAN * (STEP * tw + 2) + 8
    check_int_sizes(func, kernels_per_group=kg, channels_per_group=cg,
                    transformed_block=max(cg, kg) * block)
    with gemm_team() as n_threads:
        # Few tiles for many weights: split each group's kernels among the
        # threads (each transforms the input tiles again) rather than the
        # tiles (each keeps its own sums, added up at the end).
        kernel_parts = 1
        if (n_threads > 1 and kg >= WGRAD_SPLIT_KERNELS * n_threads
                and n_out * cg >= WGRAD_SPLIT_RATIO * x.shape[1] * n_tiles):
            kernel_parts = n_threads
        n_sums = n_threads if kernel_parts == 1 else 1
        check_alloc(func, dtype.itemsize,
                    transformed_sums=(n_sums, SPAN * SPAN, n_out, cg),
                    blocks=(n_threads, row * block + line))
        grad = np.empty((n_out * cg, 9), dtype)
        # The sums and blocks in buffers kept from call to call, as the
        # forward's: each thread's first task writes its sums (no zeroing).
        with scratch((n_sums, SPAN * SPAN, n_out, cg), dtype) as sums, \
                scratch((n_threads, row * block + line), dtype) as blocks:
            written = np.zeros((n_sums, groups), np.uint8)
            _winograd_wgrad.transformed_sums(x, gy, sums, written, groups, block,
                                             kernel_parts, pad_top, pad_left, blocks,
                                             n_threads)
            for part, g in zip(*np.nonzero(written == 0)):  # a thread with no task of g
                sums[part, :, g * kg:(g + 1) * kg] = 0
            _winograd_wgrad.weights_from_sums(sums.reshape(n_sums, SPAN * SPAN, n_out * cg),
                                              wgrad_transforms()[0], grad, n_threads)
    if not all_finite(grad):
        return None
    return grad.reshape(weight_shape)
