"""The SIMD builds of the vector kernels: ``<kernel>_<level>`` extension modules.

Each is one kernel module (``_direct.pyx``, ``_pooling.pyx``) compiled for one
SIMD level. `cyconv._dispatch` loads the level the CPU runs under the kernel's
own name (``cyconv._direct``); nothing imports these by their file names.
"""
