"""conv_transpose2d's 4x4 stride-2 layers by Winograd's F(4x4, 2x2) (kernels in _winograd_up2.pxi).

A 4x4 transposed convolution at stride 2 (a decoder's or a GAN generator's
upsampling layer) computes every output from a 2x2 patch of the input, with
one of four 2x2 phase kernels (``w[c, k, phi + 2 :: -2, psi + 2 :: -2]`` by
the output's row and column parity). F(4x4, 2x2) computes each phase's 4x4
outputs of a 5x5 input window with 25 products where the sum needs 64;
the four phases share the window's transform, so one tile is 8x8 outputs.
"""
from fractions import Fraction

import numpy as np

from cyconv import _fft
from cyconv._dispatch import _winograd
from cyconv._openmp import max_threads
from cyconv._scratch import scratch
from cyconv._threads import gemm_team
from cyconv._validate import check_alloc, check_int_sizes
from cyconv._winograd_gemm import block_tiles
from cyconv._winograd_transforms import transforms

# F(4, 2)'s points (and infinity): integers in BT, powers of two in AT (_wup2trans.h).
POINTS_UP2 = (Fraction(0), Fraction(-1), Fraction(1), Fraction(1, 2))

# 'auto' takes it for float layers with at least UP2_AUTO_CHANNELS input
# channels and kernels per group and at least UP2_AUTO_TILES tiles per kernel
# thread, and as many tiles per thread as the larger of the two (U's 4 Kg x
# Cg per position is read once per block). Measured against the GEMM and
# gathering fold it replaces (benchmarks/up2_rule.py, float32, padding 1,
# N 1 and 8, C 8..256, K = C and C/2, 7..56 pixels, medians of 9
# interleaved rounds, idle): inside the rule 0.48-0.99x the time on two
# threads (0.70 on the runner's N8-C64-28 -> K32), 0.51-0.88x on one;
# outside it up to 4.9x with few tiles, and wins missed where the tiles per
# thread are fewer than the channels (0.67-0.94, 16-225 tiles per thread).
UP2_AUTO_CHANNELS = 4
UP2_AUTO_TILES = 16


def up2_applies(w_shape, stride, output_padding, dilation):
    """True for what the kernel computes: 4x4 kernels, stride 2, dilation 1, no output_padding."""
    return (tuple(w_shape[2:]) == (4, 4) and tuple(stride) == (2, 2)
            and tuple(output_padding) == (0, 0) and tuple(dilation) == (1, 1))


def up2_tiles(out_shape, padding):
    """The 8x8 output tiles of all images (each shifted up and left by padding % 2)."""
    ho, wo = out_shape[-2:]
    ph, pw = padding
    return (out_shape[0] if len(out_shape) == 4 else 1) * -(-(ho + ph % 2) // 8) \
        * -(-(wo + pw % 2) // 8)


def up2_pays(x_shape, w_shape, out_shape, padding, groups):
    """True when 'auto' should run F(4x4, 2x2) (see UP2_AUTO_CHANNELS)."""
    cg, kg = x_shape[-3] // groups, w_shape[1]
    tiles = up2_tiles(out_shape, padding)
    threads = max_threads()
    return (min(cg, kg) >= UP2_AUTO_CHANNELS and tiles >= UP2_AUTO_TILES * threads
            and tiles >= max(cg, kg) * threads)


# F(4, 2)'s G (5 x 2, float64, read-only) for `_winograd.up2_transform_kernels`.
G_UP2 = transforms(4, 2, POINTS_UP2)[1]


def run_up2(func, x, w, bias, has_bias, out, groups, padding):
    """out (N, K, Ho, Wo) = conv_transpose2d(x, w, bias, 2, padding) for 4x4 w, by F(4x4, 2x2).

    x (N, C, H, W) and w (C, K/groups, 4, 4) C-contiguous, of out's float
    dtype; bias (K,) even when has_bias is False. Returns False when an
    input value read was NaN or inf, or a transform or product overflowed:
    ``out`` must then be computed another way.
    """
    dtype = x.dtype
    n_k = out.shape[1]
    kg = n_k // groups
    cg = x.shape[1] // groups
    tiles_w = -(-(out.shape[3] + padding[1] % 2) // 8)
    n_tiles = up2_tiles(out.shape, padding)
    lanes = _winograd.max_lanes()
    per_tile = (_winograd.up2_scratch_row(2 * lanes, cg, kg, tiles_w)
                - _winograd.up2_scratch_row(lanes, cg, kg, tiles_w)) // lanes
    # As the stride-1 kernel's blocks: near L2, but with U's 4 Kg x Cg read
    # per block, enough tiles to make up for it.
    block = block_tiles(per_tile * dtype.itemsize, 4 * kg, cg, n_tiles, lanes)
    padded = -(-block // lanes) * lanes
    check_int_sizes(func, kernels_per_group=4 * kg, channels_per_group=cg,
                    transformed_block=max(cg, 4 * kg) * padded)
    with gemm_team() as n_threads:
        row = _winograd.up2_scratch_row(padded, cg, kg, tiles_w)
        check_alloc(func, dtype.itemsize, transformed_kernels=(25, 4 * n_k, cg),
                    blocks=(n_threads, row))
        with scratch((25, 4 * n_k, cg), dtype, shared=True) as u, \
                scratch((n_threads, row), dtype) as blocks:
            _winograd.up2_transform_kernels(w, G_UP2, u, groups, n_threads)
            return _winograd.up2_conv_transpose(x, u, bias, has_bias, out, padding[0],
                                                padding[1], groups, block, blocks, n_threads)


def up2_wanted(x, w, out_shape, padding, groups):
    """True where 'auto' runs F(4x4, 2x2) on a layer that `up2_applies` to.

    Float data (integer data stays exact), where it measured faster
    (`up2_pays`), a finite weight (NaN or inf would spread over a tile).
    """
    return ("f" in (x.dtype.kind, w.dtype.kind) and x.size > 0
            and up2_pays(x.shape, w.shape, out_shape, padding, groups) and _fft.all_finite(w))


def up2_layer(func, x, w, bias, dtype, out_shape, padding, groups):
    """conv_transpose2d(x, w, bias, 2, padding) by F(4x4, 2x2), or None where a value read
    was NaN or inf, or a transform or product overflowed: the caller computes the sums.

    ``out_shape`` (N, K, Ho, Wo) or (K, Ho, Wo) may be any size (the output
    is the canvas from row and column ``padding``): `conv2d_backward`'s input
    gradient gives the input's.
    """
    x4 = np.ascontiguousarray(x.reshape((-1,) + x.shape[-3:]), dtype=dtype)
    out = np.empty(x4.shape[:1] + tuple(out_shape[-3:]), dtype)
    has_bias = bias is not None
    bias = (np.ascontiguousarray(bias, dtype=dtype) if has_bias
            else np.zeros(out_shape[-3], dtype))
    if run_up2(func, x4, np.ascontiguousarray(w, dtype=dtype), bias, has_bias, out, groups,
               padding):
        return out.reshape(out_shape)
    return None
