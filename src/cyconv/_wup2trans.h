/* The tile transforms of the 4x4 stride-2 transposed convolution by F(4, 2)
 * (cyconv._winograd, _winograd_up2.pxi), written out as _wtrans.h's are.
 *
 * F(4, 2) at the points 0, -1, 1, 1/2 (and infinity; cyconv._winograd_transforms
 * derives the matrices, tests/test_winograd_up2.py checks these against it):
 *
 *     BT = [[1, -2, -1,  2, 0],      AT = [[1,  1, 1,   1, 0],
 *           [0,  1, -3,  2, 0],            [0, -1, 1, 1/2, 0],
 *           [0,  1, -1, -2, 0],            [0,  1, 1, 1/4, 0],
 *           [0,  1,  0, -1, 0],            [0, -1, 1, 1/8, 1]]
 *           [0,  1, -2, -1, 2]]
 *
 * Integers in BT (the input transform, applied to every tile, is exact
 * unless it overflows) and powers of two in AT.
 *
 *     input:  dst[a*dst_step + t] = sum_j BT[a, j] * src[j*src_step + t]   a < 5
 *     tiles:  dst[a*dst_step + u] = sum_j BT[a, j] * src[4*u + j]         u < count
 *     output: dst[i*dst_step + t] = sum_a AT[i, a] * src[a*src_step + t]   i < 4
 *
 * The output transform returns 0 while its outputs are finite, else NaN.
 *
 * With chk non-NULL the input transform adds (s - s) to chk[t], s the sum of
 * the tile's five outputs: 0 while they are finite, NaN when one is NaN or
 * inf (or s overflows); BT is invertible, so every input value reaches s.
 */
#ifndef CYCONV_WUP2TRANS_H
#define CYCONV_WUP2TRANS_H

#include <stddef.h>

#if defined(_OPENMP)
#define CYCONV_WU_SIMD _Pragma("omp simd")
#define CYCONV_WU_SIMD_SUM _Pragma("omp simd reduction(+:acc)")
#else
#define CYCONV_WU_SIMD
#define CYCONV_WU_SIMD_SUM
#endif

/* BT's rows on d0..d4, stored to o0..o4 at [i]. */
#define CYCONV_WU_BT(T, i)                                                      \
    (o0[i] = (d0 - d2) - (T)2 * (d1 - d3),                                      \
     o1[i] = d1 - (T)3 * d2 + (T)2 * d3,                                        \
     o2[i] = (d1 - d2) - (T)2 * d3,                                             \
     o3[i] = d1 - d3,                                                           \
     o4[i] = (d1 - d3) - (T)2 * (d2 - d4))

#define CYCONV_DEFINE_WU(T)                                                             \
    static void cyconv_wu_input_##T(const T *restrict src, ptrdiff_t src_step,          \
                                    T *restrict dst, ptrdiff_t dst_step,                \
                                    T *restrict chk, ptrdiff_t nt)                      \
    {                                                                                   \
        const T *s0 = src, *s1 = src + src_step, *s2 = src + 2 * src_step;              \
        const T *s3 = src + 3 * src_step, *s4 = src + 4 * src_step;                     \
        T *o0 = dst, *o1 = dst + dst_step, *o2 = dst + 2 * dst_step;                    \
        T *o3 = dst + 3 * dst_step, *o4 = dst + 4 * dst_step;                           \
        CYCONV_WU_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                             \
            const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t], d4 = s4[t];         \
            CYCONV_WU_BT(T, t);                                                         \
        }                                                                               \
        if (chk)                                                                        \
            CYCONV_WU_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                         \
                const T s = ((o0[t] + o1[t]) + (o2[t] + o3[t])) + o4[t];                \
                chk[t] += s - s;                                                        \
            }                                                                           \
    }                                                                                   \
                                                                                        \
    /* The row pass straight from a row of pixels (tiles 4 apart, 5 wide). */          \
    static void cyconv_wu_input_tiles_##T(const T *restrict src, T *restrict dst,       \
                                          ptrdiff_t dst_step, ptrdiff_t count)          \
    {                                                                                   \
        T *o0 = dst, *o1 = dst + dst_step, *o2 = dst + 2 * dst_step;                    \
        T *o3 = dst + 3 * dst_step, *o4 = dst + 4 * dst_step;                           \
        CYCONV_WU_SIMD for (ptrdiff_t u = 0; u < count; u++) {                          \
            const T *s = src + 4 * u;                                                   \
            const T d0 = s[0], d1 = s[1], d2 = s[2], d3 = s[3], d4 = s[4];              \
            CYCONV_WU_BT(T, u);                                                         \
        }                                                                               \
    }                                                                                   \
                                                                                        \
    /* Returns the sum of (s - s), s each tile's sum of its four outputs: 0      \
     * while they are finite, NaN where one is not (a product or transform that \
     * overflowed: the input check cannot see those). */                        \
    static T cyconv_wu_output_##T(const T *restrict src, ptrdiff_t src_step,            \
                                  T *restrict dst, ptrdiff_t dst_step, ptrdiff_t nt)    \
    {                                                                                   \
        const T *s0 = src, *s1 = src + src_step, *s2 = src + 2 * src_step;              \
        const T *s3 = src + 3 * src_step, *s4 = src + 4 * src_step;                     \
        T *o0 = dst, *o1 = dst + dst_step, *o2 = dst + 2 * dst_step;                    \
        T *o3 = dst + 3 * dst_step;                                                     \
        T acc = 0;                                                                      \
        CYCONV_WU_SIMD_SUM for (ptrdiff_t t = 0; t < nt; t++) {                         \
            const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t], d4 = s4[t];         \
            const T p12 = d2 + d1, m12 = d2 - d1;                                       \
            const T y0 = d0 + p12 + d3, y1 = m12 + (T)0.5 * d3;                         \
            const T y2 = p12 + (T)0.25 * d3, y3 = m12 + (T)0.125 * d3 + d4;             \
            const T sum = (y0 + y1) + (y2 + y3);                                        \
            o0[t] = y0, o1[t] = y1, o2[t] = y2, o3[t] = y3;                             \
            acc += sum - sum;                                                           \
        }                                                                               \
        return acc;                                                                     \
    }                                                                                   \
                                                                                        \
    /* dst[8*u + q] = s[q][u] + b for lo <= u < hi: one output row of whole   \
     * 8-wide tiles, its two column phases' four columns interleaved in one   \
     * pass of contiguous stores (s[q] = phase q % 2, column q / 2). */        \
    static void cyconv_wu_store_##T(const T *restrict s0, const T *restrict s1,        \
                                    const T *restrict s2, const T *restrict s3,         \
                                    const T *restrict s4, const T *restrict s5,         \
                                    const T *restrict s6, const T *restrict s7,         \
                                    T b, T *restrict dst, ptrdiff_t lo, ptrdiff_t hi)   \
    {                                                                                   \
        for (ptrdiff_t u = lo; u < hi; u++) {                                           \
            T *o = dst + 8 * u;                                                         \
            o[0] = s0[u] + b, o[1] = s1[u] + b, o[2] = s2[u] + b, o[3] = s3[u] + b;     \
            o[4] = s4[u] + b, o[5] = s5[u] + b, o[6] = s6[u] + b, o[7] = s7[u] + b;     \
        }                                                                               \
    }

CYCONV_DEFINE_WU(float)
CYCONV_DEFINE_WU(double)

#endif /* CYCONV_WUP2TRANS_H */
