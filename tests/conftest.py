"""Shared fixtures: memory layouts that every function must accept."""
import numpy as np
import pytest


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
            "strided": strided, "readonly": readonly}


@pytest.fixture(params=["C", "F", "negative", "strided", "readonly"])
def layout(request):
    """A function mapping an array to the same values in one memory layout."""
    return lambda a: _layouts(a)[request.param]
