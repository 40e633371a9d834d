"""cyconv._scratch: buffers reused across calls (Winograd's transformed kernels and blocks)."""
import threading

import numpy as np
import pytest

import cyconv
from cyconv import _scratch
from _reference import conv2d_api_ref

# (input shape, kernels, groups, dtype): F(4x4) and F(2x2) tiles, U from 3 KB to 2.4 MB.
CASES = [
    ((2, 16, 12, 12), 16, 1, np.float32),
    ((3, 64, 9, 14), 32, 1, np.float64),
    ((1, 32, 5, 6), 32, 2, np.float32),
    ((2, 128, 17, 16), 128, 1, np.float32),
    ((4, 16, 7, 7), 48, 1, np.float64),
]


def _arrays(case, seed):
    shape, k, groups, dtype = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((k, shape[1] // groups, 3, 3)).astype(dtype)
    return x, w, groups


def _winograd(case, seed):
    x, w, groups = _arrays(case, seed)
    return cyconv.conv2d(x, w, padding=1, groups=groups, method="winograd")


@pytest.fixture
def empty_cache(monkeypatch):
    monkeypatch.setattr(_scratch, "_free", [])


def test_scratch_gives_aligned_arrays_and_reuses_buffers(empty_cache):
    with _scratch.scratch((3, 5), np.float64) as a:
        assert a.shape == (3, 5) and a.dtype == np.float64 and a.flags.c_contiguous
        assert a.ctypes.data % _scratch.ALIGN == 0
        a[...] = 1
        with _scratch.scratch((3, 5), np.float64) as b:  # held at once: its own buffer
            assert not np.shares_memory(a, b)
    assert len(_scratch._free) == 2
    with _scratch.scratch((2, 2), np.float32) as c:  # a cached one fits
        assert len(_scratch._free) == 1
        assert c.ctypes.data % _scratch.ALIGN == 0


def test_shared_arrays_alternate_between_two_buffers(empty_cache, monkeypatch):
    # A shared array (written on one core, read on all) never gets the buffer
    # of the last shared one, whose lines other cores may still hold; other
    # arrays may.
    monkeypatch.setattr(_scratch, "_last_shared", None)
    starts = []
    for _ in range(4):
        with _scratch.scratch((64, 64), np.float32, shared=True) as u:
            starts.append(u.ctypes.data)
    assert starts[0] != starts[1] and starts[:2] == starts[2:]
    assert len(_scratch._free) == 2
    with _scratch.scratch((64, 64), np.float32) as v:  # either, with no new buffer
        assert v.ctypes.data in starts[:2] and len(_scratch._free) == 1


def test_scratch_cache_is_bounded(empty_cache, monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_CACHED_BYTES", 10_000)
    held = [_scratch.scratch((1000,), np.float64) for _ in range(3)]  # 8 KB each
    for ctx in held:
        ctx.__enter__()
    for ctx in held:
        ctx.__exit__(None, None, None)
    assert len(_scratch._free) == 1
    assert sum(b.nbytes for b in _scratch._free) <= 10_000


def test_reused_buffers_give_the_fresh_results(empty_cache):
    # Each case computed with an empty cache, then all of them in turn (large,
    # small, the other dtype) with the buffers of the others: bit for bit the same.
    fresh = []
    for i, case in enumerate(CASES):
        _scratch._free.clear()
        fresh.append(_winograd(case, i))
        x, w, groups = _arrays(case, i)
        want = conv2d_api_ref(x.astype(np.float64), w.astype(np.float64), None, padding=1,
                              groups=groups)
        eps = np.finfo(x.dtype).eps
        np.testing.assert_allclose(fresh[-1], want, rtol=0,
                                   atol=1e3 * eps * np.abs(want).max())
    for _ in range(2):
        for i, case in reversed(list(enumerate(CASES))):
            np.testing.assert_array_equal(_winograd(case, i), fresh[i])


def test_concurrent_calls_from_python_threads(empty_cache):
    want = [_winograd(case, i) for i, case in enumerate(CASES)]
    errors = []
    start = threading.Barrier(4)

    def work(offset):
        start.wait()
        for r in range(6):
            i = (offset + r) % len(CASES)
            got = _winograd(CASES[i], i)
            if not np.array_equal(got, want[i]):
                errors.append((offset, r, i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_scratch._free) <= _scratch.MAX_CACHED
