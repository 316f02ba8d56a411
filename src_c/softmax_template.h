/* Softmax-family kernels for one dtype; softmax.c includes this once per
 * dtype after defining REAL, ACC, SUF and EXP (see slice_template.h).
 *
 * Each operation is written for two shapes of work:
 *  - OP_row: one contiguous slice of n elements (rows, n >= FSM_SHORT_ROW),
 *    done in a few passes that keep the row in cache;
 *  - OP_slab: w slices side by side, element i of slice j at i*si + j, so
 *    every loop runs across the slices as vectors.  Columns (inner > 1) are
 *    slabs in place; short rows are copied transposed into a scratch slab,
 *    done there and copied back, so a row of 10 never runs a loop of 10.
 * Results larger than the caches go out through streaming stores.  Every
 * slice reduces in a fixed order, whatever the thread split. */
#include <stdlib.h>

#include "slice_template.h"
#include "stream.h"
#include "transpose.h"

#define FSM_SHORT_ROW 64        /* rows shorter than this are done as slabs */
#define FSM_SLAB 128            /* columns per slab when inner > 1 */
#define FSM_SCRATCH 2048        /* elements of a scratch slab of short rows (on the stack) */
#define FSM_ROW_SCRATCH 32768   /* longest row streamed through a scratch row (kept in L2) */

#define FSM_K(name) FSM_CAT(name##_, SUF)

typedef struct {
    const REAL *a, *b; /* inputs: x, or (grad, y / logp) */
    REAL *out;
    ptrdiff_t outer, n, inner;
    ptrdiff_t block;   /* rows per scratch slab, or columns per slab */
    ptrdiff_t blocks_per_outer;
    int stream;        /* write the result with streaming stores */
} FSM_K(fsm_slices);

/* Asks for the next row while this one is computed, so that the max pass
 * does not stall on memory. */
FSM_ALWAYS_INLINE void FSM_K(fsm_prefetch)(const REAL *p, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i += 64 / (ptrdiff_t)sizeof(REAL)) __builtin_prefetch(p + i);
}

/* Defines the range functions that the threads run for operation OP, from
 * OP_row(a, b, out, n) and OP_slab(a, b, out, n, w, si), and OP_run, which
 * splits the work among threads. */
