"""The x86-64 SIMD levels this CPU and its operating system support.

``__builtin_cpu_supports`` (GCC, Clang) reads CPUID once and reports AVX and
AVX-512 features only where the OS saves their registers (XGETBV), so a
level it reports can run here. Other architectures and compilers report no
level: they run the baseline kernels.
"""
cdef extern from *:
    """
    /* 2: x86-64-v4 (AVX-512 F/BW/DQ/VL), 1: x86-64-v3 (AVX2, FMA, BMI1/2...), 0: neither. */
    static int cyconv_x86_level(void) {
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                 && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
    #if !defined(__clang__)
                 && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe")
                 && __builtin_cpu_supports("lzcnt")
    #endif
                 ;
        int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                 && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
        return v4 ? 2 : v3 ? 1 : 0;
    #else
        return 0;
    #endif
    }
    """
    int cyconv_x86_level() noexcept nogil


def x86_level():
    """0: no x86-64-v3; 1: x86-64-v3 (AVX2 + FMA); 2: x86-64-v4 (AVX-512)."""
    return cyconv_x86_level()
