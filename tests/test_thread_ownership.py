"""One owner of the cores (cyconv._threads): the GEMM paths' threads, the cap, fork.

During a GEMM-path call the kernels' OpenMP threads do all the work, each
calling BLAS on one thread; the count is OpenMP's, capped at the usable CPUs;
a forked child runs on one thread. These tests run the real thing, mostly in
subprocesses (a fresh runtime, an environment of their own).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cyconv
from cyconv import _im2col, _openmp, _shifted, _threads

CPUS = _threads.usable_cpus()
needs_openmp = pytest.mark.skipif(not _openmp.openmp_enabled(), reason="built without OpenMP")
needs_blas_control = pytest.mark.skipif(
    _threads.blas_threads.get() is None, reason="no thread control found for SciPy's BLAS")

# The GEMM-path layers the tests run: stride 1 (shifted GEMMs), stride 2 and a
# 1x1 kernel (im2col), forward and backward.
LAYERS = """
import numpy as np
import cyconv
rng = np.random.default_rng(7)
x = rng.standard_normal((3, 6, 21, 19))
layers = [((8, 6, 3, 3), dict(padding=1)), ((8, 6, 3, 3), dict(stride=2)),
          ((12, 6, 1, 1), {}), ((8, 3, 3, 3), dict(groups=2, dilation=2))]
results = []
for shape, kwargs in layers:
    w = rng.standard_normal(shape)
    y = cyconv.conv2d(x, w, **kwargs)
    results += [y, *cyconv.conv2d_backward(y, x, w, **kwargs)[:2]]
    results.append(cyconv.conv2d(x.astype(np.float32), w.astype(np.float32), **kwargs,
                                 method="im2col"))
"""


# GNU OpenMP loaded and used (a parallel region run) before cyconv is imported.
GOMP_FIRST = """
try:
    import ctypes
    gomp = ctypes.CDLL("libgomp.so.1")
    region = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda data: None)
    gomp.GOMP_parallel(region, None, 2, 0)
except OSError:
    pass
"""
HAVE_LIBGOMP = subprocess.run([sys.executable, "-c", "import ctypes; ctypes.CDLL('libgomp.so.1')"],
                              capture_output=True).returncode == 0


def _run(code, env=None, timeout=120):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _digest_code(prelude=""):
    """A script that runs LAYERS after ``prelude`` and prints the results' bytes as hex digests."""
    return textwrap.dedent(prelude) + LAYERS + textwrap.dedent("""
        import hashlib
        print(json.dumps([hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest()
                          for r in results]))
        """)


# ------------------------------------------------------------ no side effects


def test_importing_sets_no_environment_variable():
    code = """
        import json, os
        before = dict(os.environ)
        import numpy as np, cyconv
        cyconv.conv2d(np.ones((2, 3, 9, 9)), np.ones((8, 3, 3, 3)))
        print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))
        """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    assert json.loads(_run(code, env)) == []


@needs_openmp
def test_results_are_the_same_when_another_openmp_runtime_came_first():
    # A libgomp.so.1 loaded and used (a parallel region run) before cyconv is
    # imported: cyconv's kernels then run on that runtime, as they do after
    # `import torch`. The results must be the same, bit for bit.
    if not HAVE_LIBGOMP:
        pytest.skip("no libgomp.so.1 to load")
    first = json.loads(_run(_digest_code("import json\n" + GOMP_FIRST)))
    alone = json.loads(_run(_digest_code("import json\n")))
    assert first == alone


@needs_openmp
def test_results_are_the_same_after_import_torch():
    pytest.importorskip("torch")
    after_torch = json.loads(_run(_digest_code("import json, torch\n")))
    alone = json.loads(_run(_digest_code("import json\n")))
    assert after_torch == alone


# ------------------------------------------------- one pool during a GEMM call


def _spy_on_gemm_kernels(monkeypatch):
    """A list that gets (kernel, its thread count, BLAS's threads then, whether it runs the
    packed GEMM instead of BLAS) per GEMM-path call."""
    seen = []
    for module, names in ((_im2col, ("conv2d_forward", "conv2d_grad_input",
                                     "conv2d_grad_weight")),
                          (_shifted, ("conv2d_forward",))):
        for name in names:
            real = getattr(module, name)

            def spy(*args, real=real, name=name, **kwargs):
                seen.append((name, args[-1], _threads.blas_threads.get(),
                             kwargs.get("packed") is not None))
                return real(*args, **kwargs)

            monkeypatch.setattr(module, name, spy)
    return seen


GEMM_KERNELS = {"conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight"}


def _run_both_directions(x, w):
    """conv2d and conv2d_backward at padding 1 (shifted GEMMs) and stride 2 (im2col)."""
    for kwargs in (dict(padding=1), dict(stride=2)):
        y = cyconv.conv2d(x, w, **kwargs)
        cyconv.conv2d_backward(y, x, w, **kwargs)


