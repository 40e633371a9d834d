"""Bad arguments raise ValueError/TypeError naming the parameter, before any kernel runs."""
import numpy as np
import pytest
from numpy.testing import assert_array_equal

import cyconv
import cyconv._validate

from _reference import conv2d_ref

X = np.ones((1, 4, 5, 5))
W = np.ones((2, 4, 3, 3))


def conv(**kwargs):
    """conv2d on the good X, W, with one argument replaced."""
    args = dict(input=X, weight=W)
    args.update(kwargs)
    return cyconv.conv2d(**args)


# ---------------------------------------------------------------- shapes

@pytest.mark.parametrize("x, w, match", [
    (np.float64(1.0), W, "input"),                # 0-d
    (np.ones(5), np.ones(3), "input"),            # 1-D
    (np.ones((1, 1, 4, 5, 5)), W, "input"),       # 5-D
    (np.ones((4, 5, 5)), np.ones((3, 3)), "weight"),      # 3-D input, 2-D weight
    (X, np.ones((4, 3, 3)), "weight"),                    # 4-D input, 3-D weight
    (np.ones((5, 5)), np.ones((1, 1, 3, 3)), "weight"),   # 2-D input, 4-D weight
    (X, np.ones((2, 3, 3, 3)), r"weight\.shape\[1\]=3.*C=4"),  # channels mismatch
    (X, np.ones((2, 4, 0, 3)), "kernel"),                  # empty kernel
])
def test_bad_shapes(x, w, match):
    with pytest.raises(ValueError, match=match):
        cyconv.conv2d(x, w)
    shapes = (np.shape(x), np.shape(w))
    with pytest.raises(ValueError, match=match):
        cyconv.output_shape(*shapes)


@pytest.mark.parametrize("w, groups, match", [
    (np.ones((3, 2, 3, 3)), 3, r"groups=3.*C=4"),   # groups does not divide C
    (np.ones((3, 2, 3, 3)), 2, r"groups=2.*K=3"),   # groups does not divide K
    (np.ones((2, 4, 3, 3)), 2, r"weight\.shape\[1\]=4"),  # C/groups != weight.shape[1]
])
def test_groups_must_divide(w, groups, match):
    with pytest.raises(ValueError, match=match):
        conv(weight=w, groups=groups)
    with pytest.raises(ValueError, match=match):
        cyconv.output_shape(X.shape, w.shape, groups=groups)


@pytest.mark.parametrize("kwargs", [
    dict(weight=np.ones((1, 4, 6, 3))),                         # kernel taller than input
    dict(weight=np.ones((1, 4, 3, 6))),                         # wider
    dict(weight=np.ones((1, 4, 6, 6)), padding=(1, 0)),         # fits in height only
    dict(weight=np.ones((1, 4, 3, 3)), dilation=3),             # dilated span 7 > 5
    dict(weight=np.ones((1, 4, 4, 4)), dilation=(2, 1)),        # span 7 > 5 in height
])
def test_kernel_larger_than_padded_input(kwargs):
    with pytest.raises(ValueError, match=r"kernel.*input shape \(1, 4, 5, 5\)"):
        conv(**kwargs)
    # One more row and column of padding makes every one of them fit.
    pad = kwargs.pop("padding", 0)
    pad = (pad, pad) if np.ndim(pad) == 0 else pad
    out = conv(padding=(pad[0] + 1, pad[1] + 1), **kwargs)
    assert out.shape[2:] != (0, 0)


@pytest.mark.parametrize("bias, x, w", [
    (np.ones(3), X, W),               # K + 1
    (np.ones((2, 1)), X, W),          # 2-D
    (np.float64(1.0), X, W),          # scalar with a 4-D input
    (np.ones(()), np.ones((4, 5, 5)), W),  # scalar with a 3-D input
    (np.ones(2), np.ones((5, 5)), np.ones((3, 3))),  # 2-D input: scalar or (1,)
    (np.ones((1, 1)), np.ones((5, 5)), np.ones((3, 3))),
])
def test_bias_shape(bias, x, w):
    with pytest.raises(ValueError, match="bias"):
        cyconv.conv2d(x, w, bias)


