"""Transposed convolution: conv_transpose2d and its gradients.

``conv_transpose2d`` is the adjoint of `conv2d`: its result is `conv2d_backward`'s
input gradient, computed by the same kernels (the stride-1 fast paths included).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cyconv._backward import _output_mask, conv2d_backward
from cyconv._conv import conv2d
from cyconv._transpose_winograd import up2_applies, up2_layer, up2_wanted
from cyconv._typing import FloatArray, IntPair
from cyconv._validate import as_array, as_int, check_alloc, float_dtype, pair


def _plan(func, x, w, stride, padding, output_padding, groups, dilation):
    """Validate as PyTorch does; return the output shape and conv2d's grad_output shape.

    ``x`` is the transposed convolution's input (N, C, H, W) or (C, H, W);
    ``w`` is (C, K // groups, kh, kw).
    """
    if x.ndim not in (3, 4):
        raise ValueError(f"{func}: input must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"{func}: weight must be (C, K // groups, kh, kw), got shape {w.shape}")
    sh, sw = pair(func, "stride", stride, 1)
    ph, pw = pair(func, "padding", padding, 0)
    oph, opw = pair(func, "output_padding", output_padding, 0)
    dh, dw = pair(func, "dilation", dilation, 1)
    groups = as_int(func, "groups", groups, 1)
    for op, s, d, axis in ((oph, sh, dh, "height"), (opw, sw, dw, "width")):
        if op >= max(s, d):
            raise ValueError(
                f"{func}: output_padding must be smaller than either stride or dilation "
                f"({axis}: output_padding={op}, stride={s}, dilation={d})"
            )
    channels = x.shape[-3]
    if w.shape[0] != channels:
        raise ValueError(
            f"{func}: input has {channels} channels but weight shape {w.shape} expects "
            f"{w.shape[0]} (weight is (C, K // groups, kh, kw))"
        )
    if channels % groups:
        raise ValueError(f"{func}: input channels {channels} not divisible by groups={groups}")
    kernels = w.shape[1] * groups
    size = []
    conv_size = []
    for n, k, s, p, op, d in ((x.shape[-2], w.shape[2], sh, ph, oph, dh),
                              (x.shape[-1], w.shape[3], sw, pw, opw, dw)):
        out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if out <= 0 or k == 0:
            raise ValueError(
                f"{func}: output size is non-positive ({out}) for input {x.shape}, weight "
                f"{w.shape}, stride {s}, padding {p}, output_padding {op}, dilation {d}"
            )
        size.append(out)
        # conv2d of the output gives this size; > n only when op >= stride.
        conv_size.append((out + 2 * p - d * (k - 1) - 1) // s + 1)
    out_shape = x.shape[:-3] + (kernels, size[0], size[1])
    params = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    return out_shape, tuple(conv_size), params


def _pad_to(a, hw):
    """``a`` with zeros appended on the last two axes up to ``hw``."""
    extra = (hw[0] - a.shape[-2], hw[1] - a.shape[-1])
    if extra == (0, 0):
        return a
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, extra[0]), (0, extra[1])])


def conv_transpose2d(input: npt.ArrayLike, weight: npt.ArrayLike,
                     bias: npt.ArrayLike | None = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                     dilation: IntPair = 1) -> FloatArray:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    The adjoint of `conv2d`: ``<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>``.
    It is computed as `conv2d_backward`'s input gradient, by the same kernels.

    Parameters
    ----------
    input : array_like, shape (N, C, H, W) or (C, H, W)
    weight : array_like, shape (C, K // groups, kh, kw)
    bias : array_like, shape (K,), optional
    stride : int or tuple of 2 ints, default 1
    padding : int or tuple of 2 ints, default 0
        ``dilation * (k - 1) - padding`` zeros are implicitly added on each side.
    output_padding : int or tuple of 2 ints, default 0
        Extra rows/columns added at the bottom/right of the output; must be
        smaller than either the stride or the dilation.
    groups : int, default 1
    dilation : int or tuple of 2 ints, default 1

    Returns
    -------
    ndarray, shape (N, K, Ho, Wo) or (K, Ho, Wo)
        ``Ho = (H - 1)*sh - 2*ph + dh*(kh - 1) + oph + 1`` (likewise ``Wo``);
        float32 if every input is float32, else float64.

    Raises
    ------
    ValueError
        For shapes that do not fit together, a non-positive output size,
        negative padding, stride or dilation < 1, or output_padding not smaller
        than stride or dilation.
    TypeError
        For complex, object or string inputs, or non-integer parameters.

    See Also
    --------
    conv2d, conv2d_backward, conv_transpose2d_backward

    Notes
    -----
    Float 4x4 layers at stride 2 (dilation 1), a decoder's upsampling
    layer, run by Winograd's F(4x4, 2x2) where it measured faster: at least
    4 input channels and kernels per group, and per thread at least 16 of
    the output's 8x8 tiles and as many as the larger of the two. Each
    output takes two taps per axis, of one of four 2x2 phase kernels by its
    row and column parity, so each phase's 4x4 outputs of a 5x5 input
    window are 25 products (channel by channel, as GEMMs over blocks of
    windows of all images) where the sum needs 64.
    The result then differs from the exact sum by rounding of a larger
    size than the GEMM's: at most ``64 * eps * max|input| (*) |weight|``
    plus ``eps * max|bias|``, as `conv2d`'s ``method='winograd'``
    (``max|input| (*) |weight|`` the largest output of the transposed
    convolution of the absolute values); measured at most 14 eps for 3 to
    1024 channels and values of scale 1e-3 to 1e3. Inputs or weights
    holding NaN or inf, which the transforms would spread over a window's
    outputs, and transforms or products that overflow, take the exact sums
    below.

    With ``g = c // (C/groups)``, ``Kg = K/groups``, ``y = i*sh - ph + p*dh`` and
    ``x = j*sw - pw + q*dw``:
    ``out[n, g*Kg + k, y, x] += input[n, c, i, j] * weight[c, k, p, q]``, summed
    over ``c, i, j, p, q``, plus ``bias``; ``(y, x)`` outside the output are
    dropped. This is `conv2d_backward`'s ``grad_input`` for a `conv2d` of an
    ``(N, K, Ho, Wo)`` input whose ``grad_output`` is ``input`` (zero-extended
    at the bottom/right when ``output_padding >= stride``).

    Examples
    --------
    Each input pixel stamps a scaled copy of the kernel, ``stride`` apart:

    >>> import numpy as np
    >>> import cyconv
    >>> x = np.array([[[1.0, 2.0]]])
    >>> w = np.ones((1, 1, 2, 2))
    >>> cyconv.conv_transpose2d(x, w, stride=(1, 2))
    array([[[1., 1., 2., 2.],
            [1., 1., 2., 2.]]])
    >>> cyconv.conv_transpose2d(x, w, stride=1)
    array([[[1., 3., 2.],
            [1., 3., 2.]]])

    It is the adjoint of `conv2d`:

    >>> rng = np.random.default_rng(0)
    >>> a, y = rng.normal(size=(2, 3, 7, 7)), rng.normal(size=(2, 4, 3, 3))
    >>> k = rng.normal(size=(4, 3, 3, 3))
    >>> lhs = np.vdot(cyconv.conv2d(a, k, stride=2), y)
    >>> rhs = np.vdot(a, cyconv.conv_transpose2d(y, k, stride=2))
    >>> bool(np.isclose(lhs, rhs))
    True
    """
    func = "conv_transpose2d"
    x = as_array(func, "input", input)
    w = as_array(func, "weight", weight)
    b = None if bias is None else as_array(func, "bias", bias)
    dtype = float_dtype(x, w, b)
    out_shape, conv_size, params = _plan(func, x, w, stride, padding, output_padding,
                                         groups, dilation)
    if b is not None and b.shape != (out_shape[-3],):
        raise ValueError(f"{func}: bias must have shape ({out_shape[-3]},), got {b.shape}")
    check_alloc(func, dtype.itemsize, output=out_shape)
    # 4x4 at stride 2: F(4x4, 2x2) where 'auto' takes it; where it read a
    # NaN or inf, the sums (im2col's, not Winograd's input gradient again).
    method = "auto"
    if (up2_applies(w.shape, params["stride"], pair(func, "output_padding", output_padding, 0),
                    params["dilation"])
            and up2_wanted(x, w, out_shape, params["padding"], params["groups"])):
        out = up2_layer(func, x, w, b, dtype, out_shape, params["padding"], params["groups"])
        if out is not None:
            return out
        method = "im2col"
    # Only the shape of conv2d_backward's input is read for the input gradient.
    # Float data in the result's dtype; integer data as it is, so that
    # conv2d_backward keeps it exact as conv2d does (no Winograd), in float64.
    if "f" in (x.dtype.kind, w.dtype.kind):
        x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    shape_only = np.broadcast_to(np.zeros((), np.result_type(x.dtype, w.dtype)), out_shape)
    out = conv2d_backward(_pad_to(x, conv_size), shape_only, w, **params, method=method,
                          output_mask=(True, False, False))[0]
    if b is not None:
        out += b.astype(dtype, copy=False)[:, None, None]
    return out


def conv_transpose2d_backward(grad_output: npt.ArrayLike, input: npt.ArrayLike,
                              weight: npt.ArrayLike, stride: IntPair = 1,
                              padding: IntPair = 0, output_padding: IntPair = 0,
                              groups: int = 1, dilation: IntPair = 1, *,
                              output_mask: Sequence[bool] = (True, True, True),
                              ) -> tuple[FloatArray | None, FloatArray | None,
                                         FloatArray | None]:
    """Gradients of a loss with respect to the input, weight and bias of `conv_transpose2d`.

    Parameters
    ----------
    grad_output : array_like, shape (N, K, Ho, Wo) or (K, Ho, Wo)
        ``dL/d(output)``; its shape must be what `conv_transpose2d` returns.
    input : array_like, shape (N, C, H, W) or (C, H, W)
    weight : array_like, shape (C, K // groups, kh, kw)
    stride, padding, output_padding, groups, dilation : int or tuple of 2 ints
        As in `conv_transpose2d` (``groups`` an int).
    output_mask : sequence of 3 bools, default (True, True, True)
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute.

    Returns
    -------
    grad_input : ndarray or None
        ``conv2d(grad_output, weight, ...)``, shape of ``input``.
    grad_weight : ndarray or None
        `conv2d_backward`'s weight gradient with the roles swapped, shape of ``weight``.
    grad_bias : ndarray or None
        ``grad_output`` summed over all axes but the channels, shape (K,).

    Raises
    ------
    ValueError
        As `conv_transpose2d`, and if ``grad_output`` has the wrong shape or
        ``output_mask`` has not 3 entries.
    TypeError
        As `conv_transpose2d`, and for a non-bool ``output_mask``.

    See Also
    --------
    conv_transpose2d, conv2d_backward

    Notes
    -----
    ``conv_transpose2d(x, w)`` is linear in each of ``x`` and ``w``, with
    ``<g, conv_transpose2d(x, w)> == <conv2d(g, w), x>``: so ``grad_input`` is
    that `conv2d` (cropped to ``input``'s size) and ``grad_weight`` is
    `conv2d_backward`'s weight gradient with ``g`` as the input and ``x`` as
    the output gradient.

    Examples
    --------
    >>> import numpy as np
    >>> import cyconv
    >>> x = np.array([[[1.0, 2.0]]])
    >>> w = np.ones((1, 1, 2, 2))
    >>> g = np.ones((1, 2, 4))
    >>> gx, gw, gb = cyconv.conv_transpose2d_backward(g, x, w, stride=(1, 2))
    >>> gx
    array([[[4., 4.]]])
    >>> gw
    array([[[[3., 3.],
             [3., 3.]]]])
    >>> gb
    array([8.])
    """
    func = "conv_transpose2d_backward"
    gy = as_array(func, "grad_output", grad_output)
    x = as_array(func, "input", input)
    w = as_array(func, "weight", weight)
    dtype = float_dtype(gy, x, w)
    out_shape, conv_size, params = _plan(func, x, w, stride, padding, output_padding,
                                         groups, dilation)
    want_input, want_weight, want_bias = _output_mask(func, output_mask)
    if gy.shape != out_shape:
        raise ValueError(
            f"{func}: grad_output has shape {gy.shape}, but conv_transpose2d of input "
            f"shape {x.shape} and weight shape {w.shape} gives shape {out_shape}"
        )
    gy = gy.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    x = x.astype(dtype, copy=False)
    h, wd = x.shape[-2:]
    grad_input = grad_weight = grad_bias = None
    if want_input:
        grad_input = np.ascontiguousarray(conv2d(gy, w, None, **params)[..., :h, :wd])
    if want_weight:
        grad_weight = conv2d_backward(_pad_to(x, conv_size), gy, w, **params,
                                      output_mask=(False, True, False))[1]
    if want_bias:
        grad_bias = gy.sum(axis=tuple(i for i in range(gy.ndim) if i != gy.ndim - 3))
    return grad_input, grad_weight, grad_bias
