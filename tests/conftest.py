"""Shared fixtures: memory layouts that every function must accept; hypothesis profiles."""
import os
import pathlib
import sys
import warnings

import numpy as np
import pytest
from hypothesis import settings

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
    for axis in range(a.ndim if a.size else 0):  # np.take cannot index an empty axis
        view = np.broadcast_to(np.take(a, [0], axis=axis), a.shape)
        if np.array_equal(view, a):
            return view
    return np.broadcast_to(a, a.shape)


@pytest.fixture(params=["C", "F", "negative", "strided", "readonly", "broadcast"])
def layout(request):
    """A function mapping an array to the same values in one memory layout."""
    return lambda a: _layouts(a)[request.param]


# Hypothesis profiles (tests/test_properties.py). 'ci', the default, is
# derandomized and small so every run tries the same cases quickly;
# CYCONV_HYPOTHESIS_PROFILE=thorough searches far more widely on a workstation.
settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None,
                          database=None, print_blob=True)
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          print_blob=True)
settings.load_profile(os.environ.get("CYCONV_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def layouts():
    """``_layouts`` for hypothesis tests, which cannot take the function-scoped ``layout``."""
    return _layouts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Import Hypothesis's patch writer quietly before its plugin does, after a failure.

    On a falsifying example the plugin imports libcst (where installed), which
    imports mypy_extensions, which warns; under filterwarnings = error that
    turns the report of the example into an INTERNALERROR.
    """
    if getattr(item, "_hypothesis_failing_examples", None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import hypothesis.extra._patching  # noqa: F401
            except ImportError:
                pass
    yield


@pytest.fixture(scope="session")
def client():
    """The session's one in-process dask.distributed LocalCluster (the Dask tests).

    Not the default client: other tests' ``compute()`` calls keep their own
    schedulers. Closed when the session ends; skipped without distributed.
    """
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2,
                                       processes=False, dashboard_address=":0")
    cl = distributed.Client(cluster, set_as_default=False)
    yield cl
    cl.close()
    cluster.close()


def pytest_collection_modifyitems(config, items):
    """Run the Dask tests last (a stable sort keeps every other order).

    The session's LocalCluster (`client`) keeps its event loop and worker
    threads until the session ends; they allocate in the background, which
    test_memory's tracemalloc counts and the thread tests would see.
    """
    items.sort(key=lambda item: item.path.name.startswith("test_dask"))
