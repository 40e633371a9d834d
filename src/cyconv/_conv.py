"""Convolution forward: output_shape and conv2d (torch.nn.functional naming)."""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from cyconv import _fft, _im2col
from cyconv._dispatch import _direct, _pointwise
# After _dispatch: _small calls the dispatched _direct's row loop (cimported).
from cyconv import _small  # noqa: E402,I001
# The function, not the module: test_threads watches the kernel modules' calls.
from cyconv._openmp import max_threads
from cyconv._scratch import aligned_empty
from cyconv._shifted_gemm import run_shifted_forward, shifted_fits, shifted_pays
from cyconv._stem import regblock_pays, run_regblock_forward
from cyconv._threads import gemm_team
from cyconv._typing import ConvMethod, FloatArray, IntPair, Padding, PaddingMode, Shape
from cyconv._winograd_gemm import check_winograd, run_winograd_forward, winograd_pays
from cyconv._winograd_s2_gemm import run_winograd_s2_forward, winograd_s2_pays
from cyconv._validate import (
    int_tuple,
    MEMORY_BYTES,
    PAD_MODES,
    WORKSPACE_BYTES,
    as_array,
    as_int,
    check_alloc,
    check_choice,
    check_int_sizes,
    fits_int,
    float_dtype,
    out_size,
    pair,
)

METHODS = ("auto", "direct", "im2col", "winograd")
# conv2d also runs single-channel, single-kernel convolutions by FFT.
FORWARD_METHODS = (*METHODS, "fft")


class Geometry(NamedTuple):
    """Everything about one convolution's shape, checked and normalized."""

    batch: int
    channels: int
    height: int
    width: int
    kernels: int
    kh: int
    kw: int
    groups: int
    sh: int
    sw: int
    dh: int
    dw: int
    # Zero-padding on each side: top, bottom, left, right ('same' may be uneven).
    pads: tuple
    ho: int
    wo: int
    # ndim of the caller's input (2, 3 or 4), to give back the same rank.
    ndim: int

    def output_shape(self):
        """The shape conv2d returns, in the caller's rank."""
        full = (self.batch, self.kernels, self.ho, self.wo)
        return full[4 - self.ndim:] if self.ndim > 2 else full[2:]


def _batched_shapes(func, input_shape, weight_shape):
    """Map the 2-D/3-D/4-D conventions to NCHW shapes; returns (x4, w4, ndim)."""
    input_shape = int_tuple(func, "input_shape", input_shape)
    weight_shape = int_tuple(func, "weight_shape", weight_shape)
    ndim = len(input_shape)
    if ndim == 2:
        if len(weight_shape) != 2:
            raise ValueError(
                f"{func}: a 2-D input {input_shape} needs a 2-D weight (kh, kw), "
                f"got weight shape {weight_shape}"
            )
        return (1, 1) + input_shape, (1, 1) + weight_shape, ndim
    if ndim in (3, 4):
        if len(weight_shape) != 4:
            raise ValueError(
                f"{func}: a {ndim}-D input {input_shape} needs a 4-D weight "
                f"(K, C/groups, kh, kw), got weight shape {weight_shape}"
            )
        return (1,) * (4 - ndim) + input_shape, weight_shape, ndim
    raise ValueError(
        f"{func}: input must be 2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W), "
        f"got shape {input_shape}"
    )


class _Shapes(tuple):
    """(input_shape, weight_shape) for messages, formatted only if one is raised."""

    def __str__(self):
        return f"input shape {tuple(self[0])}, weight shape {tuple(self[1])}"


