#include "transpose.h"

/* Where row r (a multiple of the tile size) of a lane form `width` wide
 * starts: in the group of `width` rows that holds it, at its lane. */
#define FSM_LANES_OF(lanes, r, n, width) ((lanes) + (r) / (width) * (width) * (n) + (r) % (width))

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

/* Transposes the 8x8 tile in a[0..7] (a[k] = row k) in registers: a[j]
 * becomes column j. */
__attribute__((target("avx"))) static inline void transpose_f32(__m256 a[8])
{
    __m256 b[8];
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
        b[k] = _mm256_permute2f128_ps(a[k], a[k + 4], 0x20);
        b[k + 4] = _mm256_permute2f128_ps(a[k], a[k + 4], 0x31);
    }
    for (int k = 0; k < 8; k++) a[k] = b[k];
}

/* One 8x8 tile: dst[j*ds + k] = src[k*ss + j] for j, k < 8. */
__attribute__((target("avx"))) static inline void tile_f32(const float *src, ptrdiff_t ss,
                                                           float *dst, ptrdiff_t ds)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_loadu_ps(src + k * ss);
    transpose_f32(a);
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + k * ds, a[k]);
}

/* The 4x4 tile of doubles in a[0..3], transposed in registers. */
__attribute__((target("avx"))) static inline void transpose_f64(__m256d a[4])
{
    const __m256d b0 = _mm256_unpacklo_pd(a[0], a[1]), b1 = _mm256_unpackhi_pd(a[0], a[1]);
    const __m256d b2 = _mm256_unpacklo_pd(a[2], a[3]), b3 = _mm256_unpackhi_pd(a[2], a[3]);
    a[0] = _mm256_permute2f128_pd(b0, b2, 0x20);
    a[1] = _mm256_permute2f128_pd(b1, b3, 0x20);
    a[2] = _mm256_permute2f128_pd(b0, b2, 0x31);
    a[3] = _mm256_permute2f128_pd(b1, b3, 0x31);
}

/* One 4x4 tile of doubles. */
__attribute__((target("avx"))) static inline void tile_f64(const double *src, ptrdiff_t ss,
                                                           double *dst, ptrdiff_t ds)
{
    __m256d a[4];
    for (int k = 0; k < 4; k++) a[k] = _mm256_loadu_pd(src + k * ss);
    transpose_f64(a);
    for (int k = 0; k < 4; k++) _mm256_storeu_pd(dst + k * ds, a[k]);
}

/* Tails of two columns (rows of 10 leave them), moved as one 8- or 16-byte
 * piece a row and unpacked, instead of a tile transposed for two of its
 * columns: softmax of 16384 rows of 10 floats in cache 5-8% faster, of 2
 * floats 9%, of 10 doubles 2-3%.  In: dst[j*ds + k] = src[k*ss + j] for
 * j < 2 and k < L; out: the reverse, writing nothing past the rows. */
__attribute__((target("avx"))) static inline void pairs_in_f32(const float *src, ptrdiff_t ss,
                                                               float *dst, ptrdiff_t ds)
{
    __m128 q[4]; /* q[j]: rows 2j and 2j + 1 */
    for (int j = 0; j < 4; j++)
        q[j] = _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(src + 2 * j * ss)),
                            (const __m64 *)(src + (2 * j + 1) * ss));
    const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(q[0]), q[2], 1);
    const __m256 b = _mm256_insertf128_ps(_mm256_castps128_ps256(q[1]), q[3], 1);
    _mm256_storeu_ps(dst, _mm256_shuffle_ps(a, b, 0x88));
    _mm256_storeu_ps(dst + ds, _mm256_shuffle_ps(a, b, 0xDD));
}

__attribute__((target("avx"))) static inline void pairs_out_f32(const float *src, ptrdiff_t ss,
                                                                float *dst, ptrdiff_t ds)
{
    const __m256 c0 = _mm256_loadu_ps(src), c1 = _mm256_loadu_ps(src + ss);
    const __m256 lo = _mm256_unpacklo_ps(c0, c1), hi = _mm256_unpackhi_ps(c0, c1);
    const __m128 q[4] = {_mm256_castps256_ps128(lo), _mm256_castps256_ps128(hi),
                         _mm256_extractf128_ps(lo, 1), _mm256_extractf128_ps(hi, 1)};
    for (int j = 0; j < 4; j++) {
        _mm_storel_pi((__m64 *)(dst + 2 * j * ds), q[j]);
        _mm_storeh_pi((__m64 *)(dst + (2 * j + 1) * ds), q[j]);
    }
}

