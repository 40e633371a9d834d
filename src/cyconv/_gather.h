/* Strided copies for im2col's unroll and col2im's fold, and the row sums of
 * the gathering fold (_im2col.pyx).
 *
 * Cython cannot say that the unrolled row and the image plane do not
 * overlap, so it leaves the stride-2 loops scalar; with restrict the
 * compiler vectorizes them (loads of two vectors, one shuffle). Written once
 * as a macro and instantiated for float and double.
 */
#ifndef CYCONV_GATHER_H
#define CYCONV_GATHER_H

#include <stddef.h>

#define CYCONV_STRIDE2(T)                                                     \
    /* dst[i] = src[2*i] for i < n. */                                        \
    static inline void cyconv_gather2_##T(T *restrict dst,                    \
                                          const T *restrict src, ptrdiff_t n) \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            dst[i] = src[2 * i];                                              \
    }                                                                         \
    /* dst[2*i] += src[i] for i < n. */                                       \
    static inline void cyconv_scatter_add2_##T(T *restrict dst,               \
                                               const T *restrict src,         \
                                               ptrdiff_t n)                   \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            dst[2 * i] += src[i];                                             \
    }                                                                         \
    /* dst[2*i] = even[i], dst[2*i + 1] = odd[i] for i < n. */                \
    static inline void cyconv_interleave2_##T(T *restrict dst,                \
                                              const T *restrict even,         \
                                              const T *restrict odd,          \
                                              ptrdiff_t n)                    \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                   \
            dst[2 * i] = even[i];                                             \
            dst[2 * i + 1] = odd[i];                                          \
        }                                                                     \
    }                                                                         \
    /* dst[i] += src[i] for i < n. */                                         \
    static inline void cyconv_add_##T(T *restrict dst, const T *restrict src, \
                                      ptrdiff_t n)                            \
    {                                                                         \
        for (ptrdiff_t i = 0; i < n; i++)                                     \
            dst[i] += src[i];                                                 \
    }

CYCONV_STRIDE2(float)
CYCONV_STRIDE2(double)

/* GCC would turn the loops that zero a pixel or two into memset calls. */
#if defined(__GNUC__) && !defined(__clang__)
#define CYCONV_NO_MEMSET __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define CYCONV_NO_MEMSET
#endif

/* One stride phase of `rows` image rows (_im2col.pyx _split_phases): row r
 * of dst (wo wide) holds src[r*pitch + v*sw] for lo <= v < hi and zeros
 * elsewhere; row r of edge (ew wide) holds src[r*pitch + (wo + e)*sw] for
 * elo <= e < ehi and zeros elsewhere. Stride 2 gets its own copy of the
 * loops, with the stride a constant the compiler vectorizes. */
#define CYCONV_PHASE_ROWS_BODY(T, SW)                                           \
    for (ptrdiff_t r = 0; r < rows; r++) {                                    \
        T *d = dst + r * wo, *e = edge + r * ew;                              \
        const T *s = src + r * pitch;                                         \
        for (ptrdiff_t v = 0; v < lo; v++)                                    \
            d[v] = 0;                                                         \
        for (ptrdiff_t v = lo; v < hi; v++)                                   \
            d[v] = s[(SW) * v];                                               \
        for (ptrdiff_t v = hi; v < wo; v++)                                   \
            d[v] = 0;                                                         \
        for (ptrdiff_t k = 0; k < ew; k++)                                    \
            e[k] = k >= elo && k < ehi ? s[(SW) * (wo + k)] : 0;              \
    }

#define CYCONV_PHASE_ROWS(T)                                                  \
    static CYCONV_NO_MEMSET void cyconv_phase_rows_##T(                       \
        T *restrict dst, T *restrict edge, const T *restrict src,             \
        ptrdiff_t pitch, ptrdiff_t rows, ptrdiff_t sw, ptrdiff_t wo,          \
        ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t ew, ptrdiff_t elo,              \
        ptrdiff_t ehi)                                                        \
    {                                                                         \
        if (sw == 2) {                                                        \
            CYCONV_PHASE_ROWS_BODY(T, 2)                                      \
        } else {                                                              \
            CYCONV_PHASE_ROWS_BODY(T, sw)                                     \
        }                                                                     \
    }

CYCONV_PHASE_ROWS(float)
CYCONV_PHASE_ROWS(double)

#endif