def geometry(func, input_shape, weight_shape, stride, padding, dilation, groups):
    """Check a convolution's shapes and parameters; return its Geometry."""
    x4, w4, ndim = _batched_shapes(func, input_shape, weight_shape)
    n, c, h, w = x4  # ints, from _shape
    k, cg, kh, kw = w4
    shapes = _Shapes((input_shape, weight_shape))
    groups = as_int(func, "groups", groups, 1)
    if c % groups or k % groups:
        raise ValueError(
            f"{func}: groups={groups} must divide both the input channels C={c} "
            f"and the kernels K={k} ({shapes})"
        )
    if cg * groups != c:
        raise ValueError(
            f"{func}: weight.shape[1]={cg} but input has C={c} with groups={groups} "
            f"(need C == groups*weight.shape[1]; {shapes})"
        )
    if kh < 1 or kw < 1:
        raise ValueError(f"{func}: the kernel must be at least 1x1 ({shapes})")
    sh, sw = pair(func, "stride", stride, 1)
    dh, dw = pair(func, "dilation", dilation, 1)
    if isinstance(padding, str):
        check_choice(func, "padding", padding, ("valid", "same"))
        if padding == "valid":
            pads = (0, 0, 0, 0)
        else:
            if (sh, sw) != (1, 1):
                raise ValueError(
                    f"{func}: padding='same' needs stride 1, got stride {(sh, sw)}"
                )
            # The odd pixel goes to the bottom/right, as in PyTorch.
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = pair(func, "padding", padding, 0)
        pads = (ph, ph, pw, pw)
    ho = out_size(func, "height", h, kh, sh, pads[0] + pads[1], dh, shapes)
    wo = out_size(func, "width", w, kw, sw, pads[2] + pads[3], dw, shapes)
    return Geometry(n, c, h, w, k, kh, kw, groups, sh, sw, dh, dw, pads, ho, wo, ndim)


# geometry() costs microseconds, and conv2d sees the same arguments again and
# again (one layer, many batches). Its shapes come from ndarrays (tuples of
# ints) and its parameters are usually plain ints or strings: those calls keep
# their checked Geometry. typed=True keeps 2, 2.0 and True apart; a call that
# fails its checks raises every time (exceptions are not cached).
_cached_geometry = functools.lru_cache(maxsize=256, typed=True)(geometry)


def array_geometry(func, input_shape, weight_shape, stride, padding, dilation, groups):
    """``geometry`` for an ndarray's shapes, cached when the parameters are plain ints."""
    if (type(stride) is int and type(dilation) is int and type(groups) is int
            and type(padding) in (int, str)):
        return _cached_geometry(func, input_shape, weight_shape, stride, padding, dilation,
                                groups)
    return geometry(func, input_shape, weight_shape, stride, padding, dilation, groups)


def output_shape(input_shape: Shape, weight_shape: Shape, stride: IntPair = 1,
                 padding: Padding = 0, dilation: IntPair = 1, groups: int = 1) -> Shape:
    """Shape of the array that `conv2d` returns for these shapes and parameters.

    Parameters
    ----------
    input_shape : tuple of ints
        ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``.
    weight_shape : tuple of ints
        ``(K, C // groups, kh, kw)``, or ``(kh, kw)`` with a 2-D input.
    stride, dilation : int or tuple of 2 ints, default 1
    padding : int, tuple of 2 ints, 'valid' or 'same', default 0
    groups : int, default 1

    Returns
    -------
    tuple of ints
        ``(N, K, Ho, Wo)``, ``(K, Ho, Wo)`` or ``(Ho, Wo)``, following the rank
        of ``input_shape``.

    Raises
    ------
    ValueError
        If the shapes do not fit together, the output would be empty, or a
        padded size, stride or dilation exceeds 2**62.

    Notes
    -----
    ``Ho = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1``, likewise ``Wo``.

    Examples
    --------
    The exercise's RGB image with 12323 kernels of 40x40x3 at stride 2:

    >>> import cyconv
    >>> cyconv.output_shape((3, 200, 200), (12323, 3, 40, 40), stride=2)
    (12323, 81, 81)
    """
    geom = geometry("output_shape", input_shape, weight_shape, stride, padding,
                    dilation, groups)
    return geom.output_shape()


