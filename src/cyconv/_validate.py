"""Argument checking and normalization shared by the public functions.

Everything that touches Python objects happens here, before a kernel runs:
the kernels trust what they are given (bounds checks are off), so every
invariant they list is established by these helpers.
"""
import operator

import numpy as np

# Largest value of a C int: BLAS sizes and leading dimensions must fit in one.
INT_MAX = 2**31 - 1

# Cap on the im2col workspace of one call, in bytes: the GEMM path unrolls
# this much of the input at a time, whatever the batch or image size.
WORKSPACE_BYTES = 16 * 2**20

# padding_mode -> numpy.pad mode, for the modes that copy border pixels.
# On a row [1 2 3 4] padded by 2 on each side:
#   zeros      0 0 | 1 2 3 4 | 0 0
#   reflect    3 2 | 1 2 3 4 | 3 2   (mirror, edge pixel not repeated)
#   replicate  1 1 | 1 2 3 4 | 4 4   (edge pixel repeated)
#   circular   3 4 | 1 2 3 4 | 1 2   (wrap around)
PAD_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def check_choice(func, name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{func}: {name}={value!r} is not one of {accepted}")
    return value


def as_int(func, name, value, minimum):
    """An integer >= minimum; TypeError for bool, float or other non-integers."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be an int, got bool {value!r}")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{func}: {name} must be an int or a pair of ints, got {value!r}"
        ) from None
    if result < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {result}")
    return result


def pair(func, name, value, minimum):
    """Normalize an int or a length-2 sequence of ints to a tuple ``(h, w)``."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{func}: {name} must be an int or a pair of ints, got {value!r}")
    # Scalars, including 0-d arrays (which have __len__ but no length):
    # as_int accepts the integers and rejects the rest with TypeError.
    if not hasattr(value, "__len__") or (isinstance(value, np.ndarray) and value.ndim == 0):
        v = as_int(func, name, value, minimum)
        return v, v
    if len(value) != 2:
        raise ValueError(f"{func}: {name} must be an int or a pair (h, w), got {value!r}")
    return (as_int(func, name, value[0], minimum), as_int(func, name, value[1], minimum))


def as_array(func, name, value):
    """``np.asarray(value)``, rejecting dtypes no kernel computes with TypeError."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{func}: {name} cannot be converted to an array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{func}: {name} has dtype {array.dtype}; only real numbers "
            "(float32, float64, integer or bool) are supported"
        )
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:
        raise TypeError(
            f"{func}: {name} has dtype {array.dtype}; cast it to float64 first"
        )
    return array


def float_dtype(*arrays):
    """float32 when every array is float32 (or float16), else float64.

    Integer and bool arrays count as float64; float32 is never upcast
    silently. ``None`` entries (absent arguments) are skipped.
    """
    for array in arrays:
        if array is not None and not (array.dtype.kind == "f" and array.dtype.itemsize <= 4):
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def out_size(func, axis, size, kernel, stride, pad_total, dilation, shapes):
    """Output length along one axis, floor((size + pad - d*(k-1) - 1)/s) + 1, at least 1."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_total
    if padded < span:
        raise ValueError(
            f"{func}: the {axis} of the (padded) input, {size} + {pad_total} = {padded}, "
            f"is smaller than the dilated kernel {axis} {span} ({shapes})"
        )
    return (padded - span) // stride + 1


def fits_int(*sizes):
    """True when every size can be passed to BLAS as a C int."""
    return all(size <= INT_MAX for size in sizes)


def check_int_sizes(func, **sizes):
    """Raise ValueError if a size passed to BLAS does not fit in a C int."""
    for name, value in sizes.items():
        if value > INT_MAX:
            raise ValueError(
                f"{func}: {name}={value} exceeds the BLAS integer limit {INT_MAX}; "
                "use method='direct'"
            )
