/* Cross-entropy kernels for one dtype; xent_instances.h includes this once
 * per dtype after dtype_params.h, whose RVREAL and RVEXP_NONPOS are the
 * vectors of the row and slab passes, and ISA (a suffix for the names of
 * the public functions).
 * The maths is in xent.h.
 *
 * One fused pass per sample: max, then exp(x - max) stored in `grad` while
 * its sum (and, for smoothing or probability targets, the weighted sums the
 * loss needs) accumulate, then the stored exps become the gradient.  The
 * sample stays in cache between these passes, so the logits are read from
 * memory once and the gradient written once.
 *
 * Work comes in the two shapes of softmax_template.h: long rows (inner == 1,
 * n >= FSM_XENT_SHORT_ROW) one at a time, and slabs of up to FSM_XENT_SLAB
 * samples side by side (short rows, or columns when inner > 1), vectorised
 * across the samples.  Tasks (a row or a slab) are grouped into at most
 * FSM_XENT_BLOCKS blocks fixed by the shape alone; each block sums its losses
 * in order, and the block sums are added in order, so the total does not
 * depend on how the threads split the blocks. */
#include "slice_template.h"
#include "transpose.h"
#include "log_ge1.h"

#define FSM_XENT_SHORT_ROW 64
#define FSM_XENT_SLAB 128
#define FSM_XENT_BLOCKS 256
/* Row stride of the transposed short-row buffers: not a multiple of 512
 * bytes, so consecutive classes do not alias in L1 and store forwarding. */
#define FSM_XENT_BUF_STRIDE (FSM_XENT_SLAB + 16)

#define FSM_X(name) FSM_CAT(name##_, SUF)
#define FSM_PUBLIC(name) FSM_CAT(FSM_X(name), ISA)

typedef struct {
    const REAL *x;
    const int64_t *index; /* index targets, one per sample (index kernels) */
    const REAL *prob;     /* probability targets, logits' layout (prob kernels) */
    const REAL *weight;   /* per-class weights, or NULL */
    REAL *grad, *loss;    /* outputs, or NULL */
    double *partial;      /* one loss sum per block */
    int64_t ignore_index;
    ACC keep, smooth, weight_total, scale; /* 1 - eps, eps / n, sum of w, grad scale */
    ptrdiff_t outer, n, inner, slabs_per_outer, ntasks, nblocks;
} FSM_X(fsm_xent_ctx);

#define FSM_AT(p, i, j) (p)[(i) * si + (j)]
#define FSM_W(i) (c->weight ? c->weight[i] : (REAL)1)

/* ---- row helpers: one contiguous sample of n logits ------------------- */

/* Sums of exps run in REAL lanes (FSM_LANES of them, held in vectors of
 * RVW) over blocks of FSM_XENT_EXP_BLOCK elements, each block then
 * added into ACC lanes: float's rounding error stays that of
 * a short sum, and the loop converts to double once per block. */
#define FSM_XENT_EXP_BLOCK (16 * FSM_LANES)

/* exp(x[k] - m) for the vector at x: EXP_NONPOS bit for bit (vexp.h), in
 * explicit vectors (GCC did not vectorise the scalar loop as well: a
 * quarter slower in cache). */
FSM_ALWAYS_INLINE RVREAL FSM_X(fsm_xent_vexp_at)(const REAL *x, REAL m)
{
    RVREAL v;
    memcpy(&v, x, sizeof v);
    v -= m;
    return RVEXP_NONPOS(&v);
}

/* e[j] = exp(x[j] - m[j]) for j < w, in vectors (e may be x): the slab
 * loops, vectorised across samples, would otherwise look up the exp's
 * table one lane at a time. */
FSM_ALWAYS_INLINE void FSM_X(fsm_xent_exp_lanes)(const REAL *x, const REAL *m, REAL *e,
                                                 ptrdiff_t w)
{
    ptrdiff_t j = 0;
    for (; j + RVW <= w; j += RVW) {
        RVREAL v, mv;
        memcpy(&v, x + j, sizeof v);
        memcpy(&mv, m + j, sizeof mv);
        v -= mv;
        const RVREAL ev = RVEXP_NONPOS(&v);
        memcpy(e + j, &ev, sizeof ev);
    }
    for (; j < w; j++) e[j] = EXP_NONPOS(x[j] - m[j]);
}

