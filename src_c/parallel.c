#include "parallel.h"

#include <pthread.h>

#define FSM_MAX_THREADS 256

typedef struct {
    fsm_range_fn fn;
    void *ctx;
    ptrdiff_t begin, end;
} fsm_range_job;

static void *fsm_run_job(void *arg)
{
    fsm_range_job *job = arg;
    job->fn(job->ctx, job->begin, job->end);
    return NULL;
}

void fsm_parallel_for(ptrdiff_t ntasks, ptrdiff_t work_per_task, int max_threads,
                      fsm_range_fn fn, void *ctx)
{
    if (ntasks <= 0)
        return;
    ptrdiff_t nthreads = max_threads < FSM_MAX_THREADS ? max_threads : FSM_MAX_THREADS;
    ptrdiff_t by_work = ntasks * work_per_task / FSM_PARALLEL_GRAIN;
    if (nthreads > by_work) nthreads = by_work;
    if (nthreads > ntasks) nthreads = ntasks;
    if (nthreads <= 1) {
        fn(ctx, 0, ntasks);
        return;
    }
    fsm_range_job jobs[FSM_MAX_THREADS];
    pthread_t tids[FSM_MAX_THREADS];
    int started[FSM_MAX_THREADS];
    for (ptrdiff_t t = 0; t < nthreads; t++) {
        jobs[t] = (fsm_range_job){fn, ctx, ntasks * t / nthreads, ntasks * (t + 1) / nthreads};
    }
    /* An explicit stack size: the kernels keep scratch slabs on the stack, and
     * some C libraries give threads only 128 KiB by default. */
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0
                    && pthread_attr_setstacksize(&attr, (size_t)1 << 20) == 0;
    for (ptrdiff_t t = 1; t < nthreads; t++)
        started[t] = pthread_create(&tids[t], have_attr ? &attr : NULL, fsm_run_job, &jobs[t]) == 0;
    if (have_attr)
        pthread_attr_destroy(&attr);
    fsm_run_job(&jobs[0]);
    /* A thread that could not start has its range run here instead. */
    for (ptrdiff_t t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            fsm_run_job(&jobs[t]);
    }
}
