"""The SIMD build of the vector kernels this process runs, chosen once at import.

The kernel modules whose speed is in their vector loops (`KERNELS`) are
compiled once per SIMD level (meson.build: ``-Dsimd=dispatch``, the default)
into ``cyconv/_kernels/<name>_<level>``. At import this module picks the
fastest level both built and run by the CPU (`cyconv._cpu`), or the one the
environment variable ``CYCONV_SIMD`` names, and loads those modules under
their own names (``cyconv._direct``, ...). Every other module takes its
kernels from here: ``from cyconv._dispatch import _direct``.
"""
import importlib.util
import os
import sys

from cyconv import _build_info, _cpu

ENV = "CYCONV_SIMD"

# The levels, slowest first, with the other names CYCONV_SIMD accepts for each
# and the instruction sets they describe. A -Dsimd=native build has one level,
# 'native', for the CPU that built it.
LEVELS = {
    "baseline": (("x86-64", "x86-64-v1", "sse2"), "the compiler's baseline: SSE2 on x86-64"),
    "avx2": (("x86-64-v3",), "x86-64-v3: AVX2, FMA"),
    "avx512": (("x86-64-v4",), "x86-64-v4: AVX-512 F/BW/DQ/VL, 512-bit vectors"),
}

KERNELS = ("_direct", "_pointwise", "_pooling", "_regblock", "_winograd", "_winograd_wgrad")


def supported():
    """The levels this CPU (and its OS) can run, slowest first."""
    return list(LEVELS)[:_cpu.x86_level() + 1]


def built():
    """The levels this copy of cyconv was built with, slowest first."""
    order = list(LEVELS) + ["native"]
    return sorted(_build_info.SIMD_LEVELS, key=order.index)


def level_name(request):
    """The level a ``CYCONV_SIMD`` value names; ValueError for an unknown one."""
    name = request.strip().lower()
    for level, (aliases, _) in LEVELS.items():
        if name == level or name in aliases:
            return level
    if name == "native":
        return name
    names = ", ".join(f"{level} ({'/'.join(aliases)})" for level, (aliases, _) in LEVELS.items())
    raise ValueError(f"{ENV}={request!r} names no SIMD level; use one of {names}")


def choose(request, built_levels, supported_levels):
    """The level to load: the fastest built and supported one, or ``request``.

    ``request`` (the value of ``CYCONV_SIMD``, or None/empty) may only name a
    level that was built and that the CPU runs: anything else raises an
    ImportError saying which levels can be chosen.
    """
    if "native" in built_levels:
        usable = ["native"]
    else:
        usable = [level for level in built_levels if level in supported_levels]
    if not request:
        return usable[-1]
    level = level_name(request)
    if level not in usable:
        why = ("this cyconv was not built for it" if level not in built_levels
               else "this CPU does not support it")
        raise ImportError(f"{ENV}={request!r}: cannot run the {level!r} kernels ({why}); "
                          f"levels available here: {', '.join(usable)}")
    return level


def load(name, level):
    """Import the ``level`` build of kernel module ``name`` as ``cyconv.<name>``."""
    where = importlib.util.find_spec(f"cyconv._kernels.{name}_{level}")
    if where is None or where.origin is None:
        raise ImportError(f"cyconv's {level!r} build of {name} is missing: reinstall cyconv")
    # An extension module's init function is named after the last part of the
    # name it is imported under: PyInit_<name>, whichever file holds it.
    spec = importlib.util.spec_from_file_location(f"cyconv.{name}", where.origin)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    setattr(sys.modules["cyconv"], name, module)
    return module


LEVEL = choose(os.environ.get(ENV), built(), supported())
_direct = load("_direct", LEVEL)
_pointwise = load("_pointwise", LEVEL)
_pooling = load("_pooling", LEVEL)
_regblock = load("_regblock", LEVEL)
_winograd = load("_winograd", LEVEL)
_winograd_wgrad = load("_winograd_wgrad", LEVEL)
