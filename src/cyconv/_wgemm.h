/* The transformed-domain products of Winograd's forward (cyconv._winograd):
 * one small GEMM per transformed position, summed in vector registers
 * straight from the operands' own layouts, with no packing.
 *
 *     m[k*ld + t] = sum_c u[k*ldu + c] * v[c*ld + t]    k < kg, t < nt
 *
 * u is a (kg, cg) block of the transformed kernels (rows ldu apart), v the
 * block's transformed input (cg, ld) and m the products (kg, ld), ld >= nt a
 * multiple of the vector width: columns nt..ld-1 are read and written too
 * (their values are never used). A tile of KB kernels times NV vectors of
 * columns stays in registers while every channel is added into it: per
 * channel NV loads of v and KB broadcasts of u feed KB*NV multiply-adds.
 * The kernels' rows of u (KB*cg values) stay in L1 while the tile moves
 * along the columns; v (cg x ld, sized by the caller to stay in L2) is read
 * once per block of kernels. OpenBLAS instead packs u and v into its panel
 * layouts on every call, which at these sizes (a few hundred columns) cost
 * about a third of its multiply time.
 *
 * The same tile also serves a packed GEMM (cyconv_pg_gemm_*, below) for
 * operands too large to be read as they lie: the 1x1 layers'
 * (cyconv._pointwise).
 *
 * GCC/Clang vector extensions give the SIMD width the compiler targets (each
 * SIMD level's build of cyconv._winograd and cyconv._pointwise its own, see
 * meson.build); other compilers get the same sums on scalars. The tile
 * follows the vector registers the target has: 32 with AVX-512 (6 x 4
 * accumulators, 8 x 3 packed), else 16 (4 x 3). Each function is written
 * once, as a macro, for float and double.
 */
#ifndef CYCONV_WGEMM_H
#define CYCONV_WGEMM_H

#include <stddef.h>

#if defined(CYCONV_WG_KB)
/* tile sizes given on the command line (tuning) */
#elif defined(__AVX512F__)
#define CYCONV_WG_BYTES 64
#define CYCONV_WG_KB 6
#define CYCONV_WG_NV 4
#elif defined(__AVX__)
#define CYCONV_WG_BYTES 32
#define CYCONV_WG_KB 4
#define CYCONV_WG_NV 3
#else
#define CYCONV_WG_BYTES 16
#define CYCONV_WG_KB 4
#define CYCONV_WG_NV 3
#endif

/* The packed GEMM's tile and chunk (cyconv_pg_gemm_*, below). On AVX-512,
 * the 1x1 layer's GEMM in cache, one thread: 8 x 3 ran at 168-171 GFLOP/s,
 * 4 x 6 170, 6 x 4 151-160, 7 x 4 153, 9 x 3 (past the 32 registers) 124;
 * chunks of 128 channels 171, of 64 161, 96 168, 192 168, 256 (the whole
 * L1 for the panel) 154. */
#if defined(CYCONV_PG_KB)
/* given on the command line (tuning) */
#elif defined(__AVX512F__)
#define CYCONV_PG_KB 8
#define CYCONV_PG_NV 3
#else
#define CYCONV_PG_KB 4
#define CYCONV_PG_NV 3
#endif
#ifndef CYCONV_PG_KC
#define CYCONV_PG_KC 128
#endif

/* The largest tile either uses (the size of the accumulators' array). */
#define CYCONV_WG_KB_MAX 8
#define CYCONV_WG_NV_MAX 4

#if !(defined(__GNUC__) || defined(__clang__))
#undef CYCONV_WG_BYTES
#define CYCONV_WG_BYTES 0
#endif

/* Elements per vector: one without vector extensions. ld must be a multiple
 * of it; CYCONV_WG_MAX_LANES (16: float32 in 64-byte vectors) is a multiple
 * of every level's. */
#define CYCONV_WG_LANES(T) (CYCONV_WG_BYTES ? CYCONV_WG_BYTES / (ptrdiff_t)sizeof(T) : 1)
#define CYCONV_WG_MAX_LANES 16

