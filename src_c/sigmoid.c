#include "sigmoid.h"

#include "dispatch.h"
#include "parallel.h"
#include "vexp.h"

#define FSM_SIGMOID_CHUNK 4096 /* elements per task */

typedef struct {
    const void *x, *t;
    void *out;
    ptrdiff_t n;
    int negate;
} fsm_sigmoid_job;

#define FSM_DEFINE_SIGMOID(REAL, SUF, EXP)                                                     \
    FSM_HOT static void fsm_sigmoid_chunks_##SUF(void *ctx, ptrdiff_t t0, ptrdiff_t t1)       \
    {                                                                                          \
        const fsm_sigmoid_job *job = ctx;                                                      \
        const REAL *x = job->x;                                                                \
        REAL *out = job->out;                                                                  \
        const ptrdiff_t end = t1 * FSM_SIGMOID_CHUNK < job->n ? t1 * FSM_SIGMOID_CHUNK : job->n; \
        const REAL sign = job->negate ? -1 : 1;                                                \
        for (ptrdiff_t i = t0 * FSM_SIGMOID_CHUNK; i < end; i++) {                             \
            const REAL v = sign * x[i];                                                        \
            const REAL e = EXP(v < 0 ? v : -v);                                                \
            const REAL r = 1 / (1 + e);                                                        \
            out[i] = v >= 0 ? r : e * r; /* NaN: e is NaN, so both are */                      \
        }                                                                                      \
    }                                                                                          \
    void fsm_sigmoid_##SUF(const REAL *x, REAL *out, ptrdiff_t n, int negate, int max_threads) \
    {                                                                                          \
        fsm_sigmoid_job job = {x, NULL, out, n, negate};                                       \
        fsm_parallel_for((n + FSM_SIGMOID_CHUNK - 1) / FSM_SIGMOID_CHUNK, FSM_SIGMOID_CHUNK,   \
                         max_threads, fsm_sigmoid_chunks_##SUF, &job);                         \
    }                                                                                          \
    FSM_HOT static void fsm_sigmoid_minus_chunks_##SUF(void *ctx, ptrdiff_t t0, ptrdiff_t t1) \
    {                                                                                          \
        const fsm_sigmoid_job *job = ctx;                                                      \
        const REAL *x = job->x, *t = job->t;                                                   \
        REAL *out = job->out;                                                                  \
        const ptrdiff_t end = t1 * FSM_SIGMOID_CHUNK < job->n ? t1 * FSM_SIGMOID_CHUNK : job->n; \
        for (ptrdiff_t i = t0 * FSM_SIGMOID_CHUNK; i < end; i++) {                             \
            const REAL v = x[i];                                                               \
            const REAL e = EXP(v < 0 ? v : -v);                                                \
            const REAL r = 1 / (1 + e);                                                        \
            out[i] = v >= 0 ? (1 - t[i]) - e * r : e * r - t[i];                              \
        }                                                                                      \
    }                                                                                          \
    void fsm_sigmoid_minus_##SUF(const REAL *x, const REAL *t, REAL *out, ptrdiff_t n,         \
                                 int max_threads)                                              \
    {                                                                                          \
        fsm_sigmoid_job job = {x, t, out, n, 0};                                               \
        fsm_parallel_for((n + FSM_SIGMOID_CHUNK - 1) / FSM_SIGMOID_CHUNK, FSM_SIGMOID_CHUNK,   \
                         max_threads, fsm_sigmoid_minus_chunks_##SUF, &job);                   \
    }

FSM_DEFINE_SIGMOID(float, f32, fsm_expf)
FSM_DEFINE_SIGMOID(double, f64, fsm_exp)
