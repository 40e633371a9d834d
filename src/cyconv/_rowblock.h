/* Register-blocked rows of a stride-1 direct correlation, and the dot
 * products of a depthwise weight gradient.
 *
 * The row loop in _direct.pyx adds one shifted input row per tap into the
 * output row, so every tap loads and stores the whole output row again: the
 * loop is bound by L1 traffic, not by multiply-adds. Here a block of output
 * columns stays in vector registers while every tap (channel, row, column of
 * the kernel) is added into it, and is stored once. Only the interior columns
 * are done here, where every tap reads inside the input row, so the loop has
 * no bounds checks; the caller does the border columns (or pads the plane).
 *
 * GCC/Clang vector extensions give the SIMD width the compiler targets
 * (each SIMD level's build of _direct its own: SSE2, AVX2 or AVX-512; see
 * meson.build); other compilers get the same sums on scalars. The vector type
 * is the target's register width: a wider one is split into several
 * registers, and the passes' accumulators then no longer fit the register
 * file (at 64 bytes the SSE2 and AVX2 builds kept them on the stack and ran
 * the depthwise forward 8-10x slower than the AVX-512 build). Each function is
 * written once, as a macro, and instantiated for float and double at the end.
 */
#ifndef CYCONV_ROWBLOCK_H
#define CYCONV_ROWBLOCK_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__GNUC__) && !defined(__clang__)
#define CYCONV_VECTOR_BYTES 0
#elif defined(CYCONV_VECTOR_BYTES)
/* given on the command line (tuning, tests) */
#elif defined(__AVX512F__)
#define CYCONV_VECTOR_BYTES 64
#elif defined(__AVX__)
#define CYCONV_VECTOR_BYTES 32
#else
#define CYCONV_VECTOR_BYTES 16
#endif

/* out_row[j] = bias + sum_{c, p_lo <= p < p_hi, q} w_k[(c*kh + p)*kw + q]
 *                       * x_img[(c*h + y0 + p*dh)*w + j - pw + q*dw]
 * for the columns [j_a, j_b), every tap inside x_img. */
#define CYCONV_ROWBLOCK_SIGNATURE(NAME, T)                                              \
    static inline void NAME(                                                            \
        const T *x_img, const T *w_k, T *out_row, T bias, ptrdiff_t y0,                 \
        ptrdiff_t p_lo, ptrdiff_t p_hi, ptrdiff_t channels, ptrdiff_t h,                \
        ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t pw, ptrdiff_t dh,            \
        ptrdiff_t dw, ptrdiff_t j_a, ptrdiff_t j_b)

/* The same sums one column at a time, for columns j..j_b-1. */
#define CYCONV_ROWBLOCK_COLUMNS(T)                                                      \
    for (; j < j_b; j++) {                                                              \
        T acc = bias;                                                                   \
        for (ptrdiff_t c = 0; c < channels; c++)                                        \
            for (ptrdiff_t p = p_lo; p < p_hi; p++)                                     \
                for (ptrdiff_t q = 0; q < kw; q++)                                      \
                    acc += w_k[(c * kh + p) * kw + q]                                   \
                           * x_img[(c * h + y0 + p * dh) * w + j - pw + q * dw];        \
        out_row[j] = acc;                                                               \
    }

/* sums[p*kw + q] += sum_{i < ho, j < wo} gy[i*wo + j] * padded[(i + p*dh)*wp + j + q*dw]. */
#define CYCONV_TAPDOTS_SIGNATURE(NAME, T)                                               \
    static inline void NAME(                                                            \
        const T *gy, const T *padded, ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t wp,         \
        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw, T *sums)

