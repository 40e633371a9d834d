/* Register-blocked interior of one output row of a stride-1 direct correlation.
 *
 * The row loop in _direct.pyx adds one shifted input row per tap into the
 * output row, so every tap loads and stores the whole output row again: the
 * loop is bound by L1 traffic, not by multiply-adds. Here a block of output
 * columns stays in vector registers while every tap (channel, row, column of
 * the kernel) is added into it, and is stored once. Only the interior columns
 * are done here, where every tap reads inside the input row, so the loop has
 * no bounds checks; the caller does the border columns.
 *
 * GCC/Clang vector extensions give the SIMD width the compiler targets
 * (AVX-512 with -march=native on this project's machines, SSE2 on a portable
 * build); other compilers get the same loop on scalars.
 */
#ifndef CYCONV_ROWBLOCK_H
#define CYCONV_ROWBLOCK_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define CYCONV_VECTOR_BYTES 64
#else
#define CYCONV_VECTOR_BYTES 0
#endif

#if CYCONV_VECTOR_BYTES

/* Accumulate `width` vectors at out columns [j, j + width*V): the block of
 * one pass. Taps are w_k[(c*kh + p)*kw + q] for p in [p_lo, p_hi); the input
 * element under tap (c, p, q) and column j is
 * x_img[(c*h + y0 + p*dh)*w + j - pw + q*dw]. */
#define CYCONV_ROWBLOCK_PASS(T, VEC, UVEC, V, width)                               \
    do {                                                                           \
        VEC acc[width];                                                            \
        for (int u = 0; u < (width); u++)                                          \
            acc[u] = (VEC){0} + bias;                                              \
        for (ptrdiff_t c = 0; c < channels; c++) {                                 \
            for (ptrdiff_t p = p_lo; p < p_hi; p++) {                              \
                const T *src = x_img + (c * h + y0 + p * dh) * w + j - pw;         \
                const T *taps = w_k + (c * kh + p) * kw;                           \
                for (ptrdiff_t q = 0; q < kw; q++) {                               \
                    const T tap = taps[q];                                         \
                    const T *s = src + q * dw;                                     \
                    for (int u = 0; u < (width); u++)                              \
                        acc[u] += tap * *(const UVEC *)(s + u * (V));              \
                }                                                                  \
            }                                                                      \
        }                                                                          \
        for (int u = 0; u < (width); u++)                                          \
            *(UVEC *)(out_row + j + u * (V)) = acc[u];                             \
    } while (0)

/* One definition for each element type, instantiated below for float and
 * double. Columns [j_a, j_b) are written; blocks of 4 vectors, then single
 * vectors, and a last vector that overlaps the previous one (each block
 * stores finished sums, so recomputing a few columns is harmless); rows
 * narrower than one vector go scalar. */
#define CYCONV_DEFINE_ROWBLOCK(NAME, T)                                            \
    typedef T NAME##_vec __attribute__((vector_size(CYCONV_VECTOR_BYTES)));        \
    typedef T NAME##_uvec                                                          \
        __attribute__((vector_size(CYCONV_VECTOR_BYTES), aligned(sizeof(T)),       \
                       may_alias));                                                \
    static inline void NAME(                                                       \
        const T *x_img, const T *w_k, T *out_row, T bias, ptrdiff_t y0,            \
        ptrdiff_t p_lo, ptrdiff_t p_hi, ptrdiff_t channels, ptrdiff_t h,           \
        ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t pw, ptrdiff_t dh,       \
        ptrdiff_t dw, ptrdiff_t j_a, ptrdiff_t j_b)                                \
    {                                                                              \
        const ptrdiff_t V = CYCONV_VECTOR_BYTES / sizeof(T);                       \
        ptrdiff_t j = j_a;                                                         \
        if (j_b - j_a < V) {                                                       \
            for (; j < j_b; j++) {                                                 \
                T acc = bias;                                                      \
                for (ptrdiff_t c = 0; c < channels; c++)                           \
                    for (ptrdiff_t p = p_lo; p < p_hi; p++)                        \
                        for (ptrdiff_t q = 0; q < kw; q++)                         \
                            acc += w_k[(c * kh + p) * kw + q] *                    \
                                   x_img[(c * h + y0 + p * dh) * w + j - pw        \
                                         + q * dw];                                \
                out_row[j] = acc;                                                  \
            }                                                                      \
            return;                                                                \
        }                                                                          \
        for (; j + 4 * V <= j_b; j += 4 * V)                                       \
            CYCONV_ROWBLOCK_PASS(T, NAME##_vec, NAME##_uvec, V, 4);                \
        for (; j + V <= j_b; j += V)                                               \
            CYCONV_ROWBLOCK_PASS(T, NAME##_vec, NAME##_uvec, V, 1);                \
        if (j < j_b) {                                                             \
            j = j_b - V;                                                           \
            CYCONV_ROWBLOCK_PASS(T, NAME##_vec, NAME##_uvec, V, 1);                \
        }                                                                          \
    }

#else /* no vector extensions: the same sums, one column at a time */

#define CYCONV_DEFINE_ROWBLOCK(NAME, T)                                            \
    static inline void NAME(                                                       \
        const T *x_img, const T *w_k, T *out_row, T bias, ptrdiff_t y0,            \
        ptrdiff_t p_lo, ptrdiff_t p_hi, ptrdiff_t channels, ptrdiff_t h,           \
        ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t pw, ptrdiff_t dh,       \
        ptrdiff_t dw, ptrdiff_t j_a, ptrdiff_t j_b)                                \
    {                                                                              \
        for (ptrdiff_t j = j_a; j < j_b; j++) {                                    \
            T acc = bias;                                                          \
            for (ptrdiff_t c = 0; c < channels; c++)                               \
                for (ptrdiff_t p = p_lo; p < p_hi; p++)                            \
                    for (ptrdiff_t q = 0; q < kw; q++)                             \
                        acc += w_k[(c * kh + p) * kw + q] *                        \
                               x_img[(c * h + y0 + p * dh) * w + j - pw + q * dw]; \
            out_row[j] = acc;                                                      \
        }                                                                          \
    }

#endif

CYCONV_DEFINE_ROWBLOCK(cyconv_rowblock_float, float)
CYCONV_DEFINE_ROWBLOCK(cyconv_rowblock_double, double)

#endif /* CYCONV_ROWBLOCK_H */