def weight4(w, geom):
    """The weight as (K, C/groups, kh, kw); -1 cannot be used, K may be 0."""
    return w.reshape(geom.kernels, geom.channels // geom.groups, geom.kh, geom.kw)


def padding_plan(func, geom, padding_mode):
    """Check ``padding_mode`` against the geometry; say who pads and where.

    Returns ``(mode, pad_top, pad_left)``: ``mode`` is None when the kernels
    pad with zeros themselves at offset (pad_top, pad_left), else the
    ``numpy.pad`` mode the Python layer pads with, and the kernels get (0, 0).
    """
    mode = PAD_MODES[check_choice(func, "padding_mode", padding_mode, PAD_MODES)]
    if mode is None or not any(geom.pads):
        return None, geom.pads[0], geom.pads[2]
    top, bottom, left, right = geom.pads
    for axis, size, before, after in (("height", geom.height, top, bottom),
                                      ("width", geom.width, left, right)):
        if size == 0 and before + after:
            raise ValueError(
                f"{func}: padding_mode={padding_mode!r} cannot pad an empty input "
                f"{axis}, got padding {(before, after)}"
            )
        # PyTorch's limits: reflect mirrors once (pad < size), circular wraps
        # once (pad <= size); replicate repeats the edge pixel as far as needed.
        if padding_mode == "replicate":
            continue
        limit = size - 1 if padding_mode == "reflect" else size
        if max(before, after) > limit:
            raise ValueError(
                f"{func}: padding_mode={padding_mode!r} needs padding "
                f"{'<' if padding_mode == 'reflect' else '<='} the input {axis} "
                f"{size}, got padding {(before, after)}"
            )
    return mode, 0, 0


def kernel_input_shape(geom, mode):
    """Shape of the input the kernels see: padded here for a mode, else as given."""
    top, bottom, left, right = geom.pads if mode is not None else (0, 0, 0, 0)
    return (geom.batch, geom.channels, geom.height + top + bottom, geom.width + left + right)


def prepare_input(func, x, geom, padding_mode, dtype, explicit_zeros=False):
    """C-contiguous NCHW input of ``dtype``; modes other than zeros are padded here.

    With ``explicit_zeros`` zero padding is written here too, so that every
    path sums padded taps as 0 * w (NaN for an inf or NaN weight, as the
    definition, SciPy and PyTorch give; some kernels skip padded taps).
    Returns the array and the zero-padding (top, left) left to the kernel.
    """
    mode, pad_top, pad_left = padding_plan(func, geom, padding_mode)
    if mode is None and explicit_zeros and any(geom.pads):
        mode, pad_top, pad_left = "constant", 0, 0
    itemsize = np.dtype(dtype).itemsize
    if x.size * itemsize > MEMORY_BYTES:  # a copy of a broadcast view (small calls skip this)
        check_alloc(func, itemsize, input=(geom.batch, geom.channels, geom.height, geom.width))
    x = np.ascontiguousarray(x.reshape(geom.batch, geom.channels, geom.height, geom.width),
                             dtype=dtype)
    if mode is None:
        return x, pad_top, pad_left
    check_alloc(func, itemsize, padded_input=kernel_input_shape(geom, mode))
    top, bottom, left, right = geom.pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)
    return x, pad_top, pad_left


def gemm_sizes(geom):
    """The dimensions of one (image, group) GEMM, named as the messages name them."""
    return dict(kernels_per_group=geom.kernels // geom.groups,
                patch_size=geom.channels // geom.groups * geom.kh * geom.kw,
                output_pixels=geom.ho * geom.wo)


