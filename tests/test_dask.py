"""cyconv.dask against the in-memory functions and scipy.signal, over chunkings."""
import os

import numpy as np
import pytest
import scipy.signal

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import cyconv  # noqa: E402
import cyconv.dask as cdask  # noqa: E402

CHUNKINGS = [(4, 5), ((3, 1, 5, 4), (2, 9, 2)), (13, 13), (1, 2)]
KERNELS = [(3, 3), (2, 5), (4, 1), (6, 6)]



@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("kshape", KERNELS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_float_matches_in_memory(name, boundary, mode, kshape, chunks):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 13))
    k = rng.standard_normal(kshape)
    want = getattr(scipy.signal, name)(x, k, mode, boundary, 1.5)
    got = getattr(cdask, name)(da.from_array(x, chunks=chunks), k, mode, boundary, 1.5)
    res = got.compute(scheduler="threads")
    assert res.shape == want.shape
    np.testing.assert_allclose(res, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kshape", [(9, 3), (2, 8), (7, 7), (13, 17)])
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_kernel_larger_than_array(name, boundary, mode, kshape):
    """A halo wider than the whole axis (one chunk along it), and pads wider than the
    axis, which np.pad and scipy repeat and da.pad alone does not."""
    x = np.random.default_rng(3).standard_normal((5, 6))
    k = np.random.default_rng(4).standard_normal(kshape)
    got = getattr(cdask, name)(da.from_array(x, chunks=2), k, mode, boundary, 2.5)
    np.testing.assert_allclose(got.compute(scheduler="sync"),
                               getattr(scipy.signal, name)(x, k, mode, boundary, 2.5), atol=1e-12)


@pytest.mark.parametrize("chunks", [(6, 7), ((5, 8, 7), (9, 3, 6)), (3, 4)])
@pytest.mark.parametrize("kshape", [(3, 3), (4, 7), (1, 5)])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_halo_is_the_narrow_one(monkeypatch, name, mode, kshape, chunks):
    """Each block reaches the kernel only the rows and columns its output needs:
    a (r, c) output chunk is filtered from a (r + kh - 1, c + kw - 1) block, and
    'same' keeps the input's chunks."""
    seen = []
    inner = getattr(cdask, "_" + name)

    def spy(block, kernel, mode="full", *args):
        if mode == "valid":
            seen.append(block.shape)
        return inner(block, kernel, mode, *args)
    monkeypatch.setattr(cdask, "_" + name, spy)
    x = np.random.default_rng(5).standard_normal((20, 18))
    k = np.random.default_rng(6).standard_normal(kshape)
    dx = da.from_array(x, chunks=chunks)
    y = getattr(cdask, name)(dx, k, mode)
    np.testing.assert_allclose(y.compute(scheduler="sync"),
                               getattr(scipy.signal, name)(x, k, mode), atol=1e-12)
    kh, kw = kshape
    want = sorted((r + kh - 1, c + kw - 1) for r in y.chunks[0] for c in y.chunks[1])
    assert sorted(seen) == want
    if mode == "same" and min(map(min, dx.chunks)) >= max(kshape):
        assert y.chunks == dx.chunks


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.float32])
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_dtypes_on_cluster(client, name, dtype, chunks):
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, (13, 13)).astype(dtype)
    k = rng.integers(-5, 5, (3, 4)).astype(dtype)
    want = getattr(cyconv, name)(x, k, "same", "symm")
    got = getattr(cdask, name)(da.from_array(x, chunks=chunks), k, "same", "symm")
    res = client.compute(got).result()
    assert res.dtype == want.dtype
    np.testing.assert_array_equal(res, want)  # small integers: exact in float32 too


