"""Memory: the im2col path stays under its workspace cap, and no call leaks.

NumPy reports its data allocations to tracemalloc, so the traced peak of a
call covers its output, its copies and its im2col workspace.
"""
import gc
import os
import re
import sys
import tracemalloc

import numpy as np
import pytest

import cyconv
import cyconv._conv
import cyconv._shifted_gemm
import cyconv._validate
from cyconv._validate import WORKSPACE_BYTES

# Small NumPy temporaries (reduction buffers, the bias, index arrays) beside
# the workspace and the outputs.
MARGIN = 2**20


def _traced_peak(func, *args, **kwargs):
    """(result, peak bytes traced during the call above what was traced before it)."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = func(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak - start


def _big_batch():
    """A batch whose unrolled images (29.5 MB each, 236 MB in all) exceed the cap."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 160, 160))
    w = rng.standard_normal((8, 16, 3, 3))
    unrolled = 16 * 9 * 160 * 160 * 8  # one image, padding 1: Q x P doubles
    assert unrolled > WORKSPACE_BYTES and x.shape[0] * unrolled > 10 * WORKSPACE_BYTES
    return x, w


def test_im2col_forward_workspace_is_bounded():
    x, w = _big_batch()
    out, peak = _traced_peak(cyconv.conv2d, x, w, padding=1, method="im2col")
    assert out.shape == (8, 8, 160, 160)
    # Spot-check the result: one output pixel by its definition.
    assert np.isclose(out[3, 5, 7, 9], np.sum(w[5] * x[3, :, 6:9, 8:11]))
    assert peak - out.nbytes <= WORKSPACE_BYTES + MARGIN, (peak, out.nbytes)


def test_im2col_backward_workspace_is_bounded():
    x, w = _big_batch()
    gy = np.random.default_rng(1).standard_normal((8, 8, 160, 160))
    grads, peak = _traced_peak(cyconv.conv2d_backward, gy, x, w, padding=1, method="im2col")
    outputs = sum(g.nbytes for g in grads)
    # grad_weight[k, c, 1, 1] is the unshifted correlation of dY with the input.
    assert np.isclose(grads[1][5, 7, 1, 1], np.sum(gy[:, 5] * x[:, 7]))
    assert peak - outputs <= WORKSPACE_BYTES + MARGIN, (peak, outputs)


def test_auto_stride_1_buffers_are_bounded():
    # At stride 1 'auto' runs the per-tap GEMMs: their padded images and
    # output block stay under their limits forward; backward, the input
    # gradient's buffers and the weight gradient's im2col workspace are not
    # held at the same time.
    x, w = _big_batch()
    geom = cyconv._conv.geometry("test", x.shape, w.shape, 1, 1, 1, 1)
    assert cyconv._conv.choose_method(geom, x.dtype) == "shifted"
    shifted = cyconv._shifted_gemm.SHIFTED_IMAGES_BYTES + cyconv._shifted_gemm.SHIFTED_BLOCK_BYTES
    out, peak = _traced_peak(cyconv.conv2d, x, w, padding=1)
    assert np.isclose(out[3, 5, 7, 9], np.sum(w[5] * x[3, :, 6:9, 8:11]))
    assert peak - out.nbytes <= shifted + MARGIN, (peak, out.nbytes)
    gy = np.random.default_rng(1).standard_normal((8, 8, 160, 160))
    grads, peak = _traced_peak(cyconv.conv2d_backward, gy, x, w, padding=1)
    assert np.isclose(grads[1][5, 7, 1, 1], np.sum(gy[:, 5] * x[:, 7]))
    assert np.isclose(grads[0][2, 3, 50, 60], np.sum(gy[2, :, 49:52, 59:62] * w[:, 3, ::-1, ::-1]))
    outputs = sum(g.nbytes for g in grads)
    assert peak - outputs <= max(WORKSPACE_BYTES, shifted) + MARGIN, (peak, outputs)


# ---------------------------------------------------------------- leaks

