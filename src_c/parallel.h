/* A parallel loop on a pool of threads that persist between calls (see
 * parallel.c); safe to use from several threads at once and after fork(). */
#ifndef FASTSM_PARALLEL_H
#define FASTSM_PARALLEL_H

#include <stddef.h>

/* Work (elements touched) below which handing a range to another thread costs
 * more than it saves. */
#define FSM_PARALLEL_GRAIN ((ptrdiff_t)1 << 17)

typedef void (*fsm_range_fn)(void *ctx, ptrdiff_t begin, ptrdiff_t end);

/* Runs fn(ctx, begin, end) over [0, ntasks) split into contiguous ranges, one
 * per thread, on at most max_threads threads (the caller's thread included).
 * work_per_task sizes the split: tiny calls stay on the calling thread.
 * With t threads, range i is [ntasks * i / t, ntasks * (i + 1) / t); the
 * caller runs range 0, then any range no other thread has claimed, and the
 * call returns once every range is done.  fn must not depend on which thread
 * runs a range. */
void fsm_parallel_for(ptrdiff_t ntasks, ptrdiff_t work_per_task, int max_threads,
                      fsm_range_fn fn, void *ctx);

#endif
