/* Batch-normalization kernels: the dtype-independent plan and merges, then
 * one template instantiated for float and double (accumulating in double). */
#include "batchnorm.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dispatch.h"
#include "parallel.h"

/* Features whose runs are shorter than this are reduced as columns: the
 * array is seen as (outer, C*inner) rows and loops run across a row. */
#define FSM_BN_RUN_MIN 32
#define FSM_BN_TILE 256          /* columns per task in the column layout */
#define FSM_BN_BLOCK 16384       /* values per task, about */
#define FSM_BN_CHUNK 4096        /* values of a run reduced in one two-pass step */
#define FSM_BN_LANES 16
#define FSM_BN_FLUSH 8          /* rows a step of tile_stats (its sums are written for 8) */

/* Work for fsm_parallel_for's grain, from the number of values a task
 * streams.  With the persistent pool a parallel call costs a few
 * microseconds, so a (256, 1024) batch already runs on two threads. */
#define FSM_BN_WORK(values) (values)
/* Work of finishing one feature's statistics, per block of rows: the
 * finish of (256, 1024) float32 (four blocks) runs on two threads, that of
 * (256, 256) on one. */
#define FSM_BN_FINISH_WORK 64

/* Elementwise passes of the run layout whose output is at least this large
 * write it with non-temporal stores: input and output together no longer
 * fit in a 32 MB last-level cache, so the output's lines would only be read
 * in from memory before being written, and would evict the input.  Only runs
 * of at least FSM_BN_STREAM_RUN bytes: shorter ones (1200 bytes measured)
 * came out slower streamed, 2048 and more faster by a fifth to a third. */
#define FSM_BN_STREAM_MIN ((ptrdiff_t)16 << 20)
#define FSM_BN_STREAM_RUN ((ptrdiff_t)2048)
/* Bytes moved (read and written) beyond which a pass runs from memory. */
#define FSM_BN_FROM_MEMORY ((ptrdiff_t)16 << 20)
#define FSM_BN_STREAM_ALIGN 64 /* streams whole cache lines only */
#define FSM_BN_STREAM_VALUES ((ptrdiff_t)(256 / sizeof(REAL))) /* values buffered per stream */
#if defined(__SSE2__)
#define FSM_BN_CAN_STREAM 1
#else
#define FSM_BN_CAN_STREAM 0
#endif

/* Keeps GCC from unrolling a loop over the lanes into scalar code. */
#define FSM_BN_LANE_LOOP _Pragma("GCC unroll 1")

/* A loop whose iteration i reads and writes element i of each array only
 * (out is an input exactly or apart from them): vectorise it without the
 * overlap checks, too many of which make the compiler give up. */
#if defined(__clang__)
#define FSM_BN_PER_ELEMENT _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define FSM_BN_PER_ELEMENT _Pragma("GCC ivdep")
#else
#define FSM_BN_PER_ELEMENT
#endif

/* How a reduction is split into tasks; depends only on the shape, never on
 * the thread count, so every partial result and its merge order are fixed.
 * Column layout: task (block b, tile k) covers rows [b*rows, ...) and columns
 * [k*FSM_BN_TILE, ...) of the (outer, width) matrix.  Run layout: task
 * (feature c, block b) covers the runs of c for o in [b*rows, ...). */
typedef struct {
    ptrdiff_t outer, C, inner;
    int columns;
    ptrdiff_t width;   /* C*inner in the column layout, C otherwise */
    ptrdiff_t rows;    /* rows (outer indices) per block */
    ptrdiff_t nblocks, ntiles, ntasks;
    ptrdiff_t task_values; /* values a reduction task reads, per input */
} fsm_bn_plan;

