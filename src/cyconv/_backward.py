"""Convolution backward: conv2d_backward, the gradients of conv2d."""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from cyconv import _conv, _fft, _im2col
from cyconv._dispatch import _direct, _pointwise
from cyconv._typing import FloatArray, IntPair, Padding, PaddingMode
from cyconv._conv import (
    METHODS,
    ZERO_BIAS,
    array_geometry,
    batched_images,
    choose_method,
    depthwise_scratch,
    gemm_sizes,
    gemm_workspace,
    kernel_input_shape,
    padding_plan,
    phase_workspace,
    prepare_input,
    run_direct,
    run_pointwise,
    weight4,
)
from cyconv._shifted_gemm import run_shifted_forward
from cyconv._transpose_winograd import up2_applies, up2_layer, up2_wanted
from cyconv._winograd_gemm import (check_winograd, enough_tiles, run_winograd_forward,
                                   transformed_bytes, winograd_pays)
from cyconv._winograd_wgrad_gemm import run_winograd_grad_weight, winograd_wgrad_pays
from cyconv._openmp import max_threads
from cyconv._scratch import aligned_empty
from cyconv._threads import blas_threads, gemm_team, kernel_team, thread_limit
from cyconv._validate import (
    PAD_MODES,
    as_array,
    check_alloc,
    check_choice,
    check_int_sizes,
    float_dtype,
)


# conv2d_backward's 'auto' takes Winograd's input gradient where conv2d's
# 'auto' takes Winograd and there are at least as many 4x4 tiles per kernel
# thread as this gives for each transformed-kernel size exceeded (as
# WINOGRAD_AUTO_KERNEL_TILES). `benchmarks/winograd_rule.py THREADS
# input-gradient` (Winograd's time over im2col's, N 1..8, C = K 32..512,
# 7..16 pixels, float32, an idle 2-core AVX-512 Xeon, medians of 9
# interleaved calls): where this takes it, two threads 0.52-1.05, one thread
# 0.41-0.93. Left to im2col: C=K=512 (38 MB transformed) with 64 tiles on
# two threads 0.94-1.38 and with 32-36 on one 1.03-1.38; 32-36 tiles on two
# threads 0.73-1.21 (N2-C128-14 1.20, N8-C64-8 and N8-C128-8 0.73); 16-18
# tiles on one thread 0.68-1.65.
WINOGRAD_GRAD_TILES = ((0, 32), (16 * 2**20, 64))
# With several kernel threads, the Winograd input and weight gradients run
# side by side, each on half of them (the input gradient and the bias's sum
# on a second Python thread: the kernels release the GIL), where the weight
# gradient's products (36 * tiles * K * C/groups) are at least this many
# multiply-adds: starting a thread costs about 0.1 ms. Measured against
# one after the other on both threads (interleaved in one process, float32,
# N=8, padding 1, 2 threads, a machine loaded by other jobs: indicative),
# time over the old: C=K=64 56x56 0.40-0.76, C=K=256 14x14 0.55-0.63, C=K=32
# 16x16 0.60-1.38; process CPU time 0.40-0.73 (the threads no longer wait for
# each other at the kernels' barriers). On one thread each, the two take
# about the same time on both layers (13 ms).
SIDE_BY_SIDE_WORK = 2**21
# ... and only where the weight gradient's transformed sums (36 * K * C/groups
# values) are at least this many: on two threads each thread adds into sums
# of its own, whose traffic grows with them; on one thread that is halved.
# With fewer, the two on one thread each finish unevenly (the weight gradient
# takes longer) and one after the other on both threads was faster.
# benchmarks/side_by_side_rule.py on an idle 2-core Xeon (AVX-512), float32,
# padding 1, side by side / one after the other, medians of 11 interleaved
# rounds, two runs: C=K=256..512 (2.4M..9.4M sums) 0.77-1.00 (N8-C256-14
# 0.92-0.93, N1-C256-28 0.77-0.86, N8-C512-7 1.00); C=K=192 (1.3M) 0.97 and
# 1.04: the boundary; C=K=128 (0.59M) 0.93-1.03; C=K=16..64 1.06-1.77
# (N8-C64-56 1.06-1.07, N8-C32-112 1.18-1.21).
SIDE_BY_SIDE_SUMS = 2**20

