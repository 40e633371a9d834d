/* Stride-2 copies for im2col's unroll and col2im's fold, and the row sums of
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

#endif