# ---------------------------------------------------------------- parameters

@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value", [0, -1, (1, 0), (-2, 1)])
def test_stride_dilation_at_least_one(name, value):
    with pytest.raises(ValueError, match=name):
        conv(**{name: value})
    with pytest.raises(ValueError, match=name):
        cyconv.output_shape(X.shape, W.shape, **{name: value})
    with pytest.raises(ValueError, match=name):
        cyconv.im2col(X, 3, **{name: value})


@pytest.mark.parametrize("value", [-1, (0, -1), (-3, 2)])
def test_negative_padding(value):
    with pytest.raises(ValueError, match="padding"):
        conv(padding=value)
    with pytest.raises(ValueError, match="padding"):
        cyconv.im2col(X, 3, padding=value)


@pytest.mark.parametrize("name", ["stride", "padding", "dilation", "groups"])
@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, (1, 1.0), (True, 1), "2", None,
                                   np.float64(1.0)])
def test_non_integer_parameters(name, value):
    # A string padding is a choice among 'valid'/'same' (ValueError, as torch).
    error = ValueError if name == "padding" and isinstance(value, str) else TypeError
    with pytest.raises(error, match=name):
        conv(**{name: value})
    if name != "groups":
        with pytest.raises(TypeError, match=name):
            cyconv.im2col(X, 3, **{name: value})


@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
@pytest.mark.parametrize("value", [(1, 1, 1), (1,), ()])
def test_wrong_length_pairs(name, value):
    with pytest.raises(ValueError, match=name):
        conv(**{name: value})


def test_numpy_integers_are_accepted():
    for stride, padding, dilation, ref_args in (
        (np.int64(2), np.int32(1), np.int8(1), ((2, 2), (1, 1, 1, 1), (1, 1))),
        ((np.int64(2), 1), np.array([1, 2]), (1, np.uint8(2)), ((2, 1), (1, 1, 2, 2), (1, 2))),
        ([2, 1], [1, 2], [1, 2], ((2, 1), (1, 1, 2, 2), (1, 2))),
        (np.array(2), np.array(1), np.array([1, 1]), ((2, 2), (1, 1, 1, 1), (1, 1))),
    ):
        out = conv(stride=stride, padding=padding, dilation=dilation, groups=np.int64(1))
        assert_array_equal(out, conv2d_ref(X, W, None, *ref_args))


@pytest.mark.parametrize("value, error", [
    (np.array(2.0), TypeError), (np.array(True), TypeError), ((1, (2, 3)), TypeError),
    (np.array([[1, 2]]), ValueError), (np.array([1]), ValueError),
])
def test_array_parameters(value, error):
    # 0-d integer arrays count as ints (see above); other arrays must be a pair of ints.
    with pytest.raises(error, match="stride"):
        conv(stride=value)


@pytest.mark.parametrize("shape, error, match", [
    (5, TypeError, "input_shape"),
    (None, TypeError, "input_shape"),
    ((1, 4, 5.5, 5), TypeError, r"input_shape\[2\]"),
    ((1, 4, -5, 5), ValueError, r"input_shape\[2\]"),
    (("a", 4, 5, 5), TypeError, r"input_shape\[0\]"),
])
def test_output_shape_checks_its_shapes(shape, error, match):
    with pytest.raises(error, match=match):
        cyconv.output_shape(shape, W.shape)
    with pytest.raises(error, match=match.replace("input", "weight")):
        cyconv.output_shape(X.shape, shape)


@pytest.mark.parametrize("groups", [0, -1])
def test_groups_at_least_one(groups):
    with pytest.raises(ValueError, match="groups"):
        conv(groups=groups)


