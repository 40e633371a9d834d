"""Threads: concurrent calls on shared inputs match serial ones, and kernels release the GIL."""
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse

import cyconv

N_THREADS = 8


def _readonly(*arrays):
    """The arrays, made read-only: threads share them and must not write to them."""
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _jobs():
    """Calls of every public function on shared read-only inputs, a few ms each."""
    rng = np.random.default_rng(3)
    x, x32 = _readonly(rng.standard_normal((4, 8, 40, 40)),
                       rng.standard_normal((4, 8, 40, 40)).astype(np.float32))
    w, gy = _readonly(rng.standard_normal((16, 4, 3, 3)), rng.standard_normal((4, 16, 38, 38)))
    cols, image, kernel = _readonly(rng.standard_normal((4, 72, 1600)),
                                    rng.integers(-9, 9, (120, 120)),
                                    rng.standard_normal((7, 5)))
    pooled, indices = _readonly(*cyconv.max_pool2d(x, 3, stride=2, padding=1,
                                                   return_indices=True))
    operator = cyconv.conv_operator(w, x.shape, groups=2, padding=1)
    flat_x, flat_y = _readonly(x.ravel(), rng.standard_normal(operator.shape[0]))
    return {
        "conv2d direct": lambda: cyconv.conv2d(x, w, groups=2, method="direct"),
        "conv2d im2col": lambda: cyconv.conv2d(x32, w.astype(np.float32), groups=2,
                                               padding=1, padding_mode="reflect",
                                               method="im2col"),
        "output_shape": lambda: cyconv.output_shape(x.shape, w.shape, groups=2),
        "conv2d_backward direct": lambda: cyconv.conv2d_backward(gy, x, w, groups=2,
                                                                 method="direct"),
        "conv2d_backward im2col": lambda: cyconv.conv2d_backward(gy, x, w, groups=2,
                                                                 method="im2col"),
        "conv_transpose2d": lambda: cyconv.conv_transpose2d(gy, w, groups=2),
        "conv_transpose2d_backward": lambda: cyconv.conv_transpose2d_backward(x, gy, w,
                                                                              groups=2),
        "im2col": lambda: cyconv.im2col(x32, 3, padding=1),
        "col2im": lambda: cyconv.col2im(cols, (40, 40), 3, padding=1),
        "max_pool2d": lambda: cyconv.max_pool2d(x, 3, stride=2, padding=1,
                                                return_indices=True),
        "max_pool2d_backward": lambda: cyconv.max_pool2d_backward(pooled, indices, x.shape),
        "avg_pool2d": lambda: cyconv.avg_pool2d(x32, 3, stride=1, padding=1),
        "avg_pool2d_backward": lambda: cyconv.avg_pool2d_backward(pooled, x.shape, 3,
                                                                  stride=2, padding=1),
        "correlate2d": lambda: cyconv.correlate2d(image, kernel, boundary="wrap"),
        "convolve2d": lambda: cyconv.convolve2d(image.astype(float), kernel, mode="same",
                                                method="im2col"),
        "conv_operator matvec": lambda: operator @ flat_x,
        "conv_operator rmatvec": lambda: operator.T @ flat_y,
        "conv_matrix": lambda: cyconv.conv_matrix(w, (1, 8, 20, 20), groups=2,
                                                  padding_mode="circular", padding=1),
    }


def _same(a, b):
    """Bitwise the same result: arrays (dtype, shape, values) or tuples of them."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if scipy.sparse.issparse(a):
        return a.dtype == b.dtype and a.shape == b.shape and (a != b).nnz == 0
    return a == b


def test_threads_match_serial():
    jobs = _jobs()
    assert {label.split()[0] for label in jobs} == set(cyconv.__all__)
    serial = {label: job() for label, job in jobs.items()}
    # Every job 8 times, interleaved, so that different kernels overlap too.
    labels = [label for _ in range(N_THREADS) for label in jobs]
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(lambda label: jobs[label](), labels))
    wrong = sorted({label for label, result in zip(labels, results)
                    if not _same(result, serial[label])})
    assert not wrong, f"threaded results differ from serial ones: {wrong}"


# ---------------------------------------------------------------- the GIL

class _Counter(threading.Thread):
    """Counts in pure Python, which needs the GIL, and sleeps a little between batches.

    While the main thread holds the GIL, the counter cannot advance: with a
    huge switch interval the interpreter never takes the GIL from a thread
    that does not release it. So any advance seen across a kernel call
    happened while the kernel had released the GIL.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.count = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for _ in range(1000):
                self.count += 1
            time.sleep(0.0005)  # really release the GIL, so the main thread can go on


# Compiled functions that only size a buffer (a few integer operations, less
# than releasing the GIL costs): not kernels, so not spied on.
SIZE_QUERIES = {"gather_workspace", "phase_scratch"}


