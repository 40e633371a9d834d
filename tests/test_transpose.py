"""conv_transpose2d and its backward: the adjoint identity with conv2d, finite
differences, and torch.nn.functional.conv_transpose2d where torch is installed."""
import numpy as np
import pytest

import cyconv

CASES = [
    dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1),
    dict(stride=2, padding=1, output_padding=1, groups=1, dilation=1),
    dict(stride=(2, 3), padding=(0, 2), output_padding=(1, 2), groups=2, dilation=1),
    dict(stride=1, padding=1, output_padding=(1, 0), groups=1, dilation=2),  # op >= stride
    dict(stride=3, padding=2, output_padding=0, groups=2, dilation=(2, 1)),
    dict(stride=1, padding=(3, 1), output_padding=0, groups=1, dilation=1),  # padding > kernel
]


def _data(params, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    g = params["groups"]
    x = rng.normal(size=(2, 2 * g, 5, 4) if batch else (2 * g, 5, 4)).astype(dtype)
    w = rng.normal(size=(2 * g, 3, 3, 2)).astype(dtype)
    b = rng.normal(size=3 * g).astype(dtype)
    return x, w, b


def _conv_params(p):
    return {k: v for k, v in p.items() if k != "output_padding"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("params", CASES)
def test_adjoint_identity(params, batch, dtype):
    x, w, _ = _data(params, batch, dtype)
    out = cyconv.conv_transpose2d(x, w, **params)
    assert out.dtype == dtype
    z = np.random.default_rng(1).normal(size=out.shape)
    conv = cyconv.conv2d(z, w, **_conv_params(params))
    # conv2d of the output covers at least the input (more when output_padding >= stride)
    lhs = np.vdot(conv[..., : x.shape[-2], : x.shape[-1]], x.astype(np.float64))
    rhs = np.vdot(z, out.astype(np.float64))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert abs(lhs - rhs) <= tol * (1 + abs(lhs))


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("params", CASES)
def test_backward_finite_differences(params, batch):
    x, w, b = _data(params, batch, np.float64)
    out = cyconv.conv_transpose2d(x, w, b, **params)
    g = np.random.default_rng(2).normal(size=out.shape)

    def loss(x_, w_, b_):
        return np.vdot(g, cyconv.conv_transpose2d(x_, w_, b_, **params))

    gx, gw, gb = cyconv.conv_transpose2d_backward(g, x, w, **params)
    eps = 1e-6
    for arr, grad in ((x, gx), (w, gw), (b, gb)):
        assert grad.shape == arr.shape
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss(x, w, b)
            arr[idx] = old - eps
            down = loss(x, w, b)
            arr[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)


def test_output_mask():
    params = CASES[1]
    x, w, _ = _data(params, True, np.float64)
    g = np.ones(cyconv.conv_transpose2d(x, w, **params).shape)
    full = cyconv.conv_transpose2d_backward(g, x, w, **params)
    some = cyconv.conv_transpose2d_backward(g, x, w, **params, output_mask=(False, True, False))
    assert some[0] is None and some[2] is None
    np.testing.assert_array_equal(some[1], full[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("params", CASES)
def test_against_torch(params, batch, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b = _data(params, batch, dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = F.conv_transpose2d(tx, tw, tb, **params)
    got = cyconv.conv_transpose2d(x, w, b, **params)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, ref.detach().numpy(), **tol)
    g = np.random.default_rng(3).normal(size=got.shape).astype(dtype)
    ref.backward(torch.tensor(g))
    grads = cyconv.conv_transpose2d_backward(g, x, w, **params)
    for mine, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(mine, t.grad.numpy(), **tol)


BAD = [
    (dict(stride=2, output_padding=2), ValueError),
    (dict(stride=1, dilation=1, output_padding=1), ValueError),
    (dict(stride=0), ValueError),
    (dict(dilation=0), ValueError),
    (dict(padding=-1), ValueError),
    (dict(output_padding=-1), ValueError),
    (dict(groups=0), ValueError),
    (dict(groups=3), ValueError),
    (dict(padding=5), ValueError),  # non-positive output size
    (dict(stride=1.5), TypeError),
    (dict(padding="same"), TypeError),
]


@pytest.mark.parametrize("kwargs, exc", BAD)
def test_argument_errors(kwargs, exc):
    x, w = np.ones((1, 4, 3, 3)), np.ones((4, 2, 2, 2))
    with pytest.raises(exc):
        cyconv.conv_transpose2d(x, w, **kwargs)
    torch = pytest.importorskip("torch")
    if exc is ValueError:  # torch raises RuntimeError for all of these
        with pytest.raises(RuntimeError):
            torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), **kwargs)


@pytest.mark.parametrize("x_shape, w_shape", [
    ((1, 3, 3, 3), (4, 2, 2, 2)),  # channel mismatch
    ((3, 3), (3, 2, 2, 2)),  # rank 2 input
    ((1, 3, 3, 3), (3, 2, 2)),  # rank 3 weight
])
def test_shape_errors(x_shape, w_shape):
    with pytest.raises(ValueError):
        cyconv.conv_transpose2d(np.ones(x_shape), np.ones(w_shape))


def test_bias_and_grad_output_shape_errors():
    x, w = np.ones((1, 2, 3, 3)), np.ones((2, 2, 2, 2))
    with pytest.raises(ValueError, match="bias"):
        cyconv.conv_transpose2d(x, w, np.ones(3))
    with pytest.raises(ValueError, match="grad_output"):
        cyconv.conv_transpose2d_backward(np.ones((1, 2, 3, 3)), x, w)
    with pytest.raises(TypeError, match="output_mask"):
        cyconv.conv_transpose2d_backward(np.ones((1, 2, 4, 4)), x, w, output_mask="yes")


def _canvas(x, w, stride, padding, output_padding, groups, dilation):
    """(cg, kg, kh, kw, (hf, wf), (ho, wo)): the canvas every tap reaches and the output in it."""
    h, wd = x.shape[2:]
    cg, kg, kh, kw = x.shape[1] // groups, w.shape[1], w.shape[2], w.shape[3]
    full = tuple((n - 1) * s + d * (k - 1) + 1 + op
                 for n, k, s, d, op in zip((h, wd), (kh, kw), stride, dilation, output_padding))
    return cg, kg, kh, kw, full, (full[0] - 2 * padding[0], full[1] - 2 * padding[1])


def _transpose_ref(x, w, b, stride, padding, output_padding, groups, dilation):
    """conv_transpose2d by its definition: each input pixel stamps the kernel, in float64."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, _, h, wd = x.shape
    cg, kg, kh, kw, (hf, wf), (ho, wo) = _canvas(x, w, stride, padding, output_padding,
                                                 groups, dilation)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    canvas = np.zeros((n, groups * kg, hf, wf))
    for g in range(groups):
        xg, wg = x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg]
        for p in range(kh):
            for q in range(kw):
                canvas[:, g * kg:(g + 1) * kg, p * dh:p * dh + (h - 1) * sh + 1:sh,
                       q * dw:q * dw + (wd - 1) * sw + 1:sw] += np.einsum(
                           "nchw,ck->nkhw", xg, wg[:, :, p, q])
    out = canvas[:, :, ph:ph + ho, pw:pw + wo]
    return out if b is None else out + b[:, None, None]


def _transpose_grads_ref(gy, x, w, stride, padding, output_padding, groups, dilation):
    """(grad_input, grad_weight) of conv_transpose2d by the definition, in float64.

    Output pixel (i*sh - ph + p*dh, j*sw - pw + q*dw) got x[n, c, i, j] * w[c, k, p, q]:
    both gradients read grad_output there (zero outside the output).
    """
    gy, x, w = (a.astype(np.float64) for a in (gy, x, w))
    cg, kg, kh, kw, (hf, wf), (ho, wo) = _canvas(x, w, stride, padding, output_padding,
                                                 groups, dilation)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    h, wd = x.shape[2:]
    canvas = np.zeros(gy.shape[:2] + (hf, wf))
    canvas[:, :, ph:ph + ho, pw:pw + wo] = gy
    gx, gw = np.zeros(x.shape), np.zeros(w.shape)
    for g in range(groups):
        cs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for p in range(kh):
            for q in range(kw):
                tap = canvas[:, ks, p * dh:p * dh + (h - 1) * sh + 1:sh,
                             q * dw:q * dw + (wd - 1) * sw + 1:sw]
                gx[:, cs] += np.einsum("nkhw,ck->nchw", tap, w[cs, :, p, q])
                gw[cs, :, p, q] = np.einsum("nkhw,nchw->ck", tap, x[:, cs])
    return gx, gw


# Strided layers large enough for the GEMM paths (4+ kernels per group, rows
# split among threads): (x shape, weight shape, parameters).
STRIDED = [
    ((2, 16, 9, 7), (16, 5, 4, 4), dict(stride=2, padding=1)),  # the decoder's 4x4/2
    ((3, 8, 11, 6), (8, 6, 3, 3), dict(stride=2, padding=0, output_padding=1)),
    ((1, 12, 7, 9), (12, 4, 4, 5), dict(stride=3, padding=2, output_padding=(2, 1),
                                        groups=2)),
    ((2, 10, 6, 8), (10, 7, 3, 3), dict(stride=(2, 3), padding=(1, 3), output_padding=1,
                                        dilation=2)),
    ((2, 9, 5, 6), (9, 4, 2, 2), dict(stride=3, output_padding=2)),  # kernel < stride
    ((1, 6, 13, 5), (6, 8, 3, 2), dict(stride=(3, 2), padding=(1, 0), groups=3)),
]


def _full_params(params):
    full = dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1) | params
    return {k: (v if k == "groups" or isinstance(v, tuple) else (v, v))
            for k, v in full.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, params", STRIDED)
def test_strided_against_definition(xs, ws, params, dtype):
    rng = np.random.default_rng(len(xs) * sum(ws))
    x, w = rng.normal(size=xs).astype(dtype), rng.normal(size=ws).astype(dtype)
    b = rng.normal(size=ws[1] * params.get("groups", 1)).astype(dtype)
    full = _full_params(params)
    ref = _transpose_ref(x, w, b, **full)
    got = cyconv.conv_transpose2d(x, w, b, **params)
    assert got.dtype == dtype and got.shape == ref.shape
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, ref, **tol)
    # Unbatched input: the same planes.
    np.testing.assert_allclose(cyconv.conv_transpose2d(x[0], w, b, **params), ref[0], **tol)
    gy = rng.normal(size=ref.shape).astype(dtype)
    gx, gw, gb = cyconv.conv_transpose2d_backward(gy, x, w, **params)
    ref_gx, ref_gw = _transpose_grads_ref(gy, x, w, **full)
    for mine, expected in ((gx, ref_gx), (gw, ref_gw), (gb, gy.sum(axis=(0, 2, 3)))):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, expected, **tol)


@pytest.mark.parametrize("kernel, stride", [(3, 1), (4, 2)])
def test_integer_data_stays_exact(kernel, stride):
    # As conv2d's 'auto': integer data takes no Winograd path (its transforms
    # round), even on layers where float data would (stride 1, and the
    # transposed 4x4/2): the result is the exact sum.
    rng = np.random.default_rng(5)
    x = rng.integers(-1000, 1000, size=(8, 32, 28, 28))
    w = rng.integers(-1000, 1000, size=(32, 32, kernel, kernel))
    params = dict(stride=stride, padding=1)
    got = cyconv.conv_transpose2d(x, w, **params)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, _transpose_ref(x, w, None, **_full_params(params)))