static fsm_bn_plan fsm_bn_make_plan(ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner)
{
    fsm_bn_plan p = {outer, C, inner, inner < FSM_BN_RUN_MIN, C, 1, 1, 1, 1, 1};
    if (p.columns) {
        p.width = C * inner;
        p.ntiles = (p.width + FSM_BN_TILE - 1) / FSM_BN_TILE;
        ptrdiff_t tile = p.width < FSM_BN_TILE ? p.width : FSM_BN_TILE;
        p.rows = FSM_BN_BLOCK / tile < 64 ? 64 : FSM_BN_BLOCK / tile;
    } else {
        p.rows = FSM_BN_BLOCK / inner < 1 ? 1 : FSM_BN_BLOCK / inner;
    }
    p.nblocks = (outer + p.rows - 1) / p.rows;
    p.ntasks = p.nblocks * (p.columns ? p.ntiles : C);
    p.task_values = p.rows * (p.columns ? (p.width < FSM_BN_TILE ? p.width : FSM_BN_TILE) : inner);
    return p;
}

static ptrdiff_t fsm_bn_block_rows(const fsm_bn_plan *p, ptrdiff_t b)
{
    ptrdiff_t left = p->outer - b * p->rows;
    return left < p->rows ? left : p->rows;
}

/* Chan et al.: folds the statistics (nb, mb, m2b) of more values into
 * (*n, *mean, *m2).  Starting from (0, 0, 0) the first fold copies. */
static inline void fsm_bn_merge(double *n, double *mean, double *m2, double nb, double mb,
                                double m2b)
{
    if (nb == 0)
        return;
    double total = *n + nb, delta = mb - *mean;
    *mean += delta * (nb / total);
    *m2 += m2b + delta * delta * (*n * (nb / total));
    *n = total;
}

/* Per-column partials (block-major: part[b*width + col]) -> the results of
 * features [c0, c1): the blocks fold into block 0's row in order, then the
 * inner columns of each feature fold in order.  Every column of a block has
 * the same count, so each fold's weights are two scalars and the loops
 * across columns vectorise.  Overwrites those features' partials. */
FSM_HOT static void fsm_bn_finish_columns(const fsm_bn_plan *p, double *part_mean,
                                          double *part_m2, ptrdiff_t c0, ptrdiff_t c1,
                                          double *mean, double *m2)
{
    const ptrdiff_t width = p->width, inner = p->inner, k0 = c0 * inner, k1 = c1 * inner;
    double n = (double)fsm_bn_block_rows(p, 0);
    for (ptrdiff_t b = 1; b < p->nblocks; b++) {
        const double nb = (double)fsm_bn_block_rows(p, b), f = nb / (n + nb), h = n * f;
        const double *pm = part_mean + b * width, *pq = part_m2 + b * width;
        for (ptrdiff_t k = k0; k < k1; k++) {
            const double delta = pm[k] - part_mean[k];
            part_mean[k] += delta * f;
            part_m2[k] += pq[k] + delta * delta * h;
        }
        n += nb;
    }
    for (ptrdiff_t c = c0; c < c1; c++) {
        mean[c] = part_mean[c * inner];
        m2[c] = part_m2[c * inner];
    }
    for (ptrdiff_t j = 1; j < inner; j++) {
        const double f = 1.0 / (double)(j + 1), h = n * (double)j * f;
        for (ptrdiff_t c = c0; c < c1; c++) {
            const double delta = part_mean[c * inner + j] - mean[c];
            mean[c] += delta * f;
            m2[c] += part_m2[c * inner + j] + delta * delta * h;
        }
    }
}

/* Whether a[c] and b[c] are finite for every c in [c0, c1): v - v is 0
 * exactly when v is finite (a count, so that the loop vectorises). */
FSM_HOT static int fsm_bn_all_finite(const double *a, const double *b, ptrdiff_t c0,
                                     ptrdiff_t c1)
{
    ptrdiff_t bad = 0;
    for (ptrdiff_t c = c0; c < c1; c++) bad += (a[c] - a[c] != 0) + (b[c] - b[c] != 0);
    return bad == 0;
}

/* Run-layout partials (feature-major: part[c*nblocks + b]) -> features [c0, c1). */
static void fsm_bn_finish_runs(const fsm_bn_plan *p, const double *part_mean,
                               const double *part_m2, ptrdiff_t c0, ptrdiff_t c1, double *mean,
                               double *m2)
{
    for (ptrdiff_t c = c0; c < c1; c++) {
        double n = 0, mu = 0, q = 0;
        for (ptrdiff_t b = 0; b < p->nblocks; b++) {
            ptrdiff_t at = c * p->nblocks + b;
            fsm_bn_merge(&n, &mu, &q, (double)(fsm_bn_block_rows(p, b) * p->inner),
                         part_mean[at], part_m2[at]);
        }
        mean[c] = mu;
        m2[c] = q;
    }
}

