/* Softmax-family kernels for one dtype; softmax_instances.h includes this
 * once per dtype after dtype_params.h (VREAL: the blocks' vector, RVREAL:
 * the row passes') and ISA (a suffix for the names of the public
 * functions).
 *
 * Each operation is written for two shapes of work, in explicit vectors:
 *  - OP_row: one contiguous slice of n elements (rows, n >= FSM_SHORT_ROW),
 *    done in a few passes that keep the row in cache, the last one writing
 *    the result (through the cache: on this hardware streaming stores were
 *    slower for every shape measured, and much slower in place);
 *  - OP_block: VW slices side by side, one per vector lane, element i of
 *    slice k at i*si + k.  Columns (inner > 1) are blocks in place; short
 *    rows are moved VW at a time into the lanes of a small buffer, done there
 *    and moved back (transpose.h), so a row of 10 never runs a loop of 10.
 * Sums of exps run in REAL lanes over FSM_FLUSH vectors (rows) or terms
 * (blocks) at a time, which then add into ACC (double) lanes; the other sums
 * run in ACC.  Every slice reduces in a fixed order, whatever the thread
 * split. */
#include <math.h>
#include <string.h>

#include "log_ge1.h"
#include "slice_template.h"
#include "transpose.h"

#define FSM_SHORT_ROW 64        /* rows shorter than this are done as blocks */
#define FSM_SLAB 128            /* columns per task when inner > 1 */
#define FSM_ROW_GROUP 256       /* short rows per task */
#define FSM_LANE_BLOCKS 4       /* blocks of VW short rows moved into lanes at a time */
#define FSM_FLUSH 16            /* vectors summed in REAL lanes before adding them to ACC lanes */

#define FSM_K(name) FSM_CAT(name##_, SUF)
#define FSM_PUBLIC(name) FSM_CAT(FSM_K(name), ISA)
#define VW ((ptrdiff_t)(sizeof(VREAL) / sizeof(REAL)))

typedef struct {
    const REAL *a, *b; /* inputs: x, or (grad, y / logp) */
    REAL *out;
    ptrdiff_t outer, n, inner;
    ptrdiff_t block;   /* rows per task, or columns per task */
    ptrdiff_t blocks_per_outer;
} FSM_K(fsm_slices);

/* ---- vector helpers ------------------------------------------------------ */

/* For a vector type V of W lanes, as pre##splat, pre##load, pre##store_at
 * and pre##flush: v for VREAL (blocks), r for RVREAL (rows).
 * load: the first w <= W elements at p, the other lanes set to fill; only
 * the w elements are read (w is a constant W in the hot loops).
 * store_at: writes the first w lanes of *v to p.
 * (A partial vector goes through LOAD_FIRST and STORE_FIRST, dtype_params.h.)
 * flush: adds the lanes of *s to W ACC lanes. */
