/* A parallel loop on a pool of threads that persist between calls (see
 * parallel.c); safe to use from several threads at once and after fork(). */
#ifndef FASTSM_PARALLEL_H
#define FASTSM_PARALLEL_H

#include <stddef.h>

/* Work (elements touched) below which handing a range to another thread costs
 * more than it saves. */
#define FSM_PARALLEL_GRAIN ((ptrdiff_t)1 << 17)

/* A call is cut into up to this many ranges a thread, claimed as threads
 * come free: when one of the CPUs runs slow (shared with another process or
 * a busy hyperthread sibling), the others take over its share instead of
 * waiting for it. */
#define FSM_RANGES_PER_THREAD 8

typedef void (*fsm_range_fn)(void *ctx, ptrdiff_t begin, ptrdiff_t end);

/* Runs fn(ctx, begin, end) over [0, ntasks) split into contiguous ranges, on
 * at most max_threads threads (the caller's thread included).  work_per_task
 * sizes the split: tiny calls stay on the calling thread.  With t threads
 * (at most max_threads, 256, ntasks and the grains of work), there are
 * r = min(FSM_RANGES_PER_THREAD t, grains, ntasks) ranges and range i is
 * [ntasks * i / r, ntasks * (i + 1) / r); the caller runs range 0, then, like
 * every thread of the call, whichever range no thread has claimed yet, and
 * the call returns once every range is done.  fn must not depend on which
 * thread runs a range, nor on the split. */
void fsm_parallel_for(ptrdiff_t ntasks, ptrdiff_t work_per_task, int max_threads,
                      fsm_range_fn fn, void *ctx);

#endif