__attribute__((target("avx"))) static inline void pairs_in_f64(const double *src, ptrdiff_t ss,
                                                               double *dst, ptrdiff_t ds)
{
    const __m256d a = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(src)),
                                           _mm_loadu_pd(src + 2 * ss), 1);
    const __m256d b = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(src + ss)),
                                           _mm_loadu_pd(src + 3 * ss), 1);
    _mm256_storeu_pd(dst, _mm256_unpacklo_pd(a, b));
    _mm256_storeu_pd(dst + ds, _mm256_unpackhi_pd(a, b));
}

__attribute__((target("avx"))) static inline void pairs_out_f64(const double *src, ptrdiff_t ss,
                                                                double *dst, ptrdiff_t ds)
{
    const __m256d c0 = _mm256_loadu_pd(src), c1 = _mm256_loadu_pd(src + ss);
    const __m256d lo = _mm256_unpacklo_pd(c0, c1), hi = _mm256_unpackhi_pd(c0, c1);
    _mm_storeu_pd(dst, _mm256_castpd256_pd128(lo));
    _mm_storeu_pd(dst + ds, _mm256_castpd256_pd128(hi));
    _mm_storeu_pd(dst + 2 * ds, _mm256_extractf128_pd(lo, 1));
    _mm_storeu_pd(dst + 3 * ds, _mm256_extractf128_pd(hi, 1));
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

/* Tiles for the w < L columns left over at the end of short rows (w >= 1;
 * two of them as pairs, above).  In: masked loads read those columns only,
 * never past the rows' end.  Out: each row is stored L wide, running L - w
 * elements past its end.  The
 * moves of whole blocks take w = n % L as a constant (CASES lists them),
 * so that the compiler drops the shuffles of the columns not kept (in) and
 * of the zero vectors (out): softmax of rows of 3 to 20 floats 4-17%
 * faster. */
#define FSM_TAILS(REAL, L, VEC, X, IOTA, SUF, CASES)                                         \
    __attribute__((target("avx"))) static inline void tail_in_##SUF(                         \
        const REAL *src, ptrdiff_t ss, REAL *dst, ptrdiff_t ds, ptrdiff_t w)                 \
    {                                                                                        \
        if (w == 2) {                                                                        \
            pairs_in_##SUF(src, ss, dst, ds);                                                \
            return;                                                                          \
        }                                                                                    \
        const VEC mask = _mm256_cmp_##X(IOTA, _mm256_set1_##X((REAL)w), _CMP_LT_OQ);        \
        VEC a[L];                                                                            \
        for (int k = 0; k < L; k++)                                                          \
            a[k] = _mm256_maskload_##X(src + k * ss, _mm256_cast##X##_si256(mask));          \
        transpose_##SUF(a);                                                                  \
        for (ptrdiff_t j = 0; j < w; j++) _mm256_storeu_##X(dst + j * ds, a[j]);             \
    }                                                                                        \
    __attribute__((target("avx"))) static inline void tail_out_##SUF(                        \
        const REAL *src, ptrdiff_t ss, REAL *dst, ptrdiff_t ds, ptrdiff_t w)                 \
    {                                                                                        \
        if (w == 2) {                                                                        \
            pairs_out_##SUF(src, ss, dst, ds);                                               \
            return;                                                                          \
        }                                                                                    \
        VEC a[L];                                                                            \
        for (ptrdiff_t j = 0; j < L; j++)                                                    \
            a[j] = j < w ? _mm256_loadu_##X(src + j * ss) : _mm256_setzero_##X();            \
        transpose_##SUF(a);                                                                  \
        for (int k = 0; k < L; k++) _mm256_storeu_##X(dst + k * ds, a[k]);                  \
    }                                                                                        \
    __attribute__((target("avx"), always_inline)) static inline void tiled_in_w_##SUF(       \
        const REAL *rows, ptrdiff_t n, ptrdiff_t count, ptrdiff_t width, REAL *lanes,        \
        ptrdiff_t w)                                                                         \
    {                                                                                        \
        for (ptrdiff_t r = 0; r < count; r += L) {                                           \
            REAL *to = FSM_LANES_OF(lanes, r, n, width);                                     \
            const ptrdiff_t c = tiles_##SUF(rows + r * n, n, 1, to, width, width, n);        \
            if (w) tail_in_##SUF(rows + r * n + c, n, to + c * width, width, w);             \
        }                                                                                    \
    }                                                                                        \
    /* The tail first: the tiles after it, and the next block, overwrite what                \
     * it wrote past its rows. */                                                            \
    __attribute__((target("avx"), always_inline)) static inline void tiled_out_w_##SUF(      \
        const REAL *lanes, ptrdiff_t n, ptrdiff_t count, ptrdiff_t width, REAL *rows,        \
        ptrdiff_t w)                                                                         \
    {                                                                                        \
        const ptrdiff_t c = n - w;                                                           \
        for (ptrdiff_t r = 0; r < count; r += L) {                                           \
            const REAL *from = FSM_LANES_OF(lanes, r, n, width);                             \
            if (w) tail_out_##SUF(from + c * width, width, rows + r * n + c, n, w);          \
            tiles_##SUF(from, width, width, rows + r * n, n, 1, n);                          \
        }                                                                                    \
    }                                                                                        \
    __attribute__((target("avx"))) static void tiled_in_##SUF(const REAL *rows, ptrdiff_t n, \
                                                              ptrdiff_t count,               \
                                                              ptrdiff_t width, REAL *lanes)  \
    {                                                                                        \
        switch (n % L) { CASES(tiled_in_w_##SUF, rows, n, count, width, lanes) }             \
    }                                                                                        \
    __attribute__((target("avx"))) static void tiled_out_##SUF(const REAL *lanes,            \
                                                               ptrdiff_t n, ptrdiff_t count, \
                                                               ptrdiff_t width, REAL *rows)  \
    {                                                                                        \
        switch (n % L) { CASES(tiled_out_w_##SUF, lanes, n, count, width, rows) }            \
    }

/* The cases w = 0 .. L - 1 of FSM_TAILS, each calling f(a, b, c, d, e, w). */
#define FSM_TAIL_CASE(f, a, b, c, d, e, w) \
    case w:                                \
        f(a, b, c, d, e, w);               \
        break;
#define FSM_TAILS_OF_4(f, a, b, c, d, e)                                                    \
    FSM_TAIL_CASE(f, a, b, c, d, e, 0) FSM_TAIL_CASE(f, a, b, c, d, e, 1)                   \
    FSM_TAIL_CASE(f, a, b, c, d, e, 2) FSM_TAIL_CASE(f, a, b, c, d, e, 3)
#define FSM_TAILS_OF_8(f, a, b, c, d, e)                                                    \
    FSM_TAILS_OF_4(f, a, b, c, d, e) FSM_TAIL_CASE(f, a, b, c, d, e, 4)                     \
    FSM_TAIL_CASE(f, a, b, c, d, e, 5) FSM_TAIL_CASE(f, a, b, c, d, e, 6)                   \
    FSM_TAIL_CASE(f, a, b, c, d, e, 7)

FSM_TAILS(float, FSM_LANES_F32, __m256, ps, _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), f32,
          FSM_TAILS_OF_8)
FSM_TAILS(double, FSM_LANES_F64, __m256d, pd, _mm256_setr_pd(0, 1, 2, 3), f64, FSM_TAILS_OF_4)

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
#define tiled_in_f32(rows, n, count, width, lanes) ((void)0)
#define tiled_in_f64(rows, n, count, width, lanes) ((void)0)
#define tiled_out_f32(lanes, n, count, width, rows) ((void)0)
#define tiled_out_f64(lanes, n, count, width, rows) ((void)0)
#define tail_in_f32(src, ss, dst, ds, w) ((void)0)
#define tail_in_f64(src, ss, dst, ds, w) ((void)0)

#endif

/* Whole tiles where the CPU has them, the columns left one element at a time. */
#define FSM_BLOCK_MOVES(REAL, L, SUF)                                                       \
    void fsm_rows_to_lanes_##SUF(const REAL *rows, ptrdiff_t n, ptrdiff_t count,            \
                                 ptrdiff_t width, REAL *lanes)                               \
    {                                                                                        \
        const int tiles = FSM_HAS_TILES();                                                   \
        for (ptrdiff_t r = 0; r < count; r += L) {                                           \
            REAL *to = FSM_LANES_OF(lanes, r, n, width);                                     \
            const ptrdiff_t c = tiles ? tiles_##SUF(rows + r * n, n, 1, to, width, width, n) \
                                      : 0;                                                   \
            move_scalar_##SUF(rows + r * n + c, n, 1, to + c * width, 1, width, n - c);      \
        }                                                                                    \
    }                                                                                        \
    void fsm_lanes_to_rows_##SUF(const REAL *lanes, ptrdiff_t n, ptrdiff_t count,           \
                                 ptrdiff_t width, REAL *rows)                                \
    {                                                                                        \
        const int tiles = FSM_HAS_TILES();                                                   \
        for (ptrdiff_t r = 0; r < count; r += L) {                                           \
            const REAL *from = FSM_LANES_OF(lanes, r, n, width);                             \
            const ptrdiff_t c =                                                              \
                tiles ? tiles_##SUF(from, width, width, rows + r * n, n, 1, n) : 0;          \
            move_scalar_##SUF(from + c * width, 1, width, rows + r * n + c, n, 1, n - c);    \
        }                                                                                    \
    }