#if CYCONV_WG_BYTES

/* One tile: kernels k < kb (element (k, c) of u at u[k*ldu + c]) times
 * nv vectors of columns of v (rows ldv apart), stored to m (rows ldm apart).
 * The sums start from m itself where ``accumulate``, else from bias[k] (0
 * where bias is NULL). nv, kb and the constant arguments fold where it is
 * inlined. */
#define CYCONV_DEFINE_WG_TILE(NAME, T, VEC, UVEC)                                       \
    static inline __attribute__((always_inline)) void NAME(                             \
        const T *u, ptrdiff_t ldu, const T *v, ptrdiff_t ldv, T *m, ptrdiff_t ldm,      \
        ptrdiff_t cg, const T *bias, int accumulate, const int nv, const int kb)        \
    {                                                                                   \
        enum { L = CYCONV_WG_BYTES / sizeof(T) };                                       \
        VEC acc[CYCONV_WG_KB_MAX][CYCONV_WG_NV_MAX];                                    \
        for (int k = 0; k < kb; k++)                                                    \
            for (int j = 0; j < nv; j++) {                                              \
                if (accumulate)                                                         \
                    acc[k][j] = *(const UVEC *)(m + k * ldm + j * L);                   \
                else                                                                    \
                    acc[k][j] = (VEC){0} + (bias ? bias[k] : (T)0);                     \
            }                                                                           \
        for (ptrdiff_t c = 0; c < cg; c++) {                                            \
            VEC x[CYCONV_WG_NV_MAX];                                                    \
            for (int j = 0; j < nv; j++)                                                \
                x[j] = *(const UVEC *)(v + c * ldv + j * L);                            \
            for (int k = 0; k < kb; k++) {                                              \
                const T w = u[k * ldu + c];                                             \
                for (int j = 0; j < nv; j++)                                            \
                    acc[k][j] += w * x[j];                                              \
            }                                                                           \
        }                                                                               \
        for (int k = 0; k < kb; k++)                                                    \
            for (int j = 0; j < nv; j++)                                                \
                *(UVEC *)(m + k * ldm + j * L) = acc[k][j];                             \
    }

typedef float cyconv_wg_float_vec __attribute__((vector_size(CYCONV_WG_BYTES)));
typedef float cyconv_wg_float_uvec
    __attribute__((vector_size(CYCONV_WG_BYTES), aligned(sizeof(float)), may_alias));
typedef double cyconv_wg_double_vec __attribute__((vector_size(CYCONV_WG_BYTES)));
typedef double cyconv_wg_double_uvec
    __attribute__((vector_size(CYCONV_WG_BYTES), aligned(sizeof(double)), may_alias));

CYCONV_DEFINE_WG_TILE(cyconv_wg_tile_float, float, cyconv_wg_float_vec, cyconv_wg_float_uvec)
CYCONV_DEFINE_WG_TILE(cyconv_wg_tile_double, double, cyconv_wg_double_vec,
                      cyconv_wg_double_uvec)
#define CYCONV_WG_ALIGN __attribute__((aligned(64)))

#else /* no vector extensions: one column per "vector" */

#define CYCONV_DEFINE_WG_SCALAR_TILE(NAME, T)                                           \
    static inline void NAME(const T *u, ptrdiff_t ldu, const T *v, ptrdiff_t ldv, T *m, \
                            ptrdiff_t ldm, ptrdiff_t cg,                                \
                            const T *bias, int accumulate, const int nv, const int kb)  \
    {                                                                                   \
        for (int k = 0; k < kb; k++)                                                    \
            for (int j = 0; j < nv; j++) {                                              \
                T acc = accumulate ? m[k * ldm + j] : (bias ? bias[k] : (T)0);          \
                for (ptrdiff_t c = 0; c < cg; c++)                                      \
                    acc += u[k * ldu + c] * v[c * ldv + j];                             \
                m[k * ldm + j] = acc;                                                   \
            }                                                                           \
    }