/* Asks for the cache lines of FSM_LANES elements at p. */
FSM_ALWAYS_INLINE void FSM_X(fsm_xent_prefetch_lanes)(const REAL *p)
{
    for (ptrdiff_t k = 0; k < FSM_LANES; k += 64 / (ptrdiff_t)sizeof(REAL)) __builtin_prefetch(p + k);
}

/* sum(exp(x - m)), nothing written; the n elements at ahead (unless NULL)
 * are fetched meanwhile, as in softmax_template.h. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_sum_exp)(const REAL *x, ptrdiff_t n, REAL m,
                                              const REAL *ahead)
{
    ACC lane[FSM_LANES] = {0};
    ptrdiff_t i = 0;
    while (i + FSM_LANES <= n) {
        REAL part[FSM_LANES] = {0};
        const ptrdiff_t end = n - i < FSM_XENT_EXP_BLOCK ? i + (n - i) / FSM_LANES * FSM_LANES
                                                        : i + FSM_XENT_EXP_BLOCK;
        RVREAL p[FSM_LANES / RVW] = {{0}};
        for (; i < end; i += FSM_LANES) {
            if (ahead) FSM_X(fsm_xent_prefetch_lanes)(ahead + i);
            for (int k = 0; k < FSM_LANES / RVW; k++)
                p[k] += FSM_X(fsm_xent_vexp_at)(x + i + k * RVW, m);
        }
        memcpy(part, p, sizeof part);
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) lane[k] += (ACC)part[k];
    }
    for (int k = 0; i < n; i++, k++) lane[k] += (ACC)EXP_NONPOS(x[i] - m);
    return FSM_SLICE(fsm_combine_lanes)(lane);
}

/* e[i] = exp(x[i] - m) and returns sum(e); e may be x; ahead as above. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_store_exp)(const REAL *x, REAL *e, ptrdiff_t n, REAL m,
                                                const REAL *ahead)
{
    ACC lane[FSM_LANES] = {0};
    ptrdiff_t i = 0;
    while (i + FSM_LANES <= n) {
        REAL part[FSM_LANES] = {0};
        const ptrdiff_t end = n - i < FSM_XENT_EXP_BLOCK ? i + (n - i) / FSM_LANES * FSM_LANES
                                                        : i + FSM_XENT_EXP_BLOCK;
        RVREAL p[FSM_LANES / RVW] = {{0}};
        for (; i < end; i += FSM_LANES) {
            if (ahead) FSM_X(fsm_xent_prefetch_lanes)(ahead + i);
            for (int k = 0; k < FSM_LANES / RVW; k++) {
                const RVREAL ev = FSM_X(fsm_xent_vexp_at)(x + i + k * RVW, m);
                memcpy(e + i + k * RVW, &ev, sizeof ev);
                p[k] += ev;
            }
        }
        memcpy(part, p, sizeof part);
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) lane[k] += (ACC)part[k];
    }
    for (int k = 0; i < n; i++, k++) {
        REAL v = EXP_NONPOS(x[i] - m);
        e[i] = v;
        lane[k] += (ACC)v;
    }
    return FSM_SLICE(fsm_combine_lanes)(lane);
}

/* sum(w[i] * (x[i] - m)), w NULL meaning all 1: the smoothing term. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_shifted_dot)(const REAL *x, const REAL *w, ptrdiff_t n,
                                                  REAL m)
{
    ACC lane[FSM_LANES] = {0};
    ptrdiff_t i = 0;
    if (w == NULL) {
        for (; i + FSM_LANES <= n; i += FSM_LANES)
            FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) lane[k] += (ACC)(x[i + k] - m);
        for (int k = 0; i < n; i++, k++) lane[k] += (ACC)(x[i] - m);
    } else {
        for (; i + FSM_LANES <= n; i += FSM_LANES)
            FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++)
                lane[k] += (ACC)w[i + k] * (ACC)(x[i + k] - m);
        for (int k = 0; i < n; i++, k++) lane[k] += (ACC)w[i] * (ACC)(x[i] - m);
    }
    return FSM_SLICE(fsm_combine_lanes)(lane);
}

/* ---- index targets ------------------------------------------------------ */

