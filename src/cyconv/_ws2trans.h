/* The input transform of the stride-2 row-wise F(2, 3) (cyconv._winograd_s2), in C.
 *
 * Tile t reads x0..x4 = src[4t .. 4t + 4] and stores its five slots, in
 * _winograd_s2's order, to v[s*slot_step + t]:
 *
 *     x2, x0 - x2, x1, x3, x4 - x2
 *
 * and returns the sum over the tiles of (s - s), s the sum of a tile's five
 * values: 0 while they are finite, NaN when one is NaN or inf (or a
 * difference overflowed). In C for restrict and OpenMP's simd reduction:
 * without them the loop stayed scalar (the slots might alias src, and the
 * check was a store per tile), a tenth of the N8-C128-28-K256 layer's time.
 */
#ifndef CYCONV_WS2TRANS_H
#define CYCONV_WS2TRANS_H

#include <stddef.h>

#if defined(_OPENMP)
#define CYCONV_WS2_SIMD _Pragma("omp simd reduction(+:acc)")
#else
#define CYCONV_WS2_SIMD
#endif

#define CYCONV_DEFINE_WS2(T)                                                            \
    static T cyconv_s2_transform_##T(const T *restrict src, ptrdiff_t count,            \
                                     T *restrict v, ptrdiff_t slot_step)                \
    {                                                                                   \
        T *restrict v1 = v;                                                             \
        T *restrict v0 = v + slot_step;                                                 \
        T *restrict v3 = v + 2 * slot_step;                                             \
        T *restrict v4 = v + 3 * slot_step;                                             \
        T *restrict v2 = v + 4 * slot_step;                                             \
        T acc = 0;                                                                      \
        CYCONV_WS2_SIMD for (ptrdiff_t t = 0; t < count; t++) {                         \
            const T *s = src + 4 * t;                                                   \
            const T x0 = s[0], x1 = s[1], x2 = s[2], x3 = s[3], x4 = s[4];              \
            const T d0 = x0 - x2, d4 = x4 - x2;                                         \
            const T sum = (d0 + x1) + (x2 + x3) + d4;                                   \
            v1[t] = x2;                                                                 \
            v0[t] = d0;                                                                 \
            v3[t] = x1;                                                                 \
            v2[t] = d4;                                                                 \
            v4[t] = x3;                                                                 \
            acc += sum - sum;                                                           \
        }                                                                               \
        return acc;                                                                     \
    }

CYCONV_DEFINE_WS2(float)
CYCONV_DEFINE_WS2(double)

#endif /* CYCONV_WS2TRANS_H */
