/* Softmax-family kernels for one dtype; softmax.c includes this once per
 * dtype after defining REAL, ACC, SUF and EXP (see slice_template.h).
 *
 * Each operation is written twice, for two shapes of work:
 *  - a row: one long contiguous slice (inner == 1, n >= FSM_SHORT_ROW), done
 *    in a few passes that keep the row in cache;
 *  - a slab: up to FSM_SLAB slices side by side, element (i, j) of slice j at
 *    i*si + j*sj, processed with vector loops across the slices.  Columns
 *    (inner > 1) are slabs with (si, sj) = (inner, 1); a block of short rows
 *    is a slab with (si, sj) = (1, n), so a row of 10 never runs a loop of 10.
 * Every slice reduces in a fixed order, whatever the thread split. */
#include "slice_template.h"

#define FSM_SHORT_ROW 64 /* rows shorter than this are done as slabs */
#define FSM_SLAB 128     /* slices per slab */

#define FSM_K(name) FSM_CAT(name##_, SUF)

typedef struct {
    const REAL *a, *b; /* inputs: x, or (grad, y / logp) */
    REAL *out;
    ptrdiff_t outer, n, inner, slabs_per_outer;
} FSM_K(fsm_slices);

/* The call of slab t: where it starts, how many slices, their strides. */
FSM_ALWAYS_INLINE ptrdiff_t FSM_K(fsm_slab)(const FSM_K(fsm_slices) *c, ptrdiff_t t,
                                            ptrdiff_t *width, ptrdiff_t *si, ptrdiff_t *sj)
{
    if (c->inner == 1) {
        ptrdiff_t r0 = t * FSM_SLAB;
        *width = c->outer - r0 < FSM_SLAB ? c->outer - r0 : FSM_SLAB;
        *si = 1;
        *sj = c->n;
        return r0 * c->n;
    }
    ptrdiff_t o = t / c->slabs_per_outer, j0 = (t % c->slabs_per_outer) * FSM_SLAB;
    *width = c->inner - j0 < FSM_SLAB ? c->inner - j0 : FSM_SLAB;
    *si = c->inner;
    *sj = 1;
    return o * c->n * c->inner + j0;
}

/* Defines the range functions the threads run for operation OP, from
 * OP_row(c, r) and OP_slab(c, offset, width, si, sj), and runs them.  The two
 * slab calls pass one stride as the constant 1, so each is compiled for it. */