/* A sample's loss from its log-sum-exp (of x - max), xy = x[y] - max, w_y
 * and d = sum w (x - max): PyTorch's (1-eps) w_y (lse - x[y]) + eps/n
 * sum w (lse - x), each term as it stands, so that a term that overflows
 * gives NaN when its factor is 0 (label_smoothing 1), as in PyTorch; the
 * smoothing term only when there is smoothing (it is -inf for a -inf logit).
 * The NLL term is rounded to REAL, where PyTorch computes it: in float32 it
 * overflows to inf where its double value would not. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_index_loss)(const FSM_X(fsm_xent_ctx) *c, ACC w_y, ACC lse,
                                                 ACC xy, ACC d)
{
    const ACC nll = c->keep * (ACC)(REAL)(w_y * (lse - xy));
    return c->smooth != 0 ? nll + c->smooth * (c->weight_total * lse - d) : nll;
}

/* Row r (inner == 1): returns its loss, writes its gradient row.  *max is
 * the row's max, or NaN if not yet known (a max is never NaN); on return,
 * the next row's when `more` rows follow and this row's gradient pass could
 * take it alongside, as softmax's rows do (without a pass of its own, 3-5%
 * faster at 4096 x 1000 floats), else NaN. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_index_row)(const FSM_X(fsm_xent_ctx) *c, ptrdiff_t r,
                                                int more, REAL *max)
{
    const ptrdiff_t n = c->n;
    const REAL *x = c->x + r * n;
    REAL *g = c->grad ? c->grad + r * n : NULL;
    const int64_t y = c->index[r];
    const REAL known = *max;
    *max = (REAL)NAN;
    ACC loss = 0;
    if (y == c->ignore_index) {
        if (g)
            for (ptrdiff_t i = 0; i < n; i++) g[i] = 0;
    } else {
        const REAL m = known == known ? known : FSM_SLICE(fsm_slice_max)(x, n);
        const ACC xy = (ACC)(x[y] - m);
        const ACC d = c->smooth != 0 ? FSM_X(fsm_xent_shifted_dot)(x, c->weight, n, m) : 0;
        const REAL *ahead = r + 1 < c->outer ? x + n : NULL;
        const ACC s = g ? FSM_X(fsm_xent_store_exp)(x, g, n, m, ahead)
                        : FSM_X(fsm_xent_sum_exp)(x, n, m, ahead);
        const ACC nll_weight = c->keep * (ACC)FSM_W(y);
        const ACC a = nll_weight + c->smooth * c->weight_total; /* coefficient of lse */
        loss = FSM_X(fsm_xent_index_loss)(c, (ACC)FSM_W(y), log(s), xy, d);
        if (g) {
            const REAL f = (REAL)(c->scale * a / s), cs = (REAL)(c->scale * c->smooth);
            if (c->smooth == 0)
                *max = FSM_SLICE(fsm_scale)(g, n, f, r + 1 < c->outer ? g + n : NULL,
                                            more ? x + n : NULL);
            else
                for (ptrdiff_t i = 0; i < n; i++) g[i] = g[i] * f - FSM_W(i) * cs;
            g[y] -= (REAL)(c->scale * nll_weight);
        }
    }
    if (c->loss) c->loss[r] = (REAL)loss;
    return loss;
}

