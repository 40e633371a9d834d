"""Slow, obviously correct NumPy versions of the API.md sums, for the tests.

Nothing here calls cyconv: these are the independent references.
"""
import numpy as np

# Tolerances by result dtype (sklearn's RTOL idea): float32 sums of a few
# hundred terms carry a few ulps of rounding per term.
TOL = {
    np.dtype(np.float32): dict(rtol=2e-4, atol=2e-4),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10),
}


def conv2d_ref(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1),
               groups=1, pad_mode="constant"):
    """conv2d on 4-D arrays, in float64, by the definition.

    ``pads`` is (top, bottom, left, right); ``pad_mode`` a numpy.pad mode.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=pad_mode)
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, k, ho, wo))
    kg = k // groups
    for kk in range(k):
        g = kk // kg
        for p in range(kh):
            for q in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg,
                           p * dh:p * dh + sh * (ho - 1) + 1:sh,
                           q * dw:q * dw + sw * (wo - 1) + 1:sw]
                out[:, kk] += np.einsum("nchw,c->nhw", patch, w[kk, :, p, q])
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return out


def im2col_ref(x, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """(N, C, H, W) -> (N, C*kh*kw, Ho*Wo), rows (c, p, q), columns (i, j)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, c, kh, kw, ho, wo))
    for p in range(kh):
        for q in range(kw):
            for i in range(ho):
                for j in range(wo):
                    cols[:, :, p, q, i, j] = xp[:, :, i * sh + p * dh, j * sw + q * dw]
    return cols.reshape(n, c * kh * kw, ho * wo)


# padding_mode (PyTorch's names) -> numpy.pad mode, written out here on its
# own rather than imported from cyconv, so the reference stays independent.
NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}


def ref_pads(padding, kernel, dilation):
    """(top, bottom, left, right) for padding int, (h, w), 'valid' or 'same'.

    'same' pads ``d*(k - 1)`` in total along each axis, the odd pixel at the
    bottom/right (PyTorch's ``_conv_forward`` rule).
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        (th, tw) = (d * (k - 1) for d, k in zip(dilation, kernel))
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = (padding, padding) if np.ndim(padding) == 0 else padding
    return (ph, ph, pw, pw)


def _pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def conv2d_api_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros"):
    """conv2d_ref with cyconv.conv2d's conventions: 2-D/3-D/4-D, 'same', mode names."""
    x, w = np.asarray(x), np.asarray(w)
    ndim = x.ndim
    x4 = x.reshape((1,) * (4 - ndim) + x.shape)
    w4 = w.reshape((1, 1) + w.shape) if ndim == 2 else w
    dilation = _pair(dilation)
    pads = ref_pads(padding, w4.shape[2:], dilation)
    b = None if b is None else np.reshape(b, -1)
    out = conv2d_ref(x4, w4, b, _pair(stride), pads, dilation, groups,
                     NP_PAD_MODE[padding_mode])
    return out.reshape(out.shape[4 - ndim:] if ndim > 2 else out.shape[2:])