#define FSM_DEFINE_RUN(OP)                                                                    \
    FSM_HOT static void FSM_K(OP##_rows)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)              \
    {                                                                                         \
        for (ptrdiff_t r = r0; r < r1; r++) FSM_K(OP##_row)(ctx, r);                          \
    }                                                                                         \
    FSM_HOT static void FSM_K(OP##_slabs)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)             \
    {                                                                                         \
        for (ptrdiff_t t = t0; t < t1; t++) {                                                 \
            ptrdiff_t w, si, sj;                                                              \
            ptrdiff_t offset = FSM_K(fsm_slab)(ctx, t, &w, &si, &sj);                         \
            if (sj == 1)                                                                      \
                FSM_K(OP##_slab)(ctx, offset, w, si, 1);                                      \
            else                                                                              \
                FSM_K(OP##_slab)(ctx, offset, w, 1, sj);                                      \
        }                                                                                     \
    }                                                                                         \
    static void FSM_K(OP##_run)(FSM_K(fsm_slices) * c, int max_threads)                      \
    {                                                                                         \
        if (c->inner == 1 && c->n >= FSM_SHORT_ROW) {                                         \
            fsm_parallel_for(c->outer, c->n, max_threads, FSM_K(OP##_rows), c);               \
        } else if (c->inner == 1) {                                                           \
            fsm_parallel_for((c->outer + FSM_SLAB - 1) / FSM_SLAB, c->n * FSM_SLAB,           \
                             max_threads, FSM_K(OP##_slabs), c);                              \
        } else {                                                                              \
            c->slabs_per_outer = (c->inner + FSM_SLAB - 1) / FSM_SLAB;                        \
            fsm_parallel_for(c->outer * c->slabs_per_outer, c->n * FSM_SLAB, max_threads,     \
                             FSM_K(OP##_slabs), c);                                           \
        }                                                                                     \
    }

/* Shorthands for slab loops: element (i, j) of the slab. */
#define FSM_AT(p, i, j) (p)[(i) * si + (j) * sj]

/* ---- softmax ---------------------------------------------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_row)(const FSM_K(fsm_slices) *c, ptrdiff_t r)
{
    const ptrdiff_t n = c->n;
    const REAL *x = c->a + r * n;
    REAL *out = c->out + r * n;
    FSM_SLICE(fsm_exp_shifted)(x, out, n, FSM_SLICE(fsm_slice_max)(x, n));
    FSM_SLICE(fsm_scale)(out, n, (REAL)(1 / FSM_SLICE(fsm_slice_sum)(out, n)));
}

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_slab)(const FSM_K(fsm_slices) *c, ptrdiff_t offset,
                                               ptrdiff_t w, ptrdiff_t si, ptrdiff_t sj)
{
    const ptrdiff_t n = c->n;
    const REAL *x = c->a + offset;
    REAL *out = c->out + offset;
    REAL m[FSM_SLAB];
    ACC s[FSM_SLAB];
    for (ptrdiff_t j = 0; j < w; j++) { m[j] = (REAL)-INFINITY; s[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) m[j] = FSM_AT(x, i, j) > m[j] ? FSM_AT(x, i, j) : m[j];
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) {
            REAL e = EXP(FSM_AT(x, i, j) - m[j]);
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
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0};
    FSM_K(fsm_softmax_run)(&c, max_threads);
}

/* ---- log_softmax: x - max - log(sum(exp(x - max))) -------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_row)(const FSM_K(fsm_slices) *c, ptrdiff_t r)
{
    const ptrdiff_t n = c->n;
    const REAL *x = c->a + r * n;
    REAL *out = c->out + r * n;
    const REAL m = FSM_SLICE(fsm_slice_max)(x, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] - m;
    const REAL log_sum = (REAL)log(FSM_SLICE(fsm_slice_sum_exp)(out, n));
    for (ptrdiff_t i = 0; i < n; i++) out[i] -= log_sum;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_slab)(const FSM_K(fsm_slices) *c, ptrdiff_t offset,
                                                   ptrdiff_t w, ptrdiff_t si, ptrdiff_t sj)
{
    const ptrdiff_t n = c->n;
    const REAL *x = c->a + offset;
    REAL *out = c->out + offset;
    REAL m[FSM_SLAB];
    ACC s[FSM_SLAB];
    for (ptrdiff_t j = 0; j < w; j++) { m[j] = (REAL)-INFINITY; s[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) m[j] = FSM_AT(x, i, j) > m[j] ? FSM_AT(x, i, j) : m[j];
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) {
            REAL shifted = FSM_AT(x, i, j) - m[j];
            FSM_AT(out, i, j) = shifted;
            s[j] += EXP(shifted);
        }
    for (ptrdiff_t j = 0; j < w; j++) m[j] = (REAL)log(s[j]); /* m now holds log(sum) */
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) FSM_AT(out, i, j) -= m[j];
}

FSM_DEFINE_RUN(fsm_log_softmax)

void FSM_K(fsm_log_softmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,
                            ptrdiff_t inner, int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0};
    FSM_K(fsm_log_softmax_run)(&c, max_threads);
}

/* ---- hardmax: one-hot of the argmax ------------------------------------ */

FSM_ALWAYS_INLINE void FSM_K(fsm_hardmax_row)(const FSM_K(fsm_slices) *c, ptrdiff_t r)
{
    const ptrdiff_t n = c->n;
    const ptrdiff_t best = FSM_SLICE(fsm_slice_argmax)(c->a + r * n, n, 1);
    REAL *out = c->out + r * n;
    for (ptrdiff_t i = 0; i < n; i++) out[i] = 0;
    out[best] = 1;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_hardmax_slab)(const FSM_K(fsm_slices) *c, ptrdiff_t offset,
                                               ptrdiff_t w, ptrdiff_t si, ptrdiff_t sj)
{
    const ptrdiff_t n = c->n;
    ptrdiff_t best[FSM_SLAB];
    for (ptrdiff_t j = 0; j < w; j++)
        best[j] = FSM_SLICE(fsm_slice_argmax)(c->a + offset + j * sj, n, si);
    REAL *out = c->out + offset;
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) FSM_AT(out, i, j) = best[j] == i ? 1 : 0;
}

FSM_DEFINE_RUN(fsm_hardmax)

void FSM_K(fsm_hardmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                        int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0};
    FSM_K(fsm_hardmax_run)(&c, max_threads);
}

/* ---- softmax_backward: y * (grad - sum(grad * y)) ----------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_backward_row)(const FSM_K(fsm_slices) *c, ptrdiff_t r)
{
    const ptrdiff_t n = c->n;
    const REAL *g = c->a + r * n, *y = c->b + r * n;
    REAL *out = c->out + r * n;
    const REAL s = (REAL)FSM_SLICE(fsm_slice_dot)(g, y, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = y[i] * (g[i] - s);
}

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_backward_slab)(const FSM_K(fsm_slices) *c,
                                                        ptrdiff_t offset, ptrdiff_t w,
                                                        ptrdiff_t si, ptrdiff_t sj)
{
    const ptrdiff_t n = c->n;
    const REAL *g = c->a + offset, *y = c->b + offset;
    REAL *out = c->out + offset;
    ACC s[FSM_SLAB];
    REAL sr[FSM_SLAB];
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
    FSM_K(fsm_slices) c = {grad, y, out, outer, n, inner, 0};
    FSM_K(fsm_softmax_backward_run)(&c, max_threads);
}

/* ---- log_softmax_backward: grad - exp(logp) * sum(grad) ----------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_backward_row)(const FSM_K(fsm_slices) *c,
                                                           ptrdiff_t r)
{
    const ptrdiff_t n = c->n;
    const REAL *g = c->a + r * n, *logp = c->b + r * n;
    REAL *out = c->out + r * n;
    const REAL s = (REAL)FSM_SLICE(fsm_slice_sum)(g, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = g[i] - EXP(logp[i]) * s;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_backward_slab)(const FSM_K(fsm_slices) *c,
                                                            ptrdiff_t offset, ptrdiff_t w,
                                                            ptrdiff_t si, ptrdiff_t sj)
{
    const ptrdiff_t n = c->n;
    const REAL *g = c->a + offset, *logp = c->b + offset;
    REAL *out = c->out + offset;
    ACC s[FSM_SLAB];
    REAL sr[FSM_SLAB];
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
    FSM_K(fsm_slices) c = {grad, logp, out, outer, n, inner, 0};
    FSM_K(fsm_log_softmax_backward_run)(&c, max_threads);
}

#undef FSM_AT
#undef FSM_DEFINE_RUN
#undef FSM_K
#undef FSM_SLICE
