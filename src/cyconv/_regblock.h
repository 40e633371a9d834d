/* A register-blocked direct convolution for layers with few input channels
 * per group and larger, strided kernels (a network's 7x7 stride-2 stem).
 *
 * im2col unrolls kh*kw copies of such an input and multiplies them by a
 * short (K x C*kh*kw) weight matrix: the copy is as large as the product's
 * work. Here the input is instead copied once, zero-padded and split by
 * column phase (for stride sw, phase r holds the padded columns r, r + sw,
 * r + 2*sw, ...), so that the taps of a row of outputs read consecutive
 * columns of one phase:
 *
 *     xs[((c*hp + y)*sw + r)*ws + m] = xpad[c, y, m*sw + r]
 *     out[k, i, j] = bias[k] + sum_t w[k, t] * xs[i*sh*sw*ws + off[t] + j]
 *
 * with t = (c*kh + p)*kw + q the tap and off[t] = ((c*hp + p*dh)*sw +
 * (q*dw) % sw)*ws + (q*dw) / sw. A tile of KB kernels times NV vectors of
 * consecutive output columns stays in vector registers while every tap is
 * added into it: per tap NV loads of the input and KB broadcast weights feed
 * KB*NV multiply-adds, and the tile is stored once, in NCHW order.
 *
 * GCC/Clang vector extensions give the SIMD width the compiler targets (each
 * SIMD level's build of cyconv._direct its own: SSE2, AVX2 or AVX-512, see
 * meson.build); other compilers get the same sums on scalars. The tile sizes
 * follow the vector registers the target has (32 with AVX-512, else 16):
 * at most CYCONV_RB_TILE accumulators, CYCONV_RB_NV vectors wide.
 * Each function is written once, as a macro, and instantiated for float and
 * double at the end.
 */
#ifndef CYCONV_REGBLOCK_H
#define CYCONV_REGBLOCK_H

#include <stddef.h>
#include <string.h>

#if defined(CYCONV_RB_TILE)
/* tile sizes given on the command line (tuning) */
#elif defined(__AVX512F__)
#define CYCONV_RB_BYTES 64
#define CYCONV_RB_TILE 24
#define CYCONV_RB_NV 6
#elif defined(__AVX__)
#define CYCONV_RB_BYTES 32
#define CYCONV_RB_TILE 12
#define CYCONV_RB_NV 4
#else
#define CYCONV_RB_BYTES 16
#define CYCONV_RB_TILE 12
#define CYCONV_RB_NV 4
#endif
/* Kernels per tile at most. */
#define CYCONV_RB_KB 8
/* Vector registers, and those a tap needs besides the tile's accumulators and
 * the values it reuses (the one being loaded; without FMA also a product). */
#if defined(__AVX512F__)
#define CYCONV_RB_REGS 32
#else
#define CYCONV_RB_REGS 16
#endif
#if defined(__FMA__)
#define CYCONV_RB_TEMPS 1
#else
#define CYCONV_RB_TEMPS 2
#endif

#if !(defined(__GNUC__) || defined(__clang__))
#undef CYCONV_RB_BYTES
#define CYCONV_RB_BYTES 0
#endif

/* Bytes per cache line (x86, ARM64), for the prefetches of the output. */
#define CYCONV_RB_LINE 64

/* Elements per vector: one without vector extensions. */
#define CYCONV_RB_LANES(T) (CYCONV_RB_BYTES ? CYCONV_RB_BYTES / sizeof(T) : 1)

/* Rows y0 <= y < y0 + hp of the padded, phase-split copy of one plane x
 * (h, w) into xs (hp, sw, ws): xs[(y*sw + r)*ws + m] = x[y0 + y - ph, m*sw +
 * r - pw], 0 outside x. */
