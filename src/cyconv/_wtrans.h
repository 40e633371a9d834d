/* The tile transforms of Winograd's forward (cyconv._winograd), written out;
 * the weight gradient (cyconv._winograd_wgrad) uses the input one and G below.
 *
 *     input:  dst[a*dst_step + t] = sum_j BT[a, j] * src[j*src_step + t]   a < m + 2
 *     output: dst[i*dst_step + t] = sum_a AT[i, a] * src[a*src_step + t]   i < m
 *
 * for t < nt, with BT and AT of F(4, 3) (points 0, -1, 1, 1/2, -2) or F(2, 3)
 * (cyconv._winograd_transforms; tests/test_winograd.py checks these against
 * it). Each loop loads the n inputs of a column of tiles once and computes
 * every output from them, its zeros skipped, its small integers and powers
 * of two constants, and sums shared between outputs; the vectorizer takes
 * the tiles t (contiguous). Passing a row of BT or AT per call (a loop of n
 * loads and n multiply-adds per output) loaded n-fold more values and spent
 * a third of the multiply-adds on zeros. src, dst and chk never
 * overlap (restrict), nor dst's rows within a vector of tiles (omp simd):
 * the compiler vectorizes without run-time checks of the twelve pointers,
 * more pairs than it would check.
 *
 * With chk non-NULL the input transform adds (s - s) to chk[t], s the sum of
 * the tile's n outputs: 0 while they are finite, NaN when one is NaN or inf
 * (or s overflows). Every input value has a nonzero coefficient in some
 * output (BT is invertible), so a NaN or inf read reaches chk.
 */
#ifndef CYCONV_WTRANS_H
#define CYCONV_WTRANS_H

#include <stddef.h>

/* The rows of dst are dst_step apart, which the compiler cannot know to be
 * disjoint within a vector of t: the loops say so (OpenMP's simd, the
 * kernels are built with OpenMP). */
#if defined(_OPENMP)
#define CYCONV_WT_SIMD _Pragma("omp simd")
#else
#define CYCONV_WT_SIMD
#endif

/* BT's rows on the n values d0.. of a tile's row or column, stored to
 * o0..o(n-1) at [i]: one statement for both input passes below. */
#define CYCONV_WT_BT4(T, i)                                                     \
    (o0[i] = (T)2 * (d0 + d4) - (T)3 * (d1 - d3) - (T)4 * d2,                   \
     o1[i] = (T)2 * (d1 + d4) - (T)5 * d2 + d3,                                 \
     o2[i] = (T)2 * (d1 - d4) - d2 - (T)5 * d3,                                 \
     o3[i] = (T)2 * (d1 - d3) + d2 - d4,                                        \
     o4[i] = d1 - (T)2 * (d2 - d4) - d3,                                        \
     o5[i] = (T)2 * (d1 + d5) - (T)3 * (d2 - d4) - (T)4 * d3)
#define CYCONV_WT_BT2(i) (o0[i] = d0 - d2, o1[i] = d1 + d2, o2[i] = d1 - d2, o3[i] = d1 - d3)

