/* Batch-normalization kernels for one dtype; batchnorm.c includes this once
 * per dtype after defining REAL (element type) and SUF (name suffix).
 * Reductions accumulate in double, never as E[x^2] - E[x]^2 on raw data: a
 * task's partial statistics are a two-pass mean and sum of squared
 * deviations of a cached chunk (run layout), or sums of deviations from a
 * value of the data (column layout; the training forward of float data sums
 * eight rows' terms in float first); fsm_bn_plan fixes the blocks, and the
 * partials merge in a fixed order (Chan et al.). */
#define FSM_K(name) FSM_CAT(name##_, SUF)
#define FSM_BN_INLINE static inline __attribute__((always_inline))
/* Values a 64-byte line holds: the loops over columns start their vectors
 * at line boundaries (a vector that straddles two lines costs two accesses). */
#define FSM_BN_LINE_VALUES ((ptrdiff_t)(64 / sizeof(REAL)))

typedef struct {
    fsm_bn_plan p;
    const REAL *g, *x;
    REAL *out;
    const double *mean;        /* grad sums: per column (column layout) or per feature;
                                * apply and train: per feature */
    double *part_a, *part_b;   /* per-task partial results */
    const double *a, *s, *t;   /* apply: per-feature factors */
    REAL *pa, *ps, *pm, *pt;   /* apply: the factors per column (column layout) or feature, */
    REAL *ph;                  /* ps and pm scaled by 1/ph and ph (fsm_bn_feature_factors) */
    REAL half;                 /* apply, column layout: the ph of every column */
    int descending;            /* apply, column layout: columns from the last (fsm_bn_descending) */
    int row_at_a_time;         /* apply, column layout: fsm_bn_row_at_a_time */
    int blocked;               /* statistics, column layout: fsm_bn_tile_stats_blocked */
    int stream;                /* elementwise, run layout: fsm_bn_run_span streams */
    const double *weight;      /* train and backward: weight (or NULL) */
    double eps;                /* train: eps; writes mean, m2, invstd and */
    double *mean_out, *m2, *invstd, *scale; /* scale = invstd * weight, which is s */
    const double *given_invstd; /* backward: invstd; writes sum_g, sum_gxc and the */
    double *sum_g, *sum_gxc;    /* per-feature factors k, s, t into `factors` (3*C */
    double *factors;            /* values), which a, s and t point into */
    ptrdiff_t *unhalved;        /* train: features whose params are plain (atomic adds) */
} FSM_K(fsm_bn_job);

/* Lane sums: FSM_BN_LANES partial sums combined in a fixed tree, which the
 * compiler vectorises without reassociating. */
FSM_BN_INLINE double FSM_K(fsm_bn_combine_lanes)(double *lane)
{
    for (int width = FSM_BN_LANES / 2; width > 0; width /= 2)
        for (int k = 0; k < width; k++) lane[k] += lane[k + width];
    return lane[0];
}

FSM_BN_INLINE double FSM_K(fsm_bn_sum)(const REAL *x, ptrdiff_t n)
{
    double lane[FSM_BN_LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + FSM_BN_LANES <= n; i += FSM_BN_LANES)
        FSM_BN_LANE_LOOP for (int k = 0; k < FSM_BN_LANES; k++) lane[k] += (double)x[i + k];
    for (int k = 0; i < n; i++, k++) lane[k] += (double)x[i];
    return FSM_K(fsm_bn_combine_lanes)(lane);
}

/* sum((x - mean)^2) */
FSM_BN_INLINE double FSM_K(fsm_bn_sum_sqdev)(const REAL *x, ptrdiff_t n, double mean)
{
    double lane[FSM_BN_LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + FSM_BN_LANES <= n; i += FSM_BN_LANES)
        FSM_BN_LANE_LOOP for (int k = 0; k < FSM_BN_LANES; k++) {
            double d = (double)x[i + k] - mean;
            lane[k] += d * d;
        }
    for (int k = 0; i < n; i++, k++) {
        double d = (double)x[i] - mean;
        lane[k] += d * d;
    }
    return FSM_K(fsm_bn_combine_lanes)(lane);
}

/* x[0] + x[stride] + ... + x[7*stride] in REAL, a fixed tree (so the adds
 * are independent, not one chain). */
FSM_BN_INLINE REAL FSM_K(fsm_bn_sum8)(const REAL *x, ptrdiff_t stride)
{
    return ((x[0] + x[stride]) + (x[2 * stride] + x[3 * stride]))
         + ((x[4 * stride] + x[5 * stride]) + (x[6 * stride] + x[7 * stride]));
}

/* sum(g) into *sg and sum(g * (x - m)) into *sgx.  Each lane adds
 * FSM_BN_FLUSH terms at a time in REAL (float data at float's vector
 * width), then folds them into double: products of deviations from the
 * mean, eight at a time, lose little, and one that overflows makes a
 * non-finite sum, which fsm_bn_grad_sums redoes in double. */
FSM_BN_INLINE void FSM_K(fsm_bn_sum_grad)(const REAL *g, const REAL *x, ptrdiff_t n, REAL m,
                                          double *sg, double *sgx)
{
    enum { L = FSM_BN_LANES, STEP = FSM_BN_LANES * FSM_BN_FLUSH };
    double lg[L] = {0}, lgx[L] = {0};
    ptrdiff_t i = 0;
    for (; i + STEP <= n; i += STEP) {
        FSM_BN_LANE_LOOP for (int k = 0; k < L; k++) {
            REAL p[FSM_BN_FLUSH];
            for (int r = 0; r < FSM_BN_FLUSH; r++)
                p[r] = g[i + r * L + k] * (x[i + r * L + k] - m);
            lg[k] += (double)FSM_K(fsm_bn_sum8)(g + i + k, L);
            lgx[k] += (double)FSM_K(fsm_bn_sum8)(p, 1);
        }
    }
    for (int k = 0; i < n; i++, k = (k + 1) % L) {
        const double gv = (double)g[i];
        lg[k] += gv;
        lgx[k] += gv * ((double)x[i] - (double)m);
    }
    *sg = FSM_K(fsm_bn_combine_lanes)(lg);
    *sgx = FSM_K(fsm_bn_combine_lanes)(lgx);
}

/* ---- statistics --------------------------------------------------------- */

