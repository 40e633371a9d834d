"""The command line, run as users run it: ``python -m cyconv [demo | info | bench]``."""
import importlib.metadata
import importlib.util
import io
import json
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, as info does)

from cyconv import _build_info, _cli_bench, _dispatch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args, cwd, code=None):
    """Run ``python -m cyconv ARGS`` (or ``python -c CODE``) in ``cwd``; returns the process."""
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "cyconv", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def _exercise_block(stdout):
    """The array printed under the demo's '1b.' heading, parsed back into numbers."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("1b."))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append([float(v) for v in re.findall(r"-?\d+\.?\d*", line)])
    return np.array(rows)


@pytest.mark.parametrize("args", [(), ("demo",)], ids=["default", "demo"])
def test_demo_prints_the_exercise(args, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The exercise's hand-computed I * K at stride 2.
    np.testing.assert_array_equal(_exercise_block(proc.stdout), [[1, 6], [0, 9]])


@pytest.mark.parametrize("omp_threads", [1, 2])
def test_info(omp_threads, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(omp_threads))
    proc = run_cli("info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(rf"version\s+{re.escape(importlib.metadata.version('cyconv'))}\n", out)
    assert re.search(rf"numpy\s+{re.escape(np.__version__)}\n", out)
    assert re.search(rf"scipy\s+{re.escape(scipy.__version__)}\n", out)
    # What meson recorded at build time, and the thread count OpenMP was given.
    assert re.search(rf"SIMD flags\s+{re.escape(_build_info.SIMD_FLAGS)}", out)
    assert re.search(rf"SIMD level\s+{_dispatch.LEVEL} \(", out)
    assert re.search(rf"levels built\s+{_dispatch.built()[0]}", out)
    assert re.search(rf"compiler\s+{re.escape(_build_info.C_COMPILER)}\n", out)
    if _build_info.OPENMP:
        plural = "s" if omp_threads > 1 else ""
        assert re.search(rf"kernels\s+{omp_threads} thread{plural} \(OpenMP", out)
    else:
        assert re.search(r"kernels\s+single-threaded", out)
    assert re.search(rf"buildtype\s+{_build_info.BUILDTYPE}\n", out)
    if importlib.util.find_spec("threadpoolctl"):
        import threadpoolctl

        for lib in threadpoolctl.threadpool_info():
            if lib["user_api"] == "blas":
                # (its thread count here may differ: OpenBLAS reads OMP_NUM_THREADS too)
                assert re.search(rf"{lib['internal_api']} {re.escape(lib['version'])}"
                                 r"\s+\d+ threads", out)


def _check_report(report, stdout):
    spec = _cli_bench.CASE_SETS["tiny"]
    cases = report["cases"]
    assert len(cases) == 2 * len(spec["kernels"]) + len(spec["layers"])
    assert report["cyconv"] == importlib.metadata.version("cyconv")
    for case in cases:
        times, ratios = case["times"], case["ratios"]
        assert "cyconv" in times and set(ratios) == set(times) - {"cyconv"}
        assert all(t > 0 for t in times.values())
        for contender, ratio in ratios.items():
            assert ratio == pytest.approx(times[contender] / times["cyconv"], rel=1e-12)
        if case["kind"] == "filtering":
            assert {"scipy.signal.correlate2d", "scipy.signal.correlate",
                    "scipy.ndimage.correlate"} <= set(ratios)
        # The table: the case's first row is cyconv's median in ms, then one row
        # per contender with its median and ratio.
        lines = stdout.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith(case["name"]))
        def ms(who):
            return re.escape(f"{times[who] * 1e3:.3g}")

        assert re.fullmatch(rf"{re.escape(case['name'])}\s+cyconv\s+{ms('cyconv')}",
                            lines[first])
        for line, contender in zip(lines[first + 1:], ratios):
            assert re.fullmatch(rf"\s+{re.escape(contender)}\s+{ms(contender)}"
                                rf"\s+{ratios[contender]:.2f}x", line)
    assert {c["dtype"] for c in cases if c["kind"] == "filtering"} == {"float32", "float64"}


def test_bench_json(tmp_path):
    path = tmp_path / "bench.json"
    proc = run_cli("bench", "--tiny", "--json", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    _check_report(json.loads(path.read_text()), proc.stdout)


def test_bench_plot_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    proc = run_cli("bench", "--tiny", "--plot", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_bench_plot_without_matplotlib(tmp_path):
    # sys.modules[name] = None makes `import name` raise ImportError.
    path = tmp_path / "bench.png"
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from cyconv.__main__ import main\n"
            f"main(['bench', '--tiny', '--plot', {str(path)!r}])\n")
    proc = run_cli(cwd=tmp_path, code=code)
    assert proc.returncode != 0
    assert "matplotlib" in proc.stderr and "pip install 'cyconv[plot]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == "" and not path.exists()  # it failed before timing anything


def test_disagreeing_contender_stops_the_bench(monkeypatch, capsys):
    wrong = lambda image, kernel, mode: image  # noqa: E731  (not a correlation)
    monkeypatch.setattr(_cli_bench.scipy.ndimage, "correlate", wrong)
    args = types.SimpleNamespace(tiny=True, quick=False, json=None, plot=None)
    with pytest.raises(SystemExit, match="scipy.ndimage.correlate disagrees with cyconv"):
        _cli_bench.main(args)
    assert capsys.readouterr().out == ""


def test_check_agreement_tolerance():
    expected = np.linspace(-2, 2, 12).reshape(3, 4)
    _cli_bench.check_agreement("case", expected, "near", expected + 1e-12)
    _cli_bench.check_agreement("case", expected.astype(np.float32), "near32",
                               expected.astype(np.float32) + 1e-6)
    with pytest.raises(RuntimeError, match="far disagrees"):
        _cli_bench.check_agreement("case", expected, "far", expected + 1e-6)
    with pytest.raises(RuntimeError, match="shape"):
        _cli_bench.check_agreement("case", expected, "transposed", expected.T)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    term = _Terminal()
    progress = _cli_bench.Progress(4, term)
    for label in "abcd":
        progress.step(label)
    progress.close()
    text = term.getvalue()
    frames = text.split("\r")
    assert frames[1].startswith("[" + "#" * 4 + "." * 12 + "] 1/4 a")
    assert frames[4].startswith("[" + "#" * 16 + "] 4/4 d")
    assert frames[-2] == " " * len(frames[4]) and frames[-1] == ""  # cleared at the end
    pipe = io.StringIO()
    progress = _cli_bench.Progress(2, pipe)
    progress.step("a")
    progress.close()
    assert pipe.getvalue() == ""


def test_median_time():
    calls = []
    assert _cli_bench.median_time(lambda: calls.append(1), repeats=5, min_seconds=0) >= 0
    assert len(calls) == 6  # one warm-up, then the repeats


def test_median_time_times_several_calls_per_run():
    calls = []
    assert _cli_bench.median_time(lambda: calls.append(1), repeats=3, min_seconds=0,
                                  number=4) >= 0
    assert len(calls) == 1 + 3 * 4  # one warm-up, then the repeats of 4 calls each