/* A slab of w samples, the first being sample `first`: logit i of sample j
 * at x[i*si + j], its gradient at g[i*si + j] (g NULL: not written).
 * Returns the sum of their losses, in order. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_index_slab)(const FSM_X(fsm_xent_ctx) *c, const REAL *x,
                                                 const REAL *t_unused, REAL *g, ptrdiff_t first,
                                                 ptrdiff_t w, ptrdiff_t si)
{
    (void)t_unused;
    const ptrdiff_t n = c->n;
    REAL m[FSM_XENT_SLAB], f[FSM_XENT_SLAB], b[FSM_XENT_SLAB], cs[FSM_XENT_SLAB];
    ACC s[FSM_XENT_SLAB], d[FSM_XENT_SLAB], xy[FSM_XENT_SLAB];
    ptrdiff_t y[FSM_XENT_SLAB]; /* -1 for an ignored sample */
    ACC w_y[FSM_XENT_SLAB], kept[FSM_XENT_SLAB]; /* the weight of its class; 1, 0 if ignored */
    for (ptrdiff_t j = 0; j < w; j++) { m[j] = (REAL)-INFINITY; s[j] = 0; d[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) m[j] = FSM_AT(x, i, j) > m[j] ? FSM_AT(x, i, j) : m[j];
    for (ptrdiff_t j = 0; j < w; j++) {
        const int64_t t = c->index[first + j];
        y[j] = t == c->ignore_index ? -1 : (ptrdiff_t)t;
        xy[j] = y[j] < 0 ? 0 : (ACC)(FSM_AT(x, y[j], j) - m[j]);
        w_y[j] = y[j] < 0 ? 0 : (ACC)FSM_W(y[j]);
        kept[j] = y[j] < 0 ? 0 : 1;
    }
    if (c->smooth != 0) /* before the exps overwrite x when grad == x */
        for (ptrdiff_t i = 0; i < n; i++)
            for (ptrdiff_t j = 0; j < w; j++)
                d[j] += (ACC)FSM_W(i) * (ACC)(FSM_AT(x, i, j) - m[j]);
    /* sums in REAL over chunks of classes, then in ACC (see FSM_XENT_EXP_BLOCK) */
    for (ptrdiff_t i0 = 0; i0 < n; i0 += FSM_XENT_SHORT_ROW) {
        const ptrdiff_t i1 = n - i0 < FSM_XENT_SHORT_ROW ? n : i0 + FSM_XENT_SHORT_ROW;
        REAL part[FSM_XENT_SLAB], e_buf[FSM_XENT_SLAB];
        for (ptrdiff_t j = 0; j < w; j++) part[j] = 0;
        for (ptrdiff_t i = i0; i < i1; i++) {
            REAL *e = g ? &FSM_AT(g, i, 0) : e_buf;
            FSM_X(fsm_xent_exp_lanes)(&FSM_AT(x, i, 0), m, e, w);
            for (ptrdiff_t j = 0; j < w; j++) part[j] += e[j];
        }
        for (ptrdiff_t j = 0; j < w; j++) s[j] += (ACC)part[j];
    }
    /* Per sample, without branches so that the loops vectorise; the losses
     * are then added in order. */
    ACC lse[FSM_XENT_SLAB], loss[FSM_XENT_SLAB];
    for (ptrdiff_t j = 0; j < w; j++) lse[j] = fsm_log_ge1(s[j]);
    for (ptrdiff_t j = 0; j < w; j++) {
        const ACC nll_weight = c->keep * w_y[j];
        const ACC a = nll_weight + c->smooth * c->weight_total;
        loss[j] = kept[j] != 0 ? FSM_X(fsm_xent_index_loss)(c, w_y[j], lse[j], xy[j], d[j]) : 0;
        f[j] = (REAL)(c->scale * a / s[j]);
        b[j] = (REAL)(c->scale * nll_weight);
        cs[j] = (REAL)(c->scale * c->smooth);
    }
    if (c->loss)
        for (ptrdiff_t j = 0; j < w; j++) c->loss[first + j] = (REAL)loss[j];
    ACC total = 0;
    for (ptrdiff_t j = 0; j < w; j++) total += loss[j];
    if (g) {
        for (ptrdiff_t i = 0; i < n; i++) {
            const REAL wi = FSM_W(i);
            for (ptrdiff_t j = 0; j < w; j++) FSM_AT(g, i, j) = FSM_AT(g, i, j) * f[j] - wi * cs[j];
        }
        /* the one-hot term, and exact zeros for ignored samples (even where
         * an exp was inf or NaN) */
        for (ptrdiff_t j = 0; j < w; j++) {
            if (y[j] >= 0)
                FSM_AT(g, y[j], j) -= b[j];
            else
                for (ptrdiff_t i = 0; i < n; i++) FSM_AT(g, i, j) = 0;
        }
    }
    return total;
}

/* ---- probability targets ------------------------------------------------ */

