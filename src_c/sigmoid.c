#include "sigmoid.h"

#include "dispatch.h"
#include "parallel.h"
#include "vexp.h"

#define FSM_SIGMOID_CHUNK 4096 /* elements per task */

typedef struct {
    const void *x, *t, *pos_weight;
    void *out;
    ptrdiff_t n, period;
} fsm_sigmoid_job;

#define FSM_DEFINE_SIGMOID(REAL, SUF, EXP)                                                 \
    FSM_HOT static void fsm_sigmoid_chunks_##SUF(void *ctx, ptrdiff_t t0, ptrdiff_t t1)    \
    {                                                                                      \
        const fsm_sigmoid_job *job = ctx;                                                  \
        const REAL *x = job->x;                                                            \
        REAL *out = job->out;                                                              \
        const ptrdiff_t end = t1 * FSM_SIGMOID_CHUNK < job->n ? t1 * FSM_SIGMOID_CHUNK : job->n; \
        for (ptrdiff_t i = t0 * FSM_SIGMOID_CHUNK; i < end; i++) {                         \
            const REAL v = x[i];                                                           \
            const REAL e = EXP(v < 0 ? v : -v);                                            \
            const REAL r = 1 / (1 + e);                                                    \
            out[i] = v >= 0 ? r : e * r; /* NaN: e is NaN, so both are */                  \
        }                                                                                  \
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
                const REAL v = x[i], pm1 = pw[j] - 1;                                      \
                const REAL e = EXP(v < 0 ? v : -v);                                        \
                const REAL r = 1 / (1 + e);                                                \
                out[i] = v >= 0 ? (1 - t[i]) - (1 + pm1 * t[i]) * (e * r)                  \
                                : e * r - t[i] * (1 + pm1 * r);                            \
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

FSM_DEFINE_SIGMOID(float, f32, fsm_expf)
FSM_DEFINE_SIGMOID(double, f64, fsm_exp)