@pytest.fixture
def restored_environ():
    """distributed's nanny writes its pre-spawn settings (OMP_NUM_THREADS=1,
    MALLOC_TRIM_THRESHOLD_, ...) into os.environ and leaves them there, so every
    later subprocess of the test run would inherit them: put it back as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_worker_processes_pickle(restored_environ):
    x = np.random.default_rng(2).standard_normal((20, 17))
    k = np.ones((5, 3))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as cl:
        got = cl.compute(cdask.correlate2d(da.from_array(x, chunks=6), k, "same")).result()
    np.testing.assert_allclose(got, scipy.signal.correlate2d(x, k, "same"), atol=1e-12)


def test_errors():
    x = da.zeros((5, 5), chunks=2)
    with pytest.raises(TypeError, match="in1"):
        cdask.correlate2d(np.zeros((5, 5)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="mode"):
        cdask.correlate2d(x, np.ones((2, 2)), mode="nope")
    with pytest.raises(ValueError, match="boundary"):
        cdask.correlate2d(x, np.ones((2, 2)), boundary="nope")
    with pytest.raises(ValueError, match="2-D"):
        cdask.correlate2d(x, np.ones(2))


def test_docstring_examples():
    import doctest
    result = doctest.testmod(cdask, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_import_cyconv_does_not_import_dask():
    import subprocess
    import sys
    code = "import sys, cyconv; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_dropin_threads_in_tasks(monkeypatch, name):
    """The drop-ins' tasks run the kernels on the per-task count, as the layers' do."""
    from cyconv import _openmp
    import cyconv.dask as module
    if not _openmp.openmp_enabled() or _openmp.max_threads() < 2:
        pytest.skip("needs OpenMP and 2 threads")
    seen = []
    real = getattr(module, "_" + name)

    def spy(*args, **kwargs):
        seen.append(_openmp.max_threads())
        return real(*args, **kwargs)

    x = np.arange(64.0).reshape(8, 8)
    k = np.ones((3, 3))
    want = getattr(cyconv, name)(x, k, mode="same")
    xd = da.from_array(x, chunks=4)
    monkeypatch.setattr(module, "_" + name, spy)
    for threads, scheduler, expected in ((None, "threads", {1}), (2, "threads", {2}),
                                         (None, "sync", {_openmp.max_threads()})):
        lazy = getattr(cdask, name)(xd, k, mode="same", threads=threads)
        seen.clear()  # the validating call ran on this thread, outside any task
        np.testing.assert_allclose(lazy.compute(scheduler=scheduler), want)
        assert len(seen) == 4 and set(seen) == expected, (threads, scheduler, seen)
    with pytest.raises(ValueError, match="threads"):
        getattr(cdask, name)(xd, k, threads=0)


@pytest.mark.parametrize("pad_mode", ["constant", "wrap", "symmetric"])
def test_runs_gather_np_pad(pad_mode):
    """The copies planned for a block (`_runs`) rebuild np.pad's padded axis from the
    chunks, for pads wider than the axis and chunks narrower than the pads."""
    rng = np.random.default_rng(7)
    for n, chunks, pads in [(7, (2, 1, 4), (3, 5)), (5, (1,) * 5, (12, 9)), (9, (9,), (0, 4)),
                            (6, (4, 2), (6, 0)), (1, (1,), (3, 3))]:
        x = rng.integers(1, 100, n)
        bounds = np.concatenate(([0], np.cumsum(chunks)))
        blocks = [x[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
        want = np.pad(x, pads, mode=pad_mode)
        source = cdask._source_index(n, pads, pad_mode)
        for lo, hi in [(0, len(want)), (1, len(want) - 2), (pads[0], pads[0] + 1)]:
            got = np.zeros(hi - lo, x.dtype)  # constant mode's fill: 0, as np.pad's
            for chunk, src, dst in cdask._runs(source[lo:hi], bounds):
                got[dst] = blocks[chunk][src]
            np.testing.assert_array_equal(got, want[lo:hi], err_msg=str((n, chunks, pads)))


@pytest.mark.parametrize("chunks", [(1, 1), (2, 3), ((1, 4, 2, 2), (3, 1, 1, 3, 1))])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_integers_exact_chunks_below_halo(name, boundary, mode, chunks):
    """Integer inputs exactly as the in-memory function, fill value included, where every
    block gathers its halo from several chunks (chunks smaller than the kernel)."""
    rng = np.random.default_rng(8)
    x = rng.integers(-9, 9, (9, 9)).astype(np.int32)
    k = rng.integers(-3, 3, (5, 4)).astype(np.int32)
    want = getattr(cyconv, name)(x, k, mode, boundary, 7)
    got = getattr(cdask, name)(da.from_array(x, chunks=chunks), k, mode, boundary, 7)
    res = got.compute(scheduler="threads")
    assert res.dtype == want.dtype
    np.testing.assert_array_equal(res, want)


def test_output_chunks_documented():
    """Output chunks: the input's, the last grown by the mode's padding beyond k - 1
    ('full' k - 1, 'same' 0, 'valid' -(k - 1), merged with the ones before while empty)."""
    x = da.zeros((10, 11), chunks=((4, 4, 2), (1, 5, 5)))
    k = np.ones((3, 4))
    assert cdask.correlate2d(x, k, "same").chunks == x.chunks
    assert cdask.correlate2d(x, k, "full").chunks == ((4, 4, 4), (1, 5, 8))
    assert cdask.correlate2d(x, k, "valid").chunks == ((4, 4), (1, 5, 2))
    assert cdask.correlate2d(x, np.ones((3, 9)), "valid").chunks == ((4, 4), (1, 2))


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_one_task_per_output_chunk(boundary):
    """The graph adds one task per output chunk to the input's (no pad, rechunk or
    overlap layers)."""
    x = da.from_array(np.arange(400.0).reshape(20, 20), chunks=((5, 5, 10), (2, 8, 10)))
    y = cdask.correlate2d(x, np.ones((3, 5)), "same", boundary)
    graph = dict(y.__dask_graph__())
    assert len(graph) == len(dict(x.__dask_graph__())) + y.npartitions
    np.testing.assert_allclose(y.compute(scheduler="sync"),
                               scipy.signal.correlate2d(x.compute(), np.ones((3, 5)), "same",
                                                        boundary))


@pytest.mark.parametrize("xdtype, kdtype, fillvalue", [
    (np.int16, np.float64, 2.7), (np.int16, np.float64, 1e6), (np.int16, np.int32, 70000),
    (np.uint8, np.int16, -5), (np.float32, np.float64, 0.1), (np.int32, np.float64, np.nan)])
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_fillvalue_cast_to_output_dtype(name, xdtype, kdtype, fillvalue):
    """The fill value is cast to the output dtype, as SciPy does, also where in1's
    dtype cannot hold it (a float fill around integers, a wider integer kernel)."""
    rng = np.random.default_rng(9)
    x = rng.integers(0, 50, (7, 8)).astype(xdtype)
    k = rng.integers(-3, 4, (3, 2)).astype(kdtype)
    want = getattr(scipy.signal, name)(x, k, "full", "fill", fillvalue)
    got = getattr(cdask, name)(da.from_array(x, chunks=3), k, "full", "fill", fillvalue)
    res = got.compute(scheduler="threads")
    assert res.dtype == want.dtype
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(res, want)
    else:
        np.testing.assert_allclose(res, want, rtol=1e-12, atol=1e-9)