/* The 3x3 depthwise gradients of one plane, row by row, from the unpadded
 * input plane and the zero-padded gradient plane (as the input gradient's
 * forward pass reads it, wb columns):
 *   sums[p*3 + q] += sum_{y < h, x < w} x_plane[y*w + x]
 *                                      * gpad[(y + (2-p)*dh)*wb + x + (2-q)*dw]
 * and, if WITH_GI, the input gradient's rows (f the flipped kernel)
 *   gi[y*w + x] = sum_{p, q} f[p*3 + q] * gpad[(y + p*dh)*wb + x + q*dw],
 * which read the same nine vectors of gpad for each block of columns: each
 * load serves both multiply-adds. Neither plane needs another copy. */
#define CYCONV_ROWS3X3_SIGNATURE(NAME, T)                                               \
    static inline void NAME(                                                            \
        const T *x_plane, const T *gpad, const T *f, T *gi, ptrdiff_t h, ptrdiff_t w,   \
        ptrdiff_t wb, ptrdiff_t dh, ptrdiff_t dw, T *sums)

/* Both sums one column at a time, for the columns x0..w-1 of row y. */
#define CYCONV_ROWS3X3_COLUMNS(T, x0, WITH_GI)                                          \
    for (ptrdiff_t e = (x0); e < w; e++) {                                              \
        T out = 0;                                                                      \
        for (int p = 0; p < 3; p++) {                                                   \
            for (int q = 0; q < 3; q++) {                                               \
                const T g = gpad[(y + p * dh) * wb + e + q * dw];                       \
                if (WITH_GI)                                                            \
                    out += fk[p * 3 + q] * g;                                           \
                tail[(2 - p) * 3 + 2 - q] += x_plane[y * w + e] * g;                    \
            }                                                                           \
        }                                                                               \
        if (WITH_GI)                                                                    \
            gi[y * w + e] = out;                                                        \
    }

/* The kernel is copied to locals: gi's stores could alias it. */
#define CYCONV_ROWS3X3_SETUP(T)                                                         \
    T tail[9] = {0}, fk[9] = {0};                                                       \
    for (int t = 0; t < 9; t++)                                                         \
        if (f)                                                                          \
            fk[t] = f[t];

#if CYCONV_VECTOR_BYTES

/* The vector of one element type (aligned) and its unaligned, aliasing
 * variant for loads and stores at any element offset. */
#define CYCONV_DEFINE_VECTORS(T)                                                        \
    typedef T cyconv_##T##_vec __attribute__((vector_size(CYCONV_VECTOR_BYTES)));       \
    typedef T cyconv_##T##_uvec                                                         \
        __attribute__((vector_size(CYCONV_VECTOR_BYTES), aligned(sizeof(T)), may_alias));

/* Accumulate `width` vectors of outputs: vector u < width-1 at column
 * j + u*V, the last one at column `last` (j + (width-1)*V, or moved back to
 * end at j_b, overlapping the one before: each pass stores finished sums, so
 * recomputing a few columns is harmless). Every accumulator is a chain of
 * dependent multiply-adds, so wide passes keep more of them in flight; the
 * offsets are loop constants, so the addresses stay in registers. */