/* Run-layout partial sums (feature-major) -> features [c0, c1), each
 * feature's blocks in order. */
static void fsm_bn_finish_run_sums(const fsm_bn_plan *p, const double *part, ptrdiff_t c0,
                                   ptrdiff_t c1, double *sum)
{
    for (ptrdiff_t c = c0; c < c1; c++) {
        double s = 0;
        for (ptrdiff_t b = 0; b < p->nblocks; b++) s += part[c * p->nblocks + b];
        sum[c] = s;
    }
}

/* Sums of partials in a fixed order: column layout (block-major) folds the
 * blocks into block 0's row, then the inner columns of each feature; run
 * layout as fsm_bn_finish_run_sums.  Overwrites the partials. */
static void fsm_bn_finish_sums(const fsm_bn_plan *p, double *part, double *sum)
{
    if (!p->columns) {
        fsm_bn_finish_run_sums(p, part, 0, p->C, sum);
        return;
    }
    for (ptrdiff_t b = 1; b < p->nblocks; b++)
        for (ptrdiff_t k = 0; k < p->width; k++) part[k] += part[b * p->width + k];
    for (ptrdiff_t c = 0; c < p->C; c++) sum[c] = 0;
    for (ptrdiff_t j = 0; j < p->inner; j++)
        for (ptrdiff_t c = 0; c < p->C; c++) sum[c] += part[c * p->inner + j];
}

/* Whether the training forward and backward run feature by feature: each
 * task reads one feature's runs, finds its statistics (or gradient sums) and
 * writes the feature's output runs while the inputs are still in cache, with
 * nothing to merge between tasks.  Not for the
 * column layout, where a feature's values are a column of a (usually
 * power-of-two wide) matrix: the column tiles of all rows conflict in cache.
 * Either way a feature's statistics are the same numbers. */
static int fsm_bn_by_feature(const fsm_bn_plan *p)
{
    return !p->columns && (p->C >= 2 || p->nblocks == 1);
}

/* Whether the elementwise pass of the run layout streams its output
 * (FSM_BN_STREAM_MIN), values of `size` bytes.  Not in place: a line of an
 * input just read sits in cache, and streaming over it came out slower. */
static int fsm_bn_streams(const fsm_bn_plan *p, ptrdiff_t size, const void *out,
                          const void *g, const void *x)
{
    return FSM_BN_CAN_STREAM && !p->columns && out != g && out != x
           && p->inner * size >= FSM_BN_STREAM_RUN
           && p->outer * p->C * p->inner * size >= FSM_BN_STREAM_MIN;
}

/* Copies `bytes` (a multiple of FSM_BN_STREAM_ALIGN, both ends aligned to
 * it) by non-temporal stores, which bypass the caches. */
static inline void fsm_bn_stream_copy(void *dst, const void *src, size_t bytes)
{
#if FSM_BN_CAN_STREAM
    for (size_t i = 0; i < bytes; i += 16)
        _mm_stream_si128((__m128i *)((char *)dst + i),
                         _mm_load_si128((const __m128i *)((const char *)src + i)));
#else
    memcpy(dst, src, bytes);
#endif
}

/* Orders a task's non-temporal stores before its completion is published:
 * the pool's release and acquire do not cover them. */
static inline void fsm_bn_stream_fence(int streamed)
{
#if FSM_BN_CAN_STREAM
    if (streamed)
        _mm_sfence();
#else
    (void)streamed;
#endif
}

static ptrdiff_t fsm_bn_partial_count(const fsm_bn_plan *p)
{
    return p->columns ? p->nblocks * p->width : p->nblocks * p->C;
}

/* Whether the column layout's elementwise pass should go a row at a time
 * (upwards, whatever fsm_bn_descending says) rather than two: two rows share
 * each load of the factors, which is faster in cache (256x1024 float32:
 * 26 against 37 us), but from memory, normalising x alone (4096x1000
 * float32, 32 MB moved), a row at a time is 12-15% faster than two rows
 * upwards and 20-28% faster than two rows downwards.  With g as well,
 * neither wins. */
