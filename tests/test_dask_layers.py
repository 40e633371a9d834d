"""cyconv.dask's layers against the in-memory functions on the whole array, over chunkings.

conv2d, conv2d_backward, max_pool2d and avg_pool2d on chunked Dask arrays
must equal `cyconv`'s in-memory functions for every chunking: uneven chunks,
chunks smaller than the kernel's halo or the stride, split channels, one
chunk. Runs on the threaded scheduler and on an in-process LocalCluster,
and once on worker processes (the tasks must pickle).
"""
import inspect
import os
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import cyconv  # noqa: E402
import cyconv._dask_layers as layers  # noqa: E402
import cyconv.dask as cdask  # noqa: E402
from cyconv import _openmp  # noqa: E402
from cyconv._threads import thread_limit  # noqa: E402
from test_api_docs import SECTIONS, _documented, _sections  # noqa: E402

SHAPE = (3, 4, 11, 10)
# Even, uneven with split channels, one chunk, and 1x1 chunks (smaller than any halo).
CHUNKINGS = [
    ((1, 2), 4, (4, 4, 3), 5),
    ((2, 1), (1, 3), (3, 1, 5, 2), (2, 7, 1)),
    (3, 4, 11, 10),
    (1, 4, 1, 1),
]
# (kernel (kh, kw), conv2d keyword arguments): strides, paddings, dilations,
# groups and padding modes; 'same' with an even kernel pads unevenly.
CONVS = [
    ((3, 3), dict()),
    ((3, 3), dict(stride=2, padding=1, groups=2)),
    ((3, 2), dict(padding="same", dilation=2, padding_mode="reflect")),
    ((2, 4), dict(padding="same", groups=4, padding_mode="replicate")),
    ((2, 3), dict(stride=(3, 2), padding=(2, 1), dilation=(1, 2), padding_mode="circular")),
    ((1, 2), dict(stride=(2, 1), padding="valid", groups=2)),
]
# The backward pass makes several tasks per chunk: 1-row chunks, not 1x1.
BACKWARD_CHUNKINGS = [*CHUNKINGS[:3], (3, 4, 1, (1, 2, 7))]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}



