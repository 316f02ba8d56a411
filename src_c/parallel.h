/* A fork-safe parallel loop: threads are started for one call and joined
 * before it returns, so no pool survives into a forked child. */
#ifndef FASTSM_PARALLEL_H
#define FASTSM_PARALLEL_H

#include <stddef.h>

/* Work (elements touched) below which starting a thread costs more than it saves. */
#define FSM_PARALLEL_GRAIN ((ptrdiff_t)1 << 17)

typedef void (*fsm_range_fn)(void *ctx, ptrdiff_t begin, ptrdiff_t end);

/* Runs fn(ctx, begin, end) over [0, ntasks) split into contiguous ranges, one
 * per thread, on at most max_threads threads (the caller's thread included).
 * work_per_task sizes the split: tiny calls stay on the calling thread. */
void fsm_parallel_for(ptrdiff_t ntasks, ptrdiff_t work_per_task, int max_threads,
                      fsm_range_fn fn, void *ctx);

#endif