@needs_blas_control
def test_gemm_kernels_run_on_the_kernel_threads_with_blas_on_one(monkeypatch):
    # Structural check: every GEMM-path kernel is called with the kernels'
    # thread count while SciPy's BLAS is set to one thread, and BLAS's own
    # setting is back afterwards.
    seen = _spy_on_gemm_kernels(monkeypatch)
    rng = np.random.default_rng(1)
    # Every call at least PARALLEL_WORK multiply-adds (stride 2: 2*8*11*11 outputs of 36).
    x = rng.standard_normal((2, 4, 24, 24))
    w = rng.standard_normal((8, 4, 3, 3))
    before = _threads.blas_threads.get()
    _run_both_directions(x, w)
    assert {name for name, _, _, _ in seen} == GEMM_KERNELS
    assert all(threads == _openmp.max_threads() for _, threads, _, _ in seen)
    # BLAS held at one thread where it runs; the packed GEMM (the gradients
    # of this small weight under 'auto') leaves it alone.
    assert all(blas == (before if packed else 1) for _, _, blas, packed in seen)
    assert {packed for _, _, _, packed in seen} == {True, False}
    assert _threads.blas_threads.get() == before


@needs_blas_control
def test_gemm_calls_below_the_parallel_work_run_on_the_calling_thread(monkeypatch):
    # A call of fewer multiply-adds than the kernels' PARALLEL_WORK gets a
    # team of one (waking the others costs more than its GEMMs), BLAS still
    # held at one thread; one of at least that many gets the kernel threads.
    seen = _spy_on_gemm_kernels(monkeypatch)
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 8, 3, 3))
    # padding 1: 8*8*8 outputs of 72 multiply-adds, 36864 in all, in each direction.
    small = rng.standard_normal((1, 8, 8, 8))
    before = _threads.blas_threads.get()
    _run_both_directions(small, w)
    assert {name for name, _, _, _ in seen} == GEMM_KERNELS
    assert all(threads == 1 and blas == (before if packed else 1)
               for _, threads, blas, packed in seen)
    assert _openmp.parallel_work() > 8 * 8 * 8 * 72
    seen.clear()
    # 4*8*16*16 outputs of 72: 589824 multiply-adds.
    cyconv.conv2d(rng.standard_normal((4, 8, 16, 16)), w, padding=1)
    assert [threads for _, threads, _, _ in seen] == [_openmp.max_threads()]


@needs_blas_control
def test_blas_setting_is_restored_when_the_last_of_concurrent_calls_ends():
    import threading

    before = _threads.blas_threads.get()
    inside, release = threading.Barrier(3), threading.Event()

    def hold():
        with _threads.blas_threads.hold_single():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert _threads.blas_threads.get() == 1
    release.set()
    for t in threads:
        t.join()
    assert _threads.blas_threads.get() == before


@needs_openmp
@needs_blas_control
@pytest.mark.skipif(CPUS < 2 or not os.path.isdir("/proc/self/task"),
                    reason="needs 2 CPUs and Linux's /proc")
def test_no_more_threads_busy_than_the_setting():
    # Behavioural check: run the GEMM paths for a while and count the threads
    # of the process that used CPU time meanwhile (from /proc). With BLAS's
    # own threads working beside the kernels' (whose idle threads spin: a
    # libgomp loaded first, as after `import torch`, has the default wait
    # policy) there would be more than OMP_NUM_THREADS busy threads; the
    # design before this one showed a third thread at 6-14% of the time.
    code = textwrap.dedent(GOMP_FIRST) + LAYERS + textwrap.dedent("""
        import json, os, time
        x = rng.standard_normal((4, 32, 40, 40)).astype(np.float32)
        ws = [rng.standard_normal(s).astype(np.float32)
              for s in ((32, 32, 3, 3), (64, 32, 3, 3), (64, 32, 1, 1))]

        def work():
            for w, kwargs in zip(ws, (dict(padding=1), dict(stride=2), {})):
                y = cyconv.conv2d(x, w, **kwargs)
                cyconv.conv2d_backward(y, x, w, **kwargs)

        def cpu_ticks():
            ticks = {}
            for tid in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
            return ticks

        work()
        before, start = cpu_ticks(), time.perf_counter()
        while time.perf_counter() - start < 1.5:
            work()
        wall = (time.perf_counter() - start) * os.sysconf("SC_CLK_TCK")
        after = cpu_ticks()
        busy = [after[t] - before.get(t, 0) for t in after]
        print(json.dumps([sorted(busy, reverse=True), wall]))
        """)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    busy, wall = json.loads(_run(code, env))
    # A thread that ran for more than 5% of the time counts as busy.
    assert sum(ticks > 0.05 * wall for ticks in busy) <= 2, (busy, wall)


