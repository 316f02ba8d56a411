#include "sigmoid.h"

#include <math.h>
#include <string.h>

#include "dispatch.h"
#include "parallel.h"
#include "vec.h"
#include "vexp.h"

#define FSM_SIGMOID_CHUNK 4096 /* elements per task */

typedef struct {
    const void *x, *t, *pos_weight;
    void *out;
    ptrdiff_t n, period;
} fsm_sigmoid_job;

/* sigmoid(v) = 1 / (1 + e) for v >= 0, e / (1 + e) otherwise, e = exp(-|v|),
 * each one division.  In vectors, e from the exp for arguments <= 0
 * (vexp.h), a third of the work of EXP, which however flushes results below
 * the smallest normal number to 0: where -|v| falls below that, the element
 * is done again by EXP, whose results go down to the subnormals, as
 * sigmoid's do.  The vectors of a block of FSM_SIGMOID_BLOCK elements only
 * note that it happened (one OR each), and the block redoes those elements
 * afterwards, from a copy of its input when in place: out of place 12-14%
 * faster than testing each vector, in place level. */
#define FSM_SIGMOID_BLOCK 256
#define FSM_DEFINE_SIGMOID(REAL, SUF, EXP, V, VEXP_NONPOS, FLUSH_BELOW, LOAD_FIRST, STORE_FIRST) \
    typedef __typeof__((V){0} < 0) fsm_sigmoid_mask_##SUF;                                 \
    FSM_ALWAYS_INLINE V fsm_sigmoid_vector_##SUF(const V *vp, fsm_sigmoid_mask_##SUF *below) \
    {                                                                                      \
        const V v = *vp;                                                                   \
        const V a = FSM_VSELECT(v < 0, v, -v); /* NaN stays NaN */                         \
        const V e = VEXP_NONPOS(&a);                                                       \
        *below |= a < (REAL)(FLUSH_BELOW);                                                 \
        const V one = (V){0} + 1;                                                          \
        return FSM_VSELECT(v >= 0, one, e) / (1 + e); /* NaN: e is NaN */                  \
    }                                                                                      \
    /* A lane of fsm_sigmoid_vector with e by EXP. */                                      \
    FSM_ALWAYS_INLINE REAL fsm_sigmoid_exact_##SUF(REAL v)                                 \
    {                                                                                      \
        const REAL e = EXP(v < 0 ? v : -v);                                                \
        return (v >= 0 ? 1 : e) / (1 + e);                                                 \
    }                                                                                      \
    /* Elements [0, n) of a block, n <= FSM_SIGMOID_BLOCK; out may be x. */                \
    FSM_ALWAYS_INLINE void fsm_sigmoid_block_##SUF(const REAL *x, REAL *out, ptrdiff_t n)  \
    {                                                                                      \
        enum { W = sizeof(V) / sizeof(REAL) };                                             \
        REAL kept[FSM_SIGMOID_BLOCK];                                                      \
        if (out == x) {                                                                    \
            memcpy(kept, x, (size_t)n * sizeof(REAL));                                     \
            x = kept;                                                                      \
        }                                                                                  \
        fsm_sigmoid_mask_##SUF below = (V){0} > 0; /* none */                              \
        ptrdiff_t i = 0;                                                                   \
        for (; i + W <= n; i += W) {                                                       \
            V v;                                                                           \
            memcpy(&v, x + i, sizeof v);                                                   \
            const V y = fsm_sigmoid_vector_##SUF(&v, &below);                              \
            memcpy(out + i, &y, sizeof y);                                                 \
        }                                                                                  \
        if (i < n) { /* the same arithmetic on the last n - i < W */                       \
            const V v = LOAD_FIRST(x + i, n - i, 0);                                       \
            const V y = fsm_sigmoid_vector_##SUF(&v, &below);                              \
            STORE_FIRST(out + i, &y, n - i);                                               \
        }                                                                                  \
        uint64_t words[sizeof below / 8], any = 0;                                         \
        memcpy(words, &below, sizeof below);                                               \
        for (size_t k = 0; k < sizeof below / 8; k++) any |= words[k];                     \
        for (i = 0; any && i < n; i++)                                                     \
            if ((x[i] < 0 ? x[i] : -x[i]) < (REAL)(FLUSH_BELOW))                           \
                out[i] = fsm_sigmoid_exact_##SUF(x[i]);                                    \
    }                                                                                      \
    FSM_HOT static void fsm_sigmoid_chunks_##SUF(void *ctx, ptrdiff_t t0, ptrdiff_t t1)    \
    {                                                                                      \
        const fsm_sigmoid_job *job = ctx;                                                  \
        const REAL *x = job->x;                                                            \
        REAL *out = job->out;                                                              \
        const ptrdiff_t end = t1 * FSM_SIGMOID_CHUNK < job->n ? t1 * FSM_SIGMOID_CHUNK : job->n; \
        for (ptrdiff_t i = t0 * FSM_SIGMOID_CHUNK; i < end; i += FSM_SIGMOID_BLOCK)        \
            fsm_sigmoid_block_##SUF(x + i, out + i,                                        \
                                    end - i < FSM_SIGMOID_BLOCK ? end - i : FSM_SIGMOID_BLOCK); \
    }                                                                                      \
    void fsm_sigmoid_##SUF(const REAL *x, REAL *out, ptrdiff_t n, int max_threads)         \
    {                                                                                      \
        fsm_sigmoid_job job = {x, NULL, NULL, out, n, 0};                                  \
        fsm_parallel_for((n + FSM_SIGMOID_CHUNK - 1) / FSM_SIGMOID_CHUNK, FSM_SIGMOID_CHUNK, \
                         max_threads, fsm_sigmoid_chunks_##SUF, &job);                     \
    }                                                                                      \
    /* sigmoid(x) - t, with pos_weight p: sigmoid(x) - t (1 + (p - 1) sigmoid(-x)),        \
     * written as (1 - t) - (1 + (p - 1) t) sigmoid(-x) where x >= 0 so that neither form  \
     * subtracts two numbers close to 1. */                                                \
    FSM_HOT static void fsm_sigmoid_minus_chunks_##SUF(void *ctx, ptrdiff_t t0, ptrdiff_t t1) \
    {                                                                                      \
        const fsm_sigmoid_job *job = ctx;                                                  \
        const REAL *x = job->x, *t = job->t, *pw = job->pos_weight;                        \
        REAL *out = job->out;                                                              \
        const ptrdiff_t end = t1 * FSM_SIGMOID_CHUNK < job->n ? t1 * FSM_SIGMOID_CHUNK : job->n; \
        ptrdiff_t i = t0 * FSM_SIGMOID_CHUNK;                                              \
        if (!pw) {                                                                         \
            for (; i < end; i++) {                                                         \
                const REAL v = x[i];                                                       \
                const REAL e = EXP(v < 0 ? v : -v);                                        \
                const REAL r = 1 / (1 + e);                                                \
                out[i] = v >= 0 ? (1 - t[i]) - e * r : e * r - t[i];                       \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        /* pos_weight repeats with its period: walk a period-aligned segment at a time */  \
        for (ptrdiff_t j = i % job->period; i < end; j = 0) {                              \
            const ptrdiff_t stop = end - i < job->period - j ? end : i + job->period - j;  \
            for (; i < stop; i++, j++) {                                                   \
                const REAL v = x[i], ti = t[i], pm1 = pw[j] - 1;                           \
                const REAL e = EXP(v < 0 ? v : -v);                                        \
                const REAL r = 1 / (1 + e);                                                \
                const REAL stable = v >= 0 ? (1 - ti) - (1 + pm1 * ti) * (e * r)            \
                                           : e * r - ti * (1 + pm1 * r);                    \
                /* An infinite target or pos_weight takes PyTorch's order,               \
                 * (p t + 1 - t) s - p t, whose inf - inf is its NaN (the stable order   \
                 * can give an infinity). */                                               \
                out[i] = isfinite(ti) && isfinite(pw[j]) ? stable                           \
                                      : (pw[j] * ti + 1 - ti) * (v >= 0 ? r : e * r) - pw[j] * ti; \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    void fsm_sigmoid_minus_##SUF(const REAL *x, const REAL *t, const REAL *pos_weight,     \
                                 ptrdiff_t period, REAL *out, ptrdiff_t n, int max_threads) \
    {                                                                                      \
        fsm_sigmoid_job job = {x, t, pos_weight, out, n, period};                          \
        fsm_parallel_for((n + FSM_SIGMOID_CHUNK - 1) / FSM_SIGMOID_CHUNK, FSM_SIGMOID_CHUNK, \
                         max_threads, fsm_sigmoid_minus_chunks_##SUF, &job);               \
    }

FSM_DEFINE_SIGMOID(float, f32, fsm_expf, fsm_v8f, fsm_vexpf_nonpos, FSM_EXPF_NONPOS_MIN,
                   fsm_load_first_v8f, fsm_store_first_v8f)
FSM_DEFINE_SIGMOID(double, f64, fsm_exp, fsm_v4d, fsm_vexp_nonpos, FSM_EXP_NONPOS_MIN,
                   fsm_load_first_v4d, fsm_store_first_v4d)

/* ---- binary cross-entropy loss ------------------------------------------- */

#define FSM_BCE_CHUNK 1024 /* elements per task: a buffer of them stays in L1 */
#define FSM_BCE_BLOCKS 256 /* sum blocks, fixed by n */

typedef float fsm_v4f __attribute__((vector_size(16)));

/* log1p(e) for e in [0, 1] or NaN, vectorisable: log1p(e) = 2 atanh(z) with
 * z = e / (2 + e) in [0, 1/3], by its series in z^2 <= 1/9, to z^35 in
 * double and z^13 in float (truncation below 2e-18 and 2e-8 relative).  z
 * comes from e itself, never from a rounded 1 + e, so tiny e keep all their
 * digits.  No range split: GCC would evaluate both sides of it. */
FSM_ALWAYS_INLINE double fsm_log1p_unit(double e)
{
    const double z = e / (2 + e), z2 = z * z;
    double p = 2.0 / 35;
    p = p * z2 + 2.0 / 33;
    p = p * z2 + 2.0 / 31;
    p = p * z2 + 2.0 / 29;
    p = p * z2 + 2.0 / 27;
    p = p * z2 + 2.0 / 25;
    p = p * z2 + 2.0 / 23;
    p = p * z2 + 2.0 / 21;
    p = p * z2 + 2.0 / 19;
    p = p * z2 + 2.0 / 17;
    p = p * z2 + 2.0 / 15;
    p = p * z2 + 2.0 / 13;
    p = p * z2 + 2.0 / 11;
    p = p * z2 + 2.0 / 9;
    p = p * z2 + 2.0 / 7;
    p = p * z2 + 2.0 / 5;
    p = p * z2 + 2.0 / 3;
    return z * 2 + z * z2 * p;
}

FSM_ALWAYS_INLINE float fsm_log1pf_unit(float e)
{
    const float z = e / (2 + e), z2 = z * z;
    float p = 2.0f / 13;
    p = p * z2 + 2.0f / 11;
    p = p * z2 + 2.0f / 9;
    p = p * z2 + 2.0f / 7;
    p = p * z2 + 2.0f / 5;
    p = p * z2 + 2.0f / 3;
    return z * 2 + z * z2 * p;
}

/* Four elements as double lanes. */
FSM_ALWAYS_INLINE fsm_v4d fsm_bce_load4_f32(const float *p)
{
    fsm_v4f v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, fsm_v4d);
}

FSM_ALWAYS_INLINE fsm_v4d fsm_bce_load4_f64(const double *p)
{
    fsm_v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The len values src[(i + k) % period], k < len, of a repeating array of
 * elements of `size` bytes: a pointer into src when they do not wrap around,
 * else `buf`, filled with them (one period copied, then doubled). */
static const void *fsm_bce_repeat(const void *src, ptrdiff_t period, size_t size, ptrdiff_t i,
                                  ptrdiff_t len, void *buf)
{
    const char *s = src;
    char *b = buf;
    const ptrdiff_t j = i % period, head = period - j;
    if (len <= head)
        return s + j * size;
    const ptrdiff_t first = len - head < period ? len - head : period;
    memcpy(b, s + j * size, head * size);
    memcpy(b + head * size, s, first * size);
    for (ptrdiff_t filled = head + first; filled < len;) {
        const ptrdiff_t more = filled - head < len - filled ? filled - head : len - filled;
        memcpy(b + filled * size, b + head * size, more * size); /* whole periods */
        filled += more;
    }
    return buf;
}

typedef struct {
    const void *x, *t, *weight, *pos_weight;
    void *out;
    double *partial; /* one loss sum per block when out is NULL */
    ptrdiff_t n, weight_period, pos_period, ntasks, nblocks;
} fsm_bce_job;

/* The losses of len elements into loss[] (which may be the caller's output),
 * in the dtype: (1 - t) x + lw log1p(e) where x >= 0, with e = exp(-|x|);
 * where x < 0, softplus(-x) = log1p(e) - x and (1 - t) x - lw x = -p t x, so
 * the loss is lw log1p(e) - p t x, which adds two terms of one sign (for t in
 * [0, 1], p >= 0) instead of cancelling (1 - t) x against lw (-x): a
 * confident right answer (x = -30, t = 0) keeps all its digits.  At x = -inf
 * or NaN, and an infinite or NaN lw, the textbook form, whose infinities and
 * NaNs are the rule.  has_w and has_pw are constants at each call, so each
 * combination gets its own loop.
 *
 * The sum: losses added into two vectors of double lanes, eight at a time (a
 * zero-padded tail last), so the order depends on len alone. */
#define FSM_DEFINE_BCE_LOSS(REAL, SUF, EXP, LOG1P)                                         \
    FSM_ALWAYS_INLINE void fsm_bce_terms_##SUF(const REAL *restrict x, const REAL *restrict t, \
                                               const REAL *restrict w,                     \
                                               const REAL *restrict pw,                    \
                                               REAL *restrict loss, ptrdiff_t len,         \
                                               int has_w, int has_pw)                      \
    {                                                                                      \
        for (ptrdiff_t k = 0; k < len; k++) {                                              \
            const REAL v = x[k], tk = t[k], log1p_e = LOG1P(EXP(v < 0 ? v : -v));          \
            const REAL lw = has_pw ? 1 + (pw[k] - 1) * tk : 1;                             \
            const REAL pt = has_pw ? pw[k] * tk : tk;                                      \
            const REAL l = v < 0 && v > -INFINITY && lw < INFINITY && lw > -INFINITY       \
                               ? lw * log1p_e - pt * v                                     \
                               : (1 - tk) * v + lw * (log1p_e + (v < 0 ? -v : 0));         \
            loss[k] = has_w ? l * w[k] : l;                                                \
        }                                                                                  \
    }                                                                                      \
    FSM_ALWAYS_INLINE void fsm_bce_add_lanes_##SUF(const REAL *loss, ptrdiff_t len,        \
                                                   fsm_v4d acc[2])                         \
    {                                                                                      \
        ptrdiff_t k = 0;                                                                   \
        for (; k + 8 <= len; k += 8) {                                                     \
            acc[0] += fsm_bce_load4_##SUF(loss + k);                                       \
            acc[1] += fsm_bce_load4_##SUF(loss + k + 4);                                   \
        }                                                                                  \
        if (k < len) {                                                                     \
            REAL rest[8] = {0};                                                            \
            memcpy(rest, loss + k, (len - k) * sizeof *rest);                              \
            acc[0] += fsm_bce_load4_##SUF(rest);                                           \
            acc[1] += fsm_bce_load4_##SUF(rest + 4);                                       \
        }                                                                                  \
    }                                                                                      \
    FSM_HOT static void fsm_bce_blocks_##SUF(void *ctx, ptrdiff_t b0, ptrdiff_t b1)        \
    {                                                                                      \
        const fsm_bce_job *job = ctx;                                                      \
        const REAL *x = job->x, *t = job->t;                                               \
        REAL *out = job->out;                                                              \
        REAL buf[FSM_BCE_CHUNK], wbuf[FSM_BCE_CHUNK], pbuf[FSM_BCE_CHUNK];                 \
        for (ptrdiff_t b = b0; b < b1; b++) {                                              \
            fsm_v4d acc[2] = {{0}, {0}};                                                   \
            for (ptrdiff_t task = job->ntasks * b / job->nblocks;                          \
                 task < job->ntasks * (b + 1) / job->nblocks; task++) {                    \
                const ptrdiff_t i = task * FSM_BCE_CHUNK;                                  \
                const ptrdiff_t len = job->n - i < FSM_BCE_CHUNK ? job->n - i : FSM_BCE_CHUNK; \
                const REAL *w = job->weight ? fsm_bce_repeat(job->weight, job->weight_period, \
                                                             sizeof(REAL), i, len, wbuf)   \
                                            : NULL;                                        \
                const REAL *p = job->pos_weight                                            \
                                    ? fsm_bce_repeat(job->pos_weight, job->pos_period,     \
                                                     sizeof(REAL), i, len, pbuf)           \
                                    : NULL;                                                \
                REAL *loss = out ? out + i : buf;                                          \
                if (w && p) fsm_bce_terms_##SUF(x + i, t + i, w, p, loss, len, 1, 1);      \
                else if (w) fsm_bce_terms_##SUF(x + i, t + i, w, p, loss, len, 1, 0);      \
                else if (p) fsm_bce_terms_##SUF(x + i, t + i, w, p, loss, len, 0, 1);      \
                else fsm_bce_terms_##SUF(x + i, t + i, w, p, loss, len, 0, 0);             \
                if (!out) fsm_bce_add_lanes_##SUF(loss, len, acc);                         \
            }                                                                              \
            const fsm_v4d s = acc[0] + acc[1];                                             \
            if (!out) job->partial[b] = (s[0] + s[1]) + (s[2] + s[3]);                     \
        }                                                                                  \
    }                                                                                      \
    double fsm_bce_loss_##SUF(const REAL *x, const REAL *t, const REAL *weight,            \
                              ptrdiff_t weight_period, const REAL *pos_weight,             \
                              ptrdiff_t pos_period, REAL *loss_out, ptrdiff_t n,           \
                              int max_threads)                                             \
    {                                                                                      \
        return fsm_bce_run(&(fsm_bce_job){x, t, weight, pos_weight, loss_out, NULL, n,     \
                                          weight_period, pos_period, 0, 0},                \
                           fsm_bce_blocks_##SUF, max_threads);                             \
    }

/* Plans the tasks and blocks, runs the blocks on the threads and adds their
 * sums in order (0 when the losses are written out). */
static double fsm_bce_run(fsm_bce_job *job, fsm_range_fn blocks, int max_threads)
{
    if (job->n <= 0)
        return 0;
    double partial[FSM_BCE_BLOCKS];
    job->partial = partial;
    job->ntasks = (job->n + FSM_BCE_CHUNK - 1) / FSM_BCE_CHUNK;
    job->nblocks = job->ntasks < FSM_BCE_BLOCKS ? job->ntasks : FSM_BCE_BLOCKS;
    fsm_parallel_for(job->nblocks, job->n / job->nblocks, max_threads, blocks, job);
    double total = 0;
    if (!job->out)
        for (ptrdiff_t b = 0; b < job->nblocks; b++) total += partial[b];
    return total;
}

FSM_DEFINE_BCE_LOSS(float, f32, fsm_expf_nonpos, fsm_log1pf_unit)
FSM_DEFINE_BCE_LOSS(double, f64, fsm_exp_nonpos, fsm_log1p_unit)