#define FSM_DEFINE_VECTOR_OPS(V, W, pre, LOAD_FIRST, STORE_FIRST)                         \
    FSM_ALWAYS_INLINE V FSM_K(pre##splat)(REAL a)                                         \
    {                                                                                     \
        V v;                                                                              \
        for (int k = 0; k < W; k++) v[k] = a;                                             \
        return v;                                                                         \
    }                                                                                     \
    FSM_ALWAYS_INLINE V FSM_K(pre##load)(const REAL *p, ptrdiff_t w, REAL fill)           \
    {                                                                                     \
        V v;                                                                              \
        if (w == W)                                                                       \
            memcpy(&v, p, sizeof v);                                                      \
        else                                                                              \
            v = LOAD_FIRST(p, w, fill);                                                   \
        return v;                                                                         \
    }                                                                                     \
    FSM_ALWAYS_INLINE void FSM_K(pre##store_at)(REAL *p, const V *v, ptrdiff_t w)         \
    {                                                                                     \
        if (w == W)                                                                       \
            memcpy(p, v, sizeof *v);                                                      \
        else                                                                              \
            STORE_FIRST(p, v, w);                                                         \
    }                                                                                     \
    FSM_ALWAYS_INLINE void FSM_K(pre##flush)(ACC *acc, const V *s)                        \
    {                                                                                     \
        for (int k = 0; k < W; k++) acc[k] += (ACC)(*s)[k];                               \
    }

FSM_DEFINE_VECTOR_OPS(VREAL, VW, v, VLOAD_FIRST, VSTORE_FIRST)
FSM_DEFINE_VECTOR_OPS(RVREAL, RVW, r, RLOAD_FIRST, RSTORE_FIRST)

/* The same for the value of an expression. */
#define FSM_VSTORE(p, value, w)                                                           \
    do {                                                                                  \
        const VREAL v_ = (value);                                                         \
        FSM_K(vstore_at)(p, &v_, w);                                                      \
    } while (0)
#define FSM_RSTORE(p, value, w)                                                           \
    do {                                                                                  \
        const RVREAL v_ = (value);                                                        \
        FSM_K(rstore_at)(p, &v_, w);                                                      \
    } while (0)

/* VEXP_NONPOS (RVEXP_NONPOS) of an expression. */
#define FSM_VEXP_NONPOS(value, result)                                                    \
    do {                                                                                  \
        const VREAL v_ = (value);                                                         \
        (result) = VEXP_NONPOS(&v_);                                                      \
    } while (0)
#define FSM_REXP_NONPOS(value, result)                                                    \
    do {                                                                                  \
        const RVREAL v_ = (value);                                                        \
        (result) = RVEXP_NONPOS(&v_);                                                     \
    } while (0)

/* Runs BODY with i stepping over [0, n) by row vectors and w the lanes in
 * use: RVW (a constant, for the compiler) up to the last, partial, vector. */
#define FSM_FOR_VECTORS(n, BODY)                                                          \
    do {                                                                                  \
        ptrdiff_t i = 0;                                                                  \
        for (; i + RVW <= (n); i += RVW) {                                                \
            const ptrdiff_t w = RVW;                                                      \
            BODY;                                                                         \
        }                                                                                 \
        if (i < (n)) {                                                                    \
            const ptrdiff_t w = (n) - i;                                                  \
            BODY;                                                                         \
        }                                                                                 \
    } while (0)

/* FSM_FOR_VECTORS, and meanwhile result = the max of the n elements at
 * next (unless next is NULL), fetched from memory, as fsm_slice_max. */
#define FSM_FOR_VECTORS_TAKING_MAX(n, next, result, BODY)                                 \
    do {                                                                                  \
        REAL lane_[RVW];                                                                  \
        for (int k = 0; k < RVW; k++) lane_[k] = (REAL)-INFINITY;                         \
        if ((next) == NULL) {                                                             \
            FSM_FOR_VECTORS(n, BODY);                                                     \
        } else {                                                                          \
            FSM_FOR_VECTORS(n, {                                                          \
                BODY;                                                                     \
                const RVREAL v_ = FSM_K(rload)((next) + i, w, (REAL)-INFINITY);           \
                FSM_SLICE(fsm_max_into_lanes)(lane_, &v_);                                \
            });                                                                           \
        }                                                                                 \
        (result) = FSM_SLICE(fsm_max_of_lanes)(lane_);                                    \
    } while (0)

#define FSM_VMAX(a, b) FSM_VSELECT((b) > (a), b, a) /* NaN in b ignored */

/* The sum of RVW ACC lanes, in a fixed tree. */
FSM_ALWAYS_INLINE ACC FSM_K(rhsum)(ACC *acc)
{
    for (int width = RVW / 2; width > 0; width /= 2)
        for (int k = 0; k < width; k++) acc[k] += acc[k + width];
    return acc[0];
}

/* ---- row passes ----------------------------------------------------------- */

/* sum(exp(x - m)) over a row, and e[i] = exp(x[i] - m) unless e is NULL (e
 * may be x); the n elements at ahead (unless NULL) are fetched meanwhile.
 * Partial sums: one vector of REAL lanes per FSM_FLUSH vectors (one add per
 * exp is not on the critical path). */
FSM_ALWAYS_INLINE ACC FSM_K(row_exp_sum)(const REAL *x, REAL *e, ptrdiff_t n, REAL m,
                                         const REAL *ahead)
{
    ACC acc[RVW] = {0};
    ptrdiff_t i = 0;
    while (i < n) {
        const ptrdiff_t end = n - i > FSM_FLUSH * RVW ? i + FSM_FLUSH * RVW : n;
        RVREAL s = {0};
        for (; i + RVW <= end; i += RVW) {
            RVREAL ei;
            FSM_REXP_NONPOS(FSM_K(rload)(x + i, RVW, 0) - m, ei);
            if (e) FSM_K(rstore_at)(e + i, &ei, RVW);
            if (ahead) __builtin_prefetch(ahead + i);
            s += ei;
        }
        if (i < end) { /* the end of the row */
            const ptrdiff_t w = end - i;
            RVREAL ei;
            FSM_REXP_NONPOS(FSM_K(rload)(x + i, w, (REAL)-INFINITY) - m, ei);
            if (e) FSM_K(rstore_at)(e + i, &ei, w);
            s += ei;
            i = end;
        }
        FSM_K(rflush)(acc, &s);
    }
    return FSM_K(rhsum)(acc);
}

/* sum(x * f) in FSM_LANES double lanes, in fsm_slice_dot's order. */
FSM_ALWAYS_INLINE ACC FSM_K(row_sum_scaled)(const REAL *x, ptrdiff_t n, ACC f)
{
    ACC lane[FSM_LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + FSM_LANES <= n; i += FSM_LANES)
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) lane[k] += (ACC)x[i + k] * f;
    for (int k = 0; i < n; i++, k++) lane[k] += (ACC)x[i] * f;
    return FSM_SLICE(fsm_combine_lanes)(lane);
}

/* Partial sums in lanes can overflow where the sum does not (terms near the
 * largest double, of both signs): such a sum is done again with the terms
 * scaled by 2^-64, which is exact, and scaled back. */
#define FSM_SUM_DOWN 5.421010862427522e-20 /* 2^-64 */
#define FSM_SUM_UP 18446744073709551616.0  /* 2^64 */

FSM_ALWAYS_INLINE ACC FSM_K(row_sum)(const REAL *x, ptrdiff_t n)
{
    const ACC s = FSM_K(row_sum_scaled)(x, n, 1);
    return isfinite(s) ? s : FSM_K(row_sum_scaled)(x, n, FSM_SUM_DOWN) * FSM_SUM_UP;
}

/* ---- drivers -------------------------------------------------------------- */

/* The range function over rows for operation OP, from OP_row(a, b, out, n,
 * more): more says that another row of the range follows, which OP_row may
 * fetch during a pass that runs in cache (the hardware prefetchers alone
 * left the first pass of each row waiting on memory: a quarter of the time
 * at 4096 x 1000). */
#define FSM_DEFINE_ROWS(OP)                                                                       \
    FSM_HOT static void FSM_K(OP##_rows)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)                   \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        const ptrdiff_t n = c->n;                                                                 \
        const REAL *b = c->b;                                                                     \
        for (ptrdiff_t r = r0; r < r1; r++)                                                       \
            FSM_K(OP##_row)(c->a + r * n, b ? b + r * n : NULL, c->out + r * n, n, r + 1 < r1);   \
    }

/* The same for an operation that starts from the row's max, from
 * OP_row(x, out, n, m, next): m is the max of x, and OP_row returns the max
 * of the row at next (unless NULL), which it takes in its last pass and
 * fetches meanwhile: that pass then has work while it waits for the sum of
 * exps, and the next row is in cache for its own passes. */
#define FSM_DEFINE_MAX_ROWS(OP)                                                                   \
    FSM_HOT static void FSM_K(OP##_rows)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)                   \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        const ptrdiff_t n = c->n;                                                                 \
        REAL m = FSM_SLICE(fsm_slice_max)(c->a + r0 * n, n);                                      \
        for (ptrdiff_t r = r0; r < r1; r++)                                                       \
            m = FSM_K(OP##_row)(c->a + r * n, c->out + r * n, n, m,                               \
                                r + 1 < r1 ? c->a + (r + 1) * n : NULL);                          \
    }

/* Defines OP_short_rows and OP_columns, the range functions of the other
 * shapes, from OP_block(a, b, out, n, si, w), and OP_run, which splits the
 * work among threads (OP_rows for rows, defined before). */
#define FSM_DEFINE_RUN(OP)                                                                        \
    FSM_HOT static void FSM_K(OP##_short_rows)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)             \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        const ptrdiff_t n = c->n;                                                                 \
        const ptrdiff_t end = t1 * c->block < c->outer ? t1 * c->block : c->outer;               \
        REAL ta[FSM_LANE_BLOCKS * FSM_SHORT_ROW * VW], tb[FSM_LANE_BLOCKS * FSM_SHORT_ROW * VW];   \
        REAL rows[FSM_LANE_BLOCKS * FSM_SHORT_ROW * VW + VW]; /* + what from_lanes writes past */ \
        /* Results go straight to out unless in place (what from_lanes writes past            \
         * the rows would overwrite input not read yet). */                                       \
        const int direct = c->out != c->a && c->out != c->b;                                      \
        for (ptrdiff_t r = t0 * c->block; r < end; r += FSM_LANE_BLOCKS * VW) {                   \
            const ptrdiff_t count = end - r < FSM_LANE_BLOCKS * VW ? end - r : FSM_LANE_BLOCKS * VW; \
            FSM_K(to_lanes)(c->a + r * n, count, n, ta);                                          \
            if (c->b) FSM_K(to_lanes)(c->b + r * n, count, n, tb);                                \
            for (ptrdiff_t k = 0; k < count; k += VW)                                             \
                FSM_K(OP##_block)(ta + k * n, tb + k * n, ta + k * n, n, VW, VW);                 \
            /* what from_lanes writes past, this task writes next */                             \
            if (direct && (end - r - count) * n >= VW) {                                          \
                FSM_K(from_lanes)(ta, count, n, c->out + r * n);                                  \
                continue;                                                                         \
            }                                                                                     \
            FSM_K(from_lanes)(ta, count, n, rows);                                                \
            memcpy(c->out + r * n, rows, (size_t)(count * n) * sizeof(REAL));                     \
        }                                                                                         \
    }                                                                                             \
    FSM_HOT static void FSM_K(OP##_columns)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)                \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        for (ptrdiff_t t = t0; t < t1; t++) {                                                     \
            const ptrdiff_t o = t / c->blocks_per_outer;                                          \
            const ptrdiff_t j0 = (t % c->blocks_per_outer) * c->block;                            \
            const ptrdiff_t j1 = c->inner - j0 < c->block ? c->inner : j0 + c->block;             \
            for (ptrdiff_t j = j0; j < j1; j += VW) {                                             \
                const ptrdiff_t offset = o * c->n * c->inner + j;                                 \
                const REAL *a = c->a + offset, *b = c->b ? c->b + offset : NULL;                  \
                if (j1 - j >= VW)                                                                 \
                    FSM_K(OP##_block)(a, b, c->out + offset, c->n, c->inner, VW);                 \
                else                                                                              \
                    FSM_K(OP##_block)(a, b, c->out + offset, c->n, c->inner, j1 - j);             \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    static void FSM_K(OP##_run)(FSM_K(fsm_slices) * c, int max_threads)                           \
    {                                                                                             \
        const ptrdiff_t n = c->n;                                                                 \
        if (c->inner == 1 && n >= FSM_SHORT_ROW) {                                                \
            fsm_parallel_for(c->outer, n, max_threads, FSM_K(OP##_rows), c);                      \
        } else if (c->inner == 1) {                                                               \
            c->block = FSM_ROW_GROUP;                                                             \
            fsm_parallel_for((c->outer + c->block - 1) / c->block, n * c->block, max_threads,     \
                             FSM_K(OP##_short_rows), c);                                          \
        } else {                                                                                  \
            c->block = FSM_SLAB;                                                                  \
            c->blocks_per_outer = (c->inner + FSM_SLAB - 1) / FSM_SLAB;                           \
            fsm_parallel_for(c->outer * c->blocks_per_outer, n * FSM_SLAB, max_threads,           \
                             FSM_K(OP##_columns), c);                                             \
        }                                                                                         \
    }

/* count short rows (count <= FSM_LANE_BLOCKS * VW) into lane form, block
 * after block (transpose.h), the unused lanes of a last partial block 0; and
 * back, writing up to VW elements past the rows. */
FSM_ALWAYS_INLINE void FSM_K(to_lanes)(const REAL *rows, ptrdiff_t count, ptrdiff_t n, REAL *lanes)
{
    const ptrdiff_t full = count / VW * VW;
    if (full) FSM_CAT(fsm_rows_to_lanes_tiled_, SUF)(rows, n, full, VW, lanes);
    if (full == count) return;
    rows += full * n;
    lanes += full * n;
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t k = 0; k < VW; k++) lanes[i * VW + k] = k < count - full ? rows[k * n + i] : 0;
}

FSM_ALWAYS_INLINE void FSM_K(from_lanes)(const REAL *lanes, ptrdiff_t count, ptrdiff_t n, REAL *rows)
{
    const ptrdiff_t full = count / VW * VW;
    if (full) FSM_CAT(fsm_lanes_to_rows_padded_, SUF)(lanes, n, full, VW, rows);
    rows += full * n;
    lanes += full * n;
    for (ptrdiff_t k = 0; k < count - full; k++)
        for (ptrdiff_t i = 0; i < n; i++) rows[k * n + i] = lanes[i * VW + k];
}

/* In a block: the vector of element i, and its store. */
#define FSM_LOAD(p, i) FSM_K(vload)((p) + (i) * si, w, 0)
#define FSM_STORE(p, i, v) FSM_VSTORE((p) + (i) * si, v, w)

FSM_ALWAYS_INLINE VREAL FSM_K(block_max)(const REAL *x, ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    VREAL m0 = FSM_K(vsplat)((REAL)-INFINITY), m1 = m0;
    ptrdiff_t i = 0;
    for (; i + 2 <= n; i += 2) {
        m0 = FSM_VMAX(m0, FSM_LOAD(x, i));
        m1 = FSM_VMAX(m1, FSM_LOAD(x, i + 1));
    }
    if (i < n) m0 = FSM_VMAX(m0, FSM_LOAD(x, i));
    return FSM_VMAX(m0, m1);
}

/* Per lane: sum(exp(x[i] - m)) over i in [i0, i1), in REAL, and e = exp(x -
 * m) there unless e is NULL; even and odd i in two sums, so that neither
 * waits on a chain of i1 - i0 adds. */
FSM_ALWAYS_INLINE VREAL FSM_K(block_exp_sum_part)(const REAL *x, REAL *e, ptrdiff_t i0,
                                                  ptrdiff_t i1, ptrdiff_t si, ptrdiff_t w,
                                                  VREAL m)
{
    VREAL s0 = {0}, s1 = {0};
    ptrdiff_t i = i0;
    for (; i + 2 <= i1; i += 2) {
        VREAL e0, e1;
        FSM_VEXP_NONPOS(FSM_LOAD(x, i) - m, e0);
        FSM_VEXP_NONPOS(FSM_LOAD(x, i + 1) - m, e1);
        if (e) {
            FSM_STORE(e, i, e0);
            FSM_STORE(e, i + 1, e1);
        }
        s0 += e0;
        s1 += e1;
    }
    if (i < i1) {
        VREAL ei;
        FSM_VEXP_NONPOS(FSM_LOAD(x, i) - m, ei);
        if (e) FSM_STORE(e, i, ei);
        s0 += ei;
    }
    return s0 + s1;
}

/* Per lane: sum(exp(x - m)) into acc, in parts of FSM_FLUSH terms, and e =
 * exp(x - m) unless e is NULL.  (With n <= FSM_FLUSH the sum is one part's,
 * a REAL held exactly.) */
FSM_ALWAYS_INLINE void FSM_K(block_exp_sum)(const REAL *x, REAL *e, ptrdiff_t n, ptrdiff_t si,
                                            ptrdiff_t w, VREAL m, ACC *acc)
{
    for (int k = 0; k < VW; k++) acc[k] = 0;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += FSM_FLUSH) {
        const ptrdiff_t i1 = n - i0 < FSM_FLUSH ? n : i0 + FSM_FLUSH;
        const VREAL s = FSM_K(block_exp_sum_part)(x, e, i0, i1, si, w, m);
        FSM_K(vflush)(acc, &s);
    }
}

/* ---- softmax ---------------------------------------------------------- */

FSM_ALWAYS_INLINE REAL FSM_K(fsm_softmax_row)(const REAL *x, REAL *out, ptrdiff_t n, REAL m,
                                              const REAL *next)
{
    const RVREAL f = FSM_K(rsplat)((REAL)(1 / FSM_K(row_exp_sum)(x, out, n, m, next)));
    REAL next_max;
    FSM_FOR_VECTORS_TAKING_MAX(n, next, next_max,
                               FSM_RSTORE(out + i, FSM_K(rload)(out + i, w, 0) * f, w));
    return next_max;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_block)(const REAL *x, const REAL *unused, REAL *out,
                                                ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    (void)unused;
    const VREAL m = FSM_K(block_max)(x, n, si, w);
    VREAL f;
    if (n <= FSM_FLUSH) {
        /* 1 / sum rounded to double and then to REAL is 1 / sum rounded to
         * REAL (double has more than twice REAL's precision): the same bits
         * as below, without the trip through double. */
        f = 1 / FSM_K(block_exp_sum_part)(x, out, 0, n, si, w, m);
    } else {
        ACC acc[VW];
        FSM_K(block_exp_sum)(x, out, n, si, w, m, acc);
        for (int k = 0; k < VW; k++) f[k] = (REAL)(1 / acc[k]);
    }
    for (ptrdiff_t i = 0; i < n; i++) FSM_STORE(out, i, FSM_LOAD(out, i) * f);
}

FSM_DEFINE_MAX_ROWS(fsm_softmax)
FSM_DEFINE_RUN(fsm_softmax)

void FSM_PUBLIC(fsm_softmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                             int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0, 0};
    FSM_K(fsm_softmax_run)(&c, max_threads);
}

/* ---- log_softmax: (x - max) - log(sum(exp(x - max))) ------------------- */

FSM_ALWAYS_INLINE REAL FSM_K(fsm_log_softmax_row)(const REAL *x, REAL *out, ptrdiff_t n, REAL m,
                                                  const REAL *next)
{
    const REAL log_sum = (REAL)log(FSM_K(row_exp_sum)(x, NULL, n, m, next));
    REAL next_max;
    FSM_FOR_VECTORS_TAKING_MAX(n, next, next_max,
                               FSM_RSTORE(out + i, (FSM_K(rload)(x + i, w, 0) - m) - log_sum, w));
    return next_max;
}

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_block)(const REAL *x, const REAL *unused, REAL *out,
                                                    ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    (void)unused;
    ACC acc[VW];
    const VREAL m = FSM_K(block_max)(x, n, si, w);
    FSM_K(block_exp_sum)(x, NULL, n, si, w, m, acc);
    VREAL log_sum;
    for (int k = 0; k < VW; k++) log_sum[k] = (REAL)fsm_log_ge1(acc[k]); /* vectorises */
    for (ptrdiff_t i = 0; i < n; i++) FSM_STORE(out, i, (FSM_LOAD(x, i) - m) - log_sum);
}

FSM_DEFINE_MAX_ROWS(fsm_log_softmax)
FSM_DEFINE_RUN(fsm_log_softmax)

void FSM_PUBLIC(fsm_log_softmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,
                                 ptrdiff_t inner, int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0, 0};
    FSM_K(fsm_log_softmax_run)(&c, max_threads);
}

/* ---- hardmax: one-hot of the argmax ------------------------------------ */

FSM_ALWAYS_INLINE void FSM_K(fsm_hardmax_row)(const REAL *x, const REAL *unused, REAL *out,
                                              ptrdiff_t n, int more)
{
    (void)unused, (void)more;
    const ptrdiff_t best = FSM_SLICE(fsm_row_argmax)(x, n);
    const RVREAL zero = {0};
    FSM_FOR_VECTORS(n, FSM_K(rstore_at)(out + i, &zero, w));
    out[best] = 1;
}

/* Per lane: the first largest entry, or the first NaN (as numpy.argmax). */
FSM_ALWAYS_INLINE void FSM_K(fsm_hardmax_block)(const REAL *x, const REAL *unused, REAL *out,
                                                ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    (void)unused;
    VREAL best = FSM_LOAD(x, 0);
    VMASK at = {0}; /* index of the best entry so far */
    for (ptrdiff_t i = 1; i < n; i++) {
        const VREAL v = FSM_LOAD(x, i);
        const VMASK take = (v > best) | ((v != v) & (best == best));
        best = FSM_VSELECT(take, v, best);
        at = FSM_VSELECT(take, at * 0 + (__typeof__(at[0]))i, at);
    }
    const VREAL one = FSM_K(vsplat)(1), zero = {0};
    for (ptrdiff_t i = 0; i < n; i++)
        FSM_STORE(out, i, FSM_VSELECT(at == (__typeof__(at[0]))i, one, zero));
}

FSM_DEFINE_ROWS(fsm_hardmax)
FSM_DEFINE_RUN(fsm_hardmax)

void FSM_PUBLIC(fsm_hardmax)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                             int max_threads)
{
    FSM_K(fsm_slices) c = {x, NULL, out, outer, n, inner, 0, 0};
    FSM_K(fsm_hardmax_run)(&c, max_threads);
}

/* ---- softmax_backward: y * (grad - sum(grad * y)) ----------------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_backward_row)(const REAL *g, const REAL *y, REAL *out,
                                                       ptrdiff_t n, int more)
{
    const REAL s = (REAL)FSM_SLICE(fsm_slice_dot)(g, y, n);
    /* The next rows are fetched during this pass, which runs in cache. */
    FSM_FOR_VECTORS(n, {
        if (more && w == RVW) {
            __builtin_prefetch(g + n + i);
            __builtin_prefetch(y + n + i);
        }
        FSM_RSTORE(out + i, FSM_K(rload)(y + i, w, 0) * (FSM_K(rload)(g + i, w, 0) - s), w);
    });
}

FSM_ALWAYS_INLINE void FSM_K(fsm_softmax_backward_block)(const REAL *g, const REAL *y, REAL *out,
                                                         ptrdiff_t n, ptrdiff_t si, ptrdiff_t w)
{
    ACC acc[VW] = {0};
    for (ptrdiff_t i = 0; i < n; i++) {
        const VREAL gi = FSM_LOAD(g, i), yi = FSM_LOAD(y, i);
        for (int k = 0; k < VW; k++) acc[k] += (ACC)gi[k] * (ACC)yi[k];
    }
    VREAL s;
    for (int k = 0; k < VW; k++) s[k] = (REAL)acc[k];
    for (ptrdiff_t i = 0; i < n; i++) FSM_STORE(out, i, FSM_LOAD(y, i) * (FSM_LOAD(g, i) - s));
}

FSM_DEFINE_ROWS(fsm_softmax_backward)
FSM_DEFINE_RUN(fsm_softmax_backward)

void FSM_PUBLIC(fsm_softmax_backward)(const REAL *grad, const REAL *y, REAL *out, ptrdiff_t outer,
                                      ptrdiff_t n, ptrdiff_t inner, int max_threads)
{
    FSM_K(fsm_slices) c = {grad, y, out, outer, n, inner, 0, 0};
    FSM_K(fsm_softmax_backward_run)(&c, max_threads);
}

/* ---- log_softmax_backward: grad - exp(logp) * sum(grad) ----------------- */

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_backward_row)(const REAL *g, const REAL *logp,
                                                           REAL *out, ptrdiff_t n, int more)
{
    (void)more;
    const REAL s = (REAL)FSM_K(row_sum)(g, n);
    for (ptrdiff_t i = 0; i < n; i++) out[i] = g[i] - EXP(logp[i]) * s;
}

/* Per lane, sum(g * f) in order. */
FSM_ALWAYS_INLINE void FSM_K(block_sum_scaled)(const REAL *g, ptrdiff_t n, ptrdiff_t si,
                                               ptrdiff_t w, ACC f, ACC *acc)
{
    for (int k = 0; k < VW; k++) acc[k] = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const VREAL gi = FSM_LOAD(g, i);
        for (int k = 0; k < VW; k++) acc[k] += (ACC)gi[k] * f;
    }
}

FSM_ALWAYS_INLINE void FSM_K(fsm_log_softmax_backward_block)(const REAL *g, const REAL *logp,
                                                             REAL *out, ptrdiff_t n, ptrdiff_t si,
                                                             ptrdiff_t w)
{
    ACC acc[VW], scaled[VW];
    FSM_K(block_sum_scaled)(g, n, si, w, 1, acc);
    int overflow = 0;
    for (int k = 0; k < VW; k++) overflow |= !isfinite(acc[k]);
    if (overflow) { /* as in row_sum */
        FSM_K(block_sum_scaled)(g, n, si, w, FSM_SUM_DOWN, scaled);
        for (int k = 0; k < VW; k++) acc[k] = isfinite(acc[k]) ? acc[k] : scaled[k] * FSM_SUM_UP;
    }
    REAL s[VW];
    for (int k = 0; k < VW; k++) s[k] = (REAL)acc[k];
    for (ptrdiff_t i = 0; i < n; i++) {
        const VREAL gi = FSM_LOAD(g, i), li = FSM_LOAD(logp, i);
        VREAL o;
        for (int k = 0; k < VW; k++) o[k] = gi[k] - EXP(li[k]) * s[k];
        FSM_STORE(out, i, o);
    }
}

FSM_DEFINE_ROWS(fsm_log_softmax_backward)
FSM_DEFINE_RUN(fsm_log_softmax_backward)

void FSM_PUBLIC(fsm_log_softmax_backward)(const REAL *grad, const REAL *logp, REAL *out,
                                          ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                                          int max_threads)
{
    FSM_K(fsm_slices) c = {grad, logp, out, outer, n, inner, 0, 0};
    FSM_K(fsm_log_softmax_backward_run)(&c, max_threads);
}

#undef FSM_LOAD
#undef FSM_STORE
#undef FSM_VMAX
#undef FSM_FOR_VECTORS
#undef FSM_VSTORE
#undef FSM_RSTORE
#undef FSM_VEXP_NONPOS
#undef FSM_REXP_NONPOS
#undef FSM_DEFINE_VECTOR_OPS
#undef FSM_SUM_DOWN
#undef FSM_SUM_UP
#undef FSM_DEFINE_ROWS
#undef FSM_DEFINE_MAX_ROWS
#undef FSM_DEFINE_RUN
#undef FSM_FOR_VECTORS_TAKING_MAX
#undef VW
#undef FSM_PUBLIC
#undef FSM_K
#undef FSM_SLICE
