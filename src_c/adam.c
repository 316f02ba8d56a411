#include "adam.h"

#include <math.h>

#include "dispatch.h"
#include "parallel.h"

#define FSM_ADAM_CHUNK 16384 /* parameters per task: small models stay on one thread */

typedef struct {
    void *p, *m, *v;
    const void *g;
    ptrdiff_t n;
    double b1, b2, step, eps;
} fsm_adam_job;

#define FSM_DEFINE_ADAM(REAL, SUF, SQRT)                                                       \
    FSM_HOT static void fsm_adam_chunks_##SUF(void *ctx, ptrdiff_t t0, ptrdiff_t t1)          \
    {                                                                                          \
        const fsm_adam_job *job = ctx;                                                         \
        REAL *restrict p = job->p, *restrict m = job->m, *restrict v = job->v;                 \
        const REAL *restrict g = job->g;                                                       \
        const REAL b1 = (REAL)job->b1, b2 = (REAL)job->b2, c1 = 1 - b1, c2 = 1 - b2;           \
        const REAL step = (REAL)job->step, eps = (REAL)job->eps;                               \
        const ptrdiff_t end = t1 * FSM_ADAM_CHUNK < job->n ? t1 * FSM_ADAM_CHUNK : job->n;     \
        for (ptrdiff_t i = t0 * FSM_ADAM_CHUNK; i < end; i++) {                                \
            const REAL gi = g[i];                                                              \
            const REAL mi = b1 * m[i] + c1 * gi;                                               \
            const REAL vi = b2 * v[i] + c2 * (gi * gi);                                        \
            m[i] = mi;                                                                         \
            v[i] = vi;                                                                         \
            p[i] -= step * mi / (SQRT(vi) + eps);                                              \
        }                                                                                      \
    }                                                                                          \
    void fsm_adam_##SUF(REAL *restrict p, const REAL *restrict g, REAL *restrict m,            \
                        REAL *restrict v, ptrdiff_t n, REAL b1, REAL b2, REAL step, REAL eps,  \
                        int max_threads)                                                       \
    {                                                                                          \
        fsm_adam_job job = {p, m, v, g, n, b1, b2, step, eps};                                 \
        fsm_parallel_for((n + FSM_ADAM_CHUNK - 1) / FSM_ADAM_CHUNK, FSM_ADAM_CHUNK,            \
                         max_threads, fsm_adam_chunks_##SUF, &job);                            \
    }

FSM_DEFINE_ADAM(float, f32, sqrtf)
FSM_DEFINE_ADAM(double, f64, sqrt)