/* Mean and sum of squared deviations of w <= FSM_BN_TILE columns (row
 * stride `width`) over `rows` rows, from sums of the deviations from row 0:
 * shifted by a value of the data, so cancellation stays small.  Rows go
 * FSM_BN_FLUSH at a time, so that the sums (in L1) are loaded and stored once
 * per FSM_BN_FLUSH rows; each column adds its rows in order (a chain of
 * multiply-adds: fewer operations than a tree of the rows' terms, and the
 * columns give the parallelism). */
FSM_BN_INLINE void FSM_K(fsm_bn_tile_stats)(const REAL *x, ptrdiff_t width, ptrdiff_t rows,
                                            ptrdiff_t w, double *mean, double *m2)
{
    double x0[FSM_BN_TILE], s[FSM_BN_TILE], q[FSM_BN_TILE];
    for (ptrdiff_t j = 0; j < w; j++) {
        x0[j] = (double)x[j];
        s[j] = q[j] = 0;
    }
    ptrdiff_t r = 1;
    for (; r + FSM_BN_FLUSH <= rows; r += FSM_BN_FLUSH) {
        const REAL *xr = x + r * width;
        for (ptrdiff_t j = 0; j < w; j++) {
            double sj = s[j], qj = q[j];
            for (int k = 0; k < FSM_BN_FLUSH; k++) {
                const double d = (double)xr[k * width + j] - x0[j];
                sj += d;
                qj += d * d;
            }
            s[j] = sj;
            q[j] = qj;
        }
    }
    for (; r < rows; r++)
        for (ptrdiff_t j = 0; j < w; j++) {
            const double d = (double)x[r * width + j] - x0[j];
            s[j] += d;
            q[j] += d * d;
        }
    for (ptrdiff_t j = 0; j < w; j++) {
        const double ds = s[j] / (double)rows, sq = q[j] - s[j] * ds;
        mean[j] = x0[j] + ds;
        m2[j] = sq < 0 ? 0 : sq; /* rounding can make it negative; NaN stays NaN */
    }
}

/* Sums of the deviations from shift[j] and of their squares, of w <=
 * FSM_BN_TILE columns (row stride `width`) over `rows` rows, into s[j] and
 * q[j].  Rows go FSM_BN_FLUSH at a time: their deviations and squares are
 * summed in REAL (float data at float's vector width, a fixed tree), then
 * folded into double, so the double sums are loaded and stored once per
 * FSM_BN_FLUSH rows. */
FSM_BN_INLINE void FSM_K(fsm_bn_tile_sums)(const REAL *x, ptrdiff_t width, ptrdiff_t rows,
                                           ptrdiff_t w, const REAL *shift, double *s, double *q)
{
    for (ptrdiff_t j = 0; j < w; j++) s[j] = q[j] = 0;
    ptrdiff_t r = 0;
    for (; r + FSM_BN_FLUSH <= rows; r += FSM_BN_FLUSH) {
        const REAL *xr = x + r * width;
        for (ptrdiff_t j = 0; j < w; j++) {
            REAL d[FSM_BN_FLUSH], dd[FSM_BN_FLUSH];
            for (int k = 0; k < FSM_BN_FLUSH; k++) {
                d[k] = xr[k * width + j] - shift[j];
                dd[k] = d[k] * d[k];
            }
            s[j] += (double)FSM_K(fsm_bn_sum8)(d, 1);
            q[j] += (double)FSM_K(fsm_bn_sum8)(dd, 1);
        }
    }
    for (; r < rows; r++)
        for (ptrdiff_t j = 0; j < w; j++) {
            const double d = (double)x[r * width + j] - (double)shift[j];
            s[j] += d;
            q[j] += d * d;
        }
}

/* fsm_bn_tile_stats at REAL's vector width, for the training forward of
 * float data (relative error about 1e-7 instead of 1e-15): one pass of
 * fsm_bn_tile_sums about a shift, the mean of the first FSM_BN_FLUSH rows
 * (row 0 of fewer rows).  The sum of squares cancels by the factor
 * q / m2 = 1 + n*(mean - shift)^2 / m2, which multiplies the rounding of its
 * REAL terms; a column where it exceeds 4 (the first rows far from the
 * rest) is summed again about its mean. */
FSM_BN_INLINE void FSM_K(fsm_bn_tile_stats_blocked)(const REAL *x, ptrdiff_t width,
                                                    ptrdiff_t rows, ptrdiff_t w, double *mean,
                                                    double *m2)
{
    REAL shift[FSM_BN_TILE];
    double s[FSM_BN_TILE], q[FSM_BN_TILE];
    const double per_row = 1.0 / (double)rows;
    if (rows >= FSM_BN_FLUSH)
        for (ptrdiff_t j = 0; j < w; j++)
            shift[j] = FSM_K(fsm_bn_sum8)(x + j, width) * (REAL)(1.0 / FSM_BN_FLUSH);
    else
        for (ptrdiff_t j = 0; j < w; j++) shift[j] = x[j];
    FSM_K(fsm_bn_tile_sums)(x, width, rows, w, shift, s, q);
    ptrdiff_t cancelled = 0;
    for (ptrdiff_t j = 0; j < w; j++) {
        const double ds = s[j] * per_row, sq = q[j] - s[j] * ds;
        cancelled += sq * 4 < q[j]; /* NaN compares false: fsm_bn_fix_nonfinite's case */
        mean[j] = (double)shift[j] + ds;
        m2[j] = sq < 0 ? 0 : sq; /* rounding can make it negative; NaN stays NaN */
    }
    for (ptrdiff_t j = 0; cancelled && j < w; j++) {
        if (!(m2[j] * 4 < q[j]))
            continue;
        REAL again = (REAL)mean[j];
        FSM_K(fsm_bn_tile_sums)(x + j, width, rows, 1, &again, s + j, q + j);
        const double ds = s[j] * per_row, sq = q[j] - s[j] * ds;
        mean[j] = (double)again + ds;
        m2[j] = sq < 0 ? 0 : sq;
    }
}

/* Values before the first of v[0..) that starts a 64-byte line (at most w). */
FSM_BN_INLINE ptrdiff_t FSM_K(fsm_bn_lead)(const REAL *v, ptrdiff_t w)
{
    const ptrdiff_t lead = (ptrdiff_t)((64 - (uintptr_t)v % 64) % 64 / sizeof(REAL));
    return lead < w ? lead : w;
}

/* Column layout: writes the block-b means and sums of squared deviations
 * of tile k's columns to part_a / part_b[b*width + col]. */