#define FSM_DEFINE_RUN(OP)                                                                        \
    FSM_HOT static void FSM_K(OP##_rows)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)                   \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        const ptrdiff_t n = c->n;                                                                 \
        const REAL *b = c->b;                                                                     \
        REAL *scratch = c->stream && n <= FSM_ROW_SCRATCH ? malloc(n * sizeof *scratch) : NULL;   \
        if (scratch) {                                                                            \
            for (ptrdiff_t r = r0; r < r1; r++) {                                                 \
                if (r + 1 < r1) FSM_K(fsm_prefetch)(c->a + (r + 1) * n, n);                       \
                FSM_K(OP##_row)(c->a + r * n, b ? b + r * n : NULL, scratch, n);                  \
                FSM_CAT(fsm_stream_copy_, SUF)(c->out + r * n, scratch, n);                       \
            }                                                                                     \
            fsm_stream_fence();                                                                   \
            free(scratch);                                                                        \
            return;                                                                               \
        }                                                                                         \
        for (ptrdiff_t r = r0; r < r1; r++)                                                       \
            FSM_K(OP##_row)(c->a + r * n, b ? b + r * n : NULL, c->out + r * n, n);               \
    }                                                                                             \
    FSM_HOT static void FSM_K(OP##_short_rows)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)             \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        const ptrdiff_t n = c->n;                                                                 \
        REAL ta[FSM_SCRATCH], tb[FSM_SCRATCH];                                                    \
        for (ptrdiff_t t = t0; t < t1; t++) {                                                     \
            const ptrdiff_t r0 = t * c->block;                                                    \
            const ptrdiff_t rows = c->outer - r0 < c->block ? c->outer - r0 : c->block;           \
            FSM_CAT(fsm_transpose_, SUF)(c->a + r0 * n, ta, rows, n);                             \
            if (c->b) FSM_CAT(fsm_transpose_, SUF)(c->b + r0 * n, tb, rows, n);                   \
            FSM_K(OP##_slab)(ta, tb, ta, n, rows, rows);                                          \
            if (c->stream) {                                                                      \
                FSM_CAT(fsm_transpose_, SUF)(ta, tb, n, rows);                                    \
                FSM_CAT(fsm_stream_copy_, SUF)(c->out + r0 * n, tb, rows * n);                    \
            } else {                                                                              \
                FSM_CAT(fsm_transpose_, SUF)(ta, c->out + r0 * n, n, rows);                       \
            }                                                                                     \
        }                                                                                         \
        if (c->stream) fsm_stream_fence();                                                        \
    }                                                                                             \
    FSM_HOT static void FSM_K(OP##_columns)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)                \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        for (ptrdiff_t t = t0; t < t1; t++) {                                                     \
            const ptrdiff_t o = t / c->blocks_per_outer;                                          \
            const ptrdiff_t j0 = (t % c->blocks_per_outer) * c->block;                            \
            const ptrdiff_t w = c->inner - j0 < c->block ? c->inner - j0 : c->block;              \
            const ptrdiff_t offset = o * c->n * c->inner + j0;                                    \
            FSM_K(OP##_slab)(c->a + offset, c->b ? c->b + offset : NULL, c->out + offset,         \
                             c->n, w, c->inner);                                                  \
        }                                                                                         \
    }                                                                                             \
    static void FSM_K(OP##_run)(FSM_K(fsm_slices) * c, int max_threads)                           \
    {                                                                                             \
        const ptrdiff_t n = c->n;                                                                 \
        c->stream = c->outer * n * c->inner * (ptrdiff_t)sizeof(REAL) >= FSM_STREAM_BYTES;        \
        if (c->inner == 1 && n >= FSM_SHORT_ROW) {                                                \
            fsm_parallel_for(c->outer, n, max_threads, FSM_K(OP##_rows), c);                      \
        } else if (c->inner == 1) {                                                               \
            c->block = FSM_SCRATCH / n / 16 * 16;                                                 \
            fsm_parallel_for((c->outer + c->block - 1) / c->block, n * c->block, max_threads,     \
                             FSM_K(OP##_short_rows), c);                                          \
        } else {                                                                                  \
            c->block = FSM_SLAB;                                                                  \
            c->blocks_per_outer = (c->inner + FSM_SLAB - 1) / FSM_SLAB;                           \
            fsm_parallel_for(c->outer * c->blocks_per_outer, n * FSM_SLAB, max_threads,           \
                             FSM_K(OP##_columns), c);                                             \
        }                                                                                         \
    }

/* Element i of slice j in a slab. */
#define FSM_AT(p, i, j) (p)[(i) * si + (j)]

/* ---- softmax ---------------------------------------------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_row)(const REAL *x, const REAL *unused, REAL *out,
                                              ptrdiff_t n)
{
    (void)unused;
    FSM_SLICE(fsm_exp_shifted)(x, out, n, FSM_SLICE(fsm_slice_max)(x, n));
    FSM_SLICE(fsm_scale)(out, n, (REAL)(1 / FSM_SLICE(fsm_slice_sum)(out, n)));
}

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_slab)(const REAL *x, const REAL *unused, REAL *out,
                                               ptrdiff_t n, ptrdiff_t w, ptrdiff_t si)
{
    (void)unused;
    REAL m[FSM_SCRATCH];
    ACC s[FSM_SCRATCH];
    for (ptrdiff_t j = 0; j < w; j++) { m[j] = (REAL)-INFINITY; s[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) m[j] = FSM_AT(x, i, j) > m[j] ? FSM_AT(x, i, j) : m[j];
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) {
            REAL e = EXP_NONPOS(FSM_AT(x, i, j) - m[j]);
            FSM_AT(out, i, j) = e;
            s[j] += e;
        }
    for (ptrdiff_t j = 0; j < w; j++) m[j] = (REAL)(1 / s[j]); /* m now holds 1/sum */
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) FSM_AT(out, i, j) *= m[j];
}

FSM_DEFINE_RUN(fsm_softmax)

void FSM_K(fsm_softmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                        int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0, 0, 0};
    FSM_K(fsm_softmax_run)(&c, max_threads);
}

/* ---- log_softmax: x - max - log(sum(exp(x - max))) -------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_row)(const REAL *x, const REAL *unused, REAL *out,
                                                  ptrdiff_t n)
{
    (void)unused;
    const REAL m = FSM_SLICE(fsm_slice_max)(x, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] - m;
    const REAL log_sum = (REAL)log(FSM_SLICE(fsm_slice_sum_exp)(out, n));
    for (ptrdiff_t i = 0; i < n; i++) out[i] -= log_sum;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_slab)(const REAL *x, const REAL *unused, REAL *out,
                                                   ptrdiff_t n, ptrdiff_t w, ptrdiff_t si)
{
    (void)unused;
    REAL m[FSM_SCRATCH];
    ACC s[FSM_SCRATCH];
    for (ptrdiff_t j = 0; j < w; j++) { m[j] = (REAL)-INFINITY; s[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) m[j] = FSM_AT(x, i, j) > m[j] ? FSM_AT(x, i, j) : m[j];
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) {
            REAL shifted = FSM_AT(x, i, j) - m[j];
            FSM_AT(out, i, j) = shifted;
            s[j] += EXP_NONPOS(shifted);
        }
    for (ptrdiff_t j = 0; j < w; j++) m[j] = (REAL)log(s[j]); /* m now holds log(sum) */
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) FSM_AT(out, i, j) -= m[j];
}

FSM_DEFINE_RUN(fsm_log_softmax)

void FSM_K(fsm_log_softmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,
                            ptrdiff_t inner, int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0, 0, 0};
    FSM_K(fsm_log_softmax_run)(&c, max_threads);
}

/* ---- hardmax: one-hot of the argmax ------------------------------------ */

FSM_ALWAYS_INLINE void FSM_K(fsm_hardmax_row)(const REAL *x, const REAL *unused, REAL *out,
                                              ptrdiff_t n)
{
    (void)unused;
    const ptrdiff_t best = FSM_SLICE(fsm_row_argmax)(x, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = 0;
    out[best] = 1;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_hardmax_slab)(const REAL *x, const REAL *unused, REAL *out,
                                               ptrdiff_t n, ptrdiff_t w, ptrdiff_t si)
{
    (void)unused;
    ptrdiff_t best[FSM_SCRATCH];
    for (ptrdiff_t j = 0; j < w; j++) best[j] = FSM_SLICE(fsm_slice_argmax)(x + j, n, si);
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) FSM_AT(out, i, j) = best[j] == i ? 1 : 0;
}

FSM_DEFINE_RUN(fsm_hardmax)

void FSM_K(fsm_hardmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                        int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0, 0, 0};
    FSM_K(fsm_hardmax_run)(&c, max_threads);
}

/* ---- softmax_backward: y * (grad - sum(grad * y)) ----------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_backward_row)(const REAL *g, const REAL *y, REAL *out,
                                                       ptrdiff_t n)
{
    const REAL s = (REAL)FSM_SLICE(fsm_slice_dot)(g, y, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = y[i] * (g[i] - s);
}

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_backward_slab)(const REAL *g, const REAL *y, REAL *out,
                                                        ptrdiff_t n, ptrdiff_t w, ptrdiff_t si)
{
    ACC s[FSM_SCRATCH];
    REAL sr[FSM_SCRATCH];
    for (ptrdiff_t j = 0; j < w; j++) s[j] = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) s[j] += (ACC)FSM_AT(g, i, j) * (ACC)FSM_AT(y, i, j);
    for (ptrdiff_t j = 0; j < w; j++) sr[j] = (REAL)s[j];
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++)
            FSM_AT(out, i, j) = FSM_AT(y, i, j) * (FSM_AT(g, i, j) - sr[j]);
}

FSM_DEFINE_RUN(fsm_softmax_backward)

void FSM_K(fsm_softmax_backward)(const REAL *grad, const REAL *y, REAL *out, ptrdiff_t outer,
                                 ptrdiff_t n, ptrdiff_t inner, int max_threads)
{
    FSM_K(fsm_slices) c = {grad, y, out, outer, n, inner, 0, 0, 0};
    FSM_K(fsm_softmax_backward_run)(&c, max_threads);
}

/* ---- log_softmax_backward: grad - exp(logp) * sum(grad) ----------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_backward_row)(const REAL *g, const REAL *logp,
                                                           REAL *out, ptrdiff_t n)
{
    const REAL s = (REAL)FSM_SLICE(fsm_slice_sum)(g, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = g[i] - EXP(logp[i]) * s;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_backward_slab)(const REAL *g, const REAL *logp,
                                                            REAL *out, ptrdiff_t n, ptrdiff_t w,
                                                            ptrdiff_t si)
{
    ACC s[FSM_SCRATCH];
    REAL sr[FSM_SCRATCH];
    for (ptrdiff_t j = 0; j < w; j++) s[j] = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) s[j] += (ACC)FSM_AT(g, i, j);
    for (ptrdiff_t j = 0; j < w; j++) sr[j] = (REAL)s[j];
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++)
            FSM_AT(out, i, j) = FSM_AT(g, i, j) - EXP(FSM_AT(logp, i, j)) * sr[j];
}

FSM_DEFINE_RUN(fsm_log_softmax_backward)

void FSM_K(fsm_log_softmax_backward)(const REAL *grad, const REAL *logp, REAL *out,
                                     ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                                     int max_threads)
{
    FSM_K(fsm_slices) c = {grad, logp, out, outer, n, inner, 0, 0, 0};
    FSM_K(fsm_log_softmax_backward_run)(&c, max_threads);
}

#undef FSM_AT
#undef FSM_DEFINE_RUN
#undef FSM_K
#undef FSM_SLICE
