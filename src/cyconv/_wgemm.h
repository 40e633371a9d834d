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
 * GCC/Clang vector extensions give the SIMD width the compiler targets (each
 * SIMD level's build of cyconv._winograd its own, see meson.build); other
 * compilers get the same sums on scalars. The tile follows the vector
 * registers the target has: 32 with AVX-512 (6 x 4 accumulators), else 16
 * (4 x 3). Each function is written once, as a macro, for float and double.
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

/* One tile: kernels k < kb (rows of u) times nv vectors of columns from v,
 * stored to m. nv and kb are constants where it is inlined. */
#define CYCONV_DEFINE_WG_TILE(NAME, T, VEC, UVEC)                                       \
    static inline __attribute__((always_inline)) void NAME(                             \
        const T *u, ptrdiff_t ldu, const T *v, T *m, ptrdiff_t cg, ptrdiff_t ld,        \
        const int nv, const int kb)                                                     \
    {                                                                                   \
        enum { L = CYCONV_WG_BYTES / sizeof(T) };                                       \
        VEC acc[CYCONV_WG_KB][CYCONV_WG_NV];                                            \
        for (int k = 0; k < kb; k++)                                                    \
            for (int j = 0; j < nv; j++)                                                \
                acc[k][j] = (VEC){0};                                                   \
        for (ptrdiff_t c = 0; c < cg; c++) {                                            \
            VEC x[CYCONV_WG_NV];                                                        \
            for (int j = 0; j < nv; j++)                                                \
                x[j] = *(const UVEC *)(v + c * ld + j * L);                             \
            for (int k = 0; k < kb; k++) {                                              \
                const T w = u[k * ldu + c];                                             \
                for (int j = 0; j < nv; j++)                                            \
                    acc[k][j] += w * x[j];                                              \
            }                                                                           \
        }                                                                               \
        for (int k = 0; k < kb; k++)                                                    \
            for (int j = 0; j < nv; j++)                                                \
                *(UVEC *)(m + k * ld + j * L) = acc[k][j];                              \
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

#else /* no vector extensions: one column per "vector" */

#define CYCONV_DEFINE_WG_SCALAR_TILE(NAME, T)                                           \
    static inline void NAME(const T *u, ptrdiff_t ldu, const T *v, T *m, ptrdiff_t cg,  \
                            ptrdiff_t ld, const int nv, const int kb)                   \
    {                                                                                   \
        for (int k = 0; k < kb; k++)                                                    \
            for (int j = 0; j < nv; j++) {                                              \
                T acc = 0;                                                              \
                for (ptrdiff_t c = 0; c < cg; c++)                                      \
                    acc += u[k * ldu + c] * v[c * ld + j];                              \
                m[k * ld + j] = acc;                                                    \
            }                                                                           \
    }
CYCONV_DEFINE_WG_SCALAR_TILE(cyconv_wg_tile_float, float)
CYCONV_DEFINE_WG_SCALAR_TILE(cyconv_wg_tile_double, double)

#endif

/* The tile sizes a product can need: nv <= CYCONV_WG_NV, kb <= CYCONV_WG_KB
 * (the cases past those are dead code, dropped by the compiler). */
#define CYCONV_WG_CASE(TILE, nv, kb)                                                    \
    case (nv) * 16 + (kb):                                                              \
        if ((nv) <= CYCONV_WG_NV && (kb) <= CYCONV_WG_KB)                               \
            TILE(u_k, ldu, v + j, m + k * ld + j, cg, ld, (nv), (kb));                  \
        break;
#define CYCONV_WG_CASES(TILE, nv)                                                       \
    CYCONV_WG_CASE(TILE, nv, 1) CYCONV_WG_CASE(TILE, nv, 2)                             \
    CYCONV_WG_CASE(TILE, nv, 3) CYCONV_WG_CASE(TILE, nv, 4)                             \
    CYCONV_WG_CASE(TILE, nv, 5) CYCONV_WG_CASE(TILE, nv, 6)

/* m = u @ v as described at the top: kernels in blocks of KB (the last one
 * smaller), columns in chunks of NV vectors (the last one narrower). */
#define CYCONV_DEFINE_WG_GEMM(NAME, T, TILE)                                            \
    static void NAME(const T *u, ptrdiff_t ldu, const T *v, T *m, ptrdiff_t kg,         \
                     ptrdiff_t cg, ptrdiff_t nt, ptrdiff_t ld)                          \
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
                switch (nv * 16 + kb) {                                                 \
                CYCONV_WG_CASES(TILE, 1) CYCONV_WG_CASES(TILE, 2)                       \
                CYCONV_WG_CASES(TILE, 3) CYCONV_WG_CASES(TILE, 4)                       \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

CYCONV_DEFINE_WG_GEMM(cyconv_wg_gemm_float, float, cyconv_wg_tile_float)
CYCONV_DEFINE_WG_GEMM(cyconv_wg_gemm_double, double, cyconv_wg_tile_double)

#endif /* CYCONV_WGEMM_H */