FSM_BN_INLINE void FSM_K(fsm_bn_tile_block_stats)(const FSM_K(fsm_bn_job) *job, ptrdiff_t b,
                                                  ptrdiff_t k)
{
    const fsm_bn_plan *p = &job->p;
    const ptrdiff_t width = p->width, col0 = k * FSM_BN_TILE;
    const ptrdiff_t col1 = width - col0 < FSM_BN_TILE ? width : col0 + FSM_BN_TILE;
    const ptrdiff_t rows = fsm_bn_block_rows(p, b), row0 = b * p->rows * width;
    const REAL *x = job->x + row0 + col0;
    double *mean = job->part_a + b * width + col0, *m2 = job->part_b + b * width + col0;
    if (job->blocked)
        FSM_K(fsm_bn_tile_stats_blocked)(x, width, rows, col1 - col0, mean, m2);
    else
        FSM_K(fsm_bn_tile_stats)(x, width, rows, col1 - col0, mean, m2);
}

FSM_HOT static void FSM_K(fsm_bn_stats_columns)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    for (ptrdiff_t t = t0; t < t1; t++)
        FSM_K(fsm_bn_tile_block_stats)(job, t / job->p.ntiles, t % job->p.ntiles);
}

/* Run layout: merges the chunks of feature c's runs in block b, in order,
 * into part_a / part_b[c*nblocks + b]. */
FSM_BN_INLINE void FSM_K(fsm_bn_run_block_stats)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c,
                                                 ptrdiff_t b)
{
    const fsm_bn_plan *p = &job->p;
    const ptrdiff_t o0 = b * p->rows, o1 = o0 + fsm_bn_block_rows(p, b);
    double n = 0, mean = 0, m2 = 0;
    for (ptrdiff_t o = o0; o < o1; o++) {
        const REAL *run = job->x + (o * p->C + c) * p->inner;
        for (ptrdiff_t i = 0; i < p->inner; i += FSM_BN_CHUNK) {
            const ptrdiff_t len = p->inner - i < FSM_BN_CHUNK ? p->inner - i : FSM_BN_CHUNK;
            const double mc = FSM_K(fsm_bn_sum)(run + i, len) / (double)len;
            fsm_bn_merge(&n, &mean, &m2, (double)len, mc,
                         FSM_K(fsm_bn_sum_sqdev)(run + i, len, mc));
        }
    }
    job->part_a[c * p->nblocks + b] = mean;
    job->part_b[c * p->nblocks + b] = m2;
}

FSM_HOT static void FSM_K(fsm_bn_stats_runs)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    for (ptrdiff_t t = t0; t < t1; t++)
        FSM_K(fsm_bn_run_block_stats)(job, t / job->p.nblocks, t % job->p.nblocks);
}

/* Redoes the statistics of features [c0, c1) whose fast ones are not finite,
 * in a slow pass with PyTorch's answers: a NaN, or both infinities, give a
 * NaN mean; +inf or -inf alone give that mean; either way m2 is NaN.  Finite
 * values too large for the shifted sums get the mean as x0 + sum(x/n - x0/n)
 * (x0 the first value: equal values have their own mean), or sum(x/n) where
 * that overflows (x0 and most values near opposite ends of the range), which
 * cannot; and m2 = sum((x - mean)^2), inf when that overflows. */
static void FSM_K(fsm_bn_fix_nonfinite)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c0, ptrdiff_t c1,
                                        double *mean, double *m2)
{
    const fsm_bn_plan *p = &job->p;
    const double n = (double)(p->outer * p->inner);
    if (fsm_bn_all_finite(mean, m2, c0, c1))
        return;
    for (ptrdiff_t c = c0; c < c1; c++) {
        if (isfinite(mean[c]) && isfinite(m2[c]))
            continue;
        const double first = (double)job->x[c * p->inner];
        const double x0 = isfinite(first) ? first : 0, x0n = x0 / n;
        double dev = 0, plain = 0, q = 0;
        int nan = 0, pinf = 0, ninf = 0;
        for (ptrdiff_t o = 0; o < p->outer; o++) {
            const REAL *run = job->x + (o * p->C + c) * p->inner;
            for (ptrdiff_t j = 0; j < p->inner; j++) {
                const double v = (double)run[j];
                nan |= isnan(v);
                pinf |= v == INFINITY;
                ninf |= v == -INFINITY;
                dev += isfinite(v) ? v / n - x0n : 0;
                plain += isfinite(v) ? v / n : 0;
            }
        }
        const double mu = isfinite(x0 + dev) ? x0 + dev : plain;
        if (nan || pinf || ninf) {
            mean[c] = nan || (pinf && ninf) ? NAN : pinf ? INFINITY : -INFINITY;
            m2[c] = NAN;
            continue;
        }
        for (ptrdiff_t o = 0; o < p->outer; o++) {
            const REAL *run = job->x + (o * p->C + c) * p->inner;
            for (ptrdiff_t j = 0; j < p->inner; j++) {
                const double d = (double)run[j] - mu;
                q += d * d;
            }
        }
        mean[c] = mu;
        m2[c] = q;
    }
}

/* The blocks' partial statistics into job->part_a / part_b. */
static void FSM_K(fsm_bn_run_partials)(FSM_K(fsm_bn_job) *job, int max_threads)
{
    const fsm_bn_plan *p = &job->p;
    fsm_parallel_for(p->ntasks, FSM_BN_WORK(p->task_values), max_threads,
                     p->columns ? FSM_K(fsm_bn_stats_columns) : FSM_K(fsm_bn_stats_runs), job);
}

/* The statistics of features [c0, c1) from the partials. */
static void FSM_K(fsm_bn_finish_stats)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c0, ptrdiff_t c1,
                                       double *mean, double *m2)
{
    const fsm_bn_plan *p = &job->p;
    if (p->columns)
        fsm_bn_finish_columns(p, job->part_a, job->part_b, c0, c1, mean, m2);
    else
        fsm_bn_finish_runs(p, job->part_a, job->part_b, c0, c1, mean, m2);
    FSM_K(fsm_bn_fix_nonfinite)(job, c0, c1, mean, m2);
}

/* The statistics with job->part_a / part_b as scratch. */
static void FSM_K(fsm_bn_run_stats)(FSM_K(fsm_bn_job) *job, double *mean, double *m2,
                                    int max_threads)
{
    FSM_K(fsm_bn_run_partials)(job, max_threads);
    FSM_K(fsm_bn_finish_stats)(job, 0, job->p.C, mean, m2);
}