#define CYCONV_DEFINE_REGBLOCK_SPLIT(NAME, T)                                           \
    static inline void NAME(const T *x, ptrdiff_t h, ptrdiff_t w, T *xs,                \
                            ptrdiff_t y0, ptrdiff_t hp, ptrdiff_t sw, ptrdiff_t ws,     \
                            ptrdiff_t ph, ptrdiff_t pw)                                 \
    {                                                                                   \
        for (ptrdiff_t y = 0; y < hp; y++) {                                            \
            const ptrdiff_t yy = y0 + y - ph;                                           \
            for (ptrdiff_t r = 0; r < sw; r++) {                                        \
                T *dst = xs + (y * sw + r) * ws;                                        \
                if (yy < 0 || yy >= h) {                                                \
                    memset(dst, 0, ws * sizeof(T));                                     \
                    continue;                                                           \
                }                                                                       \
                /* Columns m_lo <= m < m_hi read inside x: a loop without tests. */    \
                const T *src = x + yy * w;                                              \
                ptrdiff_t m_lo = pw - r > 0 ? (pw - r + sw - 1) / sw : 0;               \
                ptrdiff_t m_hi = w + pw - r > 0 ? (w + pw - r + sw - 1) / sw : 0;       \
                m_lo = m_lo < ws ? m_lo : ws;                                           \
                m_hi = m_hi < ws ? (m_hi > m_lo ? m_hi : m_lo) : ws;                    \
                for (ptrdiff_t m = 0; m < m_lo; m++)                                    \
                    dst[m] = 0;                                                         \
                if (sw == 1)                                                            \
                    memcpy(dst + m_lo, src + m_lo + r - pw, (m_hi - m_lo) * sizeof(T)); \
                else                                                                    \
                    for (ptrdiff_t m = m_lo; m < m_hi; m++)                             \
                        dst[m] = src[m * sw + r - pw];                                  \
                for (ptrdiff_t m = m_hi; m < ws; m++)                                   \
                    dst[m] = 0;                                                         \
            }                                                                           \
        }                                                                               \
    }

/* One tile: kernels k < kb (weights w + k*q_len, bias[k]) times the columns
 * j < cols (cols <= nv*V) of one output row (out + k*plane + j), from the
 * phase-split input row at xs (tap t at xs + off[t]). nv and kb are
 * constants where it is inlined, so the tile lives in registers. */