CYCONV_DEFINE_WG_SCALAR_TILE(cyconv_wg_tile_float, float)
CYCONV_DEFINE_WG_SCALAR_TILE(cyconv_wg_tile_double, double)
#define CYCONV_WG_ALIGN

#endif

/* A switch over the tile sizes a product can need, nv <= NV and kb <= KB
 * (the cases past those are dead code, dropped by the compiler); each case
 * runs CALL(TILE, nv, kb), a macro over the caller's variables. */
#define CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, kb)                                      \
    case (nv) * 16 + (kb):                                                              \
        if ((nv) <= (NV) && (kb) <= (KB))                                               \
            CALL(TILE, (nv), (kb));                                                     \
        break;
#define CYCONV_WG_CASES(CALL, TILE, NV, KB, nv)                                         \
    CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 1) CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 2) \
    CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 3) CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 4) \
    CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 5) CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 6) \
    CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 7) CYCONV_WG_CASE(CALL, TILE, NV, KB, nv, 8)
#define CYCONV_WG_SWITCH(CALL, TILE, NV, KB, nv, kb)                                    \
    switch ((nv) * 16 + (kb)) {                                                         \
    CYCONV_WG_CASES(CALL, TILE, NV, KB, 1) CYCONV_WG_CASES(CALL, TILE, NV, KB, 2)       \
    CYCONV_WG_CASES(CALL, TILE, NV, KB, 3) CYCONV_WG_CASES(CALL, TILE, NV, KB, 4)       \
    }

/* m = u @ v as described at the top: kernels in blocks of KB (the last one
 * smaller), columns in chunks of NV vectors (the last one narrower). */
#define CYCONV_WG_UNPACKED(TILE, nv, kb)                                                \
    TILE(u_k, ldu, v + j, ld, m + k * ld + j, ld, cg, NULL, 0, nv, kb)
#define CYCONV_DEFINE_WG_GEMM(NAME, T, TILE)                                            \
    static inline void NAME(const T *u, ptrdiff_t ldu, const T *v, T *m, ptrdiff_t kg,  \
                            ptrdiff_t cg, ptrdiff_t nt, ptrdiff_t ld)                   \
    {                                                                                   \
        const ptrdiff_t lanes = CYCONV_WG_LANES(T);                                     \
        const ptrdiff_t nvec = (nt + lanes - 1) / lanes;                                \
        for (ptrdiff_t k = 0; k < kg; k += CYCONV_WG_KB) {                              \
            const int kb = (int)(kg - k < CYCONV_WG_KB ? kg - k : CYCONV_WG_KB);        \
            const T *u_k = u + k * ldu;                                                 \
            for (ptrdiff_t vec = 0; vec < nvec; vec += CYCONV_WG_NV) {                  \
                const int nv = (int)(nvec - vec < CYCONV_WG_NV ? nvec - vec             \
                                                               : CYCONV_WG_NV);         \
                const ptrdiff_t j = vec * lanes;                                        \
                CYCONV_WG_SWITCH(CYCONV_WG_UNPACKED, TILE, CYCONV_WG_NV, CYCONV_WG_KB,  \
                                 nv, kb)                                                \
            }                                                                           \
        }                                                                               \
    }

CYCONV_DEFINE_WG_GEMM(cyconv_wg_gemm_float, float, cyconv_wg_tile_float)
CYCONV_DEFINE_WG_GEMM(cyconv_wg_gemm_double, double, cyconv_wg_tile_double)

/* A transposed copy, dst[c*ldd + t] = src[t*lds + c] for c < rows, t < cols
 * (a weight gradient's packed panels, below). On AVX-512 float32 goes by
 * 16 x 16 blocks transposed in registers (4 rounds of 2-input shuffles):
 * copied one element at a time, the transpose took 17-20% of the 1x1
 * weight gradient's time. */
