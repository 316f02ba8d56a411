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
 *  - OP_block (softmax_blocks.h): VW slices side by side, one per vector
 *    lane, element i of slice k at i*si + k.  Columns (inner > 1) are blocks
 *    in place; short rows are moved VW at a time into the lanes of a small
 *    buffer, done there and moved back (transpose.h), so a row of 10 never
 *    runs a loop of 10.  In the AVX-512 build blocks are 64 bytes wide (16
 *    floats: rows of 10 17% faster, columns 30% faster than 32-byte blocks),
 *    with 32-byte ones for a last narrow part of a block of columns.
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
#define FSM_PARTIAL_MAX 64      /* the longest slice of a partial block moved into lanes */
#define FSM_PIPELINE_BYTES 4096 /* the longest rows softmax pipelines (see fsm_softmax_rows) */
#define FSM_PIPELINE_AHEAD 5    /* rows past the next that a pipeline step fetches into L2 */

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

/* For a vector type V of W lanes, as NAME(splat), NAME(load), NAME(store_at)
 * and NAME(flush) (FSM_R: rload and so on for RVREAL, the rows' vector; the
 * blocks' in softmax_blocks.h).
 * load: the first w <= W elements at p, the other lanes set to fill; only
 * the w elements are read (w is a constant W in the hot loops).
 * store_at: writes the first w lanes of *v to p.
 * (A partial vector goes through LOAD_FIRST and STORE_FIRST, dtype_params.h.)
 * flush: adds the lanes of *s to W ACC lanes. */
#define FSM_DEFINE_VECTOR_OPS(V, W, NAME, LOAD_FIRST, STORE_FIRST)                        \
    FSM_ALWAYS_INLINE V NAME(splat)(REAL a)                                               \
    {                                                                                     \
        V v;                                                                              \
        for (int k = 0; k < W; k++) v[k] = a;                                             \
        return v;                                                                         \
    }                                                                                     \
    FSM_ALWAYS_INLINE V NAME(load)(const REAL *p, ptrdiff_t w, REAL fill)                 \
    {                                                                                     \
        V v;                                                                              \
        if (w == W)                                                                       \
            memcpy(&v, p, sizeof v);                                                      \
        else                                                                              \
            v = LOAD_FIRST(p, w, fill);                                                   \
        return v;                                                                         \
    }                                                                                     \
    FSM_ALWAYS_INLINE void NAME(store_at)(REAL *p, const V *v, ptrdiff_t w)               \
    {                                                                                     \
        if (w == W)                                                                       \
            memcpy(p, v, sizeof *v);                                                      \
        else                                                                              \
            STORE_FIRST(p, v, w);                                                         \
    }                                                                                     \
    FSM_ALWAYS_INLINE void NAME(flush)(ACC *acc, const V *s)                              \
    {                                                                                     \
        for (int k = 0; k < W; k++) acc[k] += (ACC)(*s)[k];                               \
    }

#define FSM_R(name) FSM_K(r##name)
FSM_DEFINE_VECTOR_OPS(RVREAL, RVW, FSM_R, RLOAD_FIRST, RSTORE_FIRST)

/* STORE_AT (a vector type V's store_at) and EXP of the value of an
 * expression, for the row vector here and the blocks' in softmax_blocks.h. */
#define FSM_STORE_VALUE(V, STORE_AT, p, value, w)                                         \
    do {                                                                                  \
        const V v_ = (value);                                                             \
        STORE_AT(p, &v_, w);                                                              \
    } while (0)
#define FSM_EXP_VALUE(V, EXP_OF, value, result)                                           \
    do {                                                                                  \
        const V v_ = (value);                                                             \
        (result) = EXP_OF(&v_);                                                           \
    } while (0)
#define FSM_RSTORE(p, value, w) FSM_STORE_VALUE(RVREAL, FSM_R(store_at), p, value, w)
#define FSM_REXP_NONPOS(value, result) FSM_EXP_VALUE(RVREAL, RVEXP_NONPOS, value, result)

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

/* The sum of RVW ACC lanes, in a fixed tree. */
FSM_ALWAYS_INLINE ACC FSM_K(rhsum)(ACC *acc)
{
    for (int width = RVW / 2; width > 0; width /= 2)
        for (int k = 0; k < width; k++) acc[k] += acc[k + width];
    return acc[0];
}

