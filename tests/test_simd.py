"""The vector kernels: one build per SIMD level, and the level chosen at import.

The issue asks that vectorization be checked in the generated code, not only
on the clock: each level's build of the direct kernel must contain the
instructions of that level and none above it -- fused multiply-adds on 512-bit
registers for AVX-512, on 256-bit ones and no 512-bit register for AVX2, and
no 256/512-bit register at all in the baseline (SSE2) build, for float32
(``ps``) and float64 (``pd``). Losing them -- a flag dropped from meson.build,
FMA contraction turned off again by ``c_std``, a loop the compiler no longer
vectorizes -- fails here, whatever the timings. The loader must pick the
fastest level the CPU runs (read independently from /proc/cpuinfo), honour
``CYCONV_SIMD``, and every level must compute the same results.
"""
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cyconv import _build_info, _dispatch

needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
x86 = os.uname().machine in ("x86_64", "AMD64")


def _cpu_flags():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def _levels_from_cpuinfo():
    """The x86-64 levels /proc/cpuinfo's flags allow (lzcnt is 'abm' there)."""
    flags = _cpu_flags()
    v3 = {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    return ["baseline"] + ["avx2"] * v3 + ["avx512"] * v4


def _listing(name, level):
    path = importlib.util.find_spec(f"cyconv._kernels.{name}_{level}").origin
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                          capture_output=True, text=True, check=True).stdout


def _fmas(listing, register):
    return {suffix: len(re.findall(rf"vfmadd\d+{suffix}\s+\S*{register}", listing))
            for suffix in ("ps", "pd")}


@needs_objdump
@pytest.mark.skipif("avx512" not in _dispatch.built(), reason="no AVX-512 build")
def test_avx512_build_uses_512_bit_fma():
    fmas = _fmas(_listing("_direct", "avx512"), "zmm")
    assert min(fmas.values()) >= 4, f"too few 512-bit vfmadd: {fmas}"


@needs_objdump
@pytest.mark.skipif("avx2" not in _dispatch.built(), reason="no AVX2 build")
def test_avx2_build_uses_256_bit_fma_and_no_avx512():
    listing = _listing("_direct", "avx2")
    fmas = _fmas(listing, "ymm")
    assert min(fmas.values()) >= 4, f"too few 256-bit vfmadd: {fmas}"
    for name in _dispatch.KERNELS:
        assert "zmm" not in _listing(name, "avx2"), f"{name}_avx2 uses AVX-512 registers"


@needs_objdump
@pytest.mark.skipif(not x86, reason="SSE2 is the x86-64 baseline")
@pytest.mark.skipif("baseline" not in _dispatch.built(), reason="no baseline build")
def test_baseline_build_uses_no_avx():
    for name in _dispatch.KERNELS:
        listing = _listing(name, "baseline")
        assert not re.search(r"[yz]mm", listing), f"{name}_baseline uses AVX registers"
        assert "xmm" in listing  # vectorized all the same, on SSE2


def _stack_stores(listing, function):
    """{function: how many vector registers it stores to the stack} for the functions whose
    name matches the regular expression ``function``."""
    counts, name = {}, None
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            name = header.group(1) if re.search(function, header.group(1)) else None
            if name:
                counts.setdefault(name, 0)
        elif name and re.search(r"%[xyz]mm\d+,[^,]*\((%rsp|%rbp)\)$", line):
            counts[name] += 1
    return counts


@needs_objdump
@pytest.mark.skipif(not x86, reason="the x86-64 levels")
@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_row_kernels_keep_their_vectors_in_registers(level):
    """_rowblock.h's vectors are the level's register width: with 64-byte vectors at
    every level, the SSE2 and AVX2 builds kept the passes' accumulators on the stack
    (300-1200 vector stores to it in each row kernel, against 40-100 at AVX-512:
    a few per pass's entry) and ran 8-10x slower."""
    if level not in _dispatch.built():
        pytest.skip(f"no {level} build")
    listing = _listing("_direct", level)
    if "__asan_" in listing or "__ubsan_" in listing:
        # tools/sanitize.sh's build: its checks hold registers and spill more.
        pytest.skip("a sanitizer-instrumented build")
    counts = _stack_stores(listing, r"^cyconv_(rowblock|plane3x3|backrows3x3|gradrows3x3)_")
    if not counts:
        pytest.skip("the row kernels were inlined: no symbol of theirs to inspect")
    assert max(counts.values()) <= 200, f"vector registers spilled to the stack: {counts}"


@needs_objdump
@pytest.mark.skipif("-march=native" not in _build_info.SIMD_FLAGS, reason="not a native build")
@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="needs an AVX-512 CPU")
def test_native_build_uses_512_bit_fma():
    fmas = _fmas(_listing("_direct", "native"), "zmm")
    assert min(fmas.values()) >= 4, f"too few 512-bit vfmadd: {fmas}"