#define CYCONV_ROWBLOCK_PASS(T, width)                                                  \
    do {                                                                                \
        cyconv_##T##_vec acc[width];                                                    \
        const ptrdiff_t shift = last - j;                                               \
        for (int u = 0; u < (width); u++)                                               \
            acc[u] = (cyconv_##T##_vec){0} + bias;                                      \
        for (ptrdiff_t c = 0; c < channels; c++) {                                      \
            for (ptrdiff_t p = p_lo; p < p_hi; p++) {                                   \
                const T *src = x_img + (c * h + y0 + p * dh) * w + (j - pw);            \
                const T *taps = w_k + (c * kh + p) * kw;                                \
                for (ptrdiff_t q = 0; q < kw; q++) {                                    \
                    const T tap = taps[q];                                              \
                    const T *s = src + q * dw;                                          \
                    for (int u = 0; u < (width) - 1; u++)                               \
                        acc[u] += tap * *(const cyconv_##T##_uvec *)(s + u * V);        \
                    acc[(width) - 1] += tap * *(const cyconv_##T##_uvec *)(s + shift);  \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        for (int u = 0; u < (width) - 1; u++)                                           \
            *(cyconv_##T##_uvec *)(out_row + j + u * V) = acc[u];                       \
        *(cyconv_##T##_uvec *)(out_row + last) = acc[(width) - 1];                      \
    } while (0)

#define CYCONV_ROWBLOCK_CASE(T, n) case n: CYCONV_ROWBLOCK_PASS(T, n); break;

/* Passes of 8 vectors, then one pass of the 1 to 8 vectors the rest needs,
 * its last vector ending at j_b (so a narrow row, as in depthwise layers, is
 * a single pass over the taps); rows narrower than one vector go scalar. */
#define CYCONV_DEFINE_ROWBLOCK(NAME, T)                                                 \
    CYCONV_ROWBLOCK_SIGNATURE(NAME, T)                                                  \
    {                                                                                   \
        const ptrdiff_t V = CYCONV_VECTOR_BYTES / sizeof(T);                            \
        ptrdiff_t j = j_a, last;                                                        \
        if (j_b - j_a < V) {                                                            \
            CYCONV_ROWBLOCK_COLUMNS(T)                                                  \
            return;                                                                     \
        }                                                                               \
        for (; j + 8 * V <= j_b; j += 8 * V) {                                          \
            last = j + 7 * V;                                                           \
            CYCONV_ROWBLOCK_PASS(T, 8);                                                 \
        }                                                                               \
        last = j_b - V;                                                                 \
        switch ((j_b - j + V - 1) / V) {                                                \
        CYCONV_ROWBLOCK_CASE(T, 8) CYCONV_ROWBLOCK_CASE(T, 7) CYCONV_ROWBLOCK_CASE(T, 6) \
        CYCONV_ROWBLOCK_CASE(T, 5) CYCONV_ROWBLOCK_CASE(T, 4) CYCONV_ROWBLOCK_CASE(T, 3) \
        CYCONV_ROWBLOCK_CASE(T, 2) CYCONV_ROWBLOCK_CASE(T, 1)                           \
        }                                                                               \
    }

/* A 3x3 depthwise plane from its zero-padded copy (wp columns), for
 * i < ho, j < wo:
 *   out[i*wo + j] = bias + sum_{p, q < 3} k[p*3 + q] * padded[(i + p*dh)*wp + j + q*dw]
 * The rows of the row block above, with the nine taps in vector registers
 * for the whole plane and two output rows summed together: at dh = 1 (the
 * function is instantiated for it) they read four input rows, not six, and
 * each loaded vector serves both. Passes of `width` vectors as there. */
#define CYCONV_PLANE3X3_SIGNATURE(NAME, T)                                              \
    static inline void NAME(                                                            \
        const T *padded, const T *k, T *out, T bias, ptrdiff_t ho, ptrdiff_t wo,        \
        ptrdiff_t wp, ptrdiff_t dh, ptrdiff_t dw)

#define CYCONV_PLANE3X3_PASS(T, width, rows, DH)                                        \
    do {                                                                                \
        cyconv_##T##_vec acc[rows][width];                                              \
        const ptrdiff_t shift = last - j;                                               \
        for (int r = 0; r < (rows); r++)                                                \
            for (int u = 0; u < (width); u++)                                           \
                acc[r][u] = (cyconv_##T##_vec){0} + bias;                               \
        for (int p = 0; p < 3; p++) {                                                   \
            for (int q = 0; q < 3; q++) {                                               \
                for (int r = 0; r < (rows); r++) {                                      \
                    const T *s = padded + (i + r + p * (DH)) * wp + j + q * dw;         \
                    for (int u = 0; u < (width) - 1; u++)                               \
                        acc[r][u] +=                                                    \
                            kv[p * 3 + q] * *(const cyconv_##T##_uvec *)(s + u * V);    \
                    acc[r][(width) - 1] +=                                              \
                        kv[p * 3 + q] * *(const cyconv_##T##_uvec *)(s + shift);        \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < (rows); r++) {                                              \
            for (int u = 0; u < (width) - 1; u++)                                       \
                *(cyconv_##T##_uvec *)(out + (i + r) * wo + j + u * V) = acc[r][u];     \
            *(cyconv_##T##_uvec *)(out + (i + r) * wo + last) = acc[r][(width) - 1];    \
        }                                                                               \
    } while (0)

#define CYCONV_PLANE3X3_CASE(T, n, rows, DH)                                            \
    case n: CYCONV_PLANE3X3_PASS(T, n, rows, DH); break;

/* The output rows i..i+rows-1: passes of 4 vectors, then one of the 1 to 4
 * the rest needs, its last vector ending at wo. */
#define CYCONV_PLANE3X3_ROWS(T, rows, DH)                                               \
    do {                                                                                \
        ptrdiff_t j = 0, last;                                                          \
        for (; j + 4 * V <= wo; j += 4 * V) {                                           \
            last = j + 3 * V;                                                           \
            CYCONV_PLANE3X3_PASS(T, 4, rows, DH);                                       \
        }                                                                               \
        if (j < wo) {                                                                   \
            last = wo - V;                                                              \
            switch ((wo - j + V - 1) / V) {                                             \
            CYCONV_PLANE3X3_CASE(T, 4, rows, DH) CYCONV_PLANE3X3_CASE(T, 3, rows, DH)   \
            CYCONV_PLANE3X3_CASE(T, 2, rows, DH) CYCONV_PLANE3X3_CASE(T, 1, rows, DH)   \
            }                                                                           \
        }                                                                               \
    } while (0)

#define CYCONV_PLANE3X3_ALL(T, DH)                                                      \
    do {                                                                                \
        ptrdiff_t i = 0;                                                                \
        for (; i + 2 <= ho; i += 2)                                                     \
            CYCONV_PLANE3X3_ROWS(T, 2, DH);                                             \
        if (i < ho)                                                                     \
            CYCONV_PLANE3X3_ROWS(T, 1, DH);                                             \
    } while (0)

/* Rows narrower than one vector go to the row block's scalar columns. */
#define CYCONV_DEFINE_PLANE3X3(NAME, ROWBLOCK, T)                                       \
    CYCONV_PLANE3X3_SIGNATURE(NAME, T)                                                  \
    {                                                                                   \
        const ptrdiff_t V = CYCONV_VECTOR_BYTES / sizeof(T);                            \
        cyconv_##T##_vec kv[9];                                                         \
        if (wo < V) {                                                                   \
            for (ptrdiff_t i = 0; i < ho; i++)                                          \
                ROWBLOCK(padded, k, out + i * wo, bias, i, 0, 3, 1, ho + 2 * dh, wp,    \
                         3, 3, 0, dh, dw, 0, wo);                                       \
            return;                                                                     \
        }                                                                               \
        for (int t = 0; t < 9; t++)                                                     \
            kv[t] = (cyconv_##T##_vec){0} + k[t];                                       \
        if (dh == 1)                                                                    \
            CYCONV_PLANE3X3_ALL(T, 1);                                                  \
        else                                                                            \
            CYCONV_PLANE3X3_ALL(T, dh);                                                 \
    }

/* For `width` taps t0..: sums over the plane of gy times the padded input
 * shifted by the tap, one vector accumulator per tap (gy is loaded once for
 * all of them), scalar ones for the columns past the last whole vector. */
#define CYCONV_TAPDOTS_PASS(T, width)                                                   \
    do {                                                                                \
        cyconv_##T##_vec acc[width];                                                    \
        T tail[width];                                                                  \
        const T *src[width];                                                            \
        for (int u = 0; u < (width); u++) {                                             \
            acc[u] = (cyconv_##T##_vec){0};                                             \
            tail[u] = 0;                                                                \
            src[u] = padded + ((t0 + u) / kw) * dh * wp + ((t0 + u) % kw) * dw;         \
        }                                                                               \
        for (ptrdiff_t i = 0; i < ho; i++) {                                            \
            const T *g = gy + i * wo;                                                   \
            ptrdiff_t j = 0;                                                            \
            for (; j + V <= wo; j += V) {                                               \
                const cyconv_##T##_vec gv = *(const cyconv_##T##_uvec *)(g + j);        \
                for (int u = 0; u < (width); u++)                                       \
                    acc[u] += gv * *(const cyconv_##T##_uvec *)(src[u] + i * wp + j);   \
            }                                                                           \
            for (; j < wo; j++)                                                         \
                for (int u = 0; u < (width); u++)                                       \
                    tail[u] += g[j] * src[u][i * wp + j];                               \
        }                                                                               \
        for (int u = 0; u < (width); u++) {                                             \
            T total = tail[u];                                                          \
            for (ptrdiff_t l = 0; l < V; l++)                                           \
                total += acc[u][l];                                                     \
            sums[t0 + u] += total;                                                      \
        }                                                                               \
        t0 += (width);                                                                  \
    } while (0)

#define CYCONV_TAPDOTS_CASE(T, n) case n: CYCONV_TAPDOTS_PASS(T, n); break;

/* The kh*kw taps in as few passes of at most 8 as will do, of even widths
 * (9 taps: 5 then 4), each tap its own chain of multiply-adds. */
#define CYCONV_DEFINE_TAPDOTS(NAME, T)                                                  \
    CYCONV_TAPDOTS_SIGNATURE(NAME, T)                                                   \
    {                                                                                   \
        const ptrdiff_t V = CYCONV_VECTOR_BYTES / sizeof(T), taps = kh * kw;            \
        const ptrdiff_t passes = (taps + 7) / 8;                                        \
        ptrdiff_t t0 = 0;                                                               \
        for (ptrdiff_t pass = 0; pass < passes; pass++) {                               \
            switch ((taps - t0 + (passes - pass) - 1) / (passes - pass)) {              \
            CYCONV_TAPDOTS_CASE(T, 8) CYCONV_TAPDOTS_CASE(T, 7) CYCONV_TAPDOTS_CASE(T, 6) \
            CYCONV_TAPDOTS_CASE(T, 5) CYCONV_TAPDOTS_CASE(T, 4) CYCONV_TAPDOTS_CASE(T, 3) \
            CYCONV_TAPDOTS_CASE(T, 2) CYCONV_TAPDOTS_CASE(T, 1)                         \
            }                                                                           \
        }                                                                               \
    }

/* One block of columns at `col`: the input gradient as three partial sums
 * (one per kernel row, short dependency chains), stored once. */
#define CYCONV_ROWS3X3_BLOCK(T, col, xv, WITH_GI)                                       \
    do {                                                                                \
        cyconv_##T##_vec o[3];                                                          \
        for (int p = 0; p < 3; p++) {                                                   \
            o[p] = (cyconv_##T##_vec){0};                                               \
            for (int q = 0; q < 3; q++) {                                               \
                const cyconv_##T##_vec gv = *(const cyconv_##T##_uvec *)(               \
                    gpad + (y + p * dh) * wb + (col) + q * dw);                         \
                if (WITH_GI)                                                            \
                    o[p] += fk[p * 3 + q] * gv;                                         \
                acc[(2 - p) * 3 + 2 - q] += (xv) * gv;                                  \
            }                                                                           \
        }                                                                               \
        if (WITH_GI)                                                                    \
            *(cyconv_##T##_uvec *)(gi + y * w + (col)) = o[0] + o[1] + o[2];            \
    } while (0)

/* Whole vectors of each row, then one ending at the row's end (its input
 * gradient recomputed, its x lanes already summed zeroed bitwise, so a NaN
 * there stays out); rows narrower than a vector go scalar. */
#define CYCONV_DEFINE_ROWS3X3(NAME, T, I, WITH_GI)                                      \
    CYCONV_ROWS3X3_SIGNATURE(NAME, T)                                                   \
    {                                                                                   \
        typedef I cyconv_mask_t __attribute__((vector_size(CYCONV_VECTOR_BYTES)));      \
        const ptrdiff_t V = CYCONV_VECTOR_BYTES / sizeof(T), rest = w % V;              \
        cyconv_##T##_vec acc[9];                                                        \
        cyconv_mask_t keep;                                                             \
        CYCONV_ROWS3X3_SETUP(T)                                                         \
        for (int t = 0; t < 9; t++)                                                     \
            acc[t] = (cyconv_##T##_vec){0};                                             \
        for (ptrdiff_t l = 0; l < V; l++)                                               \
            keep[l] = l >= V - rest ? -1 : 0;                                           \
        for (ptrdiff_t y = 0; y < h; y++) {                                             \
            if (w < V) {                                                                \
                CYCONV_ROWS3X3_COLUMNS(T, 0, WITH_GI)                                   \
                continue;                                                               \
            }                                                                           \
            ptrdiff_t j = 0;                                                            \
            for (; j + V <= w; j += V) {                                                \
                const cyconv_##T##_vec xv =                                             \
                    *(const cyconv_##T##_uvec *)(x_plane + y * w + j);                  \
                CYCONV_ROWS3X3_BLOCK(T, j, xv, WITH_GI);                                \
            }                                                                           \
            if (rest) {                                                                 \
                const cyconv_##T##_vec xv = (cyconv_##T##_vec)(                         \
                    (cyconv_mask_t)*(const cyconv_##T##_uvec *)(x_plane + y * w + w - V) \
                    & keep);                                                            \
                CYCONV_ROWS3X3_BLOCK(T, w - V, xv, WITH_GI);                            \
            }                                                                           \
        }                                                                               \
        for (int t = 0; t < 9; t++) {                                                   \
            T total = tail[t];                                                          \
            for (ptrdiff_t l = 0; l < V; l++)                                           \
                total += acc[t][l];                                                     \
            sums[t] += total;                                                           \
        }                                                                               \
    }

#else /* no vector extensions: the same sums on scalars */

#define CYCONV_DEFINE_ROWS3X3(NAME, T, I, WITH_GI)                                      \
    CYCONV_ROWS3X3_SIGNATURE(NAME, T)                                                   \
    {                                                                                   \
        CYCONV_ROWS3X3_SETUP(T)                                                         \
        for (ptrdiff_t y = 0; y < h; y++) {                                             \
            CYCONV_ROWS3X3_COLUMNS(T, 0, WITH_GI)                                       \
        }                                                                               \
        for (int t = 0; t < 9; t++)                                                     \
            sums[t] += tail[t];                                                         \
    }

#endif

CYCONV_DEFINE_VECTORS(float)
CYCONV_DEFINE_VECTORS(double)
CYCONV_DEFINE_ROWBLOCK(cyconv_rowblock_float, float)
CYCONV_DEFINE_ROWBLOCK(cyconv_rowblock_double, double)
CYCONV_DEFINE_PLANE3X3(cyconv_plane3x3_float, cyconv_rowblock_float, float)
CYCONV_DEFINE_PLANE3X3(cyconv_plane3x3_double, cyconv_rowblock_double, double)
CYCONV_DEFINE_TAPDOTS(cyconv_tapdots_float, float)
CYCONV_DEFINE_TAPDOTS(cyconv_tapdots_double, double)
CYCONV_DEFINE_ROWS3X3(cyconv_gradrows3x3_float, float, int32_t, 0)
CYCONV_DEFINE_ROWS3X3(cyconv_gradrows3x3_double, double, int64_t, 0)
CYCONV_DEFINE_ROWS3X3(cyconv_backrows3x3_float, float, int32_t, 1)
CYCONV_DEFINE_ROWS3X3(cyconv_backrows3x3_double, double, int64_t, 1)

#endif /* CYCONV_ROWBLOCK_H */