/* ---- row passes ----------------------------------------------------------- */

/* Values ahead of its stores at which the exp pass fetches the lines it
 * will write: 256 x 32000 floats 4-6% faster, 4096 x 1000 unchanged (its
 * rows are fetched whole before, see fsm_softmax_row); 1 KB and 4 KB ahead
 * gained nothing, nor did 2 KB for cross-entropy's gradient (1-3%, within
 * the noise). */
#define FSM_STORE_AHEAD (2048 / (ptrdiff_t)sizeof(REAL))

/* Runs BODY for each vector of the row of n values at x, with ei =
 * exp(x - m) over its w lanes (w is RVW, a constant for the compiler, up to
 * the last, partial, vector, whose other lanes are 0), and sets sum to the
 * sum of the ei: in REAL lanes over FSM_FLUSH vectors at a time (one add
 * per exp is not on the critical path), then in ACC lanes. */
#define FSM_FOR_EXPS(x, n, m, sum, BODY)                                                  \
    do {                                                                                  \
        ACC acc_[RVW] = {0};                                                              \
        ptrdiff_t i = 0;                                                                  \
        while (i < (n)) {                                                                 \
            const ptrdiff_t end_ = (n) - i > FSM_FLUSH * RVW ? i + FSM_FLUSH * RVW : (n); \
            RVREAL s_ = {0};                                                              \
            for (; i + RVW <= end_; i += RVW) {                                           \
                const ptrdiff_t w = RVW;                                                  \
                RVREAL ei;                                                                \
                FSM_REXP_NONPOS(FSM_K(rload)((x) + i, RVW, 0) - (m), ei);                 \
                BODY;                                                                     \
                s_ += ei;                                                                 \
            }                                                                             \
            if (i < end_) { /* the end of the row */                                      \
                const ptrdiff_t w = end_ - i;                                             \
                RVREAL ei;                                                                \
                FSM_REXP_NONPOS(FSM_K(rload)((x) + i, w, (REAL)-INFINITY) - (m), ei);     \
                BODY;                                                                     \
                s_ += ei;                                                                 \
                i = end_;                                                                 \
            }                                                                             \
            FSM_K(rflush)(acc_, &s_);                                                     \
        }                                                                                 \
        (sum) = FSM_K(rhsum)(acc_);                                                       \
    } while (0)

/* sum(exp(x - m)) over a row, and e[i] = exp(x[i] - m) unless e is NULL (e
 * may be x); the n elements at ahead (unless NULL) are fetched meanwhile. */
FSM_ALWAYS_INLINE ACC FSM_K(row_exp_sum)(const REAL *x, REAL *e, ptrdiff_t n, REAL m,
                                         const REAL *ahead)
{
    ACC sum;
    FSM_FOR_EXPS(x, n, m, sum, {
        if (e) FSM_K(rstore_at)(e + i, &ei, w);
        if (ahead) __builtin_prefetch(ahead + i);
        if (e && i + FSM_STORE_AHEAD < n) __builtin_prefetch(e + i + FSM_STORE_AHEAD);
    });
    return sum;
}

/* sum(a * b) over a row: products summed in REAL lanes over FSM_FLUSH
 * vectors at a time, as the sums of exps, then in ACC lanes (softmax
 * backward, rows of 1000 floats in cache: 37% faster than products in
 * double).  A REAL partial sum can overflow where the sum does not: the
 * dot is then done again in ACC throughout. */
FSM_ALWAYS_INLINE ACC FSM_K(row_dot_blocked)(const REAL *a, const REAL *b, ptrdiff_t n)
{
    ACC acc[RVW] = {0};
    ptrdiff_t i = 0;
    while (i < n) {
        const ptrdiff_t end = n - i > FSM_FLUSH * RVW ? i + FSM_FLUSH * RVW : n;
        RVREAL s = {0};
        for (; i + RVW <= end; i += RVW) s += FSM_K(rload)(a + i, RVW, 0) * FSM_K(rload)(b + i, RVW, 0);
        if (i < end) { /* the end of the row */
            const ptrdiff_t w = end - i;
            s += FSM_K(rload)(a + i, w, 0) * FSM_K(rload)(b + i, w, 0);
            i = end;
        }
        FSM_K(rflush)(acc, &s);
    }
    return FSM_K(rhsum)(acc);
}

