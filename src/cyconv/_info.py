"""``python -m cyconv info``: what this cyconv was built with and runs on."""
import importlib
import os
import platform
import sys
import textwrap

import numpy as np
import scipy

import cyconv


def kernel_threads():
    """Threads a cyconv kernel runs on: 1, the kernels have no OpenMP loops yet.

    The BLAS GEMM that ``method='im2col'`` calls threads itself (see `blas`).
    A change that adds ``prange`` loops reports its thread count here.
    """
    return 1


def build_flags():
    """How the compiled kernels were built, as the build files say.

    meson's ``buildtype=release`` gives ``-O3`` and ``-DNDEBUG``; no
    ``-march``/``-mcpu`` flag is passed, so the compiler targets its generic
    baseline for the machine (SSE2 on x86-64). A change to the build flags
    updates this function.
    """
    machine = platform.machine() or "unknown"
    baseline = {"x86_64": "x86-64 baseline: SSE2", "AMD64": "x86-64 baseline: SSE2",
                "aarch64": "ARMv8-A baseline: NEON", "arm64": "ARMv8-A baseline: NEON"}
    simd = baseline.get(machine, "the compiler's default for this machine")
    return {
        "optimization": "-O3 -DNDEBUG (meson buildtype=release)",
        "simd": f"generic {machine}, no -march flag ({simd})",
        "openmp": "no",
        "cython": "boundscheck/wraparound/initializedcheck off, cdivision on",
    }


def blas():
    """BLAS libraries loaded in this process, from threadpoolctl if installed.

    Returns ``(libraries, note)``: a list of dicts (threadpoolctl's fields)
    and a note for when threadpoolctl is missing. The GEMM of cyconv is
    SciPy's BLAS (``scipy.linalg.cython_blas``).
    """
    importlib.import_module("cyconv._blas")  # loads SciPy's BLAS into the process
    try:
        import threadpoolctl
    except ImportError:
        return [], "threadpoolctl not installed: pip install threadpoolctl to see BLAS threads"
    return [lib for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"], ""


def scipy_blas_build():
    """The BLAS SciPy was built against, from ``scipy.show_config``."""
    try:
        config = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # older SciPy or a build without this metadata
        return "unknown"
    return f"{config.get('name', '?')} {config.get('version', '?')}"


def cpu_features():
    """``(baseline, dispatch, supported)``: NumPy's view of the CPU's SIMD features.

    Read from NumPy's private ``_multiarray_umath`` module; empty lists when
    it is not there.
    """
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:
        return [], [], []
    supported = [name for name, on in getattr(umath, "__cpu_features__", {}).items() if on]
    return (list(getattr(umath, "__cpu_baseline__", [])),
            list(getattr(umath, "__cpu_dispatch__", [])), supported)


def collect():
    """Everything `main` prints, as a dict of sections of ``(key, value)`` pairs."""
    libraries, note = blas()
    blas_rows = [("SciPy built with", scipy_blas_build())]
    for lib in libraries:
        where = os.path.basename(lib.get("filepath", ""))
        # Wheels vendor their BLAS next to the package: scipy.libs/, numpy.libs/.
        owner = os.path.basename(os.path.dirname(lib.get("filepath", "")))
        if owner.startswith("scipy"):
            where += ", SciPy's: cyconv's GEMM"
        elif owner.startswith("numpy"):
            where += ", NumPy's"
        blas_rows.append((
            f"loaded: {lib.get('internal_api', '?')} {lib.get('version', '?')}",
            f"{lib.get('num_threads', '?')} threads, {lib.get('threading_layer', '?')}, "
            f"architecture {lib.get('architecture', '?')} ({where})"))
    if note:
        blas_rows.append(("threads", note))
    baseline, dispatch, supported = cpu_features()
    flags = build_flags()
    return {
        "cyconv": [("version", cyconv.__version__),
                   ("location", os.path.dirname(cyconv.__file__))],
        "runtime": [("python", sys.version.split()[0]),
                    ("platform", platform.platform()),
                    ("numpy", np.__version__), ("scipy", scipy.__version__),
                    ("cpu count", str(os.cpu_count()))],
        "threads": [("kernels", "single-threaded" if kernel_threads() == 1
                     else f"{kernel_threads()} threads"),
                    ("im2col GEMM", "threaded by the BLAS below")],
        "BLAS": blas_rows,
        "build": [("optimization", flags["optimization"]),
                  ("SIMD target", flags["simd"]),
                  ("OpenMP", flags["openmp"]),
                  ("Cython", flags["cython"])],
        "CPU (as NumPy detects it)": [
            ("NumPy baseline", " ".join(baseline) or "unknown"),
            ("NumPy dispatch", " ".join(dispatch) or "unknown"),
            ("supported", " ".join(supported) or "unknown")],
    }


def main():
    for section, rows in collect().items():
        print(f"{section}:")
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            lines = textwrap.wrap(value, 78 - width - 4) or [""]
            print(f"  {key:<{width}}  {lines[0]}")
            for line in lines[1:]:
                print(f"  {'':<{width}}  {line}")
        print()