#define CYCONV_DEFINE_PG_TRANSPOSE(NAME, T)                                             \
    static inline void NAME(const T *src, ptrdiff_t lds, T *dst, ptrdiff_t ldd,         \
                            ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t done_rows,        \
                            ptrdiff_t done_cols)                                        \
    {                                                                                   \
        /* The block rows < done_rows, cols < done_cols is done already (a              \
         * multiple of 8 each). The rest by 8 x 8 blocks: column by column, a           \
         * weight's power-of-two rows fell into one L1 set (7 ms for 512 x 2048         \
         * doubles), and 16 lines of one set are more than its 12 ways. */              \
        for (ptrdiff_t t0 = 0; t0 < cols; t0 += 8)                                      \
            for (ptrdiff_t c0 = t0 < done_cols ? done_rows : 0; c0 < rows; c0 += 8)     \
                for (ptrdiff_t t = t0; t < t0 + 8 && t < cols; t++)                     \
                    for (ptrdiff_t c = c0; c < c0 + 8 && c < rows; c++)                 \
                        dst[c * ldd + t] = src[t * lds + c];                            \
    }
CYCONV_DEFINE_PG_TRANSPOSE(cyconv_pg_transpose_rest_float, float)
CYCONV_DEFINE_PG_TRANSPOSE(cyconv_pg_transpose_rest_double, double)

static inline void cyconv_pg_transpose_double(const double *src, ptrdiff_t lds, double *dst,
                                              ptrdiff_t ldd, ptrdiff_t rows, ptrdiff_t cols)
{
    cyconv_pg_transpose_rest_double(src, lds, dst, ldd, rows, cols, 0, 0);
}

#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
static inline void cyconv_pg_transpose16(const float *src, ptrdiff_t lds, float *dst,
                                         ptrdiff_t ldd)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i++) {  /* 32-bit elements of row pairs interleaved */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  /* then 64-bit pairs */
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int i = 0; i < 2; i++)  /* then 128-bit lanes, twice */
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
            t[8 * i + j + 4] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
    }
    for (int i = 0; i < 16; i++)  /* r[i]: column i of the block */
        _mm512_storeu_ps(dst + i * ldd, r[i]);
}

static inline void cyconv_pg_transpose_float(const float *src, ptrdiff_t lds, float *dst,
                                             ptrdiff_t ldd, ptrdiff_t rows, ptrdiff_t cols)
{
    const ptrdiff_t rows16 = rows / 16 * 16, cols16 = cols / 16 * 16;
    for (ptrdiff_t t = 0; t < cols16; t += 16)
        for (ptrdiff_t c = 0; c < rows16; c += 16)
            cyconv_pg_transpose16(src + t * lds + c, lds, dst + c * ldd + t, ldd);
    cyconv_pg_transpose_rest_float(src, lds, dst, ldd, rows, cols, rows16, cols16);
}
#else
static inline void cyconv_pg_transpose_float(const float *src, ptrdiff_t lds, float *dst,
                                             ptrdiff_t ldd, ptrdiff_t rows, ptrdiff_t cols)
{
    cyconv_pg_transpose_rest_float(src, lds, dst, ldd, rows, cols, 0, 0);
}
#endif

/* The packed GEMM, for operands too large to sum as they lie (a 1x1 layer:
 * 512 x 256 kernels times 256 x 784 pixels):
 *
 *     m[k*ldm + t] = start[k, t] + sum_c u[k*ldu + c] * v[c, t]
 *
 * for k < kg, t < nt, c < cg, where start is m itself where ``accumulate``,
 * else bias[k] (0 where bias is NULL); v[c, t] is v[c*ldv + t], or
 * v[t*ldv + c] where ``vt`` (v transposed: a weight gradient's x). u is read
 * as it lies: read transposed (rows 1 KB apart) its broadcasts' lines fell
 * into a few L1 sets, and the 1x1 input gradient took 1.23x the time it
 * takes with the weight transposed first.
 * The columns go in panels of at most NV vectors, the channels in chunks of
 * KC: a chunk of a panel is copied (zero-padded past nt) into a buffer of
 * KC x NV vectors (24 KB) that stays in L1 while every block of KB kernels
 * sums over it; the next chunk's sums add onto m. Unpacked, each channel's
 * vectors are a row of v apart and every kernel block reads them from L2
 * again: 160 GFLOP/s on the 1x1 layer's GEMM (one thread, AVX-512, operands
 * in cache) against 171 packed, and OpenBLAS's 145. A panel's last partial
 * vector goes through a small buffer, so nothing past column nt of m is read
 * or written. */