int FSM_K(fsm_bn_stats)(const REAL *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                        double *mean, double *m2, int max_threads)
{
    FSM_K(fsm_bn_job) job = {.p = fsm_bn_make_plan(outer, C, inner), .x = x};
    const ptrdiff_t np = fsm_bn_partial_count(&job.p);
    double *part = malloc(2 * (size_t)np * sizeof *part);
    if (!part)
        return -1;
    job.part_a = part;
    job.part_b = part + np;
    FSM_K(fsm_bn_run_stats)(&job, mean, m2, max_threads);
    free(part);
    return 0;
}

/* ---- gradient sums ------------------------------------------------------ */

/* sum(g) and sum(g * (x - m)) of w <= FSM_BN_TILE columns over `rows`
 * rows (row stride `width`), into sg[j] and sgx[j]; rows four at a time
 * (eight would hold more row pointers than there are registers), summed in
 * REAL and folded into double. */
FSM_BN_INLINE void FSM_K(fsm_bn_tile_grad)(const REAL *g, const REAL *x, ptrdiff_t width,
                                           ptrdiff_t rows, ptrdiff_t w, const REAL *m,
                                           double *sg, double *sgx)
{
    double s[FSM_BN_TILE], sx[FSM_BN_TILE];
    for (ptrdiff_t j = 0; j < w; j++) s[j] = sx[j] = 0;
    ptrdiff_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const REAL *g1 = g + r * width, *g2 = g1 + width, *g3 = g2 + width, *g4 = g3 + width;
        const REAL *x1 = x + r * width, *x2 = x1 + width, *x3 = x2 + width, *x4 = x3 + width;
        for (ptrdiff_t j = 0; j < w; j++) {
            s[j] += (double)((g1[j] + g2[j]) + (g3[j] + g4[j]));
            sx[j] += (double)((g1[j] * (x1[j] - m[j]) + g2[j] * (x2[j] - m[j]))
                              + (g3[j] * (x3[j] - m[j]) + g4[j] * (x4[j] - m[j])));
        }
    }
    for (; r < rows; r++)
        for (ptrdiff_t j = 0; j < w; j++) {
            const double a = (double)g[r * width + j];
            s[j] += a;
            sx[j] += a * ((double)x[r * width + j] - (double)m[j]);
        }
    for (ptrdiff_t j = 0; j < w; j++) {
        sg[j] = s[j];
        sgx[j] = sx[j];
    }
}

/* Column layout: part_a / part_b[b*width + col] = the block's sum(g) and
 * sum(g * (x - m)), m the mean rounded to REAL, given per column. */
FSM_HOT static void FSM_K(fsm_bn_grad_columns)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    const fsm_bn_plan *p = &job->p;
    const ptrdiff_t width = p->width;
    for (ptrdiff_t t = t0; t < t1; t++) {
        const ptrdiff_t b = t / p->ntiles, col0 = (t % p->ntiles) * FSM_BN_TILE;
        const ptrdiff_t col1 = width - col0 < FSM_BN_TILE ? width : col0 + FSM_BN_TILE;
        const ptrdiff_t rows = fsm_bn_block_rows(p, b), row0 = b * p->rows * width;
        FSM_K(fsm_bn_tile_grad)(job->g + row0 + col0, job->x + row0 + col0, width, rows,
                                col1 - col0, job->pm + col0, job->part_a + b * width + col0,
                                job->part_b + b * width + col0);
    }
}

/* Run layout: part_a / part_b[c*nblocks + b] = sum(g) and sum(g * (x - m))
 * over feature c's runs in block b, m = pm[c]. */
FSM_BN_INLINE void FSM_K(fsm_bn_run_block_grad)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c,
                                                ptrdiff_t b)
{
    const fsm_bn_plan *p = &job->p;
    const ptrdiff_t o0 = b * p->rows, o1 = o0 + fsm_bn_block_rows(p, b);
    double sg = 0, sgx = 0;
    for (ptrdiff_t o = o0; o < o1; o++) {
        const ptrdiff_t offset = (o * p->C + c) * p->inner;
        double rg, rgx;
        FSM_K(fsm_bn_sum_grad)(job->g + offset, job->x + offset, p->inner, job->pm[c], &rg,
                               &rgx);
        sg += rg;
        sgx += rgx;
    }
    job->part_a[c * p->nblocks + b] = sg;
    job->part_b[c * p->nblocks + b] = sgx;
}

FSM_HOT static void FSM_K(fsm_bn_grad_runs)(void *ctx, ptrdiff_t t0, ptrdiff_t t1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    for (ptrdiff_t t = t0; t < t1; t++)
        FSM_K(fsm_bn_run_block_grad)(job, t / job->p.nblocks, t % job->p.nblocks);
}

/* Finishes sum(g) and sum(g * (x - mean)) of features [c0, c1), summed
 * about m, the mean rounded to REAL: x - mean = (x - m) + (m - mean) adds
 * the rest.  Then redoes the features whose fast sums are not finite, in
 * double throughout: a REAL partial sum may overflow where the double one
 * does not. */
static void FSM_K(fsm_bn_finish_grad_sums)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c0,
                                           ptrdiff_t c1, double *sum_g, double *sum_gxc)
{
    const fsm_bn_plan *p = &job->p;
    for (ptrdiff_t c = c0; c < c1; c++)
        sum_gxc[c] += ((double)(REAL)job->mean[c] - job->mean[c]) * sum_g[c];
    if (fsm_bn_all_finite(sum_g, sum_gxc, c0, c1))
        return;
    for (ptrdiff_t c = c0; c < c1; c++) {
        if (isfinite(sum_g[c]) && isfinite(sum_gxc[c]))
            continue;
        double sg = 0, sgx = 0;
        for (ptrdiff_t o = 0; o < p->outer; o++) {
            const ptrdiff_t offset = (o * p->C + c) * p->inner;
            for (ptrdiff_t j = 0; j < p->inner; j++) {
                const double gv = (double)job->g[offset + j];
                sg += gv;
                sgx += gv * ((double)job->x[offset + j] - job->mean[c]);
            }
        }
        sum_g[c] = sg;
        sum_gxc[c] = sgx;
    }
}

