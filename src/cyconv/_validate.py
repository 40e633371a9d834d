"""Argument checking and normalization shared by the public functions.

Everything that touches Python objects happens here, before a kernel runs:
the kernels trust what they are given (bounds checks are off), so every
invariant they list is established by these helpers.
"""
import math
import operator
import os
import sys

import numpy as np

# Largest value of a C int: BLAS sizes and leading dimensions must fit in one.
INT_MAX = 2**31 - 1

# Largest padded extent, stride or dilation along one axis. The kernels form
# indices such as i*sh - ph + p*dh and ph + sw - 1 in Py_ssize_t: with every
# extent at most 2**62 none of them can overflow a 64-bit signed integer.
INDEX_MAX = 2**62


def _physical_memory():
    """This machine's RAM in bytes (sys.maxsize where the OS does not say)."""
    try:
        return min(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), sys.maxsize)
    except (AttributeError, ValueError, OSError):
        return sys.maxsize


# No array a call allocates may be larger than this (see check_alloc).
MEMORY_BYTES = _physical_memory()

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


def as_int(func, name, value, minimum, kind="an int"):
    """An integer >= minimum; TypeError for bool, float or other non-integers.

    kind names what the argument may be, for the message ("an int" or, for
    `pair`, "an int or a pair of ints").
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be an int, got bool {value!r}")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must be {kind}, got {value!r}") from None
    if result < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {result}")
    return result


def int_tuple(func, name, shape):
    """A shape as a tuple of ints >= 0, naming a bad entry as ``name[i]``.

    Any sequence or array of integers; TypeError for a scalar, a string, a
    mapping or a set (whose order is not a shape's).
    """
    if type(shape) is tuple and all(type(s) is int and s >= 0 for s in shape):
        return shape  # already one, as an ndarray's shape is: the usual case
    if isinstance(shape, (str, bytes, dict, set, frozenset)) or not hasattr(shape, "__len__"):
        raise TypeError(f"{func}: {name} must be a tuple of ints, got {shape!r}")
    try:
        entries = tuple(shape)
    except TypeError:
        raise TypeError(f"{func}: {name} must be a tuple of ints, got {shape!r}") from None
    return tuple(as_int(func, f"{name}[{i}]", s, 0) for i, s in enumerate(entries))


def pair(func, name, value, minimum):
    """Normalize an int or a length-2 sequence of ints to a tuple ``(h, w)``."""
    if type(value) is int and value >= minimum:  # the usual argument, on a short path
        return value, value
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{func}: {name} must be an int or a pair of ints, got {value!r}")
    # Scalars, including 0-d arrays (which have __len__ but no length):
    # as_int accepts the integers and rejects the rest with TypeError.
    if not hasattr(value, "__len__") or (isinstance(value, np.ndarray) and value.ndim == 0):
        v = as_int(func, name, value, minimum, "an int or a pair of ints")
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


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def float_dtype(*arrays):
    """float32 when every array is float32 (or float16), else float64.

    Integer and bool arrays count as float64; float32 is never upcast
    silently. ``None`` entries (absent arguments) are skipped.
    """
    for array in arrays:
        if array is not None and not (array.dtype.kind == "f" and array.dtype.itemsize <= 4):
            return _FLOAT64
    return _FLOAT32


def check_extent(func, axis, size, pad_total, stride, dilation):
    """Raise ValueError if the padded size, stride or dilation of an axis exceeds INDEX_MAX."""
    if size + pad_total > INDEX_MAX:
        raise ValueError(
            f"{func}: the {axis} of the padded input, {size} + {pad_total} = "
            f"{size + pad_total}, exceeds the largest supported extent 2**62"
        )
    for name, value in (("stride", stride), ("dilation", dilation)):
        if value > INDEX_MAX:
            raise ValueError(
                f"{func}: the {name} along the {axis}, {value}, exceeds the largest "
                "supported extent 2**62"
            )


def out_size(func, axis, size, kernel, stride, pad_total, dilation, shapes):
    """Output length along one axis, floor((size + pad - d*(k-1) - 1)/s) + 1, at least 1."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_total
    check_extent(func, axis, size, pad_total, stride, dilation)
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


def _bytes(nbytes):
    """A byte count for a message: '35184372088832 bytes (32 TiB)'."""
    for unit, scale in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30)):
        if nbytes >= scale:
            return f"{nbytes} bytes ({nbytes / scale:.3g} {unit})"
    return f"{nbytes} bytes"


def check_alloc(func, itemsize, **shapes):
    """Raise before allocating an array of one of ``shapes`` that cannot exist.

    ValueError if its byte size overflows a 64-bit size, MemoryError if it
    exceeds this machine's memory (MEMORY_BYTES). NumPy would attempt such an
    allocation (with overcommit, a few TiB may even succeed until touched);
    shapes come from parameters or from broadcast views whose copies are made.
    The arrays are also weighed together: MemoryError if each fits but their
    total (the call's arrays live at once) exceeds the memory, naming each size.
    """
    total = 0
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * itemsize
        if nbytes > MEMORY_BYTES:  # the rare case: only now build a message
            what = f"{func}: the {name.replace('_', ' ')} would have shape {tuple(shape)}"
            if nbytes > sys.maxsize:
                raise ValueError(f"{what}: {_bytes(nbytes)}, more than a 64-bit size can hold")
            raise MemoryError(
                f"{what}: {_bytes(nbytes)}, more than this machine's memory "
                f"({_bytes(MEMORY_BYTES)})"
            )
        total += nbytes
    if total > MEMORY_BYTES:
        sizes = ", ".join(f"{name.replace('_', ' ')} {tuple(shape)}: "
                          f"{_bytes(math.prod(shape) * itemsize)}"
                          for name, shape in shapes.items())
        raise MemoryError(
            f"{func}: the arrays of this call would take {_bytes(total)} together "
            f"({sizes}), more than this machine's memory ({_bytes(MEMORY_BYTES)})"
        )