/* Row r (inner == 1), as fsm_xent_index_row without taking the next row's
 * max (*max stays NaN). */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_prob_row)(const FSM_X(fsm_xent_ctx) *c, ptrdiff_t r,
                                               int more, REAL *max)
{
    (void)more, (void)max;
    const ptrdiff_t n = c->n;
    const REAL *x = c->x + r * n, *t = c->prob + r * n;
    REAL *g = c->grad ? c->grad + r * n : NULL;
    const REAL m = FSM_SLICE(fsm_slice_max)(x, n);
    const REAL keep = (REAL)c->keep, smooth = (REAL)c->smooth;
    /* s = sum e, tw = sum w t', d = sum w t' (x - m), in lanes */
    ACC s_lane[FSM_LANES] = {0}, tw_lane[FSM_LANES] = {0}, d_lane[FSM_LANES] = {0};
    ptrdiff_t i = 0;
#define FSM_PROB_STEP(idx, k, e)                                                 \
    {                                                                            \
        const REAL shifted = x[idx] - m, ev = (e);                               \
        const ACC wt = (ACC)(FSM_W(idx) * (keep * t[idx] + smooth));             \
        if (g) g[idx] = ev;                                                      \
        s_lane[k] += (ACC)ev;                                                    \
        tw_lane[k] += wt;                                                        \
        d_lane[k] += wt * (ACC)shifted;                                          \
    }
    for (; i + FSM_LANES <= n; i += FSM_LANES) {
        REAL e[FSM_LANES]; /* the exps in vectors, then the lane loop */
        for (int k = 0; k < FSM_LANES; k += RVW) {
            const RVREAL ev = FSM_X(fsm_xent_vexp_at)(x + i + k, m);
            memcpy(e + k, &ev, sizeof ev);
        }
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) FSM_PROB_STEP(i + k, k, e[k])
    }
    for (int k = 0; i < n; i++, k++) FSM_PROB_STEP(i, k, EXP_NONPOS(x[i] - m))
#undef FSM_PROB_STEP
    const ACC s = FSM_SLICE(fsm_combine_lanes)(s_lane);
    const ACC tw = FSM_SLICE(fsm_combine_lanes)(tw_lane);
    const ACC d = FSM_SLICE(fsm_combine_lanes)(d_lane);
    const ACC loss = tw * log(s) - d;
    if (g) {
        const REAL f = (REAL)(c->scale * tw / s);
        const REAL ks = (REAL)(c->scale * c->keep), ss = (REAL)(c->scale * c->smooth);
        for (ptrdiff_t k = 0; k < n; k++) g[k] = g[k] * f - FSM_W(k) * (ks * t[k] + ss);
    }
    if (c->loss) c->loss[r] = (REAL)loss;
    return loss;
}

/* As fsm_xent_index_slab, with the probabilities at t[i*si + j]. */
FSM_ALWAYS_INLINE ACC FSM_X(fsm_xent_prob_slab)(const FSM_X(fsm_xent_ctx) *c, const REAL *x,
                                                const REAL *t, REAL *g, ptrdiff_t first,
                                                ptrdiff_t w, ptrdiff_t si)
{
    const ptrdiff_t n = c->n;
    const REAL keep = (REAL)c->keep, smooth = (REAL)c->smooth;
    REAL m[FSM_XENT_SLAB], f[FSM_XENT_SLAB];
    ACC s[FSM_XENT_SLAB], tw[FSM_XENT_SLAB], d[FSM_XENT_SLAB];
    for (ptrdiff_t j = 0; j < w; j++) { m[j] = (REAL)-INFINITY; s[j] = tw[j] = d[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < w; j++) m[j] = FSM_AT(x, i, j) > m[j] ? FSM_AT(x, i, j) : m[j];
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL wi = FSM_W(i);
        REAL e_row[FSM_XENT_SLAB];
        FSM_X(fsm_xent_exp_lanes)(&FSM_AT(x, i, 0), m, e_row, w);
        for (ptrdiff_t j = 0; j < w; j++) {
            const REAL shifted = FSM_AT(x, i, j) - m[j], e = e_row[j];
            const ACC wt = (ACC)(wi * (keep * FSM_AT(t, i, j) + smooth));
            if (g) FSM_AT(g, i, j) = e;
            s[j] += (ACC)e;
            tw[j] += wt;
            d[j] += wt * (ACC)shifted;
        }
    }
    ACC lse[FSM_XENT_SLAB];
    for (ptrdiff_t j = 0; j < w; j++) lse[j] = fsm_log_ge1(s[j]);
    ACC total = 0;
    for (ptrdiff_t j = 0; j < w; j++) {
        const ACC loss = tw[j] * lse[j] - d[j];
        f[j] = (REAL)(c->scale * tw[j] / s[j]);
        if (c->loss) c->loss[first + j] = (REAL)loss;
        total += loss;
    }
    if (g) {
        const REAL ks = (REAL)(c->scale * c->keep), ss = (REAL)(c->scale * c->smooth);
        for (ptrdiff_t i = 0; i < n; i++) {
            const REAL wi = FSM_W(i);
            for (ptrdiff_t j = 0; j < w; j++)
                FSM_AT(g, i, j) = FSM_AT(g, i, j) * f[j] - wi * (ks * FSM_AT(t, i, j) + ss);
        }
    }
    return total;
}