FSM_ALWAYS_INLINE ACC FSM_K(row_dot)(const REAL *a, const REAL *b, ptrdiff_t n)
{
    const ACC d = FSM_K(row_dot_blocked)(a, b, n);
    return isfinite(d) ? d : FSM_SLICE(fsm_slice_dot)(a, b, n);
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

/* The same for softmax and log_softmax (log_form), which start from the
 * row's max: rows of up to FSM_PIPELINE_BYTES through pipeline_rows, longer
 * ones pass by pass with OP_row(x, out, n, m, next): m is the max of x, and
 * OP_row returns the max of the row at next (unless NULL), which it takes
 * in its last pass and fetches meanwhile: that pass then has work while it
 * waits for the sum of exps, and the next row is in cache for its own
 * passes. */
#define FSM_DEFINE_MAX_ROWS(OP, log_form)                                                         \
    FSM_HOT static void FSM_K(OP##_rows)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)                   \
    {                                                                                             \
        const FSM_K(fsm_slices) *c = ctx;                                                         \
        const ptrdiff_t n = c->n;                                                                 \
        if (n * (ptrdiff_t)sizeof(REAL) <= FSM_PIPELINE_BYTES) {                                  \
            FSM_K(pipeline_rows)(c, r0, r1, log_form);                                            \
            return;                                                                               \
        }                                                                                         \
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
            for (ptrdiff_t j = j0; j < j1;) {                                                    \
                const ptrdiff_t offset = o * c->n * c->inner + j, left = j1 - j;                  \
                const REAL *a = c->a + offset, *b = c->b ? c->b + offset : NULL;                  \
                REAL *out = c->out + offset;                                                      \
                if (left >= VW) {                                                                 \
                    FSM_K(OP##_block)(a, b, out, c->n, c->inner, VW);                             \
                    j += VW;                                                                      \
                } else if (FSM_WIDE_ROWS && (left == VW / 2                                       \
                                             || (left > VW / 2 && c->n > FSM_PARTIAL_MAX))) {     \
                    FSM_HALF(OP##_block)(a, b, out, c->n, c->inner, VW / 2);                      \
                    j += VW / 2;                                                                  \
                } else if (c->n <= FSM_PARTIAL_MAX) {                                             \
                    REAL ta[FSM_PARTIAL_MAX * VW], tb[FSM_PARTIAL_MAX * VW];                      \
                    FSM_K(partial_to_lanes)(a, c->n, c->inner, left, ta);                         \
                    if (b) FSM_K(partial_to_lanes)(b, c->n, c->inner, left, tb);                  \
                    FSM_K(OP##_block)(ta, tb, ta, c->n, VW, VW);                                  \
                    FSM_K(partial_from_lanes)(ta, c->n, left, out, c->inner);                     \
                    j = j1;                                                                       \
                } else {                                                                          \
                    FSM_K(OP##_block)(a, b, out, c->n, c->inner, left);                           \
                    j = j1;                                                                       \
                }                                                                                 \
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

/* ---- blocks (softmax_blocks.h) ------------------------------------------ */

#define BVEC VREAL
#define BMASK VMASK
#define BW VW
#define BEXP_NONPOS VEXP_NONPOS
#define BLOAD_FIRST VLOAD_FIRST
#define BSTORE_FIRST VSTORE_FIRST
#define FSM_B(name) FSM_K(name)
#include "softmax_blocks.h"

/* With 64-byte blocks, also 32-byte ones: for the last VW/2 columns of a
 * block, which a wide block (through lanes, below) does at twice the cost
 * (softmax of 8 columns of floats); and for VW/2 of the last VW/2 to VW - 1
 * columns of a block too long to move into lanes. */
#if FSM_WIDE_ROWS
#define BVEC VREAL_HALF
#define BMASK VMASK_HALF
#define BW (VW / 2)
#define BEXP_NONPOS VEXP_NONPOS_HALF
#define BLOAD_FIRST VLOAD_FIRST_HALF
#define BSTORE_FIRST VSTORE_FIRST_HALF
#define FSM_B(name) FSM_CAT(FSM_K(name), _half)
#include "softmax_blocks.h"
#define FSM_HALF(name) FSM_CAT(FSM_K(name), _half)
#else
#define FSM_HALF(name) FSM_K(name) /* not called */
#endif

/* ---- softmax ---------------------------------------------------------- */

/* Rows of up to FSM_PIPELINE_BYTES of softmax and log_softmax go through a
 * pipeline, one loop per row: the exps of row r (and their sum), the
 * result of row r - 1 (whose sum is known), and the max of row r + 1.  On
 * its own the exp pass waits on the multiply-add units and the result pass
 * on stores; side by side each runs in the units the other leaves idle.
 * Softmax of 256 x 1000 floats (in cache) took 69 us against 82 us pass by
 * pass; of 4096 x 1000, 8192 x 512 and 65536 x 100, from memory, 4-12%
 * less on a quiet host.  Longer rows no longer fit in L1 six at a time:
 * 2048 x 2000 was 5-10% slower.  The sums, maxes and results are taken as
 * pass by pass, so they are the same bits either way. */

/* The row before, whose result a step writes: softmax scales its exps in
 * out by f = 1 / sum; log_softmax writes out = (x - m) - f, f = log(sum). */
typedef struct {
    REAL *out;
    const REAL *x;
    REAL m, f;
} FSM_K(fsm_done_row);

/* One step, for row x (max m): returns the sum of its exps, which softmax
 * (not log_form) stores at e; if finishing, writes done's result; if
 * taking_next, takes the max of the row at next into *next_max, and
 * fetches the row after it, the result the next step writes first (at
 * fetch) and, into L2, the row at far (without it 4096 x 1000 was no faster
 * than pass by pass).  The callers pass the flags as constants, so that
 * each loop has only its own work. */
FSM_ALWAYS_INLINE ACC FSM_K(pipeline_step)(const REAL *x, REAL *e, ptrdiff_t n, REAL m,
                                           int log_form, int finishing,
                                           const FSM_K(fsm_done_row) *done, int taking_next,
                                           const REAL *next, REAL *fetch, const REAL *far,
                                           REAL *next_max)
{
    REAL lane[RVW];
    FSM_SLICE(fsm_max_start)(lane);
    const RVREAL f = FSM_K(rsplat)(finishing ? done->f : 0);
    ACC sum;
    FSM_FOR_EXPS(x, n, m, sum, {
        if (!log_form) FSM_K(rstore_at)(e + i, &ei, w);
        if (finishing)
            FSM_RSTORE(done->out + i,
                       log_form ? (FSM_K(rload)(done->x + i, w, 0) - done->m) - f
                                : FSM_K(rload)(done->out + i, w, 0) * f,
                       w);
        if (taking_next) { /* the lanes past the row -inf, as fsm_slice_max */
            const RVREAL v = FSM_K(rload)(next + i, w, (REAL)-INFINITY);
            FSM_SLICE(fsm_max_into_lanes)(lane, &v);
            __builtin_prefetch(next + n + i);
            __builtin_prefetch(fetch + i);
            __builtin_prefetch(far + i, 0, 2);
        }
    });
    if (taking_next) *next_max = FSM_SLICE(fsm_max_of_lanes)(lane);
    return sum;
}

/* For the step of row r (at x) of the rows up to r1: the row
 * FSM_PIPELINE_AHEAD past the next, or the last row. */
FSM_ALWAYS_INLINE const REAL *FSM_K(pipeline_far)(const REAL *x, ptrdiff_t n, ptrdiff_t r,
                                                  ptrdiff_t r1)
{
    const ptrdiff_t left = r1 - 1 - r;
    return x + (left < 1 + FSM_PIPELINE_AHEAD ? left : 1 + FSM_PIPELINE_AHEAD) * n;
}

/* The factor of a row's result from the sum of its exps. */
FSM_ALWAYS_INLINE REAL FSM_K(pipeline_factor)(ACC sum, int log_form)
{
    return log_form ? (REAL)log(sum) : (REAL)(1 / sum);
}

/* The rows [r0, r1) through the pipeline; softmax's results first hold
 * the exps, which the next step (or the last pass here) scales. */
FSM_ALWAYS_INLINE void FSM_K(pipeline_rows)(const FSM_K(fsm_slices) *c, ptrdiff_t r0,
                                            ptrdiff_t r1, int log_form)
{
    const ptrdiff_t n = c->n;
    const REAL *x = c->a + r0 * n;
    REAL *out = c->out + r0 * n;
    REAL m = FSM_SLICE(fsm_slice_max)(x, n), next_m;
    FSM_K(fsm_done_row) done = {out, x, m, 0};
    if (r1 - r0 == 1) {
        done.f = FSM_K(pipeline_factor)(
            FSM_K(pipeline_step)(x, out, n, m, log_form, 0, NULL, 0, NULL, NULL, NULL, NULL),
            log_form);
    } else {
        done.f = FSM_K(pipeline_factor)(
            FSM_K(pipeline_step)(x, out, n, m, log_form, 0, NULL, 1, x + n, log_form ? out : out + n,
                                 FSM_K(pipeline_far)(x, n, r0, r1), &next_m),
            log_form);
        for (ptrdiff_t r = r0 + 1; r < r1; r++) {
            x += n;
            out += n;
            m = next_m;
            const int more = r + 1 < r1;
            const ACC sum =
                more ? FSM_K(pipeline_step)(x, out, n, m, log_form, 1, &done, 1, x + n,
                                            log_form ? out : out + n,
                                            FSM_K(pipeline_far)(x, n, r, r1), &next_m)
                     : FSM_K(pipeline_step)(x, out, n, m, log_form, 1, &done, 0, NULL, NULL,
                                            NULL, NULL);
            done = (FSM_K(fsm_done_row)){out, x, m, FSM_K(pipeline_factor)(sum, log_form)};
        }
    }
    if (!log_form) {
        FSM_SLICE(fsm_scale)(out, n, done.f, NULL, NULL);
        return;
    }
    const RVREAL f = FSM_K(rsplat)(done.f);
    FSM_FOR_VECTORS(n, FSM_RSTORE(out + i, (FSM_K(rload)(x + i, w, 0) - m) - f, w));
}

/* Longer rows go pass by pass.  The next row's result, at out + n, is
 * written first by its exp pass, which would wait there for each line to be
 * read in: the first FSM_FETCH_NEXT values are fetched during this row's
 * last pass instead (4096 x 1000 and 2048 x 2000 floats 6-16% faster,
 * cross-entropy's gradient at 4096 x 1000 8%; fetching more than 4 KB made
 * 1024 x 4096 5% slower). */
FSM_ALWAYS_INLINE REAL FSM_K(fsm_softmax_row)(const REAL *x, REAL *out, ptrdiff_t n, REAL m,
                                              const REAL *next)
{
    const RVREAL f = FSM_K(rsplat)((REAL)(1 / FSM_K(row_exp_sum)(x, out, n, m, next)));
    REAL next_max;
    FSM_FOR_VECTORS_TAKING_MAX(n, next, next_max, {
        FSM_RSTORE(out + i, FSM_K(rload)(out + i, w, 0) * f, w);
        if (next && i < FSM_FETCH_NEXT) __builtin_prefetch(out + n + i);
    });
    return next_max;
}

FSM_DEFINE_MAX_ROWS(fsm_softmax, 0)
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

FSM_DEFINE_MAX_ROWS(fsm_log_softmax, 1)
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
    const REAL s = (REAL)FSM_K(row_dot)(g, y, n);
    /* The next rows are fetched during this pass, which runs in cache, and
     * so is the next result, for writing (4096 x 1000 floats 5-6% faster). */
    FSM_FOR_VECTORS(n, {
        if (more && w == RVW) {
            __builtin_prefetch(g + n + i);
            __builtin_prefetch(y + n + i);
            __builtin_prefetch(out + n + i, 1);
        }
        FSM_RSTORE(out + i, FSM_K(rload)(y + i, w, 0) * (FSM_K(rload)(g + i, w, 0) - s), w);
    });
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

FSM_DEFINE_ROWS(fsm_log_softmax_backward)
FSM_DEFINE_RUN(fsm_log_softmax_backward)

void FSM_PUBLIC(fsm_log_softmax_backward)(const REAL *grad, const REAL *logp, REAL *out,
                                          ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                                          int max_threads)
{
    FSM_K(fsm_slices) c = {grad, logp, out, outer, n, inner, 0, 0};
    FSM_K(fsm_log_softmax_backward_run)(&c, max_threads);
}

#undef FSM_STORE_AHEAD
#undef FSM_FOR_VECTORS
#undef FSM_RSTORE
#undef FSM_STORE_VALUE
#undef FSM_EXP_VALUE
#undef FSM_FOR_EXPS
#undef FSM_REXP_NONPOS
#undef FSM_R
#undef FSM_HALF
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
