"""The direct kernel is compiled to the machine's full SIMD width.

The issue asks that vectorization be checked in the generated code, not only
on the clock: on an AVX-512 machine a native build (the default) must contain
fused multiply-adds on 512-bit registers, for float32 (``ps``) and float64
(``pd``). Losing them -- a flag dropped from meson.build, FMA contraction
turned off again by ``c_std``, a loop the compiler no longer vectorizes --
fails here, whatever the timings.
"""
import pathlib
import re
import shutil
import subprocess

import pytest

from cyconv import _build_info, _direct


def _cpu_flags():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


@pytest.mark.skipif("-march=native" not in _build_info.SIMD_FLAGS,
                    reason="a portable build targets the compiler's baseline")
@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="needs an AVX-512 CPU")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
def test_direct_kernel_uses_512_bit_fma():
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", _direct.__file__],
                             capture_output=True, text=True, check=True).stdout
    for suffix in ("ps", "pd"):  # float32, float64
        fmas = re.findall(rf"vfmadd\d+{suffix}\s+\S*zmm", listing)
        assert len(fmas) >= 4, f"no 512-bit vfmadd*{suffix} in {_direct.__file__}"