def _data(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(SHAPE).astype(dtype)


def _weights(kshape, kwargs, dtype=np.float64, kernels=4, seed=1):
    rng = np.random.default_rng(seed)
    groups = kwargs.get("groups", 1)
    return (rng.standard_normal((kernels, SHAPE[1] // groups, *kshape)).astype(dtype),
            rng.standard_normal(kernels).astype(dtype))


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("kshape, kwargs", CONVS)
def test_conv2d_matches_in_memory(kshape, kwargs, chunks):
    x = _data()
    w, b = _weights(kshape, kwargs)
    want = cyconv.conv2d(x, w, b, **kwargs)
    lazy = cdask.conv2d(da.from_array(x, chunks=chunks), w, b, **kwargs)
    assert lazy.shape == want.shape and lazy.dtype == want.dtype
    got = lazy.compute(scheduler="threads")
    np.testing.assert_allclose(got, want, **TOL[np.float64])


@pytest.mark.parametrize("chunks", BACKWARD_CHUNKINGS)
@pytest.mark.parametrize("kshape, kwargs", CONVS)
def test_conv2d_backward_matches_in_memory(kshape, kwargs, chunks):
    x = _data()
    w, _ = _weights(kshape, kwargs)
    grad = np.random.default_rng(2).standard_normal(cyconv.conv2d(x, w, **kwargs).shape)
    want = cyconv.conv2d_backward(grad, x, w, **kwargs)
    # grad_output in chunks of its own: the module rechunks it.
    lazy = cdask.conv2d_backward(da.from_array(grad, chunks=(2, 1, 3, 4)),
                                 da.from_array(x, chunks=chunks), w, **kwargs)
    assert lazy[0].shape == x.shape
    assert lazy[0].chunks[2:] == da.from_array(x, chunks=chunks).chunks[2:]
    got = dask.compute(*lazy, scheduler="threads")
    for g, r in zip(got, want):
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_allclose(g, r, **TOL[np.float64])


@pytest.mark.parametrize("kshape, kwargs", [CONVS[2], CONVS[4]])
def test_training_step_on_cluster(client, kshape, kwargs):
    """One data-parallel step on the cluster: forward and pooling, then all three gradients."""
    x = _data(seed=5)
    w, b = _weights(kshape, kwargs)
    xd = da.from_array(x, chunks=CHUNKINGS[1])
    y = cdask.conv2d(xd, w, b, **kwargs)
    grads = cdask.conv2d_backward(2 * y, xd, w, **kwargs)  # loss = sum(y**2)
    pooled = cdask.avg_pool2d(y, 2, ceil_mode=True)
    got = client.compute([y, pooled, *grads], sync=True)
    want = cyconv.conv2d(x, w, b, **kwargs)
    for g, r in zip(got, [want, cyconv.avg_pool2d(want, 2, ceil_mode=True),
                          *cyconv.conv2d_backward(2 * want, x, w, **kwargs)]):
        np.testing.assert_allclose(g, r, **TOL[np.float64])


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize("kshape, kwargs", CONVS[1:3])
def test_dtypes(kshape, kwargs, dtype):
    x = (_data() * 4).astype(dtype)
    w, b = _weights(kshape, kwargs, np.float32)
    want = cyconv.conv2d(x, w, b, **kwargs)
    xd = da.from_array(x, chunks=CHUNKINGS[1])
    lazy = cdask.conv2d(xd, w, b, **kwargs)
    assert lazy.dtype == want.dtype  # float32 stays float32, integers go to float64
    tol = TOL[np.float32] if want.dtype == np.float32 else TOL[np.float64]
    grad = np.ones(want.shape, np.float32)
    got = dask.compute(lazy, *cdask.conv2d_backward(da.from_array(grad, chunks=4), xd, w,
                                                    **kwargs), scheduler="threads")
    np.testing.assert_allclose(got[0], want, **tol)
    for g, r in zip(got[1:], cyconv.conv2d_backward(grad, x, w, **kwargs)):
        assert g.dtype == r.dtype
        np.testing.assert_allclose(g, r, rtol=tol["rtol"], atol=tol["atol"] * np.abs(r).max())


def test_lower_ranks():
    x = _data()[0]
    w, b = _weights((3, 3), {})
    got = cdask.conv2d(da.from_array(x, chunks=3), w, b, stride=2).compute(scheduler="sync")
    np.testing.assert_allclose(got, cyconv.conv2d(x, w, b, stride=2), **TOL[np.float64])
    # 2-D: one channel and one kernel, a scalar bias that keeps float32.
    x2, w2 = x[0].astype(np.float32), w[0, 0].astype(np.float32)
    lazy = cdask.conv2d(da.from_array(x2, chunks=(4, 3)), w2, 0.5, padding=1)
    want = cyconv.conv2d(x2, w2, 0.5, padding=1)
    assert lazy.dtype == want.dtype == np.float32
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), want, **TOL[np.float32])
    grad = np.ones(want.shape)
    got = dask.compute(*cdask.conv2d_backward(da.from_array(grad, chunks=4),
                                              da.from_array(x2, chunks=3), w2, padding=1),
                       scheduler="sync")
    for g, r in zip(got, cyconv.conv2d_backward(grad, x2, w2, padding=1)):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, **TOL[np.float32])


def test_output_mask():
    x, (w, _) = _data(), _weights((3, 3), {})
    gi, gw, gb = cdask.conv2d_backward(da.ones((3, 4, 9, 8), chunks=4), da.from_array(x),
                                       w, output_mask=(False, True, False))
    assert gi is None and gb is None
    want = cyconv.conv2d_backward(np.ones((3, 4, 9, 8)), x, w, output_mask=(False, True, False))
    np.testing.assert_allclose(gw.compute(scheduler="sync"), want[1], **TOL[np.float64])


