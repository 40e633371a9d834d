"""Stride-2 3-wide kernels by Winograd's F(2, 3) along the rows (kernels in _winograd_s2.pxi).

The transformed pixels and products of a block of output rows live in one
scratch row per thread, at most S2_BLOCK_BYTES: on N8-C128-28-K256 3x3/2
(float32, one thread, idle) GEMMs of 392 columns (four images) ran at the
rate of 784, and of 196 columns 1.03x slower; blocks of 4, 2 and 1 MiB took
1.01-1.04, 1.04-1.09 and 1.02-1.16x the time of 8 MiB's on two threads.
"""
from cyconv._dispatch import _winograd
from cyconv._openmp import max_threads
from cyconv._scratch import scratch
from cyconv._threads import kernel_team
from cyconv._validate import check_alloc, check_int_sizes

S2_BLOCK_BYTES = 8 * 2**20

# 'auto' runs it for 3x3 stride-2 layers (dilation 1) with at least
# S2_AUTO_CHANNELS channels and kernels per group whose GEMMs have at least
# S2_AUTO_COLUMNS columns (two outputs each) per kernel thread, and with at
# least S2_WIDE_CHANNELS from S2_WIDE_COLUMNS columns. Measured against
# im2col, float32, padding 1, N 1 and 8, C = K 16..512 (and K = 2C), 14..112
# pixels (benchmarks/winograd_s2_rule.py: medians of 9 interleaved rounds),
# on two threads. With OpenBLAS's GEMMs: with 392 columns or more per
# thread and 32 channels or more 0.86-1.04x the time, 0.97 on
# N8-C128-28-K256; with fewer columns up to 2.9x, and 16 channels
# 1.02-1.6x; on one thread 0.87-1.03, and up to 1.5x below. With the
# products on _wgemm.h's packed GEMM (three runs): 0.70-1.01x with 392
# columns or more and 32 channels or more; 64 channels or more with 112-196
# columns per thread 0.78-1.01x (32 channels there 0.92-1.09x); 49 columns
# or fewer 1.10-1.68x, 16 channels 0.74-1.64x.
S2_AUTO_CHANNELS = 32
S2_AUTO_COLUMNS = 392
S2_WIDE_CHANNELS = 64
S2_WIDE_COLUMNS = 112


def winograd_s2_pays(geom, dtype):
    """True when 'auto' should run F(2, 3) along the rows: 3x3 kernels at stride 2 (see above)."""
    if (geom.kh, geom.kw, geom.sh, geom.sw, geom.dh, geom.dw) != (3, 3, 2, 2, 1, 1):
        return False
    channels = min(geom.channels, geom.kernels) // geom.groups
    per_thread = geom.batch * geom.ho * -(-geom.wo // 2) / max_threads()
    return ((channels >= S2_AUTO_CHANNELS and per_thread >= S2_AUTO_COLUMNS)
            or (channels >= S2_WIDE_CHANNELS and per_thread >= S2_WIDE_COLUMNS))


def run_winograd_s2_forward(func, x, w, bias, has_bias, out, geom, pad_top, pad_left):
    """out = conv of x by w (K, Cg, kh, 3) at stride (sh, 2), dilation (dh, 1), by F(2, 3) in rows.

    Returns False when an input value read was NaN or inf (or a difference
    overflowed): ``out`` must then be computed another way.
    """
    dtype = x.dtype
    n_out, cg, kh = w.shape[:3]
    kg = n_out // geom.groups
    q = cg * kh
    ho, wo = out.shape[2:]
    shape = (ho, wo, q, kg, kh, geom.sh, geom.dh)
    per_row = _winograd.s2_scratch_row(2, *shape) - _winograd.s2_scratch_row(1, *shape)
    block = min(max(1, S2_BLOCK_BYTES // (per_row * dtype.itemsize)), out.shape[0] * ho)
    tiles = (wo + 1) // 2
    check_int_sizes(func, kernels_per_group=kg, kernel_slots_row=4 * q,
                    transformed_columns=block * tiles)
    # The products run on _wgemm.h's packed GEMM, not BLAS: no BLAS to hold.
    n_threads = kernel_team(out.size * q * 3)
    row = _winograd.s2_scratch_row(block, *shape)
    check_alloc(func, dtype.itemsize, kernel_slots=(n_out, 4, q), blocks=(n_threads, row))
    with scratch((n_out, 4, q), dtype, shared=True) as u, \
            scratch((n_threads, row), dtype) as blocks:
        _winograd.s2_kernel_slots(w, u, n_threads)
        return _winograd.s2_conv2d_forward(x, u, bias, has_bias, out, kh, geom.sh,
                                           pad_top, pad_left, geom.dh, geom.groups,
                                           block, blocks, n_threads)