/* ---- blocks and threads -------------------------------------------------- */

/* Splits the work into tasks (rows or slabs) and blocks; shape only. */
static void FSM_X(fsm_xent_plan)(FSM_X(fsm_xent_ctx) *c)
{
    if (c->inner == 1 && c->n >= FSM_XENT_SHORT_ROW)
        c->ntasks = c->outer;
    else if (c->inner == 1)
        c->ntasks = (c->outer + FSM_XENT_SLAB - 1) / FSM_XENT_SLAB;
    else {
        c->slabs_per_outer = (c->inner + FSM_XENT_SLAB - 1) / FSM_XENT_SLAB;
        c->ntasks = c->outer * c->slabs_per_outer;
    }
    c->nblocks = c->ntasks < FSM_XENT_BLOCKS ? c->ntasks : FSM_XENT_BLOCKS;
}

/* Short rows (inner == 1, n < FSM_XENT_SHORT_ROW): w rows of n are copied
 * transposed into `buf` (sample j of class i at i*FSM_XENT_BUF_STRIDE + j,
 * transpose.h), so that the slab loops run at unit stride; the gradient is
 * computed there and copied back. */
FSM_ALWAYS_INLINE void FSM_X(fsm_xent_transpose_in)(const REAL *src, REAL *buf, ptrdiff_t w,
                                                    ptrdiff_t n)
{
    FSM_CAT(fsm_rows_to_slab_, SUF)(src, n, w, buf, FSM_XENT_BUF_STRIDE);
}

FSM_ALWAYS_INLINE void FSM_X(fsm_xent_transpose_out)(const REAL *buf, REAL *dst, ptrdiff_t w,
                                                     ptrdiff_t n)
{
    FSM_CAT(fsm_slab_to_rows_, SUF)(buf, FSM_XENT_BUF_STRIDE, n, w, dst);
}

/* Defines OP_blocks, the range function the threads run: each block sums
 * the losses of its tasks in order into partial[block]. */