# Under 'auto', im2col's gradients run their products on cyconv's packed
# GEMM (cyconv._pointwise, built per SIMD level; PACKED_GEMMS by dtype)
# where the weight takes at most PACKED_IM2COL_WEIGHT_BYTES, else on
# OpenBLAS: the input gradient's packed GEMM reads the transposed weight
# once per panel of pixels, from L2 only while it fits.
# `benchmarks/packed_im2col_rule.py` (packed / OpenBLAS, each gradient
# alone and both, 2 threads, float32, an idle 2-core AVX-512 Xeon, medians
# of 7 interleaved rounds, two runs): weights up to 512 KiB 0.66-1.02
# (stems 0.66-0.89, 3x3/2 C32..64 0.84-0.96, 1x1/2 0.84-0.97, 5x5 0.80-1.02),
# 800 KiB 0.98-1.00, 1.1 MiB and more 1.01-1.32 (N8-C512-7 3x3 1.16-1.32).
PACKED_GEMMS = _pointwise.packed_gemms()
PACKED_IM2COL_WEIGHT_BYTES = 2**19


def _packed_gemm(w4):
    """The packed GEMM's capsule for 'auto''s im2col gradients with this weight, or None."""
    if w4.nbytes > PACKED_IM2COL_WEIGHT_BYTES:
        return None
    return PACKED_GEMMS.get(w4.dtype.name)


def _team(packed, work):
    """``with _team(packed, work) as n_threads``: kernel threads only for the packed
    GEMM, BLAS held at one thread for OpenBLAS's (gemm_team)."""
    return contextlib.nullcontext(kernel_team(work)) if packed is not None else gemm_team(work)


def _output_mask(func, output_mask):
    """``output_mask`` as three Python bools (grad_input, grad_weight, grad_bias)."""
    if isinstance(output_mask, (str, bytes)) or not hasattr(output_mask, "__len__"):
        raise TypeError(
            f"{func}: output_mask must be a sequence of 3 bools, got {output_mask!r}"
        )
    if len(output_mask) != 3:
        raise ValueError(
            f"{func}: output_mask must have 3 entries (input, weight, bias), "
            f"got {len(output_mask)}"
        )
    for flag in output_mask:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(
                f"{func}: output_mask entries must be bools, got {output_mask!r}"
            )
    return tuple(bool(flag) for flag in output_mask)


def _fold_padding(grad, pads, padding_mode):
    """Adjoint of ``np.pad`` on the last two axes: padding gradients go home.

    ``grad`` is the gradient with respect to the padded input; each padded
    cell's gradient is added to the input cell ``np.pad`` copied it from.
    The copy is separable, so each axis is folded on its own, through the
    index map that ``np.pad`` itself builds from ``arange``.
    """
    mode = PAD_MODES[padding_mode]
    top, bottom, left, right = pads
    for axis, before, after in ((2, top, bottom), (3, left, right)):
        size = grad.shape[axis] - before - after
        source = np.pad(np.arange(size), (before, after), mode=mode)
        inner = [slice(None)] * 4
        inner[axis] = slice(before, before + size)
        folded = grad[tuple(inner)].copy()
        for u in [*range(before), *range(before + size, before + size + after)]:
            to, frm = [slice(None)] * 4, [slice(None)] * 4
            to[axis], frm[axis] = source[u], u
            folded[tuple(to)] += grad[tuple(frm)]
        grad = folded
    return grad


def _transposes_to_forward(geom, pad_top, pad_left):
    """True when the input gradient is a forward correlation (stride 1, padding within the kernel).

    At stride 1, ``grad_input`` is ``grad_output`` correlated with the
    flipped, channel-transposed kernels, zero-padded by ``(kh-1)*dh - pad``
    on top (likewise left): that padding must not be negative.
    """
    return ((geom.sh, geom.sw) == (1, 1) and pad_top <= (geom.kh - 1) * geom.dh
            and pad_left <= (geom.kw - 1) * geom.dw)