static int fsm_bn_row_at_a_time(const fsm_bn_plan *p, int with_g, ptrdiff_t size)
{
    return !with_g && 2 * p->outer * p->width * size >= FSM_BN_FROM_MEMORY;
}

/* Whether an elementwise pass that writes rows `row_bytes` apart from `out`
 * and reads the same rows of `in[0..n)` (NULL entries skipped) should go
 * down the addresses.  A load waits for any pending store whose address
 * matches it in the low 12 bits (4K aliasing).  Going up, the pending stores
 * lie just below the current position, so an input that sits a few vectors
 * below the output modulo 4096 collides with them on every vector: heap
 * arrays allocated one after another often sit 16 to 64 bytes apart, which
 * costs a tenth or more.  Going down moves the collisions to inputs just
 * above the output; it is chosen only when it avoids a near one, as the
 * blocked descending loop is a little slower than the plain one. */
static int fsm_bn_descending(const void *out, const void *const *in, int n, ptrdiff_t row_bytes)
{
    const uintptr_t page = 4096, near = 256;
    uintptr_t up = page, down = page; /* distance back to the nearest colliding store */
    for (int k = 0; k < n; k++) {
        if (!in[k])
            continue;
        for (int shift = -1; shift <= 1; shift++) { /* out's row vs in's row, the next, the last */
            const uintptr_t d = ((uintptr_t)out - (uintptr_t)in[k] + (uintptr_t)(shift * row_bytes))
                                % page;
            if (d == 0)
                continue;
            up = d < up ? d : up;
            down = page - d < down ? page - d : down;
        }
    }
    return up < near && down > up;
}

FSM_HOT void fsm_bn_invstd(const double *v, ptrdiff_t C, double divisor, double eps,
                           const double *weight, double *invstd, double *scale)
{
    /* Variances as they stand (inference: divisor 1) skip a division, which
     * with the square root and the reciprocal was most of a small call. */
    if (divisor == 1)
        for (ptrdiff_t c = 0; c < C; c++) invstd[c] = 1.0 / sqrt(v[c] + eps);
    else
        for (ptrdiff_t c = 0; c < C; c++) invstd[c] = 1.0 / sqrt(v[c] / divisor + eps);
    for (ptrdiff_t c = 0; c < C; c++) scale[c] = weight ? invstd[c] * weight[c] : invstd[c];
}

FSM_HOT void fsm_bn_backward_factors(const double *invstd, const double *weight,
                                     const double *sum_g, const double *sum_gxc, ptrdiff_t C,
                                     double count, double *k, double *s, double *t)
{
    for (ptrdiff_t c = 0; c < C; c++) {
        s[c] = -invstd[c] * invstd[c] * sum_gxc[c] / count;
        t[c] = -sum_g[c] / count;
    }
    if (weight)
        for (ptrdiff_t c = 0; c < C; c++) k[c] = invstd[c] * weight[c];
    else
        for (ptrdiff_t c = 0; c < C; c++) k[c] = invstd[c];
}

FSM_HOT void fsm_bn_widen_f32(const float *src, ptrdiff_t n, double *dst)
{
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

FSM_HOT void fsm_bn_narrow_f32(const double *src, ptrdiff_t n, float *dst)
{
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

FSM_HOT void fsm_bn_update_running_f32(float *r, const double *batch, ptrdiff_t C,
                                       double momentum, double factor)
{
    for (ptrdiff_t c = 0; c < C; c++)
        r[c] = (float)((1 - momentum) * (double)r[c] + momentum * (factor * batch[c]));
}

FSM_HOT void fsm_bn_update_running_f64(double *r, const double *batch, ptrdiff_t C,
                                       double momentum, double factor)
{
    for (ptrdiff_t c = 0; c < C; c++) r[c] = (1 - momentum) * r[c] + momentum * (factor * batch[c]);
}

#define REAL float
#define SUF f32
#include "batchnorm_template.h"
#undef REAL
#undef SUF

#define REAL double
#define SUF f64
#include "batchnorm_template.h"
#undef REAL
#undef SUF