#define CYCONV_DEFINE_WT(T)                                                             \
    static void cyconv_wt_input_##T(const T *restrict src, ptrdiff_t src_step,          \
                                    T *restrict dst, ptrdiff_t dst_step,                \
                                    T *restrict chk, ptrdiff_t nt, int m)               \
    {                                                                                   \
        const T *s0 = src, *s1 = src + src_step, *s2 = src + 2 * src_step;              \
        const T *s3 = src + 3 * src_step;                                               \
        T *o0 = dst, *o1 = dst + dst_step, *o2 = dst + 2 * dst_step;                    \
        T *o3 = dst + 3 * dst_step;                                                     \
        if (m == 4) {                                                                   \
            const T *s4 = src + 4 * src_step, *s5 = src + 5 * src_step;                 \
            T *o4 = dst + 4 * dst_step, *o5 = dst + 5 * dst_step;                       \
            CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                                        \
                const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t], d4 = s4[t];     \
                const T d5 = s5[t];                                                     \
                CYCONV_WT_BT4(T, t);                                                    \
            }                                                                           \
            if (chk)                                                                    \
                CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                                    \
                    const T s = ((o0[t] + o1[t]) + (o2[t] + o3[t])) + (o4[t] + o5[t]);  \
                    chk[t] += s - s;                                                    \
                }                                                                       \
        } else {                                                                        \
            CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                                        \
                const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t];                 \
                CYCONV_WT_BT2(t);                                                       \
            }                                                                           \
            if (chk)                                                                    \
                CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                                    \
                    const T s = (o0[t] + o1[t]) + (o2[t] + o3[t]);                      \
                    chk[t] += s - s;                                                    \
                }                                                                       \
        }                                                                               \
    }                                                                                   \
                                                                                        \
    /* The row pass straight from the image: dst[b*dst_step + u] = sum_j BT[b, j]  \
     * src[u*m + j] for u < count, the tiles of a run along a row of tiles  \
     * (src: one of their rows of pixels), where copying the n columns out  \
     * of the row first (a stride-m copy each) and transforming the copy      \
     * stored and loaded every value once more. */                           \
    static void cyconv_wt_input_tiles_##T(const T *restrict src, T *restrict dst,       \
                                          ptrdiff_t dst_step, ptrdiff_t count, int m)   \
    {                                                                                   \
        T *o0 = dst, *o1 = dst + dst_step, *o2 = dst + 2 * dst_step;                    \
        T *o3 = dst + 3 * dst_step;                                                     \
        if (m == 4) {                                                                   \
            T *o4 = dst + 4 * dst_step, *o5 = dst + 5 * dst_step;                       \
            CYCONV_WT_SIMD for (ptrdiff_t u = 0; u < count; u++) {                      \
                const T *s = src + 4 * u;                                               \
                const T d0 = s[0], d1 = s[1], d2 = s[2], d3 = s[3], d4 = s[4];          \
                const T d5 = s[5];                                                      \
                CYCONV_WT_BT4(T, u);                                                    \
            }                                                                           \
        } else {                                                                        \
            CYCONV_WT_SIMD for (ptrdiff_t u = 0; u < count; u++) {                      \
                const T *s = src + 2 * u;                                               \
                const T d0 = s[0], d1 = s[1], d2 = s[2], d3 = s[3];                     \
                CYCONV_WT_BT2(u);                                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
                                                                                        \
    static void cyconv_wt_output_##T(const T *restrict src, ptrdiff_t src_step,         \
                                     T *restrict dst, ptrdiff_t dst_step, ptrdiff_t nt, \
                                     int m)                                             \
    {                                                                                   \
        const T *s0 = src, *s1 = src + src_step, *s2 = src + 2 * src_step;              \
        const T *s3 = src + 3 * src_step;                                               \
        T *o0 = dst, *o1 = dst + dst_step;                                              \
        if (m == 4) {                                                                   \
            const T *s4 = src + 4 * src_step, *s5 = src + 5 * src_step;                 \
            T *o2 = dst + 2 * dst_step, *o3 = dst + 3 * dst_step;                       \
            CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                                        \
                const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t], d4 = s4[t];     \
                const T d5 = s5[t];                                                     \
                const T p12 = d2 + d1, m12 = d2 - d1;                                   \
                o0[t] = d0 + p12 + (d3 + d4);                                           \
                o1[t] = m12 + (T)0.5 * d3 - (T)2 * d4;                                  \
                o2[t] = p12 + (T)0.25 * d3 + (T)4 * d4;                                 \
                o3[t] = m12 + (T)0.125 * d3 - (T)8 * d4 + d5;                           \
            }                                                                           \
        } else {                                                                        \
            CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                                        \
                const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t];                 \
                o0[t] = d0 + d1 + d2, o1[t] = d1 - d2 + d3;                             \
            }                                                                           \
        }                                                                               \
    }

/* The weight gradient's grad_output transform (cyconv._winograd_wgrad): G of
 * F(3, 4) at the same points, its rows scaled to small integers
 * (cyconv._winograd_wgrad_gemm.wgrad_transforms), on 4 values per tile:
 *
 *     dst[a*dst_step + t] = sum_j G[a, j] * src[j*src_step + t]   a < 6
 *
 * Written out for the reason above: a row of G per call spent half its
 * multiply-adds on zeros and ones. */
#define CYCONV_DEFINE_WT_GRAD(T)                                                        \
    static void cyconv_wt_grad_##T(const T *restrict src, ptrdiff_t src_step,           \
                                   T *restrict dst, ptrdiff_t dst_step, ptrdiff_t nt)   \
    {                                                                                   \
        const T *s0 = src, *s1 = src + src_step, *s2 = src + 2 * src_step;              \
        const T *s3 = src + 3 * src_step;                                               \
        T *o0 = dst, *o1 = dst + dst_step, *o2 = dst + 2 * dst_step;                    \
        T *o3 = dst + 3 * dst_step, *o4 = dst + 4 * dst_step, *o5 = dst + 5 * dst_step; \
        CYCONV_WT_SIMD for (ptrdiff_t t = 0; t < nt; t++) {                             \
            const T d0 = s0[t], d1 = s1[t], d2 = s2[t], d3 = s3[t];                     \
            const T even = d0 + d2, odd = d1 + d3;                                      \
            o0[t] = d0;                                                                 \
            o1[t] = odd - even;                                                         \
            o2[t] = -(even + odd);                                                      \
            o3[t] = ((T)8 * d0 + (T)2 * d2) + ((T)4 * d1 + d3);                         \
            o4[t] = (d0 + (T)4 * d2) - ((T)2 * d1 + (T)8 * d3);                         \
            o5[t] = d3;                                                                 \
        }                                                                               \
    }

CYCONV_DEFINE_WT(float)
CYCONV_DEFINE_WT(double)
CYCONV_DEFINE_WT_GRAD(float)
CYCONV_DEFINE_WT_GRAD(double)

#endif /* CYCONV_WTRANS_H */