FSM_BLOCK_MOVES(float, FSM_LANES_F32, f32)
FSM_BLOCK_MOVES(double, FSM_LANES_F64, f64)

/* Every column in tiles where the CPU has them, else as above. */
#define FSM_TILED_MOVES(REAL, SUF)                                                          \
    void fsm_rows_to_lanes_tiled_##SUF(const REAL *rows, ptrdiff_t n, ptrdiff_t count,      \
                                       ptrdiff_t width, REAL *lanes)                         \
    {                                                                                        \
        if (FSM_HAS_TILES())                                                                 \
            tiled_in_##SUF(rows, n, count, width, lanes);                                    \
        else                                                                                 \
            fsm_rows_to_lanes_##SUF(rows, n, count, width, lanes);                           \
    }                                                                                        \
    void fsm_lanes_to_rows_padded_##SUF(const REAL *lanes, ptrdiff_t n, ptrdiff_t count,    \
                                        ptrdiff_t width, REAL *rows)                         \
    {                                                                                        \
        if (FSM_HAS_TILES())                                                                 \
            tiled_out_##SUF(lanes, n, count, width, rows);                                   \
        else                                                                                 \
            fsm_lanes_to_rows_##SUF(lanes, n, count, width, rows);                           \
    }

FSM_TILED_MOVES(float, f32)
FSM_TILED_MOVES(double, f64)