#define CYCONV_DEFINE_REGBLOCK_TILE(NAME, T, VEC, UVEC)                                 \
    static inline __attribute__((always_inline)) void NAME(                             \
        const T *xs, const ptrdiff_t *off, ptrdiff_t taps, const T *w,                  \
        ptrdiff_t q_len, const T *bias, T *out, ptrdiff_t plane, ptrdiff_t cols,        \
        const int nv, const int kb)                                                     \
    {                                                                                   \
        enum { V = CYCONV_RB_LANES(T) };                                       \
        VEC acc[8][8]; /* the kb x nv corner is used */                                            \
        for (int k = 0; k < kb; k++)                                                    \
            for (int v = 0; v < nv; v++)                                                \
                acc[k][v] = (VEC){0} + bias[k];                                         \
        /* The values each tap reuses stay in registers: kb broadcast weights    \
         * (vectors outer) or nv input vectors (kernels outer), whichever is    \
         * fewer, so that kb*nv + min(kb, nv) + 1 registers suffice (16 with   \
         * AVX2: kb 4 x nv 3 spilled an accumulator in the tap loop). */        \
        if (kb > nv) {                                                                  \
            for (ptrdiff_t t = 0; t < taps; t++) {                                      \
                const T *s = xs + off[t];                                               \
                VEC xv[8];                                                              \
                for (int v = 0; v < nv; v++)                                            \
                    xv[v] = *(const UVEC *)(s + v * V);                                 \
                for (int k = 0; k < kb; k++) {                                          \
                    const T wk = w[k * q_len + t];                                      \
                    for (int v = 0; v < nv; v++)                                        \
                        acc[k][v] += wk * xv[v];                                        \
                }                                                                       \
            }                                                                           \
        } else {                                                                        \
            for (ptrdiff_t t = 0; t < taps; t++) {                                      \
                const T *s = xs + off[t];                                               \
                for (int v = 0; v < nv; v++) {                                          \
                    const VEC xv = *(const UVEC *)(s + v * V);                          \
                    for (int k = 0; k < kb; k++)                                        \
                        acc[k][v] += w[k * q_len + t] * xv;                             \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        for (int k = 0; k < kb; k++) {                                                  \
            T *o = out + k * plane;                                                     \
            for (int v = 0; v < nv; v++) {                                              \
                if ((v + 1) * V <= cols) {                                              \
                    *(UVEC *)(o + v * V) = acc[k][v];                                   \
                } else {                                                                \
                    for (ptrdiff_t l = 0; l < cols - v * V; l++)                        \
                        o[v * V + l] = acc[k][v][l];                                    \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        /* Ask for the lines the row's next tile of kernels will store (kb     \
         * rows of nv vectors; past the last tile they are ones a later tile   \
         * or nothing stores, and a prefetch never faults): a store that       \
         * misses waits in the store queue for memory, and loads behind it     \
         * wait too where their low address bits match (at some alignments of \
         * out the stem ran up to 1.27x slower without these). After the       \
         * stores and over whole vectors (constants), so that nothing of this  \
         * holds a register through the tap loops (AVX-512's kept their count  \
         * on the stack). */                                                    \
        for (int k = kb; k < 2 * kb; k++) {                                             \
            for (int l = 0; l < nv * V; l += CYCONV_RB_LINE / sizeof(T))                \
                __builtin_prefetch(out + k * plane + l, 1, 3);                          \
            __builtin_prefetch(out + k * plane + nv * V - 1, 1, 3);                     \
        }                                                                               \
    }

/* The tile sizes a row can need: nv <= CYCONV_RB_NV vectors, kb <= CYCONV_RB_KB
 * kernels, nv*kb <= CYCONV_RB_TILE accumulators that fit in the registers with
 * what the taps reuse (the cases past those are dead code, dropped by the
 * compiler). */
#define CYCONV_RB_CASE(TILE, nv, kb)                                                    \
    case (nv) * 16 + (kb):                                                              \
        if ((nv) <= CYCONV_RB_NV && (nv) * (kb) <= CYCONV_RB_TILE                       \
            && (nv) * (kb) + ((kb) < (nv) ? (kb) : (nv)) + CYCONV_RB_TEMPS              \
               <= CYCONV_RB_REGS)                                                       \
            TILE(s, off, taps, w_k, q_len, bias + k, o, plane, cols, (nv), (kb));       \
        break;
#define CYCONV_RB_CASES(TILE, nv)                                                       \
    CYCONV_RB_CASE(TILE, nv, 1) CYCONV_RB_CASE(TILE, nv, 2)                             \
    CYCONV_RB_CASE(TILE, nv, 3) CYCONV_RB_CASE(TILE, nv, 4)                             \
    CYCONV_RB_CASE(TILE, nv, 5) CYCONV_RB_CASE(TILE, nv, 6)                             \
    CYCONV_RB_CASE(TILE, nv, 7) CYCONV_RB_CASE(TILE, nv, 8)

/* `rows` output rows of the kg kernels of one (image, group): out is the
 * first of them in the plane of kernel 0, the planes `plane` apart; w is
 * (kg, q_len) with q_len = taps, xs the group's phase-split input for these
 * rows, with rows of row_len = sw*ws elements (output row i starts at row
 * i*sh). The columns go in chunks of at most NV vectors, as even as they can
 * be; the kernels in blocks of as many as fill the TILE accumulators with
 * the chunk's vectors (narrow rows take more kernels per tile, so that enough
 * independent sums are in flight), as even as they can be. */
#define CYCONV_DEFINE_REGBLOCK_ROWS(NAME, T, TILE)                                      \
    static void NAME(const T *xs, ptrdiff_t row_len, const ptrdiff_t *off,              \
                     ptrdiff_t taps, const T *w, const T *bias, T *out,                 \
                     ptrdiff_t kg, ptrdiff_t plane, ptrdiff_t wo, ptrdiff_t sh,         \
                     ptrdiff_t rows)                                                    \
    {                                                                                   \
        enum { V = CYCONV_RB_LANES(T) };                                                \
        const ptrdiff_t q_len = taps;                                                   \
        const ptrdiff_t nvec = (wo + V - 1) / V;                                        \
        const ptrdiff_t chunks = (nvec + CYCONV_RB_NV - 1) / CYCONV_RB_NV;              \
        for (ptrdiff_t i = 0; i < rows; i++) {                                          \
            ptrdiff_t vec0 = 0;                                                         \
            for (ptrdiff_t chunk = 0; chunk < chunks; chunk++) {                        \
                const int nv = (int)((nvec - vec0 + (chunks - chunk) - 1)               \
                                     / (chunks - chunk));                               \
                const ptrdiff_t j = vec0 * V;                                           \
                const ptrdiff_t cols = (wo - j < nv * V) ? wo - j : nv * V;             \
                const T *s = xs + i * sh * row_len + j;                                 \
                ptrdiff_t kb_max = CYCONV_RB_TILE / nv < CYCONV_RB_KB                   \
                                   ? CYCONV_RB_TILE / nv : CYCONV_RB_KB;                \
                /* a tile and what its taps reuse fit in the registers (SSE2: 4 x 3 */ \
                /* and 3 x 4 spilled without FMA's fused product) */                    \
                while (kb_max > 1 && kb_max * nv + (kb_max < nv ? kb_max : nv)          \
                                     + CYCONV_RB_TEMPS > CYCONV_RB_REGS)                \
                    kb_max--;                                                           \
                const ptrdiff_t blocks = (kg + kb_max - 1) / kb_max;                    \
                const ptrdiff_t kb_even = (kg + blocks - 1) / blocks;                   \
                for (ptrdiff_t k = 0; k < kg; k += kb_even) {                           \
                    const int kb = (int)(kg - k < kb_even ? kg - k : kb_even);          \
                    const T *w_k = w + k * q_len;                                       \
                    T *o = out + k * plane + i * wo + j;                                \
                    switch (nv * 16 + kb) {                                             \
                    CYCONV_RB_CASES(TILE, 1) CYCONV_RB_CASES(TILE, 2)                   \
                    CYCONV_RB_CASES(TILE, 3) CYCONV_RB_CASES(TILE, 4)                   \
                    CYCONV_RB_CASES(TILE, 5) CYCONV_RB_CASES(TILE, 6)                   \
                    CYCONV_RB_CASES(TILE, 7) CYCONV_RB_CASES(TILE, 8)                   \
                    }                                                                   \
                }                                                                       \
                vec0 += nv;                                                             \
            }                                                                           \
        }                                                                               \
    }

#if CYCONV_RB_BYTES

typedef float cyconv_rb_float_vec __attribute__((vector_size(CYCONV_RB_BYTES)));
typedef float cyconv_rb_float_uvec
    __attribute__((vector_size(CYCONV_RB_BYTES), aligned(sizeof(float)), may_alias));
typedef double cyconv_rb_double_vec __attribute__((vector_size(CYCONV_RB_BYTES)));
typedef double cyconv_rb_double_uvec
    __attribute__((vector_size(CYCONV_RB_BYTES), aligned(sizeof(double)), may_alias));

CYCONV_DEFINE_REGBLOCK_TILE(cyconv_rb_tile_float, float, cyconv_rb_float_vec,
                            cyconv_rb_float_uvec)
CYCONV_DEFINE_REGBLOCK_TILE(cyconv_rb_tile_double, double, cyconv_rb_double_vec,
                            cyconv_rb_double_uvec)

#else /* no vector extensions: one column per "vector" */

#define CYCONV_DEFINE_SCALAR_TILE(NAME, T)                                              \
    static inline void NAME(                                                            \
        const T *xs, const ptrdiff_t *off, ptrdiff_t taps, const T *w,                  \
        ptrdiff_t q_len, const T *bias, T *out, ptrdiff_t plane, ptrdiff_t cols,        \
        const int nv, const int kb)                                                     \
    {                                                                                   \
        for (int k = 0; k < kb; k++)                                                    \
            for (ptrdiff_t j = 0; j < cols; j++) {                                      \
                T acc = bias[k];                                                        \
                for (ptrdiff_t t = 0; t < taps; t++)                                    \
                    acc += w[k * q_len + t] * xs[off[t] + j];                           \
                out[k * plane + j] = acc;                                               \
            }                                                                           \
        (void)nv;                                                                       \
    }
CYCONV_DEFINE_SCALAR_TILE(cyconv_rb_tile_float, float)
CYCONV_DEFINE_SCALAR_TILE(cyconv_rb_tile_double, double)

#endif

CYCONV_DEFINE_REGBLOCK_SPLIT(cyconv_rb_split_float, float)
CYCONV_DEFINE_REGBLOCK_SPLIT(cyconv_rb_split_double, double)
CYCONV_DEFINE_REGBLOCK_ROWS(cyconv_rb_rows_float, float, cyconv_rb_tile_float)
CYCONV_DEFINE_REGBLOCK_ROWS(cyconv_rb_rows_double, double, cyconv_rb_tile_double)

#endif /* CYCONV_REGBLOCK_H */