# (kernel_size, stride, padding, dilation, ceil_mode)
MAX_POOLS = [(2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (1, 3), (1, 0), (2, 3), True),
             (3, 3, 1, 4, False)]
# (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_POOLS = [(2, None, 0, False, True, None), (3, 2, 1, True, False, None),
             ((3, 2), (1, 3), (1, 1), True, True, -5)]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("params", MAX_POOLS)
def test_max_pool2d_matches_in_memory(params, chunks):
    # Small integers: ties everywhere, so the indices check the tie-breaking too.
    x = np.random.default_rng(3).integers(-3, 4, SHAPE).astype(float)
    x[0, 0, 5, :] = -np.inf
    want, want_idx = cyconv.max_pool2d(x, *params, return_indices=True)
    out, idx = cdask.max_pool2d(da.from_array(x, chunks=chunks), *params, return_indices=True)
    assert (out.dtype, idx.dtype) == (want.dtype, want_idx.dtype)
    out, idx = dask.compute(out, idx, scheduler="threads")
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("chunks", CHUNKINGS[1:])
@pytest.mark.parametrize("params", AVG_POOLS)
def test_avg_pool2d_matches_in_memory(params, chunks):
    x = _data(np.float32)
    want = cyconv.avg_pool2d(x, *params)
    lazy = cdask.avg_pool2d(da.from_array(x, chunks=chunks), *params)
    assert lazy.dtype == want.dtype == np.float32
    np.testing.assert_allclose(lazy.compute(scheduler="threads"), want, **TOL[np.float32])


def test_pool_lower_ranks():
    x = np.arange(7 * 9, dtype=np.int32).reshape(7, 9) % 5
    got = cdask.max_pool2d(da.from_array(x, chunks=2), 3, 2, 1).compute(scheduler="sync")
    np.testing.assert_array_equal(got, cyconv.max_pool2d(x, 3, 2, 1))
    got = cdask.avg_pool2d(da.from_array(x[None], chunks=(1, 2, 4)), 2).compute(scheduler="sync")
    np.testing.assert_allclose(got, cyconv.avg_pool2d(x[None], 2), **TOL[np.float64])


def test_output_chunks_documented():
    x = da.zeros((2, 3, 12, 12), chunks=(1, 3, 4, 6))
    w = np.ones((5, 3, 3, 3))
    # 'same' keeps the input's chunks; stride 2 halves them.
    assert cdask.conv2d(x, w, padding="same").chunks == ((1, 1), (5,), (4, 4, 4), (6, 6))
    assert cdask.conv2d(x, w, stride=2, padding=1).chunks == ((1, 1), (5,), (2, 2, 2), (3, 3))
    assert cdask.max_pool2d(x, 2).chunks == ((1, 1), (3,), (2, 2, 2), (3, 3))


def test_errors():
    x = da.zeros((1, 2, 6, 6), chunks=3)
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(TypeError, match="input"):
        cdask.conv2d(np.zeros((1, 2, 6, 6)), w)
    with pytest.raises(ValueError, match="threads"):
        cdask.conv2d(x, w, threads=0)
    with pytest.raises(ValueError, match="padding_mode"):
        cdask.conv2d(x, w, padding_mode="nope")
    with pytest.raises(ValueError, match="groups"):
        cdask.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="reflect"):
        cdask.conv2d(x, w, padding=6, padding_mode="reflect")
    with pytest.raises(ValueError, match="grad_output"):
        cdask.conv2d_backward(x, x, w)
    with pytest.raises(TypeError, match="output_mask"):
        cdask.conv2d_backward(da.zeros((1, 2, 4, 4)), x, w, output_mask=(1, 1, 1))
    with pytest.raises(ValueError, match="padding"):
        cdask.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="divisor_override"):
        cdask.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="input"):
        cdask.max_pool2d(np.zeros((4, 4)), 2)
    unknown = x[x[:, 0, 0, 0] > 0]  # boolean indexing: N's chunk sizes unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        cdask.avg_pool2d(unknown, 2)