int FSM_K(fsm_bn_grad_sums)(const REAL *g, const REAL *x, ptrdiff_t outer, ptrdiff_t C,
                            ptrdiff_t inner, const double *mean, double *sum_g, double *sum_gxc,
                            int max_threads)
{
    FSM_K(fsm_bn_job) job = {.p = fsm_bn_make_plan(outer, C, inner), .g = g, .x = x, .mean = mean};
    const fsm_bn_plan *p = &job.p;
    const ptrdiff_t np = fsm_bn_partial_count(p);
    double *part = malloc(2 * (size_t)np * sizeof *part + (size_t)p->width * sizeof(REAL));
    if (!part)
        return -1;
    job.part_a = part;
    job.part_b = part + np;
    /* The sums run about m, the mean rounded to REAL (per column in the
     * column layout); fsm_bn_finish_grad_sums adds the rest. */
    job.pm = (REAL *)(part + 2 * np);
    const ptrdiff_t per = p->columns ? inner : 1;
    if (per == 1)
        for (ptrdiff_t c = 0; c < C; c++) job.pm[c] = (REAL)mean[c];
    else
        for (ptrdiff_t c = 0; c < C; c++)
            for (ptrdiff_t j = 0; j < per; j++) job.pm[c * per + j] = (REAL)mean[c];
    fsm_parallel_for(p->ntasks, FSM_BN_WORK(2 * p->task_values), max_threads,
                     p->columns ? FSM_K(fsm_bn_grad_columns) : FSM_K(fsm_bn_grad_runs), &job);
    fsm_bn_finish_sums(p, job.part_a, sum_g);
    fsm_bn_finish_sums(p, job.part_b, sum_gxc);
    FSM_K(fsm_bn_finish_grad_sums)(&job, 0, C, sum_g, sum_gxc);
    free(part);
    return 0;
}

/* ---- elementwise: out = s*(x - m) + t, or a*((g + t) + s*(x - m)) ------- */

/* One row or run of n values with parameters at stride `step` (1: one per
 * column; 0: the same for the whole run).  Written out three times so that
 * each loop has only the terms it needs.  The gradient's grouping is
 * PyTorch's, so that infinities and NaNs land where they land there. */
FSM_BN_INLINE void FSM_K(fsm_bn_apply_span_to)(const FSM_K(fsm_bn_job) *job, ptrdiff_t offset,
                                               ptrdiff_t n, ptrdiff_t param, ptrdiff_t step,
                                               REAL *out)
{
    const REAL *g = job->g ? job->g + offset : NULL, *x = job->x ? job->x + offset : NULL;
    const REAL *pa = job->pa + param, *ps = job->ps + param, *pm = job->pm + param,
               *pt = job->pt + param;
    const REAL h = step ? job->half : job->ph[param];
    if (!g) {
        for (ptrdiff_t i = 0; i < n; i++)
            out[i] = ps[i * step] * (x[i] * h - pm[i * step]) + pt[i * step];
    } else if (!x) {
        for (ptrdiff_t i = 0; i < n; i++) out[i] = pa[i * step] * (g[i] + pt[i * step]);
    } else {
        for (ptrdiff_t i = 0; i < n; i++)
            out[i] = pa[i * step] * ((g[i] + pt[i * step]) + ps[i * step] * (x[i] * h - pm[i * step]));
    }
}

FSM_BN_INLINE void FSM_K(fsm_bn_apply_span)(const FSM_K(fsm_bn_job) *job, ptrdiff_t offset,
                                            ptrdiff_t n, ptrdiff_t param, ptrdiff_t step)
{
    FSM_K(fsm_bn_apply_span_to)(job, offset, n, param, step, job->out + offset);
}

/* A run of feature `param` (its factors constant): fsm_bn_apply_span, but
 * with job->stream the values go out by non-temporal stores, a buffer in L1
 * at a time, which saves reading each output line before writing it and
 * keeps the output from evicting the inputs.  The range function that calls
 * it ends with fsm_bn_stream_fence. */
FSM_BN_INLINE void FSM_K(fsm_bn_run_span)(const FSM_K(fsm_bn_job) *job, ptrdiff_t offset,
                                          ptrdiff_t n, ptrdiff_t param)
{
    REAL *out = job->out + offset;
    ptrdiff_t head = (ptrdiff_t)((FSM_BN_STREAM_ALIGN - (uintptr_t)out % FSM_BN_STREAM_ALIGN)
                                 % FSM_BN_STREAM_ALIGN / sizeof(REAL));
    if (!job->stream || (uintptr_t)out % sizeof(REAL) || head > n)
        head = n;
    FSM_K(fsm_bn_apply_span_to)(job, offset, head, param, 0, out);
    ptrdiff_t i = head;
    for (; i + FSM_BN_STREAM_VALUES <= n; i += FSM_BN_STREAM_VALUES) {
        REAL buf[FSM_BN_STREAM_VALUES] __attribute__((aligned(64)));
        FSM_K(fsm_bn_apply_span_to)(job, offset + i, FSM_BN_STREAM_VALUES, param, 0, buf);
        fsm_bn_stream_copy(out + i, buf, sizeof buf);
    }
    FSM_K(fsm_bn_apply_span_to)(job, offset + i, n - i, param, 0, out + i);
}

/* Column layout, rows r and r + 1, columns [col0, col1): the same
 * per-element arithmetic as fsm_bn_apply_span, with each factor loaded once
 * for both rows (the one-row loop is bound by its loads, three or four
 * factors per value), and every load of an element ahead of its stores. */
FSM_BN_INLINE void FSM_K(fsm_bn_apply_two_rows)(const FSM_K(fsm_bn_job) *job, ptrdiff_t r,
                                                ptrdiff_t col0, ptrdiff_t col1)
{
    const ptrdiff_t width = job->p.width, offset = r * width;
    const REAL *g0 = job->g ? job->g + offset : NULL, *x0 = job->x ? job->x + offset : NULL;
    const REAL *g1 = g0 ? g0 + width : NULL, *x1 = x0 ? x0 + width : NULL;
    REAL *out0 = job->out + offset, *out1 = out0 + width;
    const REAL *pa = job->pa, *ps = job->ps, *pm = job->pm, *pt = job->pt, h = job->half;
    if (!g0) {
        FSM_BN_PER_ELEMENT for (ptrdiff_t i = col0; i < col1; i++) {
            const REAL s = ps[i], m = pm[i], t = pt[i], v0 = x0[i], v1 = x1[i];
            out0[i] = s * (v0 * h - m) + t;
            out1[i] = s * (v1 * h - m) + t;
        }
    } else if (!x0) {
        FSM_BN_PER_ELEMENT for (ptrdiff_t i = col0; i < col1; i++) {
            const REAL a = pa[i], t = pt[i], u0 = g0[i], u1 = g1[i];
            out0[i] = a * (u0 + t);
            out1[i] = a * (u1 + t);
        }
    } else {
        FSM_BN_PER_ELEMENT for (ptrdiff_t i = col0; i < col1; i++) {
            const REAL a = pa[i], s = ps[i], m = pm[i], t = pt[i];
            const REAL u0 = g0[i], u1 = g1[i], v0 = x0[i], v1 = x1[i];
            out0[i] = a * ((u0 + t) + s * (v0 * h - m));
            out1[i] = a * ((u1 + t) + s * (v1 * h - m));
        }
    }
}

