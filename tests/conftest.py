"""Shared fixtures: memory layouts that every function must accept."""
import pathlib
import sys

import numpy as np
import pytest

# --import-mode=importlib puts no test directory on sys.path: put this one
# there so the test modules can `from _reference import ...`.
sys.path.insert(0, str(pathlib.Path(__file__).parent))


def _layouts(a):
    """The same values as ``a`` in the layouts API.md says are accepted."""
    a = np.asarray(a)
    fortran = np.asfortranarray(a)
    reversed_ = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[
        (slice(None, None, -1),) * a.ndim]
    padded = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    strided = padded[(slice(None, None, 2),) * a.ndim]
    strided[...] = a
    readonly = a.copy()
    readonly.setflags(write=False)
    return {"C": a, "F": fortran, "negative": reversed_,
            "strided": strided, "readonly": readonly, "broadcast": _broadcast(a)}


def _broadcast(a):
    """``a`` as a read-only ``np.broadcast_to`` view with a zero stride.

    A zero stride repeats one slice, so it holds the same values only along an
    axis where ``a`` is constant: the first such axis is used (any length-1
    axis is one: NumPy gives every broadcast axis stride 0, even of length 1).
    An array with no constant axis comes back as a read-only broadcast view
    with ordinary strides.
    """
    for axis in range(a.ndim):
        view = np.broadcast_to(np.take(a, [0], axis=axis), a.shape)
        if np.array_equal(view, a):
            return view
    return np.broadcast_to(a, a.shape)


@pytest.fixture(params=["C", "F", "negative", "strided", "readonly", "broadcast"])
def layout(request):
    """A function mapping an array to the same values in one memory layout."""
    return lambda a: _layouts(a)[request.param]
