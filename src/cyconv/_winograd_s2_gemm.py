"""Stride-2 3-wide kernels by Winograd's F(2, 3) along the rows (kernels in _winograd_s2.pyx).

The transformed pixels and products of a block of output rows live in one
scratch row per thread, at most S2_BLOCK_BYTES: on N8-C128-28-K256 3x3/2
(float32, one thread) GEMMs of 392 columns (four images) ran at the rate of
784, and of 196 columns 1.2x slower.
"""
from cyconv._dispatch import _winograd_s2
from cyconv._scratch import scratch
from cyconv._threads import gemm_team
from cyconv._validate import check_alloc, check_int_sizes

S2_BLOCK_BYTES = 8 * 2**20
S2_AUTO_CHANNELS = 16


def winograd_s2_pays(geom, dtype):
    """True when 'auto' should run F(2, 3) along the rows: 3x3 kernels at stride 2 (see above)."""
    if (geom.kh, geom.kw, geom.sh, geom.sw, geom.dh, geom.dw) != (3, 3, 2, 2, 1, 1):
        return False
    cg, kg = geom.channels // geom.groups, geom.kernels // geom.groups
    return min(cg, kg) >= S2_AUTO_CHANNELS


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
    per_row = _winograd_s2.scratch_row(2, *shape) - _winograd_s2.scratch_row(1, *shape)
    block = min(max(1, S2_BLOCK_BYTES // (per_row * dtype.itemsize)), out.shape[0] * ho)
    tiles = (wo + 1) // 2
    check_int_sizes(func, kernels_per_group=kg, transformed_depth=5 * q,
                    transformed_columns=block * tiles)
    with gemm_team(out.size * q * 3) as n_threads:
        row = _winograd_s2.scratch_row(block, *shape)
        check_alloc(func, dtype.itemsize, kernel_slots=(n_out, 5, q), blocks=(n_threads, row))
        with scratch((n_out, 5, q), dtype) as u, scratch((n_threads, row), dtype) as blocks:
            _winograd_s2.kernel_slots(w, u, n_threads)
            return _winograd_s2.conv2d_forward(x, u, bias, has_bias, out, kh, geom.sh,
                                               pad_top, pad_left, geom.dh, geom.groups,
                                               block, blocks, n_threads)
