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
    """Threads a parallel kernel loop runs on now: OpenMP's count (capped), or 1 without OpenMP."""
    from cyconv import _openmp

    return _openmp.max_threads() if _openmp.openmp_enabled() else 1


def kernel_threading():
    """`kernel_threads` in words, saying where the count comes from and its cap."""
    from cyconv import _openmp

    if not _openmp.openmp_enabled():
        return "single-threaded (built without OpenMP)"
    n = kernel_threads()
    if _openmp.forked():
        return f"{n} thread (a forked child: GNU OpenMP's pool does not survive fork)"
    return (f"{n} thread{'s' if n != 1 else ''} (OpenMP: set by OMP_NUM_THREADS "
            f"or threadpoolctl, capped at the {_openmp.cpu_limit()} CPUs this process "
            "may use)")


def gemm_threading():
    """Who threads the GEMM paths, in words (see cyconv._threads)."""
    from cyconv._threads import blas_threads

    if blas_threads.controlled:
        return (f"the kernels' threads, one GEMM each, BLAS on one thread during "
                f"the call ({blas_threads.name})")
    return (f"BLAS's own threads, one GEMM at a time ({blas_threads.name} BLAS: "
            "its thread control was not found)")


def build_flags():
    """How the compiled kernels were built, as meson recorded it in ``_build_info``."""
    from cyconv import _build_info

    simd = _build_info.SIMD_FLAGS
    if simd == "compiler baseline":  # -Dsimd=dispatch/portable: no -march flag
        machine = platform.machine()
        baselines = {"x86_64": "SSE2", "AMD64": "SSE2", "aarch64": "NEON", "arm64": "NEON"}
        simd += f" for {machine}" + (f" ({baselines[machine]})" if machine in baselines else "")
    return {
        "compiler": _build_info.C_COMPILER,
        "buildtype": _build_info.BUILDTYPE,
        "simd": simd,
        "openmp": "yes" if _build_info.OPENMP else "no (kernels run single-threaded)",
    }


def simd_levels():
    """``(in use, built, supported)``: the vector kernels' SIMD levels, in words."""
    from cyconv import _build_info, _dispatch

    def describe(level):
        return _dispatch.LEVELS[level][1] if level in _dispatch.LEVELS else "-march=native"

    request = os.environ.get(_dispatch.ENV)
    why = f"forced by {_dispatch.ENV}={request}" if request else "the fastest this CPU runs"
    in_use = f"{_dispatch.LEVEL} ({describe(_dispatch.LEVEL)}; {why})"
    flags = _build_info.SIMD_LEVELS
    built = ", ".join(f"{level} ({flags[level]})" if flags[level] else level
                      for level in _dispatch.built())
    return in_use, built, ", ".join(_dispatch.supported())


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
    level, levels_built, levels_supported = simd_levels()
    return {
        "cyconv": [("version", cyconv.__version__),
                   ("location", os.path.dirname(cyconv.__file__))],
        "runtime": [("python", sys.version.split()[0]),
                    ("platform", platform.platform()),
                    ("numpy", np.__version__), ("scipy", scipy.__version__),
                    ("cpu count", str(os.cpu_count()))],
        "threads": [("kernels", kernel_threading()),
                    ("GEMM paths", gemm_threading())],
        "BLAS": blas_rows,
        "build": [("compiler", flags["compiler"]),
                  ("buildtype", flags["buildtype"]),
                  ("SIMD flags", flags["simd"]),
                  ("SIMD level", level),
                  ("levels built", levels_built),
                  ("CPU runs", levels_supported),
                  ("OpenMP", flags["openmp"])],
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