def gemm_workspace(func, geom, dtype, n_threads):
    """Scratch for unrolled columns, one row per thread: WORKSPACE_BYTES in all, >= one column each.

    Each thread of an im2col driver unrolls ``row.size // patch_size``
    output pixels at a time. Raises ValueError if a GEMM dimension does not
    fit a C int.
    """
    sizes = gemm_sizes(geom)
    check_int_sizes(func, **sizes)
    q_len, n_pos = sizes["patch_size"], sizes["output_pixels"]
    block = max(1, min(n_pos, WORKSPACE_BYTES // (n_threads * q_len * dtype.itemsize)))
    check_alloc(func, dtype.itemsize, workspace=(n_threads, q_len * block))
    return np.empty((n_threads, q_len * block), dtype)


# im2col's forward and input gradient put the columns of several small
# images side by side in one GEMM, up to IM2COL_BATCH_COLUMNS of them (see
# _im2col._forward_images and _grad_input_images).
# `benchmarks/im2col_batch_rule.py [--input-gradient]` (method='im2col', 2
# threads, float32, an idle 2-core AVX-512 Xeon, medians of 7 interleaved
# rounds, time over one image per GEMM): forward, N8 7x7 outputs (3x3
# C128..512, 3x3/2, 1x1/2, 5x5) 0.77-0.84 with 512 columns, 0.78-0.88 with
# 256, 0.85-0.90 with 128; 14x14 outputs (two images a GEMM at 512) 1.00;
# N4-C512-7 0.84. Input gradient: N8 7x7 outputs 0.68-0.79 with 512
# columns, 14x14 0.95-0.96, N4-C512-7 0.78. Runs that left a thread one
# image short (3, 3, 2 of 8) took 1.04-1.21 (forward).
IM2COL_BATCH_COLUMNS = 512


def batched_images(geom, dtype, n_threads):
    """Images per task of im2col's forward: 1, or as many small images as fit
    IM2COL_BATCH_COLUMNS columns in runs that share the images evenly between
    the threads (whole runs per thread) and a workspace of WORKSPACE_BYTES."""
    sizes = gemm_sizes(geom)
    n_pos = sizes["output_pixels"]
    row = (sizes["patch_size"] + sizes["kernels_per_group"]) * n_pos * dtype.itemsize
    runs = max(1, -(-n_threads // geom.groups))  # runs of images per group
    while runs < geom.batch:
        images = -(-geom.batch // runs)
        if images * n_pos <= IM2COL_BATCH_COLUMNS and n_threads * images * row <= WORKSPACE_BYTES:
            return images
        runs += 1
    return 1


def batched_workspace(func, geom, dtype, n_threads, images):
    """The workspace of batched_images' tasks: columns and product, one row per thread."""
    sizes = gemm_sizes(geom)
    check_int_sizes(func, **sizes, batched_columns=images * sizes["output_pixels"])
    row = (sizes["patch_size"] + sizes["kernels_per_group"]) * images * sizes["output_pixels"]
    check_alloc(func, dtype.itemsize, workspace=(n_threads, row))
    return np.empty((n_threads, row), dtype)


def phase_workspace(func, geom, dtype, workspace):
    """Scratch for the strided unroll's phase planes (_im2col.conv2d_forward), one row per thread.

    Blocks of whole output rows at stride > 1 take the phase planes (a
    padded channel split by stride phase, about one input plane); otherwise
    one element per thread, which the kernel leaves alone.
    """
    n_threads = workspace.shape[0]
    block = min(geom.ho * geom.wo, workspace.shape[1] // gemm_sizes(geom)["patch_size"])
    size = _im2col.phase_scratch(block, geom.ho, geom.wo, geom.kh, geom.kw,
                                 geom.sh, geom.sw, geom.dh, geom.dw)
    if size:
        check_alloc(func, dtype.itemsize, phase_planes=(n_threads, size))
    return np.empty((n_threads, max(size, 1)), dtype)


def choose_method(geom, dtype):
    """The method 'auto' runs: GEMMs once there are several kernels per group.

    With one or two kernels per group the GEMM degenerates to a matrix-vector
    product and unrolling costs more than it saves, so the direct loops win.
    Few channels per group with a kernel of 5x5 or more (a network's stem),
    or 3x3 at stride 1, run the register-blocked direct kernels ('regblock',
    cyconv._stem), which copy the input once instead of kh*kw times.
    At stride 1 the GEMMs read the image in place ('shifted', no unrolled
    copy) where the images are large enough that the padded border they
    also compute adds little (shifted_pays). A 1x1 kernel at stride 1
    without padding needs no copy either way: float32/float64 run cyconv's
    packed GEMM on it ('pointwise', cyconv._pointwise), other dtypes
    im2col's pointwise case. Sizes that do not fit BLAS's C int leave only
    the direct loops.
    """
    if geom.kernels // geom.groups < 4:
        return "direct"
    if pointwise_applies(geom, dtype):
        return "pointwise"
    if regblock_pays(geom, dtype):
        return "regblock"
    if ((geom.sh, geom.sw) == (1, 1) and geom.kh * geom.kw > 1 and shifted_fits(geom, dtype)
            and shifted_pays(geom)):
        return "shifted"
    return "im2col" if fits_int(*gemm_sizes(geom).values()) else "direct"


# The packed GEMM of a 1x1 layer (cyconv._pointwise) wants images of at least
# this many pixels: on 7x7 ones (49: four vectors of columns, the last one
# holding one) it took 1.09-1.24x OpenBLAS's time, on 14x14 ones 0.88-0.99x
# (benchmarks/pointwise_rule.py).
POINTWISE_MIN_PIXELS = 100


def pointwise_applies(geom, dtype):
    """True for float32/float64 1x1 layers at stride 1 without padding of enough pixels."""
    return (dtype in _FLOATS and (geom.kh, geom.kw, geom.sh, geom.sw) == (1, 1, 1, 1)
            and not any(geom.pads) and geom.ho * geom.wo >= POINTWISE_MIN_PIXELS)


def run_pointwise(x, w, bias, has_bias, out, groups):
    """out = the 1x1 products of x (N, C, H, W) by w (K, C/groups, 1, 1) (cyconv._pointwise).

    Arrays C-contiguous, of one float dtype, non-empty.
    """
    n, rows_out = out.shape[:2]
    _pointwise.products(x.reshape(n, x.shape[1], -1), w.reshape(w.shape[0], -1), bias,
                        has_bias, out.reshape(n, rows_out, -1), groups)


# The bias of a single kernel without one, for each dtype a forward kernel
# runs in: read-only, so shared by every call (and thread) instead of
# allocated each time.
ZERO_BIAS = {np.dtype(char): np.zeros(1, char) for char in "fdgFDGQ"}
for _zero in ZERO_BIAS.values():
    _zero.flags.writeable = False


# A depthwise convolution's plane is copied into a zero-padded buffer per
# thread when the padded plane is at most this size (so it stays in L2): its
# rows then have no border columns, which the direct loops sum one by one.
DEPTHWISE_PLANE_BYTES = 2**18
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def depthwise_scratch(x, w, out_shape, sh, sw, dh, dw, groups, extra=0):
    """Zeroed plane buffers, one per thread, for the depthwise kernels; None if they do not apply.

    They apply to float32/float64 depthwise convolutions (groups == C == K)
    at stride 1 whose buffers (the padded plane, ``out_shape`` grown by the
    kernel's extent, as many flat rows as the output has, and ``extra``
    elements more) fit DEPTHWISE_PLANE_BYTES.
    """
    kh, kw = w.shape[2], w.shape[3]
    ho, wp = out_shape[2], out_shape[3] + (kw - 1) * dw
    # The padded plane (Hp, Wp) and the flat rows (ho, Wp) that go with it.
    cell = (ho + (kh - 1) * dh) * wp + ho * wp + extra
    if (groups == x.shape[1] == w.shape[0] > 1 and (sh, sw) == (1, 1)
            and x.dtype in _FLOATS and cell * x.dtype.itemsize <= DEPTHWISE_PLANE_BYTES):
        return np.zeros((max_threads(), cell), x.dtype)
    return None


def run_direct(x, w, bias, out, sh, sw, ph, pw, dh, dw, groups):
    """The direct loops on prepared arrays; depthwise at stride 1 has its own kernel."""
    scratch = depthwise_scratch(x, w, out.shape, sh, sw, dh, dw, groups)
    if scratch is not None:
        _direct.depthwise_forward(x, w, bias, out, ph, pw, dh, dw, scratch)
    else:
        _direct.conv2d_forward(x, w, bias, out, sh, sw, ph, pw, dh, dw, groups)


def run_forward(func, x, w, b, geom, pad_top, pad_left, method):
    """Run one forward kernel on prepared NCHW arrays; returns (N, K, ho, wo)."""
    dtype = x.dtype
    shape = (geom.batch, geom.kernels, geom.ho, geom.wo)
    if geom.batch * geom.kernels * geom.ho * geom.wo * dtype.itemsize > MEMORY_BYTES:
        check_alloc(func, dtype.itemsize, output=shape)  # which says why
    out = aligned_empty(shape, dtype) if method == "pointwise" else np.empty(shape, dtype)
    if out.size == 0:
        return out
    bias = b
    if b is None:
        bias = ZERO_BIAS[dtype] if geom.kernels == 1 else np.zeros(geom.kernels, dtype)
    if x.size == 0 or w.size == 0:
        # An empty sum: every output is its bias.
        out[...] = bias[:, None, None]
        return out
    args = (geom.sh, geom.sw, pad_top, pad_left, geom.dh, geom.dw, geom.groups)
    if method == "direct":
        run_direct(x, w, bias, out, *args)
    elif method == "pointwise":
        run_pointwise(x, w, bias, b is not None, out, geom.groups)
    elif method == "regblock":
        run_regblock_forward(func, x, w, bias, out, geom, pad_top, pad_left)
    elif method == "shifted":
        run_shifted_forward(func, x, w, bias, b is not None, out, geom, pad_top, pad_left)
    elif method == "fft":
        _fft.conv2d_forward(x, w, bias, out, *args)
    elif method == "winograd":
        if (geom.sh, geom.sw) == (1, 1):
            finite = run_winograd_forward(func, x, w, bias, b is not None, out, geom.groups,
                                          pad_top, pad_left)
        else:
            finite = run_winograd_s2_forward(func, x, w, bias, b is not None, out, geom,
                                             pad_top, pad_left)
        if not finite:
            # A NaN or inf among the input values read, which the transforms
            # spread over whole tiles: the method 'auto' takes without Winograd.
            return run_forward(func, x, w, b, geom, pad_top, pad_left,
                               choose_method(geom, dtype))
    else:
        with gemm_team(out.size * (w.size // w.shape[0])) as n_threads:
            images = batched_images(geom, dtype, n_threads)
            workspace = (gemm_workspace(func, geom, dtype, n_threads) if images == 1 else
                         batched_workspace(func, geom, dtype, n_threads, images))
            _im2col.conv2d_forward(x, w, bias, b is not None, out, *args, workspace,
                                   phase_workspace(func, geom, dtype, workspace), n_threads,
                                   images=images)
    return out


def conv2d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, *,
           padding_mode: PaddingMode = "zeros",
           method: ConvMethod = "auto") -> FloatArray:
    """2-D convolution (cross-correlation, as in deep learning) of a batch of images.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W), (C, H, W) or (H, W)
        Images. Any memory layout; integer and bool arrays are computed as
        float64.
    weight : array_like, shape (K, C // groups, kh, kw), or (kh, kw) with a 2-D input
        Kernels. Not flipped.
    bias : array_like, shape (K,), optional
        Added to every output pixel of channel k. A scalar or shape (1,) with
        a 2-D input. A Python scalar does not change the result dtype.
    stride : int or tuple of 2 ints, default 1
    padding : int, tuple of 2 ints, 'valid' or 'same', default 0
        Pixels added on each side. ``'same'`` (stride 1 only) pads so the
        output has the input's size, the odd pixel at the bottom/right.
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps.
    groups : int, default 1
        Input channels and kernels are split into ``groups`` blocks; block g of
        the kernels sees only block g of the channels.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        What the padding holds: zeros; the mirror image without repeating the
        edge pixel; the edge pixel repeated; or the opposite edge (wrap).
    method : {'auto', 'direct', 'im2col', 'fft', 'winograd'}, default 'auto'
        ``'direct'`` runs the nested sum as C loops; ``'im2col'`` unrolls the
        input and runs one BLAS GEMM per image and group (in bounded blocks);
        ``'fft'`` (one input channel and one kernel only) multiplies spectra
        through ``scipy.fft``; ``'winograd'`` (3x3 kernels at dilation 1
        and stride 1 or 2 only) runs Winograd's minimal filtering F(4x4, 3x3)
        or F(2x2, 3x3) at stride 1 and F(2, 3) along the rows at stride 2,
        see Notes; ``'auto'`` picks from the shapes: the direct
        loops for fewer than 4 kernels per group, register-blocked direct
        loops for at most 16 channels per group with 5x5 or larger kernels
        (a network's stem) and at most 4 with 3x3 or larger kernels at
        stride 1, else GEMMs -- at stride 1
        one per kernel tap reading the zero-padded image in place (the
        im2col product without the unrolled copy), otherwise im2col -- and
        ``'winograd'`` for float 3x3 kernels at stride 1 and dilation 1 with
        at least 16 channels and 16 kernels per group, output tiles times
        channels per group at least 2048 per thread, and finite values,
        and at stride 2 with at least 32 channels and 32 kernels per group,
        392 pairs of outputs per thread and finite values (so its rounding,
        see Notes, applies to those; integer data stays exact).

    Returns
    -------
    ndarray, shape (N, K, Ho, Wo), (K, Ho, Wo) or (Ho, Wo)
        New C-contiguous array, float32 if every input is float32, else float64.

    Raises
    ------
    ValueError
        For shapes that do not fit together, an empty output, bad
        stride/padding/dilation/groups/padding_mode/method values,
        ``method='fft'`` with several input channels or kernels, or
        ``method='winograd'`` with a kernel other than 3x3, a dilation
        other than 1 or a stride other than 1 or 2.
    TypeError
        For complex, object or string inputs, or non-integer parameters.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    Notes
    -----
    ``out[n, k, i, j] = bias[k] + sum_{c, p, q} weight[k, c, p, q] *
    x[n, g*C/groups + c, i*sh - ph + p*dh, j*sw - pw + q*dw]``
    with ``g = k // (K/groups)``, and the output size
    ``Ho = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1`` (likewise ``Wo``).

    ``method='fft'`` computes the stride-1 correlation of the padded input
    with the dilated kernel (zeros between the taps) from the product of the
    two spectra, tile by tile on large inputs (overlap-save, on the kernels'
    threads), keeps every ``sh``-th row and ``sw``-th column, and adds the
    bias. It agrees with the direct sum to rounding; where it could not, the
    direct loops run instead: integer or bool input and weight (the result
    stays exact) and inputs holding NaN or inf (a transform would spread them
    over the whole output).

    ``method='winograd'`` computes each 4x4 (or 2x2) output tile from the
    6x6 (4x4) input tile under it: the input tiles and the kernels are
    transformed, multiplied channel by channel as 36 (16) GEMMs over blocks
    of tiles of all images, and transformed back -- 36 multiplications per
    16 outputs and channel where the sum needs 144. F(2x2) runs where it
    needs fewer multiplications over the whole output (small images). It
    differs from the exact sum by rounding of a larger size than the other
    methods' (its transforms mix a whole tile): at most
    ``64 * eps * max|input| (*) |weight|`` plus ``eps * max|bias|``, where
    ``max|input| (*) |weight|`` is the largest output of the convolution
    of the absolute values and ``eps`` the result dtype's (1.2e-7 float32,
    2.2e-16 float64); measured at most 29 eps (F(2x2): 6 eps) for 3 to 1024
    channels and values of scale 1e-3 to 1e3. The transformed input is up
    to 196 times the input's magnitude. Where it overflows, and for inputs
    or weights holding NaN or inf, which it would spread over a tile, the
    result is computed as ``'auto'`` computes it without Winograd (the
    input is checked as the tiles are transformed).

    At stride 2, ``method='winograd'`` computes each two neighbouring
    outputs of a row from the five pixels under them: the even taps meet
    the even pixels as a two-tap correlation, whose two outputs F(2, 2)
    gets with three multiplications, and the odd tap needs two -- five
    multiplications per kernel row and channel where the sum needs six,
    as three GEMMs over blocks of output rows of all images. Its
    transforms are sums and differences: its rounding stays within the
    stride-1 bound above (measured at most 7.5 eps for 3 to 1024 channels
    and scales 1e-3 to 1e3, where im2col's GEMM measured up to 11.5 eps
    on the same data). Differences that overflow, and NaN or inf, give
    the result ``'auto'`` computes without Winograd, as at stride 1.

    Examples
    --------
    The course exercise: a 5x5 image, a 3x3 kernel, stride 2.

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> K = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    >>> cyconv.conv2d(I, K, stride=2)
    array([[1., 6.],
           [0., 9.]])

    A 3x3 layer by Winograd's F(4x4, 3x3): the direct sum's result to
    float32 rounding (outputs here up to about 25 in magnitude).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    >>> w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    >>> y = cyconv.conv2d(x, w, padding=1, method='winograd')
    >>> y.shape, y.dtype
    ((2, 4, 9, 9), dtype('float32'))
    >>> direct = cyconv.conv2d(x, w, padding=1, method='direct')
    >>> bool(np.abs(y - direct).max() < 1e-3)
    True
    """
    out = _small.conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                        method)
    if out is not None:  # one small plane, computed in one compiled call
        return out
    func = "conv2d"
    x = as_array(func, "input", input)
    w = as_array(func, "weight", weight)
    b = None if bias is None else as_array(func, "bias", bias)
    # A Python scalar bias is weak (NEP 50): it does not upcast float32. A NumPy
    # scalar is not (np.float64 subclasses float, so test the exact type).
    weak_bias = type(bias) in (int, float)
    dtype = float_dtype(x, w, None if weak_bias else b)
    geom = array_geometry(func, x.shape, w.shape, stride, padding, dilation, groups)
    check_choice(func, "method", method, FORWARD_METHODS)
    if method == "winograd":
        check_winograd(func, geom, forward=True)
    if method == "fft":
        if (geom.channels, geom.kernels) != (1, 1):
            raise ValueError(
                f"{func}: method='fft' needs a single input channel and a single kernel, "
                f"got input shape {x.shape} and weight shape {w.shape}"
            )
        if x.dtype.kind in "biu" and w.dtype.kind in "biu":
            method = "direct"  # integer data stays exact, as in the SciPy drop-ins
        else:  # the dilated kernel and the (complex) spectra span the padded input at most
            check_alloc(func, 16, fft_planes=(geom.batch,
                                              geom.height + geom.dh * (geom.kh - 1) + 1,
                                              geom.width + geom.dw * (geom.kw - 1) + 1))
    if b is not None:
        expected = (geom.kernels,)
        if b.shape != expected and not (geom.ndim == 2 and b.ndim == 0):
            raise ValueError(f"{func}: bias must have shape {expected}, got {b.shape}")
        b = np.ascontiguousarray(b.reshape(expected), dtype=dtype)
    if w.size * dtype.itemsize > MEMORY_BYTES:  # a copy of a broadcast view
        check_alloc(func, dtype.itemsize, weight=w.shape)
    # The input as the kernels read it and the output live at once.
    check_alloc(func, dtype.itemsize, output=geom.output_shape(),
                input=kernel_input_shape(geom, padding_plan(func, geom, padding_mode)[0]))
    # Integer data stays exact: Winograd's transforms round (1/2, 1/4, ...).
    float_data = x.dtype.kind == "f" or w.dtype.kind == "f"
    w = np.ascontiguousarray(weight4(w, geom), dtype=dtype)
    auto_winograd = False
    if method == "auto":
        method = choose_method(geom, dtype)
        # (3x3 layers too small for the shifted GEMMs run im2col; Winograd
        # where it pays, at stride 1 or 2.)
        auto_winograd = float_data and method in ("shifted", "im2col") and (
            winograd_pays(geom, dtype) or winograd_s2_pays(geom, dtype))
    # One pass over the weight, only where a use below reads it (a 1x1 layer's
    # 512x256 weight: 18 us): explicit zero padding, the FFT and Winograd.
    w_finite = True
    if ((dtype.kind in "fc" and any(geom.pads)) or auto_winograd
            or method in ("fft", "winograd")):
        w_finite = _fft.all_finite(w)
    x, pad_top, pad_left = prepare_input(func, x, geom, padding_mode, dtype,
                                         dtype.kind in "fc" and not w_finite)

    # The FFT and Winograd mix a whole image or tile: their dtypes, finite
    # values. Winograd checks the input as it transforms it (run_forward).
    weight_applies = x.dtype in _fft.FFT_DTYPES and w_finite
    if auto_winograd:
        if weight_applies:  # NaN or inf would spread over a tile
            method = "winograd"
    elif method == "fft" and not (weight_applies and _fft.all_finite(x)):
        method = "direct"  # NaN or inf: a transform would spread them everywhere
    elif method == "winograd" and not weight_applies:
        method = choose_method(geom, x.dtype)  # NaN or inf: it would spread over a tile
    out = run_forward(func, x, w, b, geom, pad_top, pad_left, method)
    return out.reshape(geom.output_shape())