#define CYCONV_PG_PACKED(TILE, nv, kb)                                                  \
    TILE(u_k, ldu, panel, NR, dst, ldd, kc, bias_k, added, nv, kb)
/* Panel p (its share of the vectors) and the chunk from c0. */
#define CYCONV_PG_STEP(NAME, p, c0)                                                     \
    do {                                                                                \
        const ptrdiff_t t0 = (p) * nvec / panels * L;                                   \
        const ptrdiff_t t1 = ((p) + 1) * nvec / panels * L;                             \
        NAME##_step(u, ldu, v, ldv, vt, m, ldm, kg, cg, nt, bias, accumulate, t0,       \
                    (t1 < nt ? t1 : nt) - t0, (c0), panel, edge);                       \
    } while (0)
#define CYCONV_DEFINE_PG_GEMM(NAME, T, TILE, TRANSPOSE)                                 \
    /* One chunk of channels (from c0) of one panel of columns (from t0). */            \
    static inline void NAME##_step(const T *u, ptrdiff_t ldu, const T *v,               \
                                   ptrdiff_t ldv, int vt, T *m, ptrdiff_t ldm,          \
                                   ptrdiff_t kg, ptrdiff_t cg, ptrdiff_t nt,            \
                                   const T *bias, int accumulate, ptrdiff_t t0,         \
                                   ptrdiff_t cols, ptrdiff_t c0, T *panel, T *edge)     \
    {                                                                                   \
        enum { L = CYCONV_WG_BYTES ? CYCONV_WG_BYTES / sizeof(T) : 1,                   \
               NR = CYCONV_PG_NV * L };                                                 \
        const int nv = (int)((cols + L - 1) / L);                                       \
        const int partial = cols != (ptrdiff_t)nv * L;                                  \
        const ptrdiff_t kc = cg - c0 < CYCONV_PG_KC ? cg - c0 : CYCONV_PG_KC;           \
        const int added = accumulate || c0 > 0;                                         \
        if (!vt) {                                                                      \
            for (ptrdiff_t c = 0; c < kc; c++) {                                        \
                const T *row = v + (c0 + c) * ldv + t0;                                 \
                for (ptrdiff_t t = 0; t < cols; t++)                                    \
                    panel[c * NR + t] = row[t];                                         \
                /* The panel after next's lines of this row, into L2: a hardware        \
                 * prefetcher follows fewer streams than the rows (1.03-1.07x,          \
                 * operands from memory, one thread). */                                \
                if (t0 + 3 * NR <= nt)                                                  \
                    for (ptrdiff_t t = 0; t <= NR; t += 64 / sizeof(T))                 \
                        __builtin_prefetch(row + 2 * NR + t, 0, 2);                     \
            }                                                                           \
        } else {                                                                        \
            TRANSPOSE(v + t0 * ldv + c0, ldv, panel, NR, kc, cols);                     \
        }                                                                               \
        for (ptrdiff_t c = 0; c < kc; c++)                                              \
            for (ptrdiff_t t = cols; t < (ptrdiff_t)nv * L; t++)                        \
                panel[c * NR + t] = 0;                                                  \
        for (ptrdiff_t k = 0; k < kg; k += CYCONV_PG_KB) {                              \
            const int kb = (int)(kg - k < CYCONV_PG_KB ? kg - k : CYCONV_PG_KB);        \
            const T *u_k = u + k * ldu + c0;                                            \
            /* The first panel reads u's chunk from memory: its rows for two            \
             * blocks on, into L2 (the 1x1 weight gradient, whose u is                  \
             * grad_output: 1.06-1.10x, one thread). */                                 \
            if (t0 == 0 && k + 3 * CYCONV_PG_KB <= kg)                                  \
                for (int r = 0; r < CYCONV_PG_KB; r++)                                  \
                    for (ptrdiff_t c = 0; c < kc; c += 64 / sizeof(T))                  \
                        __builtin_prefetch(u_k + (2 * CYCONV_PG_KB + r) * ldu + c, 0, 2); \
            const T *bias_k = bias ? bias + k : NULL;                                   \
            T *dst = partial ? edge : m + k * ldm + t0;                                 \
            const ptrdiff_t ldd = partial ? NR : ldm;                                   \
            if (partial && added)                                                       \
                for (int r = 0; r < kb; r++)                                            \
                    for (ptrdiff_t t = 0; t < cols; t++)                                \
                        edge[r * NR + t] = m[(k + r) * ldm + t0 + t];                   \
            CYCONV_WG_SWITCH(CYCONV_PG_PACKED, TILE, CYCONV_PG_NV, CYCONV_PG_KB, nv, kb) \
            if (partial)                                                                \
                for (int r = 0; r < kb; r++)                                            \
                    for (ptrdiff_t t = 0; t < cols; t++)                                \
                        m[(k + r) * ldm + t0 + t] = edge[r * NR + t];                   \
        }                                                                               \
    }                                                                                   \
                                                                                        \
    /* The steps panel by panel, or chunk by chunk where the chunks are the             \
     * more: the operand read again at each outer step is then the smaller,             \
     * u (kg x cg) or m (kg x nt). A weight gradient's sums run over 784                \
     * pixels into 256 columns: panel by panel, all of grad_output (1.6 MB)             \
     * came from L3 for each panel. The panels share the vectors evenly (256            \
     * columns: 4 panels of 3 vectors and 2 of 2, not 5 of 3 and 1 of 1, a              \
     * tile of 8 multiply-adds per 9 loads). */                                         \
    static inline void NAME(const T *u, ptrdiff_t ldu, const T *v,                      \
                            ptrdiff_t ldv, int vt, T *m, ptrdiff_t ldm,                 \
                            ptrdiff_t kg, ptrdiff_t cg, ptrdiff_t nt, const T *bias,    \
                            int accumulate)                                             \
    {                                                                                   \
        enum { L = CYCONV_WG_BYTES ? CYCONV_WG_BYTES / sizeof(T) : 1,                   \
               NR = CYCONV_PG_NV * L };                                                 \
        T panel[CYCONV_PG_KC * NR] CYCONV_WG_ALIGN;                                     \
        T edge[CYCONV_PG_KB * NR] CYCONV_WG_ALIGN;                                      \
        const ptrdiff_t nvec = (nt + L - 1) / L;                                        \
        const ptrdiff_t panels = (nvec + CYCONV_PG_NV - 1) / CYCONV_PG_NV;              \
        if (cg > nt) {                                                                  \
            for (ptrdiff_t c0 = 0; c0 < cg; c0 += CYCONV_PG_KC)                         \
                for (ptrdiff_t p = 0; p < panels; p++)                                  \
                    CYCONV_PG_STEP(NAME, p, c0);                                        \
        } else {                                                                        \
            for (ptrdiff_t p = 0; p < panels; p++)                                      \
                for (ptrdiff_t c0 = 0; c0 < cg; c0 += CYCONV_PG_KC)                     \
                    CYCONV_PG_STEP(NAME, p, c0);                                        \
        }                                                                               \
    }

CYCONV_DEFINE_PG_GEMM(cyconv_pg_gemm_float, float, cyconv_wg_tile_float,
                      cyconv_pg_transpose_float)
CYCONV_DEFINE_PG_GEMM(cyconv_pg_gemm_double, double, cyconv_wg_tile_double,
                      cyconv_pg_transpose_double)

#endif /* CYCONV_WGEMM_H */