def _rss():
    """Resident set size in bytes, from /proc/self/statm (None where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _calls():
    """(label, arrays passed, call) for every public function; some calls raise."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 9, 9))
    x32 = x.astype(np.float32)[:, :, ::-1]  # float32, negative strides: a converted copy
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    gy = rng.standard_normal((2, 6, 9, 9))
    cols = rng.standard_normal((2, 36, 45))
    image, kernel = rng.integers(-5, 5, (6, 7)), rng.standard_normal((3, 4))
    pooled, indices = cyconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    bad = np.array([[1, None]], dtype=object)
    operator = cyconv.conv_operator(w, x.shape, padding=1, groups=2)
    flat_x, flat_y = x.ravel(), gy.ravel()

    def raises(func, *args, **kwargs):
        try:
            func(*args, **kwargs)
        except (TypeError, ValueError):
            return
        raise AssertionError(f"{func.__name__} did not raise")

    return [
        ("conv2d direct", (x, w, b), lambda: cyconv.conv2d(
            x, w, b, padding=1, groups=2, method="direct")),
        ("conv2d im2col", (x32, w), lambda: cyconv.conv2d(
            x32, w, padding="same", groups=2, padding_mode="reflect", method="im2col")),
        ("conv2d error", (x, w), lambda: raises(cyconv.conv2d, x, w, groups=3)),
        ("conv2d late error", (x, w), lambda: raises(
            cyconv.conv2d, x, w, padding=9, groups=2, padding_mode="reflect")),
        ("output_shape", (), lambda: cyconv.output_shape(x.shape, w.shape, groups=2)),
        ("conv2d_backward direct", (gy, x, w), lambda: cyconv.conv2d_backward(
            gy, x, w, padding=1, groups=2, method="direct")),
        ("conv2d_backward im2col", (gy, x32, w), lambda: cyconv.conv2d_backward(
            gy[:1], x32[:1], w, padding=1, groups=2, padding_mode="circular", method="im2col")),
        ("conv2d_backward error", (gy, x, w), lambda: raises(
            cyconv.conv2d_backward, gy, x, w, groups=2)),
        ("conv_transpose2d", (gy, w), lambda: cyconv.conv_transpose2d(
            gy, w, padding=1, groups=2)),
        ("conv_transpose2d error", (gy, w), lambda: raises(
            cyconv.conv_transpose2d, gy, w, stride=2, output_padding=2)),
        ("conv_transpose2d_backward", (x, gy, w), lambda: cyconv.conv_transpose2d_backward(
            x, gy, w, padding=1, groups=2)),
        ("conv_transpose2d_backward error", (x, gy, w), lambda: raises(
            cyconv.conv_transpose2d_backward, x, gy, w, groups=2, padding=2)),
        ("im2col", (x32,), lambda: cyconv.im2col(x32, 3, stride=2, padding=1)),
        ("im2col error", (x,), lambda: raises(cyconv.im2col, x, 3, stride=0)),
        ("col2im", (cols,), lambda: cyconv.col2im(cols, (9, 9), 3, padding=1, stride=(1, 2),
                                                   dilation=(1, 1))),
        ("col2im error", (cols,), lambda: raises(cyconv.col2im, cols, (8, 9), 3)),
        ("max_pool2d", (x32,), lambda: cyconv.max_pool2d(x32, 3, stride=2, padding=1,
                                                         return_indices=True)),
        ("max_pool2d error", (bad,), lambda: raises(cyconv.max_pool2d, bad, 1)),
        ("max_pool2d_backward", (pooled, indices), lambda: cyconv.max_pool2d_backward(
            pooled, indices, x.shape)),
        ("max_pool2d_backward error", (pooled, indices), lambda: raises(
            cyconv.max_pool2d_backward, pooled, indices + 81, x.shape)),
        ("avg_pool2d", (x,), lambda: cyconv.avg_pool2d(x, 3, stride=2, padding=1,
                                                       count_include_pad=False)),
        ("avg_pool2d_backward", (pooled,), lambda: cyconv.avg_pool2d_backward(
            pooled, x.shape, 3, stride=2, padding=1)),
        ("avg_pool2d_backward error", (pooled,), lambda: raises(
            cyconv.avg_pool2d_backward, pooled, x.shape, 3)),
        ("correlate2d", (image, kernel), lambda: cyconv.correlate2d(
            image, kernel, boundary="symm")),
        ("convolve2d", (image, kernel), lambda: cyconv.convolve2d(
            image, kernel, mode="same", method="im2col")),
        ("convolve2d error", (image, bad), lambda: raises(cyconv.convolve2d, image, bad)),
        ("conv_operator", (w,), lambda: cyconv.conv_operator(w, x.shape, groups=2)),
        ("conv_operator matvec", (flat_x,), lambda: operator @ flat_x),
        ("conv_operator rmatvec", (flat_y,), lambda: operator.T @ flat_y),
        ("conv_operator error", (w,), lambda: raises(cyconv.conv_operator, w, (5, 5))),
        ("conv_matrix", (w,), lambda: cyconv.conv_matrix(w, (1, 4, 3, 3), padding=1, groups=2,
                                                          padding_mode="replicate")),
    ]


CALLS_EACH = 1000