def _grad_input_as_forward(func, gy, w4, grad_input, geom, pad_top, pad_left, method):
    """grad_input (every element written) by a stride-1 forward: direct loops, shifted GEMMs or Winograd.

    ``grad_input[n, g*Cg + c, y, x] = sum_{k, p, q} gy[n, g*Kg + k, y + pad_top - p*dh,
    x + pad_left - q*dw] * w[g*Kg + k, c, p, q]``: with ``p' = kh-1-p``, a
    correlation of gy with ``w'[g*Cg + c, k, p', q'] = w[g*Kg + k, c, p, q]``,
    groups unchanged.
    """
    groups, kg = geom.groups, geom.kernels // geom.groups
    cg = geom.channels // geom.groups
    wt = w4.reshape(groups, kg, cg, geom.kh, geom.kw).transpose(0, 2, 1, 3, 4)
    wt = np.ascontiguousarray(wt[..., ::-1, ::-1]).reshape(geom.channels, kg, geom.kh, geom.kw)
    top, left = (geom.kh - 1) * geom.dh - pad_top, (geom.kw - 1) * geom.dw - pad_left
    zeros = np.zeros(geom.channels, gy.dtype)
    if method == "direct":
        run_direct(gy, wt, zeros, grad_input, 1, 1, top, left, geom.dh, geom.dw, groups)
    elif not (method == "winograd" and run_winograd_forward(
            func, gy, wt, zeros, False, grad_input, groups, top, left)):
        # Shifted GEMMs, asked for or because a transformed tile overflowed.
        run_shifted_forward(func, gy, wt, zeros, False, grad_input, geom, top, left)