FSM_HOT static void FSM_K(fsm_bn_apply_rows)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    const ptrdiff_t width = job->p.width, V = FSM_BN_LINE_VALUES;
    ptrdiff_t r = r0;
    for (; job->row_at_a_time && r < r1; r++) FSM_K(fsm_bn_apply_span)(job, r * width, width, 0, 1);
    for (; r + 2 <= r1; r += 2) {
        /* columns [a, top) are whole 64-byte lines of row r's output */
        const ptrdiff_t a = FSM_K(fsm_bn_lead)(job->out + r * width, width);
        const ptrdiff_t top = a + (width - a) / V * V;
        if (job->descending) { /* a line at a time, from the last */
            FSM_K(fsm_bn_apply_two_rows)(job, r, top, width);
            for (ptrdiff_t i = top - V; i >= a; i -= V)
                FSM_K(fsm_bn_apply_two_rows)(job, r, i, i + V);
            FSM_K(fsm_bn_apply_two_rows)(job, r, 0, a);
        } else {
            FSM_K(fsm_bn_apply_two_rows)(job, r, 0, a);
            FSM_K(fsm_bn_apply_two_rows)(job, r, a, width);
        }
    }
    if (r < r1)
        FSM_K(fsm_bn_apply_span)(job, r * width, width, 0, 1);
}

FSM_HOT static void FSM_K(fsm_bn_apply_runs)(void *ctx, ptrdiff_t r0, ptrdiff_t r1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    const ptrdiff_t C = job->p.C, inner = job->p.inner;
    for (ptrdiff_t r = r0; r < r1; r++) FSM_K(fsm_bn_run_span)(job, r * inner, inner, r % C);
    fsm_bn_stream_fence(job->stream);
}

typedef struct {
    REAL a, s, m, t, h;
} FSM_K(fsm_bn_factors);

/* REAL factors of feature c from the double ones.  The mean is split as
 * m + lo with m its REAL rounding: x - m is exact for x near the mean, and
 * s*lo folds into t, so data far from zero keeps its precision.  An
 * infinite m (an infinite mean, or a double one beyond float's range) or s
 * has lo 0: y = s*(x - m) + t is then -s*m for finite x, as PyTorch.
 * s*(x - m) is taken as (2s)*(x/2 - m/2), h = 1/2: the same bits (halving
 * is exact but for subnormals), but no overflow where x and m lie apart by
 * more than the largest REAL.  Where 2s would overflow a finite s, h is 1
 * and the factors are s and m (plain, or when asked).  Which inputs are
 * given is a constant in each inlined copy, so that the loops over
 * features vectorise. */
FSM_BN_INLINE FSM_K(fsm_bn_factors) FSM_K(fsm_bn_feature_factors)(const FSM_K(fsm_bn_job) *job,
                                                                  ptrdiff_t c, int with_x,
                                                                  int with_g, int with_t,
                                                                  int plain)
{
    const double mc = with_x ? job->mean[c] : 0, sc = with_x ? job->s[c] : 0;
    const double tc = with_t ? job->t[c] : 0;
    const REAL m = (REAL)mc, s = (REAL)sc, s2 = 2 * s;
    /* without the split where it would make inf - inf or inf * 0 */
    const double t = isfinite(m) && isfinite(sc) ? tc - sc * (mc - (double)m) : tc;
    const int halve = !plain && (s2 - s2 == 0 || s - s != 0); /* 2s finite, or s not */
    return (FSM_K(fsm_bn_factors)){with_g ? (REAL)job->a[c] : 0, halve ? s2 : s,
                                   halve ? m / 2 : m, (REAL)t, halve ? (REAL)0.5 : 1};
}

/* The factors of features [c0, c1), per column (column layout) or feature;
 * returns how many features are not halved (h 1). */
FSM_BN_INLINE ptrdiff_t FSM_K(fsm_bn_fill_range)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c0,
                                                 ptrdiff_t c1, int with_x, int with_g,
                                                 int with_t, int plain)
{
    const ptrdiff_t per = job->p.columns ? job->p.inner : 1;
    REAL *restrict pa = job->pa, *restrict ps = job->ps, *restrict pm = job->pm,
         *restrict pt = job->pt, *restrict ph = job->ph;
    ptrdiff_t unhalved = 0;
    if (per == 1) { /* apart: one store per factor, a loop the compiler vectorises */
        for (ptrdiff_t c = c0; c < c1; c++) {
            const FSM_K(fsm_bn_factors) f = FSM_K(fsm_bn_feature_factors)(job, c, with_x, with_g,
                                                                           with_t, plain);
            pa[c] = f.a;
            ps[c] = f.s;
            pm[c] = f.m;
            pt[c] = f.t;
            ph[c] = f.h;
            unhalved += f.h == 1;
        }
        return unhalved;
    }
    for (ptrdiff_t c = c0; c < c1; c++) {
        const FSM_K(fsm_bn_factors) f = FSM_K(fsm_bn_feature_factors)(job, c, with_x, with_g,
                                                                       with_t, plain);
        for (ptrdiff_t k = c * per; k < (c + 1) * per; k++) {
            pa[k] = f.a;
            ps[k] = f.s;
            pm[k] = f.m;
            pt[k] = f.t;
            ph[k] = f.h;
        }
        unhalved += f.h == 1;
    }
    return unhalved;
}

/* fsm_bn_fill_range with the given inputs as constants. */
FSM_HOT static ptrdiff_t FSM_K(fsm_bn_fill_params)(const FSM_K(fsm_bn_job) *job, ptrdiff_t c0,
                                                   ptrdiff_t c1, int plain)
{
#define FSM_BN_FILL(X, G, T) FSM_K(fsm_bn_fill_range)(job, c0, c1, X, G, T, plain)
    const int t = job->t != NULL;
    if (job->x && job->g)
        return t ? FSM_BN_FILL(1, 1, 1) : FSM_BN_FILL(1, 1, 0);
    if (job->x)
        return t ? FSM_BN_FILL(1, 0, 1) : FSM_BN_FILL(1, 0, 0);
    return t ? FSM_BN_FILL(0, 1, 1) : FSM_BN_FILL(0, 1, 0);
#undef FSM_BN_FILL
}

