"""The stride-1 GEMMs of method='auto' (kernels in _shifted.pyx): buffers and calls.

One GEMM per kernel tap reads a zero-padded copy of a few images stacked in
one buffer, shifted by the tap's offset, and accumulates into an output
block; see _shifted.pyx for the layout. Here: the buffers' sizes, the check
that a problem fits them, the weights as one matrix per tap, and the
forward call that conv2d and the input gradient share.
"""
import numpy as np

from cyconv import _shifted
from cyconv._threads import gemm_team
from cyconv._validate import INT_MAX, check_alloc, check_int_sizes, fits_int

# The shifted GEMMs (see _shifted.pyx) read a zero-padded copy of a few images
# at a time, at most SHIFTED_IMAGES_BYTES (one image if larger), and
# accumulate into an output block of at most SHIFTED_BLOCK_BYTES per thread
# that is read and written once per kernel tap, so it should stay in L2 (2 MiB
# per core here). Both were measured on the benchmark layers.
SHIFTED_IMAGES_BYTES = 4 * 2**20
SHIFTED_BLOCK_BYTES = 2**20
# The shifted GEMMs compute every pixel of each image's padded cell,
# (ho + kh-1) x (wo + kw-1), and drop the border: 'auto' takes them where
# that is at most SHIFTED_MAX_WASTE times the output's pixels, else im2col.
# benchmarks/shifted_rule.py (2-core AVX-512 Xeon, float32, forward,
# shifted / im2col): 0.80-1.01 at 1.15 (3x3 on 28x28, 5x5 on 56x56),
# 0.96-1.27 at 1.31, 0.92-2.45 at 1.65 (3x3 on 7x7: N1-C512 2.45), 1.07-2.96
# at 2.47. The input gradient by shifted GEMMs took 1.06-6.3x im2col's
# time at every size there, so conv2d_backward's 'auto' runs im2col's.
SHIFTED_MAX_WASTE = 1.2


def shifted_plane(geom, ho, wo):
    """(Hp, Wp): one image's padded cell for an ho x wo output at stride 1."""
    return ho + (geom.kh - 1) * geom.dh, wo + (geom.kw - 1) * geom.dw


def shifted_pays(geom):
    """True when the padded cell holds at most SHIFTED_MAX_WASTE times the output's pixels."""
    hp, wp = shifted_plane(geom, geom.ho, geom.wo)
    return hp * wp <= SHIFTED_MAX_WASTE * geom.ho * geom.wo


def shifted_fits(geom, dtype):
    """True when one image's padded cell fits SHIFTED_IMAGES_BYTES and BLAS's C int.

    For both directions: the forward pads the input (C channels), the input
    gradient pads grad_output (K channels) to the input's size.
    """
    hp, wp = shifted_plane(geom, max(geom.ho, geom.height), max(geom.wo, geom.width))
    channels = max(geom.channels, geom.kernels)
    return (channels * hp * wp * dtype.itemsize <= SHIFTED_IMAGES_BYTES
            and fits_int(hp * wp, channels * wp))


def shifted_buffers(func, batch, channels, kernels_per_group, hp, wp, dtype, n_threads):
    """The zeroed padded images (channels, nb*hp, wp) and one output block per thread."""
    check_int_sizes(func, padded_plane=hp * wp, block_row=kernels_per_group * wp)
    image_bytes = channels * hp * wp * dtype.itemsize
    per_block = max(1, min(batch, SHIFTED_IMAGES_BYTES // image_bytes, INT_MAX // (hp * wp)))
    rows = max(1, SHIFTED_BLOCK_BYTES // (kernels_per_group * wp * dtype.itemsize))
    check_int_sizes(func, block=kernels_per_group * rows * wp)
    check_alloc(func, dtype.itemsize, padded_images=(channels, per_block * hp, wp),
                blocks=(n_threads, kernels_per_group * rows * wp))
    return (np.zeros((channels, per_block * hp, wp), dtype),
            np.empty((n_threads, kernels_per_group * rows * wp), dtype))


def kernel_taps(w4):
    """(K, Cg, kh, kw) kernels as (kh*kw, K, Cg): one (K x Cg) matrix per tap."""
    k, cg, kh, kw = w4.shape
    return np.ascontiguousarray(w4.transpose(2, 3, 0, 1)).reshape(kh * kw, k, cg)


def run_shifted_forward(func, x, w, bias, has_bias, out, geom, pad_top, pad_left):
    """out = conv of x (N, C, H, W) by w (K, C/groups, kh, kw) at stride 1, by shifted GEMMs.

    ``out`` may be any size (the input gradient uses it with the input's).
    """
    hp, wp = shifted_plane(geom, out.shape[2], out.shape[3])
    taps = kernel_taps(w)
    with gemm_team(out.size * (w.size // w.shape[0])) as n_threads:
        padded, blocks = shifted_buffers(func, x.shape[0], x.shape[1],
                                         w.shape[0] // geom.groups, hp, wp, x.dtype, n_threads)
        _shifted.conv2d_forward(x, taps, bias, has_bias, out, geom.kh, geom.kw,
                                pad_top, pad_left, geom.dh, geom.dw, geom.groups,
                                padded, blocks, n_threads)