@pytest.mark.skipif(not pathlib.Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_supported_levels_match_cpuinfo():
    if not x86:
        assert _dispatch.supported() == ["baseline"]
    else:
        assert _dispatch.supported() == _levels_from_cpuinfo()


def test_loaded_level_is_the_fastest_usable_one():
    if os.environ.get(_dispatch.ENV):
        pytest.skip(f"{_dispatch.ENV} is set")
    import cyconv

    usable = [level for level in _dispatch.built() if level in _dispatch.supported()]
    expected = "native" if "native" in _dispatch.built() else usable[-1]
    assert _dispatch.LEVEL == expected
    for name in _dispatch.KERNELS:
        module = getattr(cyconv, name)
        assert module is sys.modules[f"cyconv.{name}"]
        assert os.path.basename(module.__file__).startswith(f"{name}_{expected}.")


@pytest.mark.parametrize(("request_", "built", "supported", "expected"), [
    (None, ["baseline", "avx2", "avx512"], ["baseline", "avx2", "avx512"], "avx512"),
    (None, ["baseline", "avx2", "avx512"], ["baseline", "avx2"], "avx2"),
    (None, ["baseline", "avx2", "avx512"], ["baseline"], "baseline"),
    ("", ["baseline", "avx2"], ["baseline", "avx2", "avx512"], "avx2"),
    ("x86-64-v3", ["baseline", "avx2", "avx512"], ["baseline", "avx2", "avx512"], "avx2"),
    (" AVX2 ", ["baseline", "avx2"], ["baseline", "avx2"], "avx2"),
    ("sse2", ["baseline", "avx2", "avx512"], ["baseline", "avx2", "avx512"], "baseline"),
    ("x86-64-v4", ["baseline", "avx2", "avx512"], ["baseline", "avx2", "avx512"], "avx512"),
    (None, ["native"], ["baseline"], "native"),
])
def test_choose(request_, built, supported, expected):
    assert _dispatch.choose(request_, built, supported) == expected


@pytest.mark.parametrize(("request_", "built", "supported", "match"), [
    ("avx512", ["baseline", "avx2", "avx512"], ["baseline", "avx2"], "does not support"),
    ("avx2", ["baseline"], ["baseline", "avx2", "avx512"], "not built"),
    ("baseline", ["native"], ["baseline"], "not built"),
])
def test_choose_refuses_a_level_it_cannot_run(request_, built, supported, match):
    with pytest.raises(ImportError, match=match):
        _dispatch.choose(request_, built, supported)


def test_choose_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="CYCONV_SIMD='avx9' names no SIMD level"):
        _dispatch.choose("avx9", ["baseline"], ["baseline"])


# Run in a fresh interpreter at a forced level: integer-valued float64 inputs
# make every sum exact (equal at every level); float32 ones compare to rounding.
_SCRIPT = """
import sys
import numpy as np
import cyconv
from cyconv import _dispatch
rng = np.random.default_rng(0)
ints = rng.integers(-8, 9, size=(2, 6, 37, 41)).astype(np.float64)
w = rng.integers(-3, 4, size=(6, 3, 3, 3)).astype(np.float64)
dw = rng.integers(-3, 4, size=(6, 1, 5, 5)).astype(np.float64)
x32 = rng.standard_normal((2, 6, 37, 41)).astype(np.float32)
np.savez(sys.argv[1], level=_dispatch.LEVEL, module=cyconv._direct.__file__,
         exact_plane=cyconv.correlate2d(ints[0, 0], w[0, 0], mode="same"),
         exact_conv=cyconv.conv2d(ints, w[:, :3], groups=2, padding=1, method="direct"),
         exact_depthwise=cyconv.conv2d(ints, dw, groups=6, padding=2, method="direct"),
         exact_max=cyconv.max_pool2d(ints, 3, stride=2, padding=1),
         exact_avg=cyconv.avg_pool2d(ints, 2),
         plane=cyconv.correlate2d(x32[0, 0], x32[1, 1, :5, :5], mode="same"),
         depthwise=cyconv.conv2d(x32, x32[0, :, :3, :3, None].transpose(0, 3, 1, 2),
                                 groups=6, padding=1, method="direct"),
         avg=cyconv.avg_pool2d(x32, 3, stride=2))
"""


def _run_at(level, path):
    env = dict(os.environ, **{_dispatch.ENV: level})
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(path)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return np.load(path)


def test_every_level_computes_the_same(tmp_path):
    levels = [level for level in _dispatch.built() if level in _dispatch.supported()]
    if len(levels) < 2:
        pytest.skip("one SIMD level here")
    results = {level: _run_at(level, tmp_path / f"{level}.npz") for level in levels}
    first = results[levels[0]]
    for level, result in results.items():
        assert str(result["level"]) == level
        assert os.path.basename(str(result["module"])).startswith(f"_direct_{level}.")
        for key in first.files:
            if key.startswith("exact_"):
                np.testing.assert_array_equal(result[key], first[key], err_msg=f"{level} {key}")
            elif key not in ("level", "module"):
                np.testing.assert_allclose(result[key], first[key], rtol=1e-5, atol=1e-5,
                                           err_msg=f"{level} {key}")


def test_forcing_a_level_the_cpu_lacks_fails_clearly(tmp_path):
    missing = [level for level in _dispatch.built() if level not in _dispatch.supported()
               and level != "native"]
    if not missing:
        pytest.skip("this CPU runs every level built")
    env = dict(os.environ, **{_dispatch.ENV: missing[-1]})
    proc = subprocess.run([sys.executable, "-c", "import cyconv"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "this CPU does not support it" in proc.stderr