/* The first of buf[0..FSM_BN_LINE_VALUES) that sits where `like` sits in its
 * 64-byte line, so that a column's factors and output share their alignment. */
static REAL *FSM_K(fsm_bn_aligned_as)(REAL *buf, const REAL *like)
{
    const uintptr_t shift = ((uintptr_t)like - (uintptr_t)buf) % 64;
    return shift % sizeof(REAL) ? buf : (REAL *)((char *)buf + shift);
}

/* Values of the params buffer that fsm_bn_set_params needs. */
static size_t FSM_K(fsm_bn_params_size)(const fsm_bn_plan *p)
{
    return 5 * (size_t)(p->width + FSM_BN_LINE_VALUES);
}

/* Points pa, ps, pm, pt, ph into `params` (fsm_bn_params_size values),
 * each aligned as job->out. */
static void FSM_K(fsm_bn_set_params)(FSM_K(fsm_bn_job) *job, REAL *params)
{
    const ptrdiff_t stride = job->p.width + FSM_BN_LINE_VALUES;
    job->pa = FSM_K(fsm_bn_aligned_as)(params, job->out);
    job->ps = FSM_K(fsm_bn_aligned_as)(params + stride, job->out);
    job->pm = FSM_K(fsm_bn_aligned_as)(params + 2 * stride, job->out);
    job->pt = FSM_K(fsm_bn_aligned_as)(params + 3 * stride, job->out);
    job->ph = FSM_K(fsm_bn_aligned_as)(params + 4 * stride, job->out);
}

/* The elementwise pass over all the data, params filled, `unhalved` of
 * them plain (fsm_bn_fill_params). */
static void FSM_K(fsm_bn_run_filled)(FSM_K(fsm_bn_job) *job, ptrdiff_t unhalved, int max_threads)
{
    const fsm_bn_plan *p = &job->p;
    if (p->columns) {
        /* the columns share one h: plain for all if one must be */
        if (unhalved)
            FSM_K(fsm_bn_fill_params)(job, 0, p->C, 1);
        job->half = unhalved ? 1 : (REAL)0.5;
        const void *const in[] = {job->g, job->x, job->g ? job->pa : NULL,
                                  job->x ? job->ps : NULL, job->x ? job->pm : NULL, job->pt};
        job->descending = fsm_bn_descending(job->out, in, 6,
                                            p->width * (ptrdiff_t)sizeof(REAL));
        job->row_at_a_time = fsm_bn_row_at_a_time(p, job->g != NULL, (ptrdiff_t)sizeof(REAL));
        fsm_parallel_for(p->outer, FSM_BN_WORK(2 * p->width), max_threads,
                         FSM_K(fsm_bn_apply_rows), job);
    } else {
        fsm_parallel_for(p->outer * p->C, FSM_BN_WORK(2 * p->inner), max_threads,
                         FSM_K(fsm_bn_apply_runs), job);
    }
}

/* The elementwise pass over all the data, params set. */
static void FSM_K(fsm_bn_run_apply)(FSM_K(fsm_bn_job) *job, int max_threads)
{
    FSM_K(fsm_bn_run_filled)(job, FSM_K(fsm_bn_fill_params)(job, 0, job->p.C, 0), max_threads);
}

int FSM_K(fsm_bn_apply)(const REAL *g, const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t C,
                        ptrdiff_t inner, const double *a, const double *s, const double *mean,
                        const double *t, int max_threads)
{
    FSM_K(fsm_bn_job) job = {.p = fsm_bn_make_plan(outer, C, inner), .g = g, .x = x, .out = out,
                             .a = a, .s = s, .mean = mean, .t = t};
    job.stream = fsm_bn_streams(&job.p, (ptrdiff_t)sizeof(REAL), out, g, x);
    REAL *params = malloc(FSM_K(fsm_bn_params_size)(&job.p) * sizeof *params);
    if (!params)
        return -1;
    FSM_K(fsm_bn_set_params)(&job, params);
    FSM_K(fsm_bn_run_apply)(&job, max_threads);
    free(params);
    return 0;
}

/* ---- training forward: statistics, then normalisation ------------------ */

/* Features [c0, c1): the statistics from the blocks' partials, invstd and
 * the params.  For many features, as in (256, 1024), that takes
 * microseconds, which the threads share instead of one thread working
 * while the others wait. */
FSM_HOT static void FSM_K(fsm_bn_train_finish)(void *ctx, ptrdiff_t c0, ptrdiff_t c1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    const fsm_bn_plan *p = &job->p;
    const double *weight = job->weight;
    FSM_K(fsm_bn_finish_stats)(job, c0, c1, job->mean_out, job->m2);
    fsm_bn_invstd(job->m2 + c0, c1 - c0, (double)(p->outer * p->inner), job->eps,
                  weight ? weight + c0 : NULL, job->invstd + c0, job->scale + c0);
    const ptrdiff_t unhalved = FSM_K(fsm_bn_fill_params)(job, c0, c1, 0);
    if (unhalved)
        __atomic_fetch_add(job->unhalved, unhalved, __ATOMIC_RELAXED);
}

/* Run layout, features [c0, c1): each finds its statistics exactly as
 * fsm_bn_stats does (same blocks, same merge order), its factors, and
 * normalises its runs while they are still in cache. */
FSM_HOT static void FSM_K(fsm_bn_train_features)(void *ctx, ptrdiff_t c0, ptrdiff_t c1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    const fsm_bn_plan *p = &job->p;
    for (ptrdiff_t c = c0; c < c1; c++) {
        for (ptrdiff_t b = 0; b < p->nblocks; b++) FSM_K(fsm_bn_run_block_stats)(job, c, b);
        fsm_bn_finish_runs(p, job->part_a, job->part_b, c, c + 1, job->mean_out, job->m2);
        FSM_K(fsm_bn_fix_nonfinite)(job, c, c + 1, job->mean_out, job->m2);
        fsm_bn_invstd(job->m2 + c, 1, (double)(p->outer * p->inner), job->eps,
                      job->weight ? job->weight + c : NULL, job->invstd + c, job->scale + c);
        FSM_K(fsm_bn_fill_params)(job, c, c + 1, 0);
        for (ptrdiff_t o = 0; o < p->outer; o++)
            FSM_K(fsm_bn_run_span)(job, (o * p->C + c) * p->inner, p->inner, c);
    }
    fsm_bn_stream_fence(job->stream);
}