class _Spy:
    """Stands in for a compiled module; logs the counter's advance across each kernel call."""

    def __init__(self, module, counter, log):
        self._module, self._counter, self._log = module, counter, log

    def __getattr__(self, name):
        kernel = getattr(self._module, name)
        if name in SIZE_QUERIES:
            return kernel

        def spy(*args, **kwargs):
            before = self._counter.count
            result = kernel(*args, **kwargs)
            self._log.append((f"{self._module.__name__}.{name}", self._counter.count - before))
            return result

        return spy


def _spy_on_kernels(monkeypatch, counter, log):
    """Route every use of a compiled cyconv module through a _Spy."""
    # cyconv._small is no kernel: it takes only calls of under _fft.DIRECT_WORK
    # multiply-adds (well under a microsecond, less than releasing the GIL costs)
    # and returns None at once for every other call, such as these long jobs.
    compiled = {name: module for name, module in sys.modules.items()
                if name.startswith("cyconv.") and not module.__file__.endswith(".py")
                and name != "cyconv._small"}
    for name, module in list(sys.modules.items()):
        if name.startswith("cyconv.") and module.__file__.endswith(".py"):
            for attr, value in vars(module).items():
                if isinstance(value, types.ModuleType) and value in compiled.values():
                    monkeypatch.setattr(module, attr, _Spy(value, counter, log))
    # _signal keeps the direct kernel's specializations: route them through the spy too.
    signal = sys.modules["cyconv._signal"]
    monkeypatch.setattr(signal, "_DIRECT_PLANE", dict.fromkeys(
        signal._DIRECT_PLANE, signal._direct.conv2d_forward))


def _long_jobs():
    """One call per kernel family that keeps its kernel busy for tens of milliseconds."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 16, 64, 64))
    w = rng.standard_normal((16, 16, 5, 5))
    gy = rng.standard_normal((4, 16, 60, 60))
    planes = rng.standard_normal((16, 16, 128, 128)).astype(np.float32)
    pooled, indices = cyconv.max_pool2d(planes, 2, return_indices=True)
    image, kernel = rng.standard_normal((768, 768)), rng.standard_normal((9, 9))
    cols = np.ones((1, 8 * 81, 120 * 120), np.float32)
    return {
        "conv2d direct": lambda: cyconv.conv2d(x, w, method="direct"),
        "conv2d im2col": lambda: cyconv.conv2d(x, w, method="im2col"),
        "conv2d_backward direct": lambda: cyconv.conv2d_backward(gy, x, w, method="direct",
                                                                 output_mask=(True, True, False)),
        "conv2d_backward im2col": lambda: cyconv.conv2d_backward(gy, x, w, method="im2col",
                                                                 output_mask=(True, True, False)),
        "im2col": lambda: cyconv.im2col(planes[:4], 5),
        "col2im": lambda: cyconv.col2im(cols, (128, 128), 9),
        "max_pool2d": lambda: cyconv.max_pool2d(planes, 3, stride=1, padding=1),
        "max_pool2d_backward": lambda: cyconv.max_pool2d_backward(pooled, indices,
                                                                  planes.shape),
        "avg_pool2d": lambda: cyconv.avg_pool2d(planes, 5, stride=1, padding=2),
        "avg_pool2d_backward": lambda: cyconv.avg_pool2d_backward(pooled, planes.shape, 2),
        "correlate2d": lambda: cyconv.correlate2d(image, kernel, mode="valid"),
        "convolve2d": lambda: cyconv.convolve2d(image, kernel, mode="valid", method="im2col"),
    }


@pytest.mark.skipif(not getattr(sys, "_is_gil_enabled", lambda: True)(),
                    reason="no GIL to release")
def test_kernels_release_the_gil(monkeypatch):
    jobs = _long_jobs()
    counter, log = _Counter(), []
    _spy_on_kernels(monkeypatch, counter, log)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)  # no forced switches: the GIL moves only when released
    counter.start()
    try:
        # Control: pure Python holds the GIL throughout, so the counter must stand still.
        before = counter.count
        sum(i * i for i in range(300_000))
        held = counter.count - before
        holding = {}
        for label, job in jobs.items():
            # A kernel that holds the GIL never lets the counter advance; one that
            # releases it lets it advance unless the OS starves the counter thread
            # for the whole call, hence a few tries.
            for _ in range(5):
                log.clear()
                job()
                holding[label] = [name for name, advance in log if advance == 0]
                if log and not holding[label]:
                    break
            assert log, f"{label} called no compiled kernel"
    finally:
        counter.stop.set()
        sys.setswitchinterval(interval)
        counter.join()
    assert held == 0
    holding = {label: names for label, names in holding.items() if names}
    assert not holding, f"kernels that kept the GIL: {holding}"