#define FSM_XENT_DEFINE_BLOCKS(OP)                                                               \
    FSM_HOT static void FSM_X(OP##_blocks)(void *ctx, ptrdiff_t b0, ptrdiff_t b1)               \
    {                                                                                            \
        const FSM_X(fsm_xent_ctx) *c = ctx;                                                      \
        const ptrdiff_t n = c->n, inner = c->inner;                                              \
        const int rows = inner == 1 && n >= FSM_XENT_SHORT_ROW;                                  \
        REAL xt[FSM_XENT_SHORT_ROW * FSM_XENT_BUF_STRIDE];                                      \
        REAL tt[FSM_XENT_SHORT_ROW * FSM_XENT_BUF_STRIDE];                                      \
        const ptrdiff_t last = c->ntasks * b1 / c->nblocks - 1; /* the range's last task */     \
        REAL max = (REAL)NAN; /* of the next row, when a row's pass took it */                    \
        for (ptrdiff_t b = b0; b < b1; b++) {                                                    \
            ACC sum = 0;                                                                         \
            for (ptrdiff_t t = c->ntasks * b / c->nblocks; t < c->ntasks * (b + 1) / c->nblocks; \
                 t++) {                                                                          \
                if (rows) {                                                                      \
                    sum += FSM_X(OP##_row)(c, t, t < last, &max);                                \
                } else if (inner == 1) {                                                         \
                    ptrdiff_t r0 = t * FSM_XENT_SLAB;                                            \
                    ptrdiff_t w = c->outer - r0 < FSM_XENT_SLAB ? c->outer - r0 : FSM_XENT_SLAB; \
                    FSM_X(fsm_xent_transpose_in)(c->x + r0 * n, xt, w, n);                       \
                    if (c->prob) FSM_X(fsm_xent_transpose_in)(c->prob + r0 * n, tt, w, n);       \
                    /* the gradient overwrites the transposed logits; a whole slab's         \
                     * width is a constant, for loops without remainders */                      \
                    if (w == FSM_XENT_SLAB)                                                      \
                        sum += FSM_X(OP##_slab)(c, xt, tt, c->grad ? xt : NULL, r0,              \
                                                FSM_XENT_SLAB, FSM_XENT_BUF_STRIDE);             \
                    else                                                                         \
                        sum += FSM_X(OP##_slab)(c, xt, tt, c->grad ? xt : NULL, r0, w,           \
                                                FSM_XENT_BUF_STRIDE);                            \
                    if (c->grad) FSM_X(fsm_xent_transpose_out)(xt, c->grad + r0 * n, w, n);      \
                } else {                                                                         \
                    ptrdiff_t o = t / c->slabs_per_outer;                                        \
                    ptrdiff_t j0 = (t % c->slabs_per_outer) * FSM_XENT_SLAB;                     \
                    ptrdiff_t w = inner - j0 < FSM_XENT_SLAB ? inner - j0 : FSM_XENT_SLAB;       \
                    ptrdiff_t offset = o * n * inner + j0;                                       \
                    sum += FSM_X(OP##_slab)(c, c->x + offset, c->prob ? c->prob + offset : NULL, \
                                            c->grad ? c->grad + offset : NULL, o * inner + j0,   \
                                            w, inner);                                           \
                }                                                                                \
            }                                                                                    \
            c->partial[b] = (double)sum;                                                         \
        }                                                                                        \
    }

FSM_XENT_DEFINE_BLOCKS(fsm_xent_index)
FSM_XENT_DEFINE_BLOCKS(fsm_xent_prob)

/* Runs the blocks on the threads and adds the block sums in order. */
static double FSM_X(fsm_xent_run)(FSM_X(fsm_xent_ctx) *c, fsm_range_fn blocks, int max_threads)
{
    double partial[FSM_XENT_BLOCKS];
    c->partial = partial;
    FSM_X(fsm_xent_plan)(c);
    fsm_parallel_for(c->nblocks, c->outer * c->n * c->inner / c->nblocks, max_threads, blocks, c);
    double total = 0;
    for (ptrdiff_t b = 0; b < c->nblocks; b++) total += partial[b];
    return total;
}

static ACC FSM_X(fsm_xent_weight_total)(const REAL *weight, ptrdiff_t n)
{
    if (weight == NULL) return (ACC)n;
    ACC total = 0;
    for (ptrdiff_t i = 0; i < n; i++) total += (ACC)weight[i];
    return total;
}

double FSM_PUBLIC(fsm_xent_index)(const REAL *x, const int64_t *target, const REAL *weight,
                                  int64_t ignore_index, double label_smoothing, double grad_scale,
                                  REAL *grad, REAL *loss, ptrdiff_t outer, ptrdiff_t n,
                                  ptrdiff_t inner, int max_threads)
{
    FSM_X(fsm_xent_ctx) c = {
        .x = x, .index = target, .weight = weight, .grad = grad, .loss = loss,
        .ignore_index = ignore_index, .keep = (ACC)(1 - label_smoothing),
        .smooth = (ACC)(label_smoothing / (double)n),
        .weight_total = FSM_X(fsm_xent_weight_total)(weight, n), .scale = (ACC)grad_scale,
        .outer = outer, .n = n, .inner = inner};
    return FSM_X(fsm_xent_run)(&c, FSM_X(fsm_xent_index_blocks), max_threads);
}

double FSM_PUBLIC(fsm_xent_prob)(const REAL *x, const REAL *target, const REAL *weight,
                                 double label_smoothing, double grad_scale, REAL *grad, REAL *loss,
                                 ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
{
    FSM_X(fsm_xent_ctx) c = {
        .x = x, .prob = target, .weight = weight, .grad = grad, .loss = loss,
        .keep = (ACC)(1 - label_smoothing), .smooth = (ACC)(label_smoothing / (double)n),
        .scale = (ACC)grad_scale, .outer = outer, .n = n, .inner = inner};
    return FSM_X(fsm_xent_run)(&c, FSM_X(fsm_xent_prob_blocks), max_threads);
}

#if !FSM_WIDE_ROWS /* one build of the check: it runs once per call */
ptrdiff_t FSM_X(fsm_xent_check_index)(const int64_t *target, ptrdiff_t count, ptrdiff_t n,
                                      int64_t ignore_index, const REAL *weight,
                                      double *weight_sum)
{
    ACC total = 0;
    for (ptrdiff_t k = 0; k < count; k++) {
        const int64_t y = target[k];
        if (y == ignore_index) continue;
        if (y < 0 || y >= n) return k;
        total += weight ? (ACC)weight[y] : 1;
    }
    *weight_sum = (double)total;
    return -1;
}
#endif

#undef FSM_W
#undef FSM_AT
#undef FSM_XENT_DEFINE_BLOCKS
#undef FSM_PUBLIC
#undef FSM_X
#undef FSM_SLICE