def test_same_needs_stride_one():
    with pytest.raises(ValueError, match=r"same.*stride"):
        conv(padding="same", stride=2)
    with pytest.raises(ValueError, match=r"same.*stride"):
        conv(padding="same", stride=(1, 2))
    with pytest.raises(ValueError, match=r"same.*stride"):
        cyconv.output_shape(X.shape, W.shape, padding="same", stride=(2, 1))


@pytest.mark.parametrize("kwargs, name", [
    (dict(padding="full"), "padding"),
    (dict(padding="SAME"), "padding"),
    (dict(padding=""), "padding"),
    (dict(padding_mode="zero"), "padding_mode"),
    (dict(padding_mode="symmetric"), "padding_mode"),
    (dict(padding_mode="edge"), "padding_mode"),
    (dict(padding_mode=None), "padding_mode"),
    (dict(method="gemm"), "method"),
    (dict(method="Direct"), "method"),
    (dict(method=None), "method"),
])
def test_unknown_strings(kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        conv(**kwargs)
    # The message lists what is accepted.
    accepted = {"padding": "'same'", "padding_mode": "'circular'", "method": "'im2col'"}
    assert accepted[name] in str(info.value)


def test_padding_mode_checked_even_without_padding():
    with pytest.raises(ValueError, match="padding_mode"):
        conv(padding_mode="mirror")


@pytest.mark.parametrize("mode, pad", [("reflect", 5), ("reflect", (0, 6)),
                                       ("circular", 6), ("circular", (6, 0))])
def test_padding_mode_limits(mode, pad):
    with pytest.raises(ValueError, match=rf"padding_mode='{mode}'.*padding"):
        conv(padding=pad, padding_mode=mode)


# ---------------------------------------------------------------- types

BAD_ARRAYS = [
    pytest.param(np.ones((1, 4, 5, 5), complex), id="complex"),
    pytest.param(np.ones((1, 4, 5, 5), np.complex64), id="complex64"),
    pytest.param(np.ones((1, 4, 5, 5), object), id="object"),
    pytest.param(np.full((1, 4, 5, 5), "a"), id="str"),
    pytest.param(np.ones((1, 4, 5, 5), np.longdouble), id="longdouble"),
    pytest.param(np.zeros((1, 4, 5, 5), "datetime64[s]"), id="datetime"),
    pytest.param([[1, 2], [3]], id="ragged-list"),
]


def _skip_plain_longdouble(bad):
    # Where long double is just double (MSVC, aarch64 macOS) it is float64.
    if isinstance(bad, np.ndarray) and bad.dtype == np.longdouble and (
            np.finfo(np.longdouble).bits == 64):
        pytest.skip("longdouble is float64 on this platform")


@pytest.mark.parametrize("bad", BAD_ARRAYS)
@pytest.mark.parametrize("name", ["input", "weight", "bias"])
def test_unsupported_array_types(bad, name):
    _skip_plain_longdouble(bad)
    if name == "weight" and isinstance(bad, np.ndarray):
        bad = bad[:2]
    if name == "bias" and isinstance(bad, np.ndarray):
        bad = bad.reshape(-1)[:2]
    with pytest.raises(TypeError, match=name):
        conv(**{name: bad})


@pytest.mark.parametrize("bad", BAD_ARRAYS)
def test_im2col_unsupported_types(bad):
    _skip_plain_longdouble(bad)
    with pytest.raises(TypeError, match="input"):
        cyconv.im2col(bad, 2)


def test_python_lists_are_arrays():
    x = [[1, 1, -2, 0], [1, 0, 0, 2], [0, 1, 0, 5]]
    w = [[0, 1], [1, 0]]
    out = cyconv.conv2d(x, w, [0.5])
    assert out.dtype == np.float64
    assert_array_equal(out, conv2d_ref(np.array(x)[None, None], np.array(w)[None, None],
                                       [0.5])[0, 0])
    out = cyconv.conv2d([x, x], [[w, w]], bias=[1])
    assert_array_equal(out, conv2d_ref(np.array([[x, x]]), np.array([[w, w]]), [1])[0])
    assert_array_equal(cyconv.im2col(x, 2), cyconv.im2col(np.array(x), 2))


# ---------------------------------------------------------------- im2col

@pytest.mark.parametrize("x", [np.ones(5), np.ones((1, 1, 1, 5, 5)), np.float64(2)])
def test_im2col_ndim(x):
    with pytest.raises(ValueError, match="input"):
        cyconv.im2col(x, 2)


@pytest.mark.parametrize("kernel_size, error", [
    (0, ValueError), ((2, 0), ValueError), (-1, ValueError), ((2,), ValueError),
    ((1, 2, 3), ValueError), (2.0, TypeError), (True, TypeError), ("3", TypeError),
    (None, TypeError),
])
def test_im2col_kernel_size(kernel_size, error):
    with pytest.raises(error, match="kernel_size"):
        cyconv.im2col(X, kernel_size)


def test_im2col_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel.*\(1, 4, 5, 5\)"):
        cyconv.im2col(X, (6, 2))
    with pytest.raises(ValueError, match="kernel"):
        cyconv.im2col(X, 3, dilation=(1, 3))
    assert cyconv.im2col(X, (6, 2), padding=(1, 0)).shape == (1, 4 * 12, 2 * 4)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_im2col_takes_no_padding_strings(padding):
    # torch.nn.functional.unfold takes ints only.
    with pytest.raises(TypeError, match="padding"):
        cyconv.im2col(X, 3, padding=padding)


# ---------------------------------------------------------------- BLAS limits

def test_blas_int_limit(monkeypatch):
    # A size beyond the BLAS integer is refused for method='im2col' and
    # avoided by 'auto'; shrink the limit instead of allocating 2**31 pixels.
    monkeypatch.setattr(cyconv._validate, "INT_MAX", 8)
    x, w = np.ones((1, 1, 5, 5)), np.ones((8, 1, 2, 2))  # Kg = 8, Q = 4, P = 16
    with pytest.raises(ValueError, match="output_pixels=16"):
        cyconv.conv2d(x, w, method="im2col")
    for method in ("auto", "direct"):
        assert_array_equal(cyconv.conv2d(x, w, method=method), np.full((1, 8, 4, 4), 4.0))


def test_int_argument_message_says_int_only():
    # groups is a single int: its message must not offer "a pair".
    with pytest.raises(TypeError, match=r"groups must be an int, got 2\.0"):
        cyconv.conv2d(np.ones((1, 2, 4, 4)), np.ones((2, 1, 3, 3)), groups=2.0)
    with pytest.raises(TypeError, match="stride must be an int or a pair of ints"):
        cyconv.conv2d(np.ones((4, 4)), np.ones((3, 3)), stride=1.0)


def test_shape_arguments_name_the_bad_entry():
    with pytest.raises(TypeError, match=r"input_shape\[2\]"):
        cyconv.max_pool2d_backward(np.ones((2, 3, 3, 3)), np.zeros((2, 3, 3, 3), int),
                                   (2, 3, 6.0, 6))
    with pytest.raises(TypeError, match=r"weight_shape\[1\]"):
        cyconv.output_shape((5, 6), (3, 3.0))


@pytest.mark.parametrize("bad", [{5: 1, 6: 2}, {5, 6}, "56", 5])
def test_shape_arguments_reject_non_sequences(bad):
    with pytest.raises(TypeError, match="input_shape must be a tuple of ints"):
        cyconv.output_shape(bad, (3, 3))
    with pytest.raises(TypeError, match="input_shape must be a tuple of ints"):
        cyconv.max_pool2d_backward(np.ones((1, 1)), np.zeros((1, 1), int), bad)
