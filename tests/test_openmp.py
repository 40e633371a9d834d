"""The kernels' threads: OpenMP is compiled in, and the usual switches limit it."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cyconv
from cyconv import _build_info, _openmp


def test_openmp_compiled_in_when_the_build_found_it():
    assert _openmp.openmp_enabled() == _build_info.OPENMP


@pytest.mark.skipif(not _openmp.openmp_enabled(), reason="built without OpenMP")
def test_threadpoolctl_limits_the_kernel_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cyconv.conv2d(np.ones((4, 4)), np.ones((2, 2)))  # kernels loaded
    before = _openmp.max_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _openmp.max_threads() == 1
    assert _openmp.max_threads() == before


@pytest.mark.skipif(not _openmp.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("threads", ["1", "3"])
def test_omp_num_threads_sets_the_kernel_threads(threads):
    # ... up to the CPUs this process may use.
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    code = "from cyconv import _openmp; print(_openmp.max_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert int(out) == min(int(threads), len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_do_not_depend_on_the_thread_count(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 40, 37))
    w = rng.standard_normal((5, 3, 3, 3))
    serial = {}
    with threadpoolctl.threadpool_limits(limits=1):
        for method in ("direct", "im2col"):
            serial[method] = cyconv.conv2d(x, w, padding=1, method=method)
        serial["pool"] = cyconv.max_pool2d(x, 3, stride=2)
        serial["grad"] = cyconv.conv2d_backward(serial["direct"], x, w, padding=1,
                                                method="direct")
    with threadpoolctl.threadpool_limits(limits=threads):
        for method in ("direct", "im2col"):
            np.testing.assert_array_equal(
                cyconv.conv2d(x, w, padding=1, method=method), serial[method])
        np.testing.assert_array_equal(cyconv.max_pool2d(x, 3, stride=2), serial["pool"])
        grads = cyconv.conv2d_backward(serial["direct"], x, w, padding=1, method="direct")
        for got, want in zip(grads, serial["grad"]):
            np.testing.assert_array_equal(got, want)