def test_max_pool_without_indices_allocates_only_its_output():
    """No (N, C, Ho, Wo) int64 index array unless return_indices=True."""
    x = np.random.default_rng(2).standard_normal((4, 8, 128, 128))  # 4 MiB
    out, peak = _traced_peak(cyconv.max_pool2d, x, 3, 1, 1)
    assert out.nbytes == x.nbytes
    np.testing.assert_array_equal(out[1, 2, 5, 7], x[1, 2, 4:7, 6:9].max())
    assert peak <= out.nbytes + 2**16, (peak, out.nbytes)
    (out2, idx), peak_idx = _traced_peak(cyconv.max_pool2d, x, 3, 1, 1,
                                         return_indices=True)
    np.testing.assert_array_equal(out2, out)
    assert peak_idx >= out.nbytes + idx.nbytes


def test_call_whose_arrays_together_exceed_memory_is_refused(monkeypatch):
    """Each array fits, their total does not: MemoryError naming the sizes,
    before anything is allocated."""
    x = np.ones((64, 64))  # 32 KiB; a kernel-1 pooling's output is as large
    monkeypatch.setattr(cyconv._validate, "MEMORY_BYTES", x.nbytes + x.nbytes // 2)
    for call in (lambda: cyconv.max_pool2d(x, 1), lambda: cyconv.avg_pool2d(x, 1)):
        with pytest.raises(MemoryError, match=r"together .*input \(64, 64\): 32768 bytes"):
            _traced_peak(call)
        tracemalloc.start()
        try:
            with pytest.raises(MemoryError):
                call()
            assert tracemalloc.get_traced_memory()[1] < x.nbytes // 2
        finally:
            tracemalloc.stop()


def test_conv_calls_weigh_their_arrays_together(monkeypatch):
    """conv2d (input + output) and conv2d_backward (grad_output, input, both
    gradients): each array fits, their total does not -> MemoryError, raised
    before anything large is allocated."""
    x = np.ones((64, 64))  # 32 KiB; a 1x1 kernel's output is as large
    w = np.ones((1, 1))
    calls = (lambda: cyconv.conv2d(x, w), lambda: cyconv.conv2d_backward(x, x, w))
    for call in calls:  # first calls fill caches and import lazily: not this test's concern
        call()
    monkeypatch.setattr(cyconv._validate, "MEMORY_BYTES", x.nbytes + x.nbytes // 2)
    for call in calls:
        tracemalloc.start()
        try:
            with pytest.raises(MemoryError) as error:
                call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < x.nbytes // 2
        assert re.search(r"together .*\(1, 1, 64, 64\): 32768 bytes", str(error.value))
    monkeypatch.setattr(cyconv._validate, "MEMORY_BYTES", 8 * x.nbytes)
    np.testing.assert_array_equal(calls[0](), x)  # enough memory: computes
    # max_pool2d's input, output and int64 indices: 3 x 32 KiB.
    monkeypatch.setattr(cyconv._validate, "MEMORY_BYTES", 5 * x.nbytes // 2)
    cyconv.max_pool2d(x, 1)
    with pytest.raises(MemoryError, match=r"together .*indices \(64, 64\)"):
        cyconv.max_pool2d(x, 1, return_indices=True)


def test_no_leaks():
    calls = _calls()
    assert {label.split()[0] for label, _, _ in calls} == set(cyconv.__all__)
    for _, _, call in calls:  # warm up: lazy imports, caches, free lists
        for _ in range(100):
            call()
    gc.collect()
    arrays = [array for _, args, _ in calls for array in args]
    refcounts = [sys.getrefcount(array) for array in arrays]
    rss_before = _rss()
    tracemalloc.start()
    growth = {}
    try:
        for label, _, call in calls:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(CALLS_EACH):
                call()
            gc.collect()
            growth[label] = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    rss_after = _rss()
    # Every Python object is at least 16 bytes: a leak of one per call would grow
    # the traced memory by 16 * CALLS_EACH bytes or more (the noise is ~2 KB).
    leaking = {label: size for label, size in growth.items() if size > 8 * CALLS_EACH}
    assert not leaking, f"traced memory grew over {CALLS_EACH} calls each: {leaking}"
    assert [sys.getrefcount(array) for array in arrays] == refcounts
    # ASan's quarantine holds on to freed memory, which RSS then counts.
    if rss_before is not None and "asan" not in os.environ.get("LD_PRELOAD", ""):
        # Untraced (C-level) leaks: 2 MB is a leak of about 2 KB per call of any
        # one function, or 100 bytes per call of all of them (the noise is ~0.2 MB).
        assert rss_after - rss_before < 2 * 2**20, (rss_before, rss_after)