def _side_by_side(first, second):
    """``(first(), second())``, run at the same time: first on a new thread, second on this one.

    The kernel threads are split between them (OpenMP's thread count is per
    thread: `cyconv._threads.thread_limit`), so that no more threads run
    than the setting; each holds BLAS at one thread where it calls it
    (`cyconv._threads.gemm_team`). An exception of either is raised here,
    once both have ended.
    """
    threads = max_threads()
    results, failed = [], []

    def work():
        try:
            with thread_limit(threads // 2):
                results.append(first())
        except BaseException as exc:  # raised again on the calling thread
            failed.append(exc)

    worker = threading.Thread(target=work, name="cyconv-backward")
    worker.start()
    try:
        with thread_limit(threads - threads // 2):
            second_result = second()
    finally:
        worker.join()
    if failed:
        raise failed[0]
    return results[0], second_result


def _depthwise_gradients(func, x, gy, w4, geom, pad_top, pad_left, with_input):
    """A depthwise convolution's weight gradient, and its input gradient if ``with_input``,
    in one pass of `_direct.depthwise_backward`; ``(None, None)`` where that kernel does
    not apply (zero padding left to the kernel assumed).

    The input gradient needs the conditions of `_transposes_to_forward` and a
    finite weight. The weight gradient comes back None (compute it otherwise)
    when it is not finite: the kernel's zeros meet x, so a NaN or inf in x
    can give a NaN that the definition does not, and an inf in grad_output
    can miss the padding's zeros (inf, where the definition has NaN).
    """
    dtype = gy.dtype
    if geom.channels != geom.groups:
        return None, None
    # The gradient's zero-padded plane, as the input gradient's forward pass reads it.
    extra = (geom.height + (geom.kh - 1) * geom.dh) * (geom.width + (geom.kw - 1) * geom.dw)
    scratch = depthwise_scratch(gy, w4, gy.shape, geom.sh, geom.sw, geom.dh, geom.dw,
                                geom.groups, extra)
    if scratch is None:
        return None, None
    x, _, _ = prepare_input(func, x, geom, "zeros", dtype)
    partial = np.zeros((scratch.shape[0], w4.size), dtype)
    grad_input = np.empty(x.shape, dtype) if with_input else None
    flipped = np.ascontiguousarray(w4[..., ::-1, ::-1])
    _direct.depthwise_backward(x, gy, flipped, grad_input, partial, pad_top, pad_left,
                               geom.dh, geom.dw, scratch)
    grad_weight = (partial[0] if len(partial) == 1 else partial.sum(axis=0)).reshape(w4.shape)
    if not _fft.all_finite(grad_weight):
        grad_weight = None
    return grad_input, grad_weight


def _grad_input_workspace(func, geom, xp_shape, dtype, n_threads, pad_top, pad_left):
    """im2col's input-gradient workspace, the gathering fold's tap tables or None, and
    the images per task (_conv.batched_images: small images side by side, gathering).

    Where one image's columns per thread fit WORKSPACE_BYTES, each task
    multiplies the whole image at once and folds by gathering: every element
    of grad_input written once from its taps' row sums (_im2col._gather_fold),
    instead of zeroing grad_input and adding each tap's columns into it.
    The tables say which taps reach each image row and column phase.
    Measured against the adding fold (benchmarks/transpose_ab.py, one
    thread, CPU time, float32, N=8, a loaded machine): conv_transpose2d
    C64-28 -> K32 4x4/2 0.96x the time, the input gradient of C128-28-K256
    3x3/2 1.00x; at several threads it also drops the serial zeroing.
    """
    h, w = xp_shape[-2:]

    def row_length(images):
        columns = images * geom.ho * geom.wo
        row = _im2col.gather_workspace(geom.channels // geom.groups, geom.kh, geom.kw,
                                       columns, w, geom.sw)
        # With several images, grad_output's rows of them side by side too.
        return row + (geom.kernels // geom.groups * columns if images > 1 else 0)

    images = batched_images(geom, dtype, n_threads)
    # _conv's cap, read at the call (the tests lower it).
    if images > 1 and n_threads * row_length(images) * dtype.itemsize > _conv.WORKSPACE_BYTES:
        images = 1
    row, columns = row_length(images), images * geom.ho * geom.wo
    if n_threads * row * dtype.itemsize > _conv.WORKSPACE_BYTES:
        return gemm_workspace(func, geom, dtype, n_threads), None, 1
    check_int_sizes(func, **gemm_sizes(geom), batched_columns=columns)
    check_alloc(func, dtype.itemsize, workspace=(n_threads, row))
    return (np.empty((n_threads, row), dtype),
            _gather_taps(h, w, geom.kh, geom.kw, geom.ho, geom.wo, geom.sh, geom.sw, pad_top,
                         pad_left, geom.dh, geom.dw), images)


@functools.lru_cache(maxsize=16)
def _gather_taps(h, w, kh, kw, ho, wo, sh, sw, pad_top, pad_left, dh, dw):
    """_gather_fold's tables (read-only, kept per geometry: numpy's calls cost 40 us).

    Tap p reaches image row y from cols row i = (y + pad_top - p*dh) / sh
    where that divides (tap_rows[y, p], else -1); tap q reaches column
    rx + sw*u from cols column u + d (tap_cols[rx, q], else wo).
    """
    off = np.arange(h)[:, None] + pad_top - np.arange(kh) * dh
    tap_rows = np.where((off >= 0) & (off % sh == 0) & (off // sh < ho), off // sh, -1)
    off = np.arange(min(sw, w))[:, None] + pad_left - np.arange(kw) * dw
    tap_cols = np.where(off % sw == 0, off // sw, wo)
    tables = tuple(np.ascontiguousarray(t, dtype=np.intp) for t in (tap_rows, tap_cols))
    for t in tables:
        t.flags.writeable = False
    return tables


def _im2col_grad_weight(func, xp, gy, weight_shape, geom, args, packed):
    """im2col's weight gradient: one partial sum per thread, added at the end.

    ``packed``: a capsule of PACKED_GEMMS for the products, or None (OpenBLAS).
    """
    dtype = gy.dtype
    with _team(packed, gy.size * math.prod(weight_shape[1:])) as n_threads:
        check_alloc(func, dtype.itemsize, partial_weight_gradients=(n_threads,) + weight_shape)
        partial = np.zeros((n_threads, math.prod(weight_shape)), dtype)
        workspace = gemm_workspace(func, geom, dtype, n_threads)
        _im2col.conv2d_grad_weight(xp, gy, partial, geom.kh, geom.kw, *args, workspace,
                                   phase_workspace(func, geom, dtype, workspace), n_threads,
                                   packed=packed)
    total = partial[0] if n_threads == 1 else partial.sum(axis=0)
    return total.reshape(weight_shape)


def _pointwise_grad_input(gy, w4, input_shape, groups):
    """A 1x1 layer's input gradient by the packed GEMM: each group's weight block.T @ gy."""
    dtype, kg = gy.dtype, w4.shape[0] // groups
    # Each group's (Cg, Kg) block of the weight transposed: the packed GEMM
    # reads its first operand as it lies (see _wgemm.h).
    wt = np.empty((groups, w4.shape[1], kg), dtype)
    _pointwise.transpose(w4.reshape(groups, kg, -1), wt)
    grad_input = aligned_empty(input_shape, dtype)  # see _scratch.aligned_empty
    run_pointwise(gy, wt.reshape(-1, kg), ZERO_BIAS[dtype], False, grad_input, groups)
    return grad_input


def _pointwise_grad_weight(func, x, gy, weight_shape, groups):
    """A 1x1 layer's weight gradient by the packed GEMM: one partial sum per thread, added up."""
    n_threads = max_threads()
    check_alloc(func, gy.dtype.itemsize, partial_weight_gradients=(n_threads,) + weight_shape)
    partial = np.zeros((n_threads, math.prod(weight_shape)), gy.dtype)
    _pointwise.weight_products(x.reshape(x.shape[0], x.shape[1], -1),
                               gy.reshape(gy.shape[0], gy.shape[1], -1), partial, groups)
    total = partial[0] if n_threads == 1 else partial.sum(axis=0)
    return total.reshape(weight_shape)


def conv2d_backward(grad_output: npt.ArrayLike, input: npt.ArrayLike, weight: npt.ArrayLike,
                    stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                    groups: int = 1, *, padding_mode: PaddingMode = "zeros",
                    method: Literal["auto", "direct", "im2col", "winograd"] = "auto",
                    output_mask: Sequence[bool] = (True, True, True),
                    ) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of a loss with respect to the input, weight and bias of `conv2d`.

    Parameters
    ----------
    grad_output : array_like, shape (N, K, Ho, Wo), (K, Ho, Wo) or (Ho, Wo)
        ``dL/d(output)``; its shape must be what `conv2d` returns for
        ``input`` and ``weight`` with these parameters.
    input : array_like, shape (N, C, H, W), (C, H, W) or (H, W)
        The images the forward pass saw. Any memory layout.
    weight : array_like, shape (K, C // groups, kh, kw), or (kh, kw) with a 2-D input
        The kernels the forward pass used.
    stride : int or tuple of 2 ints, default 1
    padding : int, tuple of 2 ints, 'valid' or 'same', default 0
        As in `conv2d`; ``'same'`` (stride 1 only) puts the odd pixel at the
        bottom/right.
    dilation : int or tuple of 2 ints, default 1
    groups : int, default 1
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in `conv2d`. With a mode other than zeros, the gradient that falls
        on a padded cell is added to the input cell that cell was copied from.
    method : {'auto', 'direct', 'im2col', 'winograd'}, default 'auto'
        ``'direct'`` runs the gradient sums as C loops; ``'im2col'`` runs
        ``dW = dY @ cols.T`` and ``grad_input = col2im(W.T @ dY)`` as BLAS
        GEMMs in bounded blocks; ``'auto'`` picks from the shapes as
        `conv2d` does: at stride 1 the input gradient is then `conv2d`'s
        forward pass of the flipped kernels (GEMMs per kernel tap, the
        direct loops, or Winograd's where `conv2d` would take it and the
        output has at least 32 4x4 tiles), and the weight gradient
        im2col's, or Winograd's for 3x3 kernels at stride 1 and dilation 1
        with at least 16 channels and kernels per group over at least 768
        output pixels (``N*Ho*Wo``). ``'winograd'`` (3x3 kernels at stride
        1 and dilation 1 only) runs that forward pass as
        ``conv2d(method='winograd')`` does, with its rounding (see
        `conv2d`), and the weight gradient by F(3x3, 4x4): each 4x4 tile of
        ``grad_output`` and the 6x6 input tile under it are transformed,
        multiplied as 36 GEMMs over the tiles of all images and the sums
        transformed back once per weight. That weight gradient differs from
        the exact sum by at most ``64 * eps * max(|input| (*) |grad_output|)``
        (the largest weight gradient of the absolute values; ``eps`` the
        result dtype's), measured at most 12 eps in float32 for 3 to 512
        channels, value scales 1e-3 to 1e3 and 392 to 25088 summed pixels
        (im2col's: 7 eps). A padding above 2, or a NaN or inf in
        ``weight``, takes im2col's input gradient, and a NaN or inf in
        ``grad_output`` or a transformed tile that overflows the shifted
        GEMMs'; a NaN or inf in ``grad_output`` or ``input``, or a
        transformed tile that overflows, takes im2col's weight gradient (the
        transforms would spread it over a tile), also under ``'auto'``. The
        kernels notice such values as they transform the tiles (no extra
        pass over the arrays).
    output_mask : sequence of 3 bools, default (True, True, True)
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute.

    Returns
    -------
    grad_input : ndarray or None
        ``dL/d(input)``, shape of ``input``; None if ``output_mask[0]`` is False.
    grad_weight : ndarray or None
        ``dL/d(weight)``, shape of ``weight``; None if ``output_mask[1]`` is False.
    grad_bias : ndarray or None
        ``dL/d(bias)``, shape (K,), or (1,) with a 2-D input; None if
        ``output_mask[2]`` is False. All three are new C-contiguous arrays,
        float32 if every input is float32, else float64.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have conv2d's output shape, for shapes
        that do not fit together, bad stride/padding/dilation/groups/
        padding_mode/method/output_mask values, or ``method='winograd'``
        with a kernel other than 3x3, a stride or a dilation other than 1.
    TypeError
        For complex, object or string inputs, non-integer parameters or a
        non-bool ``output_mask``.
    MemoryError
        If an array the call allocates (the output, or a copy of a broadcast
        input) would exceed this machine's memory; refused before allocating.
        ValueError instead if its size does not fit in 64 bits, or a padded
        size, stride or dilation exceeds 2**62.

    See Also
    --------
    conv2d, col2im

    Notes
    -----
    With ``y = i*sh - ph + p*dh``, ``x = j*sw - pw + q*dw`` and
    ``g = k // (K/groups)``, ``Cg = C/groups``:

    - ``grad_weight[k, c, p, q] = sum_{n, i, j} dY[n, k, i, j] * input[n, g*Cg + c, y, x]``
    - ``grad_input[n, g*Cg + c, y, x] = sum_{k in g,p,q,i,j} dY[n, k, i, j] * weight[k, c, p, q]``
    - ``grad_bias[k] = sum_{n, i, j} dY[n, k, i, j]``

    where ``dY`` is ``grad_output``; input pixels ``(y, x)`` in the padding are
    dropped (zeros) or added to the pixel they copy (other modes).

    As matrices, per image and group: ``grad_weight = dY @ im2col(x).T`` and
    ``grad_input = col2im(W.T @ dY)``.

    Examples
    --------
    The course exercise: the gradient of ``I * K`` (stride 2) with respect to
    ``K``. With ``grad_output`` all ones it is the sum of the four input
    patches, equation (2):

    >>> import numpy as np
    >>> import cyconv
    >>> I = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
    ...               [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    >>> K = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    >>> grad_out = np.ones((2, 2))
    >>> grad_I, grad_K, grad_b = cyconv.conv2d_backward(grad_out, I, K, stride=2)
    >>> grad_K
    array([[-1.,  7., -2.],
           [-1.,  2.,  2.],
           [ 0., 12., -2.]])

    The same as one matrix multiplication with the unrolled image:

    >>> (cyconv.im2col(I, 3, stride=2) @ grad_out.ravel()).reshape(3, 3)
    array([[-1.,  7., -2.],
           [-1.,  2.,  2.],
           [ 0., 12., -2.]])

    The gradient with respect to the image adds ``K`` at every patch
    position, and a bias would get one per output pixel:

    >>> grad_I
    array([[0., 1., 1., 1., 1.],
           [1., 0., 1., 0., 0.],
           [0., 2., 1., 2., 1.],
           [1., 0., 1., 0., 0.],
           [0., 1., 0., 1., 0.]])
    >>> grad_b
    array([4.])
    """
    func = "conv2d_backward"
    gy = as_array(func, "grad_output", grad_output)
    x = as_array(func, "input", input)
    w = as_array(func, "weight", weight)
    dtype = float_dtype(gy, x, w)
    # Integer data stays exact under 'auto': Winograd's transforms round.
    float_data = "f" in (gy.dtype.kind, x.dtype.kind, w.dtype.kind)
    # Cached for plain int/str parameters, as conv2d's.
    geom = array_geometry(func, x.shape, w.shape, stride, padding, dilation, groups)
    check_choice(func, "method", method, METHODS)
    if method == "winograd":
        check_winograd(func, geom)
    want_input, want_weight, want_bias = _output_mask(func, output_mask)
    expected = geom.output_shape()
    if gy.shape != expected:
        raise ValueError(
            f"{func}: grad_output has shape {gy.shape}, but conv2d of input shape "
            f"{x.shape} and weight shape {w.shape} gives shape {expected}"
        )
    # Every array of the call at once: refuse before the first is made.
    mode, pad_top, pad_left = padding_plan(func, geom, padding_mode)
    xp_shape = kernel_input_shape(geom, mode)
    check_alloc(func, dtype.itemsize, grad_output=gy.shape, weight=w.shape,
                padded_input=xp_shape if want_weight else (0,),
                grad_input=xp_shape if want_input else (0,),
                grad_weight=w.shape if want_weight else (0,))
    gy = np.ascontiguousarray(gy.reshape(geom.batch, geom.kernels, geom.ho, geom.wo),
                              dtype=dtype)
    w4 = np.ascontiguousarray(weight4(w, geom), dtype=dtype)
    # grad_output's finiteness: one pass, made only where a path asks.
    gy_finite = functools.cache(lambda: dtype.kind not in "fc" or _fft.all_finite(gy))
    # The Winograd weight gradient: asked for, or where 'auto' measured it faster.
    winograd_weight = method == "winograd" or (
        method == "auto" and float_data and winograd_wgrad_pays(geom, dtype))
    # conv_transpose2d's F(4x4, 2x2) for a 4x4 stride-2 input gradient (zero
    # padding), where 'auto' takes it (cyconv._transpose_winograd).
    up2_input = (method == "auto" and float_data and want_input and mode is None
                 and up2_applies(w4.shape, (geom.sh, geom.sw), (0, 0), (geom.dh, geom.dw)))
    packed = None  # im2col's GEMMs: OpenBLAS's, or the packed GEMM's capsule
    if method == "auto":
        method = choose_method(geom, dtype)
        if method == "pointwise" and geom.channels > geom.kernels:
            # The packed GEMM's gradients of a 1x1 layer with more input
            # channels than kernels: the input gradient's sums are shallow
            # and its output large, the weight gradient has few rows per
            # packed panel; 0.95-1.29x OpenBLAS's time there, 0.68-0.98x
            # elsewhere (benchmarks/pointwise_rule.py).
            method = "im2col"
        elif method not in ("direct", "pointwise"):
            packed = _packed_gemm(w4)  # im2col's gradients, also of 'regblock' layers
        # The stride-1 input gradient is conv2d's forward of grad_output:
        # Winograd where conv2d's 'auto' takes it, over enough 4x4 tiles
        # per kernel thread (WINOGRAD_GRAD_TILES).
        if (method in ("shifted", "im2col") and float_data and winograd_pays(geom, dtype)
                and enough_tiles(geom.batch * -(-geom.ho // 4) * -(-geom.wo // 4),
                                 transformed_bytes(geom, dtype), WINOGRAD_GRAD_TILES)):
            method = "winograd"
        elif method == "shifted":
            # The input gradient by shifted GEMMs took 1.06-6.3x im2col's
            # time on every layer of benchmarks/shifted_rule.py.
            method = "im2col"
    # At stride 1 the input gradient is a forward pass (direct or Winograd,
    # whose weight gradient may be im2col's), but for padding beyond the kernel.
    # That forward runs over zero-padded grad_output; a NaN or inf weight would
    # meet those zeros, which are no part of the sum: take the adjoint kernels.
    # (Winograd's forward notices a NaN or inf of grad_output as it transforms
    # the tiles and leaves the result to the shifted GEMMs.)
    as_forward = (method not in ("im2col", "pointwise")
                  and _transposes_to_forward(geom, pad_top, pad_left)
                  and (dtype.kind not in "fc" or _fft.all_finite(w4)))
    kernels = _direct if method == "direct" else _im2col
    run = bool(gy.size and math.prod(xp_shape) and w4.size)  # else every sum is empty

    grad_input = grad_weight = grad_bias = None
    if want_weight and run and kernels is _direct and mode is None:
        # Depthwise at stride 1: both gradients in one pass over the planes.
        grad_input, grad_weight = _depthwise_gradients(func, x, gy, w4, geom, pad_top,
                                                       pad_left, want_input and as_forward)
    # The kernels see the padded input for modes other than zeros. Only the
    # weight gradient reads the input: copy (and pad) it only for that.
    if want_weight and grad_weight is None:
        # A NaN or inf in grad_output meets the zero padding as inf * 0 = NaN
        # (the definition, PyTorch): pad here so that no kernel skips those taps.
        # Without padding there is nothing to meet: no pass over grad_output.
        # Winograd sums those taps (and shows such a value in its result, see
        # below): it needs no pass over grad_output either.
        xp, wpad_top, wpad_left = prepare_input(
            func, x, geom, padding_mode, dtype,
            not winograd_weight and any(geom.pads) and not gy_finite())

    def winograd_grad_weight():
        # None where the input or grad_output held a NaN or inf (its
        # transforms would spread it over a tile), or a transform overflowed.
        return run_winograd_grad_weight(func, xp, gy, w4.shape, geom.groups, wpad_top,
                                        wpad_left)

    # Both gradients by Winograd on several threads: side by side, each on
    # half of the threads, rather than one after the other on all of them
    # (see SIDE_BY_SIDE_WORK and SIDE_BY_SIDE_SUMS).
    side_by_side = (want_input and want_weight and run and grad_input is None
                    and grad_weight is None and as_forward and method == "winograd"
                    and winograd_weight and max_threads() > 1 and blas_threads.controlled
                    and geom.batch * -(-geom.ho // 4) * -(-geom.wo // 4) * 36 * geom.kernels
                    * (geom.channels // geom.groups) >= SIDE_BY_SIDE_WORK
                    and 36 * geom.kernels * (geom.channels // geom.groups) >= SIDE_BY_SIDE_SUMS)
    winograd_weight_done = False
    args = (geom.sh, geom.sw, pad_top, pad_left, geom.dh, geom.dw, geom.groups)
    if (up2_input and run and grad_input is None
            and up2_wanted(gy, w4, xp_shape, (pad_top, pad_left), geom.groups)):
        # None where a NaN or inf was read: the GEMM path's sums below.
        grad_input = up2_layer(func, gy, w4, None, dtype, xp_shape, (pad_top, pad_left),
                               geom.groups)
    if want_input and grad_input is None:
        if run and as_forward:
            grad_input = np.empty(xp_shape, dtype)
            gin = functools.partial(_grad_input_as_forward, func, gy, w4, grad_input, geom,
                                    pad_top, pad_left, method)
            if side_by_side:
                def gin_and_bias():
                    # The bias's sum beside the input gradient, the shorter of the two.
                    gin()
                    return gy.sum(axis=(0, 2, 3)) if want_bias else None

                grad_bias, grad_weight = _side_by_side(gin_and_bias, winograd_grad_weight)
                winograd_weight_done = True
            else:
                gin()
        else:
            # im2col's 1x1 case (stride 1, no padding) writes every element
            # (beta = 0); the other kernels fold sums into a zeroed array.
            pointwise = (run and kernels is _im2col and geom.kh * geom.kw == 1
                         and (geom.sh, geom.sw, pad_top, pad_left) == (1, 1, 0, 0))
            if run and kernels is _im2col and not pointwise:
                # The workspace is made per kernel call, so that it is freed
                # before the next buffers are made.
                weight_t = None
                if packed is not None:
                    weight_t = np.empty((geom.groups, w4.size // geom.kernels,
                                         geom.kernels // geom.groups), dtype)
                    _pointwise.transpose(w4.reshape(weight_t.shape[0], weight_t.shape[2], -1),
                                         weight_t)
                with _team(packed, gy.size * (w4.size // w4.shape[0])) as n_threads:
                    workspace, taps, images = _grad_input_workspace(
                        func, geom, xp_shape, dtype, n_threads, pad_top, pad_left)
                    grad_input = (np.zeros if taps is None else np.empty)(xp_shape, dtype)
                    _im2col.conv2d_grad_input(gy, w4, grad_input, *args,
                                              *(taps or (None, None)),
                                              workspace, n_threads, packed=packed,
                                              weight_t=weight_t, images=images)
                    del workspace  # freed before the weight gradient's own is made
            elif pointwise and method == "pointwise":
                grad_input = _pointwise_grad_input(gy, w4, xp_shape, geom.groups)
            elif pointwise:
                grad_input = np.empty(xp_shape, dtype)
                with gemm_team() as n_threads:
                    _im2col.conv2d_grad_input(gy, w4, grad_input, *args, None, None,
                                              gemm_workspace(func, geom, dtype, n_threads),
                                              n_threads)
            else:
                grad_input = np.zeros(xp_shape, dtype)
                if run and kernels is _direct:
                    _direct.conv2d_grad_input(gy, w4, grad_input, *args)
        if mode is not None:
            grad_input = _fold_padding(grad_input, geom.pads, padding_mode)
    if want_input:
        grad_input = grad_input.reshape(x.shape)
    if want_weight and grad_weight is None:
        if run and winograd_weight:
            if not winograd_weight_done:
                grad_weight = winograd_grad_weight()
            if grad_weight is None and any(geom.pads) and not gy_finite():
                xp, wpad_top, wpad_left = prepare_input(func, x, geom, padding_mode, dtype,
                                                        True)
        args = (geom.sh, geom.sw, wpad_top, wpad_left, geom.dh, geom.dw, geom.groups)
        if grad_weight is not None:
            pass
        elif not run:
            grad_weight = np.zeros(w4.shape, dtype)
        elif kernels is _direct:
            grad_weight = np.zeros(w4.shape, dtype)
            _direct.conv2d_grad_weight(xp, gy, grad_weight, *args)
        elif method == "pointwise":
            grad_weight = _pointwise_grad_weight(func, xp, gy, w4.shape, geom.groups)
        else:
            grad_weight = _im2col_grad_weight(func, xp, gy, w4.shape, geom, args, packed)
    if want_weight:
        grad_weight = grad_weight.reshape(w.shape)
    if want_bias and grad_bias is None:
        grad_bias = gy.sum(axis=(0, 2, 3))
    return grad_input, grad_weight, grad_bias