/* Rows to and from a slab: whole LxL tiles where the CPU has them (and, in,
 * the tail columns of each block of L rows by masked loads), the rest one
 * element at a time.  Out never writes past a row. */
#define FSM_SLAB_MOVES(REAL, L, SUF)                                                        \
    void fsm_rows_to_slab_##SUF(const REAL *rows, ptrdiff_t n, ptrdiff_t count, REAL *slab, \
                                ptrdiff_t stride)                                            \
    {                                                                                        \
        ptrdiff_t j = 0;                                                                     \
        if (FSM_HAS_TILES())                                                                 \
            for (; j + L <= count; j += L) {                                                 \
                const ptrdiff_t c = tiles_##SUF(rows + j * n, n, 1, slab + j, stride,        \
                                                stride, n);                                  \
                if (c < n) tail_in_##SUF(rows + j * n + c, n, slab + c * stride + j, stride, \
                                         n - c);                                             \
            }                                                                                \
        for (; j < count; j++)                                                               \
            for (ptrdiff_t i = 0; i < n; i++) slab[i * stride + j] = rows[j * n + i];        \
    }                                                                                        \
    void fsm_slab_to_rows_##SUF(const REAL *slab, ptrdiff_t stride, ptrdiff_t n,            \
                                ptrdiff_t count, REAL *rows)                                 \
    {                                                                                        \
        ptrdiff_t j = 0;                                                                     \
        if (FSM_HAS_TILES())                                                                 \
            for (; j + L <= count; j += L) {                                                 \
                const ptrdiff_t c = tiles_##SUF(slab + j, stride, stride, rows + j * n, n,   \
                                                1, n);                                       \
                move_scalar_##SUF(slab + c * stride + j, 1, stride, rows + j * n + c, n, 1,  \
                                  n - c);                                                    \
            }                                                                                \
        for (; j < count; j++)                                                               \
            for (ptrdiff_t i = 0; i < n; i++) rows[j * n + i] = slab[i * stride + j];        \
    }

FSM_SLAB_MOVES(float, FSM_LANES_F32, f32)
FSM_SLAB_MOVES(double, FSM_LANES_F64, f64)
