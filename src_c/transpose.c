#include "transpose.h"

#define FSM_TRANSPOSE_SCALAR(REAL, name)                                                   \
    static void name(const REAL *src, REAL *dst, ptrdiff_t rows, ptrdiff_t cols,            \
                     ptrdiff_t r0, ptrdiff_t c0)                                            \
    {                                                                                       \
        /* The part outside [0, r0) x [0, c0), which the tiles cover. */                    \
        for (ptrdiff_t r = 0; r < rows; r++)                                                \
            for (ptrdiff_t c = r < r0 ? c0 : 0; c < cols; c++)                              \
                dst[c * rows + r] = src[r * cols + c];                                      \
    }

FSM_TRANSPOSE_SCALAR(float, transpose_rest_f32)
FSM_TRANSPOSE_SCALAR(double, transpose_rest_f64)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx"))) static void transpose_tiles_f32(const float *src, float *dst,
                                                               ptrdiff_t rows, ptrdiff_t cols,
                                                               ptrdiff_t r0, ptrdiff_t c0)
{
    for (ptrdiff_t r = 0; r < r0; r += 8)
        for (ptrdiff_t c = 0; c < c0; c += 8) {
            __m256 a[8], b[8];
            for (int k = 0; k < 8; k++) a[k] = _mm256_loadu_ps(src + (r + k) * cols + c);
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
            /* a[0..3] hold columns 0,1,2,3 (low half) and 4,5,6,7 (high half)
             * of rows 0-3; a[4..7] the same of rows 4-7. */
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_ps(dst + (c + k) * rows + r, _mm256_permute2f128_ps(a[k], a[k + 4], 0x20));
                _mm256_storeu_ps(dst + (c + k + 4) * rows + r,
                                 _mm256_permute2f128_ps(a[k], a[k + 4], 0x31));
            }
        }
}

__attribute__((target("avx"))) static void transpose_tiles_f64(const double *src, double *dst,
                                                               ptrdiff_t rows, ptrdiff_t cols,
                                                               ptrdiff_t r0, ptrdiff_t c0)
{
    for (ptrdiff_t r = 0; r < r0; r += 4)
        for (ptrdiff_t c = 0; c < c0; c += 4) {
            __m256d a[4], b[4];
            for (int k = 0; k < 4; k++) a[k] = _mm256_loadu_pd(src + (r + k) * cols + c);
            b[0] = _mm256_unpacklo_pd(a[0], a[1]);
            b[1] = _mm256_unpackhi_pd(a[0], a[1]);
            b[2] = _mm256_unpacklo_pd(a[2], a[3]);
            b[3] = _mm256_unpackhi_pd(a[2], a[3]);
            _mm256_storeu_pd(dst + (c + 0) * rows + r, _mm256_permute2f128_pd(b[0], b[2], 0x20));
            _mm256_storeu_pd(dst + (c + 1) * rows + r, _mm256_permute2f128_pd(b[1], b[3], 0x20));
            _mm256_storeu_pd(dst + (c + 2) * rows + r, _mm256_permute2f128_pd(b[0], b[2], 0x31));
            _mm256_storeu_pd(dst + (c + 3) * rows + r, _mm256_permute2f128_pd(b[1], b[3], 0x31));
        }
}

static int fsm_has_avx(void)
{
    static int known = -1; /* a benign race: every thread computes the same value */
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx") != 0;
    }
    return known;
}

void fsm_transpose_f32(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t r0 = 0, c0 = 0;
    if (fsm_has_avx()) {
        r0 = rows / 8 * 8;
        c0 = cols / 8 * 8;
        transpose_tiles_f32(src, dst, rows, cols, r0, c0);
    }
    transpose_rest_f32(src, dst, rows, cols, r0, c0);
}

void fsm_transpose_f64(const double *src, double *dst, ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t r0 = 0, c0 = 0;
    if (fsm_has_avx()) {
        r0 = rows / 4 * 4;
        c0 = cols / 4 * 4;
        transpose_tiles_f64(src, dst, rows, cols, r0, c0);
    }
    transpose_rest_f64(src, dst, rows, cols, r0, c0);
}

#else

void fsm_transpose_f32(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols)
{
    transpose_rest_f32(src, dst, rows, cols, 0, 0);
}

void fsm_transpose_f64(const double *src, double *dst, ptrdiff_t rows, ptrdiff_t cols)
{
    transpose_rest_f64(src, dst, rows, cols, 0, 0);
}

#endif