def test_without_blas_control_the_calling_thread_runs_the_tasks(monkeypatch):
    # An unknown BLAS: the GEMM tasks run on one kernel thread and BLAS
    # threads each GEMM; the results are those of the normal path.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 15, 13))
    w = rng.standard_normal((8, 4, 3, 3))
    want = [cyconv.conv2d(x, w, padding=1), cyconv.conv2d(x, w, stride=2),
            *cyconv.conv2d_backward(cyconv.conv2d(x, w, stride=2), x, w, stride=2)[:2]]

    class Unknown:
        controlled = False

    monkeypatch.setattr(_threads, "blas_threads", Unknown())
    teams = []
    real = _im2col.conv2d_forward
    monkeypatch.setattr(_im2col, "conv2d_forward",
                        lambda *args, **kwargs: (teams.append(args[-1]), real(*args, **kwargs))[1])
    got = [cyconv.conv2d(x, w, padding=1), cyconv.conv2d(x, w, stride=2),
           *cyconv.conv2d_backward(cyconv.conv2d(x, w, stride=2), x, w, stride=2)[:2]]
    assert teams and set(teams) == {1}
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ the cap


@needs_openmp
@pytest.mark.parametrize("setting", ["env", "threadpoolctl"])
def test_thread_count_is_capped_at_the_usable_cpus(setting):
    # OMP_NUM_THREADS=100000 (or threadpoolctl's limit) once made 100000
    # threads or crashed the process; the count is capped at the CPUs the
    # process may use, and the results are right.
    code = """
        import json, os
        import numpy as np, scipy.signal, cyconv
        from cyconv import _openmp
        if SETTING == "threadpoolctl":
            import threadpoolctl
            threadpoolctl.threadpool_limits(100000, user_api="openmp")
        rng = np.random.default_rng(5)
        x = rng.standard_normal((2, 8, 40, 40))
        w = rng.standard_normal((8, 8, 3, 3))
        pooled = cyconv.max_pool2d(x, 2)
        want = x.reshape(2, 8, 20, 2, 20, 2).max(axis=(3, 5))
        conv = cyconv.conv2d(x[:1, :1], w[:1, :1], method="direct")[0, 0]
        gemm = cyconv.conv2d(x, w, padding=1)
        ref = scipy.signal.correlate2d(x[0, 0], w[0, 0], mode="valid")
        print(json.dumps([_openmp.max_threads(), len(os.listdir("/proc/self/task")),
                          bool(np.array_equal(pooled, want)),
                          bool(np.allclose(conv, ref)),
                          bool(np.allclose(gemm, cyconv.conv2d(x, w, padding=1,
                                                               method="direct")))]))
        """.replace("SETTING", repr(setting))
    if setting == "threadpoolctl":
        pytest.importorskip("threadpoolctl")
    env = dict(os.environ, OMP_NUM_THREADS="100000" if setting == "env" else "1")
    threads, os_threads, *correct = json.loads(_run(code, env))
    assert threads == CPUS
    assert all(correct)
    # The kernels' team, BLAS's pools (NumPy's and SciPy's) and the main thread.
    assert os_threads <= 3 * CPUS + 1


@needs_openmp
def test_info_shows_the_cap(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="100000")
    proc = subprocess.run([sys.executable, "-m", "cyconv", "info"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"kernels {CPUS} thread" in out
    assert f"capped at the {CPUS} CPUs this process may use" in out


# ------------------------------------------------------------------- fork


@needs_openmp
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_completes_after_threaded_calls_in_the_parent():
    # GNU libgomp's pool does not survive fork: a child whose parent ran a
    # parallel loop used to hang in its first one. Python < 3.14 on Linux
    # forks by default, so a plain ProcessPoolExecutor hit it.
    code = """
        import multiprocessing, json
        from concurrent.futures import ProcessPoolExecutor
        import numpy as np, cyconv
        from cyconv import _openmp
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 8, 64, 64))
        w = rng.standard_normal((8, 8, 3, 3))

        def job(_):
            y = cyconv.conv2d(x, w, padding=1)
            return [_openmp.max_threads(), float(cyconv.max_pool2d(x, 3).sum()),
                    float(y.sum()), float(cyconv.conv2d(x, w, method="direct").sum()),
                    float(cyconv.conv2d_backward(y, x, w, padding=1)[1].sum()),
                    float(cyconv.avg_pool2d(x, 3, stride=1).sum())]

        parent = job(0)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            child = pool.submit(job, 0).result(timeout=60)
        print(json.dumps([parent, child]))
        """
    parent, child = json.loads(_run(code, timeout=180))
    assert parent[0] == CPUS and child[0] == 1
    np.testing.assert_allclose(child[1:], parent[1:], rtol=1e-9)