int FSM_K(fsm_bn_train)(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                        const double *weight, const double *bias, double eps, double *mean,
                        double *m2, double *invstd, int max_threads)
{
    FSM_K(fsm_bn_job) job = {.p = fsm_bn_make_plan(outer, C, inner), .x = x, .out = out,
                             .t = bias, .weight = weight, .eps = eps, .mean_out = mean,
                             .m2 = m2, .invstd = invstd, .mean = mean,
                             .blocked = sizeof(REAL) < sizeof(double)};
    job.stream = fsm_bn_streams(&job.p, (ptrdiff_t)sizeof(REAL), out, NULL, x);
    const fsm_bn_plan *p = &job.p;
    const ptrdiff_t np = fsm_bn_partial_count(p);
    double *scratch = malloc((2 * (size_t)np + (size_t)C) * sizeof *scratch
                             + FSM_K(fsm_bn_params_size)(p) * sizeof(REAL));
    if (!scratch)
        return -1;
    job.part_a = scratch;
    job.part_b = scratch + np;
    job.scale = scratch + 2 * np;
    job.s = job.scale;
    FSM_K(fsm_bn_set_params)(&job, (REAL *)(job.scale + C));
    if (fsm_bn_by_feature(p)) {
        fsm_parallel_for(C, FSM_BN_WORK(3 * outer * inner), max_threads,
                         FSM_K(fsm_bn_train_features), &job);
    } else {
        ptrdiff_t unhalved = 0;
        job.unhalved = &unhalved;
        FSM_K(fsm_bn_run_partials)(&job, max_threads);
        fsm_parallel_for(C, FSM_BN_WORK(FSM_BN_FINISH_WORK * p->nblocks * inner), max_threads,
                         FSM_K(fsm_bn_train_finish), &job);
        FSM_K(fsm_bn_run_filled)(&job, unhalved, max_threads);
    }
    free(scratch);
    return 0;
}

/* ---- training backward: gradient sums, then dx ------------------------- */

/* Run layout, features [c0, c1): each sums its gradient terms exactly as
 * fsm_bn_grad_sums does (same blocks, same order), finds its factors, and
 * writes its runs of dx while g and x are still in cache. */
FSM_HOT static void FSM_K(fsm_bn_backward_features)(void *ctx, ptrdiff_t c0, ptrdiff_t c1)
{
    const FSM_K(fsm_bn_job) *job = ctx;
    const fsm_bn_plan *p = &job->p;
    const ptrdiff_t C = p->C;
    const double count = (double)(p->outer * p->inner);
    for (ptrdiff_t c = c0; c < c1; c++) {
        job->pm[c] = (REAL)job->mean[c];
        for (ptrdiff_t b = 0; b < p->nblocks; b++) FSM_K(fsm_bn_run_block_grad)(job, c, b);
        fsm_bn_finish_run_sums(p, job->part_a, c, c + 1, job->sum_g);
        fsm_bn_finish_run_sums(p, job->part_b, c, c + 1, job->sum_gxc);
        FSM_K(fsm_bn_finish_grad_sums)(job, c, c + 1, job->sum_g, job->sum_gxc);
        fsm_bn_backward_factors(job->given_invstd + c, job->weight ? job->weight + c : NULL,
                                job->sum_g + c, job->sum_gxc + c, 1, count, job->factors + c,
                                job->factors + C + c, job->factors + 2 * C + c);
        FSM_K(fsm_bn_fill_params)(job, c, c + 1, 0);
        for (ptrdiff_t o = 0; o < p->outer; o++)
            FSM_K(fsm_bn_run_span)(job, (o * C + c) * p->inner, p->inner, c);
    }
    fsm_bn_stream_fence(job->stream);
}

/* The backward not feature by feature (fsm_bn_by_feature): the sums, the
 * factors, then the elementwise pass, each over all the data. */
static int FSM_K(fsm_bn_backward_in_passes)(const REAL *g, const REAL *x, REAL *out,
                                            ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
                                            const double *mean, const double *invstd,
                                            const double *weight, double *sum_g,
                                            double *sum_gxc, int max_threads)
{
    double *factors = malloc(3 * (size_t)C * sizeof *factors);
    if (!factors)
        return -1;
    double *k = factors, *s = factors + C, *t = factors + 2 * C;
    int status = FSM_K(fsm_bn_grad_sums)(g, x, outer, C, inner, mean, sum_g, sum_gxc,
                                         max_threads);
    if (status == 0) {
        fsm_bn_backward_factors(invstd, weight, sum_g, sum_gxc, C, (double)(outer * inner), k,
                                s, t);
        status = FSM_K(fsm_bn_apply)(g, x, out, outer, C, inner, k, s, mean, t, max_threads);
    }
    free(factors);
    return status;
}

int FSM_K(fsm_bn_backward)(const REAL *g, const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t C,
                           ptrdiff_t inner, const double *mean, const double *invstd,
                           const double *weight, double *sum_g, double *sum_gxc,
                           int max_threads)
{
    FSM_K(fsm_bn_job) job = {.p = fsm_bn_make_plan(outer, C, inner), .g = g, .x = x, .out = out,
                             .mean = mean, .weight = weight, .given_invstd = invstd,
                             .sum_g = sum_g, .sum_gxc = sum_gxc};
    job.stream = fsm_bn_streams(&job.p, (ptrdiff_t)sizeof(REAL), out, g, x);
    const fsm_bn_plan *p = &job.p;
    if (!fsm_bn_by_feature(p))
        return FSM_K(fsm_bn_backward_in_passes)(g, x, out, outer, C, inner, mean, invstd, weight,
                                                sum_g, sum_gxc, max_threads);
    const ptrdiff_t np = fsm_bn_partial_count(p);
    double *scratch = malloc((2 * (size_t)np + 3 * (size_t)C) * sizeof *scratch
                             + FSM_K(fsm_bn_params_size)(p) * sizeof(REAL));
    if (!scratch)
        return -1;
    job.part_a = scratch;
    job.part_b = scratch + np;
    job.factors = scratch + 2 * np;
    job.a = job.factors;
    job.s = job.factors + C;
    job.t = job.factors + 2 * C;
    FSM_K(fsm_bn_set_params)(&job, (REAL *)(job.factors + 3 * C));
    fsm_parallel_for(C, FSM_BN_WORK(5 * outer * inner), max_threads,
                     FSM_K(fsm_bn_backward_features), &job);
    free(scratch);
    return 0;
}

#undef FSM_BN_LINE_VALUES
#undef FSM_BN_INLINE
#undef FSM_K
