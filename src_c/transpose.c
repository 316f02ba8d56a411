#include "transpose.h"

/* dst[k*dk + i*di] = src[k*sk + i*si] for rows k < L and elements i < n. */
#define FSM_MOVE_SCALAR(REAL, L, name)                                                       \
    static void name(const REAL *src, ptrdiff_t sk, ptrdiff_t si, REAL *dst, ptrdiff_t dk,   \
                     ptrdiff_t di, ptrdiff_t n)                                              \
    {                                                                                        \
        for (ptrdiff_t k = 0; k < L; k++)                                                    \
            for (ptrdiff_t i = 0; i < n; i++) dst[k * dk + i * di] = src[k * sk + i * si];   \
    }

FSM_MOVE_SCALAR(float, FSM_LANES_F32, move_scalar_f32)
FSM_MOVE_SCALAR(double, FSM_LANES_F64, move_scalar_f64)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* One 8x8 tile: dst[j*ds + k] = src[k*ss + j] for j, k < 8. */
__attribute__((target("avx"))) static inline void tile_f32(const float *src, ptrdiff_t ss,
                                                           float *dst, ptrdiff_t ds)
{
    __m256 a[8], b[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_loadu_ps(src + k * ss);
    for (int k = 0; k < 8; k += 2) {
        b[k] = _mm256_unpacklo_ps(a[k], a[k + 1]);
        b[k + 1] = _mm256_unpackhi_ps(a[k], a[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        a[k] = _mm256_shuffle_ps(b[k], b[k + 2], 0x44);
        a[k + 1] = _mm256_shuffle_ps(b[k], b[k + 2], 0xEE);
        a[k + 2] = _mm256_shuffle_ps(b[k + 1], b[k + 3], 0x44);
        a[k + 3] = _mm256_shuffle_ps(b[k + 1], b[k + 3], 0xEE);
    }
    /* a[0..3] hold columns 0,1,2,3 (low half) and 4,5,6,7 (high half) of
     * rows 0-3; a[4..7] the same of rows 4-7. */
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(dst + k * ds, _mm256_permute2f128_ps(a[k], a[k + 4], 0x20));
        _mm256_storeu_ps(dst + (k + 4) * ds, _mm256_permute2f128_ps(a[k], a[k + 4], 0x31));
    }
}

/* One 4x4 tile of doubles. */
__attribute__((target("avx"))) static inline void tile_f64(const double *src, ptrdiff_t ss,
                                                           double *dst, ptrdiff_t ds)
{
    __m256d a[4], b[4];
    for (int k = 0; k < 4; k++) a[k] = _mm256_loadu_pd(src + k * ss);
    b[0] = _mm256_unpacklo_pd(a[0], a[1]);
    b[1] = _mm256_unpackhi_pd(a[0], a[1]);
    b[2] = _mm256_unpacklo_pd(a[2], a[3]);
    b[3] = _mm256_unpackhi_pd(a[2], a[3]);
    _mm256_storeu_pd(dst + 0 * ds, _mm256_permute2f128_pd(b[0], b[2], 0x20));
    _mm256_storeu_pd(dst + 1 * ds, _mm256_permute2f128_pd(b[1], b[3], 0x20));
    _mm256_storeu_pd(dst + 2 * ds, _mm256_permute2f128_pd(b[0], b[2], 0x31));
    _mm256_storeu_pd(dst + 3 * ds, _mm256_permute2f128_pd(b[1], b[3], 0x31));
}

/* The whole LxL tiles of a block, tile at column c of the rows going from
 * src + c*sc to dst + c*dc; returns the number of columns they cover. */
#define FSM_TILES(REAL, L, name, tile)                                                      \
    __attribute__((target("avx"))) static ptrdiff_t name(const REAL *src, ptrdiff_t ss,     \
                                                         ptrdiff_t sc, REAL *dst,            \
                                                         ptrdiff_t ds, ptrdiff_t dc,         \
                                                         ptrdiff_t n)                        \
    {                                                                                        \
        ptrdiff_t c = 0;                                                                     \
        for (; c + L <= n; c += L) tile(src + c * sc, ss, dst + c * dc, ds);                 \
        return c;                                                                            \
    }

FSM_TILES(float, FSM_LANES_F32, tiles_f32, tile_f32)
FSM_TILES(double, FSM_LANES_F64, tiles_f64, tile_f64)

static int fsm_has_avx(void)
{
    static int known = -1; /* a benign race: every thread computes the same value */
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx") != 0;
    }
    return known;
}

#define FSM_HAS_TILES() fsm_has_avx()

#else

#define FSM_HAS_TILES() 0
#define tiles_f32(src, ss, sc, dst, ds, dc, n) ((ptrdiff_t)0)
#define tiles_f64(src, ss, sc, dst, ds, dc, n) ((ptrdiff_t)0)

#endif

/* Whole tiles where the CPU has them, the columns left one element at a time. */
#define FSM_BLOCK_MOVES(REAL, L, SUF)                                                       \
    void fsm_rows_to_lanes_##SUF(const REAL *rows, ptrdiff_t n, ptrdiff_t blocks,           \
                                 REAL *lanes)                                                \
    {                                                                                        \
        const int tiles = FSM_HAS_TILES();                                                   \
        for (ptrdiff_t b = 0; b < blocks; b++, rows += L * n, lanes += L * n) {              \
            const ptrdiff_t c = tiles ? tiles_##SUF(rows, n, 1, lanes, L, L, n) : 0;         \
            move_scalar_##SUF(rows + c, n, 1, lanes + c * L, 1, L, n - c);                   \
        }                                                                                    \
    }                                                                                        \
    void fsm_lanes_to_rows_##SUF(const REAL *lanes, ptrdiff_t n, ptrdiff_t blocks,          \
                                 REAL *rows)                                                 \
    {                                                                                        \
        const int tiles = FSM_HAS_TILES();                                                   \
        for (ptrdiff_t b = 0; b < blocks; b++, rows += L * n, lanes += L * n) {              \
            const ptrdiff_t c = tiles ? tiles_##SUF(lanes, L, L, rows, n, 1, n) : 0;         \
            move_scalar_##SUF(lanes + c * L, 1, L, rows + c, n, 1, n - c);                   \
        }                                                                                    \
    }

FSM_BLOCK_MOVES(float, FSM_LANES_F32, f32)
FSM_BLOCK_MOVES(double, FSM_LANES_F64, f64)