def test_thread_limit_is_per_thread():
    if not _openmp.openmp_enabled() or _openmp.max_threads() < 2:
        pytest.skip("needs OpenMP and 2 threads")
    before, seen = _openmp.max_threads(), []
    with thread_limit(1):
        other = threading.Thread(target=lambda: seen.append(_openmp.max_threads()))
        other.start()
        other.join()
        assert _openmp.max_threads() == 1
    assert seen == [before]  # another thread kept its count
    assert _openmp.max_threads() == before


def test_kernels_threads_in_tasks(monkeypatch):
    """The kernels see the per-task count: 1 by default under the threaded scheduler."""
    if not _openmp.openmp_enabled() or _openmp.max_threads() < 2:
        pytest.skip("needs OpenMP and 2 threads")
    seen = []
    real = layers._conv2d

    def spy(*args, **kwargs):
        seen.append(_openmp.max_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(layers, "_conv2d", spy)
    x = da.zeros((1, 1, 8, 8), chunks=4)
    w = np.ones((1, 1, 3, 3))
    cdask.conv2d(x, w).compute(scheduler="threads")
    assert seen[1:] and set(seen[1:]) == {1}  # seen[0] is the validating call
    seen.clear()
    cdask.conv2d(x, w, threads=2).compute(scheduler="threads")
    assert set(seen[1:]) == {2}
    seen.clear()
    cdask.conv2d(x, w).compute(scheduler="sync")  # one task at a time: every thread
    assert set(seen[1:]) == {_openmp.max_threads()}


def test_default_threads_on_cluster(client):
    def probe(block):
        return np.full(block.shape, layers.task_threads(None))

    got = client.compute(da.zeros(4, chunks=1).map_blocks(probe, dtype=int), sync=True)
    # Two worker threads share the cores a new thread would use.
    fresh = []
    thread = threading.Thread(target=lambda: fresh.append(_openmp.max_threads()))
    thread.start()
    thread.join()
    assert set(got) == {max(1, fresh[0] // 2)}


def test_worker_processes_pickle():
    x, (w, b) = _data(seed=4), _weights((3, 3), CONVS[1][1])
    kwargs = CONVS[1][1]
    xd = da.from_array(x, chunks=CHUNKINGS[1])
    y = cdask.conv2d(xd, w, b, **kwargs)
    grads = cdask.conv2d_backward(da.ones(y.shape, chunks=3), xd, w, **kwargs)
    pooled = cdask.max_pool2d(xd, 3, 2, 1, return_indices=True)
    # distributed's nanny leaves its pre-spawn settings (OMP_NUM_THREADS=1, ...)
    # in os.environ: put it back as it was (see test_dask.restored_environ).
    saved = dict(os.environ)
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                      dashboard_address=":0") as cluster, \
                distributed.Client(cluster, set_as_default=False) as cl:
            got = cl.compute([y, *grads, *pooled], sync=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    want = [cyconv.conv2d(x, w, b, **kwargs),
            *cyconv.conv2d_backward(np.ones(y.shape), x, w, **kwargs),
            *cyconv.max_pool2d(x, 3, 2, 1, return_indices=True)]
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, **TOL[np.float64])


LAYERS = ["conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d"]


def test_public_names():
    assert set(LAYERS) <= set(cdask.__all__)
    for name in LAYERS:
        assert getattr(cdask, name) is getattr(layers, name)
        # Same arguments as the in-memory function, plus threads.
        params = list(inspect.signature(getattr(cdask, name)).parameters)
        assert params == [*inspect.signature(getattr(cyconv, name)).parameters, "threads"]


@pytest.mark.parametrize("name", LAYERS)
def test_docstrings(name):
    import doctest
    func = getattr(cdask, name)
    sections = _sections(func.__doc__)
    assert all(any(line.strip() for line in sections.get(s, [])) for s in SECTIONS)
    sig = inspect.signature(func)
    assert _documented(sections["Parameters"]) == set(sig.parameters)
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(func, name, globs={})
    for test in tests:
        runner.run(test)
    assert sum(len(t.examples) for t in tests) > 0 and runner.failures == 0
