/* fsm_parallel_for on a pool of worker threads that persist between calls.
 *
 * The calling thread runs range 0 of every call; the others go to whichever
 * thread claims them first, a worker or the caller once it is done with its
 * own.  A worker that has not started by then (asleep, or sharing a CPU with
 * the caller or another process) costs the call nothing but the wake-up:
 * the caller does not wait for threads that are not running.  One call at a
 * time owns the pool (a mutex taken with trylock); a call that finds it busy
 * starts threads of its own for that call, as every call did before the
 * pool, so concurrent callers never wait for each other or share workers.
 *
 * Waiting threads spin for some microseconds, then block on a condition
 * variable: back-to-back calls find their workers awake, and idle workers
 * use no CPU.
 *
 * Fork: the child has none of the workers, so a pthread_atfork child handler
 * forgets them (and re-initialises the locks another thread may have held at
 * the fork); the child's first parallel call starts a new pool.
 *
 * Exit: nothing joins the workers.  They are detached and block (or spin
 * briefly) in pthread calls, so exit() and interpreter shutdown end them
 * with the process and never wait on them.  CPython never unloads an
 * extension module; a host that dlclose()d this code while its workers
 * exist would leave them parked in it (dlclose itself does not wait).
 *
 * The pool is the one piece of process-wide state in the kernels.  The
 * atomics are GCC/Clang builtins, as pthreads already rule out MSVC. */
#define _POSIX_C_SOURCE 200809L /* pthread_sigmask, sched_yield under -std=c99 */
#include "parallel.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#define FSM_MAX_THREADS 256
/* How long a waiting thread spins before it blocks: about as long as waking
 * a blocked thread takes (20-35 us on this 2-vCPU Zen 3 VM), so a wait costs
 * at most about twice what the best choice made knowing the future would.
 * The spin yields the CPU rather than pausing: on a loaded machine the
 * thread it waits for may need this very core. */
#define FSM_SPIN_NS 20000

/* One call: fn over [0, ntasks) in nranges contiguous ranges, on up to
 * nthreads threads. */
typedef struct {
    fsm_range_fn fn;
    void *ctx;
    ptrdiff_t ntasks, nranges, nthreads;
} fsm_job;

static inline void fsm_run_range(const fsm_job *job, ptrdiff_t r)
{
    job->fn(job->ctx, job->ntasks * r / job->nranges, job->ntasks * (r + 1) / job->nranges);
}

/* Where one thread blocks until a word reaches a value another thread sets. */
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int asleep; /* under mutex */
} fsm_sleeper;

static int fsm_sleeper_init(fsm_sleeper *s)
{
    s->asleep = 0;
    if (pthread_mutex_init(&s->mutex, NULL) != 0)
        return 0;
    if (pthread_cond_init(&s->cond, NULL) != 0) {
        pthread_mutex_destroy(&s->mutex);
        return 0;
    }
    return 1;
}

static long long fsm_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Whether (*word == value) == equal. */
static int fsm_word_is(const unsigned *word, unsigned value, int equal)
{
    return (__atomic_load_n(word, __ATOMIC_ACQUIRE) == value) == equal;
}

/* Whether fsm_word_is(word, value, equal) within FSM_SPIN_NS of spinning. */
static int fsm_spin_until(const unsigned *word, unsigned value, int equal)
{
    if (fsm_word_is(word, value, equal))
        return 1;
    const long long start = fsm_now_ns();
    do {
        if (fsm_now_ns() - start > FSM_SPIN_NS)
            return 0;
        sched_yield();
    } while (!fsm_word_is(word, value, equal));
    return 1;
}

/* Returns *word once fsm_word_is(word, value, equal): spins briefly, then
 * sleeps on s. */
static unsigned fsm_wait_until(const unsigned *word, unsigned value, int equal, fsm_sleeper *s)
{
    if (!fsm_spin_until(word, value, equal)) {
        pthread_mutex_lock(&s->mutex);
        s->asleep = 1;
        while (!fsm_word_is(word, value, equal))
            pthread_cond_wait(&s->cond, &s->mutex);
        s->asleep = 0;
        pthread_mutex_unlock(&s->mutex);
    }
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/* Called after changing the word s's thread waits on.  The waiter re-checks
 * the word under the mutex after setting asleep, so taking the mutex here,
 * after the change, cannot miss it. */
static void fsm_wake(fsm_sleeper *s)
{
    pthread_mutex_lock(&s->mutex);
    if (s->asleep)
        pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mutex);
}

typedef struct {
    fsm_sleeper sleeper;
    unsigned posted; /* calls posted to this worker so far */
} fsm_worker;

/* The claim word: the call's number, its number of ranges and the next
 * range not yet claimed, so that one compare-and-swap claims a range of
 * the current call only. */
#define FSM_CLAIM_BITS 12 /* ranges: at most FSM_MAX_THREADS * FSM_RANGES_PER_THREAD */
#define FSM_CLAIM_MASK ((1ull << FSM_CLAIM_BITS) - 1)

static struct {
    pthread_mutex_t owner;  /* held by the call that uses the pool */
    fsm_sleeper done;       /* the owner waits here for unfinished == 0 */
    unsigned unfinished;    /* ranges of the call not yet run to the end */
    unsigned long long claim; /* call << 2*BITS | nranges << BITS | next range */
    fsm_job job;            /* the call, set before its claim word */
    ptrdiff_t nworkers;     /* workers[1..nworkers] are running */
    int fork_handler;       /* 1 once the atfork handler is in, -1 if it failed */
    fsm_worker workers[FSM_MAX_THREADS]; /* [0] unused: range 0 is the caller's */
} fsm_pool = {.owner = PTHREAD_MUTEX_INITIALIZER,
              .done = {.mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER}};

/* Claims a range of the current call, or returns -1 if none is left. */
static ptrdiff_t fsm_claim(void)
{
    unsigned long long w = __atomic_load_n(&fsm_pool.claim, __ATOMIC_ACQUIRE);
    while ((w & FSM_CLAIM_MASK) < ((w >> FSM_CLAIM_BITS) & FSM_CLAIM_MASK))
        if (__atomic_compare_exchange_n(&fsm_pool.claim, &w, w + 1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return (ptrdiff_t)(w & FSM_CLAIM_MASK);
    return -1;
}

/* Runs ranges of the current call until none is left to claim.  The job
 * is read only after a claim: the owner does not post another call before
 * every claimed range is finished. */
static void fsm_take_ranges(void)
{
    for (ptrdiff_t r; (r = fsm_claim()) >= 0;) {
        fsm_run_range(&fsm_pool.job, r);
        if (__atomic_sub_fetch(&fsm_pool.unfinished, 1, __ATOMIC_ACQ_REL) == 0)
            fsm_wake(&fsm_pool.done);
    }
}

/* In a forked child: the workers did not survive, and a lock may have been
 * copied held by a thread that no longer exists. */
static void fsm_pool_forget(void)
{
    pthread_mutex_init(&fsm_pool.owner, NULL);
    fsm_sleeper_init(&fsm_pool.done);
    fsm_pool.nworkers = 0;
}

/* Starts a thread with an explicit stack size (the kernels keep scratch
 * slabs on the stack, and some C libraries give threads only 128 KiB) and
 * all signals blocked, so that signals go to the application's threads. */
static int fsm_start_thread(pthread_t *tid, int detached, void *(*body)(void *), void *arg)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return 0;
    int ok = pthread_attr_setstacksize(&attr, (size_t)1 << 20) == 0
             && pthread_attr_setdetachstate(&attr, detached ? PTHREAD_CREATE_DETACHED
                                                            : PTHREAD_CREATE_JOINABLE) == 0;
    sigset_t all, old;
    sigfillset(&all);
    ok = ok && pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    if (ok) {
        ok = pthread_create(tid, &attr, body, arg) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return ok;
}

static void *fsm_worker_main(void *arg)
{
    fsm_worker *w = arg;
    for (unsigned seen = 0;;) {
        seen = fsm_wait_until(&w->posted, seen, 0, &w->sleeper);
        fsm_take_ranges();
    }
    return NULL;
}

/* Starts workers until there are `want` (or one fails to start); returns
 * how many of them the call can use.  Called by the owner. */
static ptrdiff_t fsm_pool_grow(ptrdiff_t want)
{
    while (fsm_pool.nworkers < want) {
        fsm_worker *w = &fsm_pool.workers[fsm_pool.nworkers + 1];
        if (!fsm_sleeper_init(&w->sleeper))
            break;
        w->posted = 0;
        pthread_t tid;
        if (!fsm_start_thread(&tid, 1, fsm_worker_main, w)) {
            pthread_mutex_destroy(&w->sleeper.mutex);
            pthread_cond_destroy(&w->sleeper.cond);
            break;
        }
        fsm_pool.nworkers++;
    }
    return fsm_pool.nworkers < want ? fsm_pool.nworkers : want;
}

/* Runs the job on the pool; returns 0, having run nothing, if another call
 * owns it (or fork safety could not be set up). */
static int fsm_pool_run(const fsm_job *job)
{
    if (pthread_mutex_trylock(&fsm_pool.owner) != 0)
        return 0;
    if (fsm_pool.fork_handler == 0)
        fsm_pool.fork_handler = pthread_atfork(NULL, NULL, fsm_pool_forget) == 0 ? 1 : -1;
    if (fsm_pool.fork_handler < 0) {
        pthread_mutex_unlock(&fsm_pool.owner);
        return 0;
    }
    ptrdiff_t helpers = fsm_pool_grow(job->nthreads - 1);
    fsm_pool.job = *job;
    __atomic_store_n(&fsm_pool.unfinished, (unsigned)job->nranges, __ATOMIC_RELAXED);
    const unsigned long long call =
        (__atomic_load_n(&fsm_pool.claim, __ATOMIC_RELAXED) >> 2 * FSM_CLAIM_BITS) + 1;
    __atomic_store_n(&fsm_pool.claim, call << 2 * FSM_CLAIM_BITS
                     | (unsigned long long)job->nranges << FSM_CLAIM_BITS | 1, __ATOMIC_RELEASE);
    for (ptrdiff_t k = 1; k <= helpers; k++) {
        fsm_worker *w = &fsm_pool.workers[k];
        __atomic_store_n(&w->posted, w->posted + 1, __ATOMIC_RELEASE);
        fsm_wake(&w->sleeper);
    }
    fsm_run_range(job, 0);
    __atomic_sub_fetch(&fsm_pool.unfinished, 1, __ATOMIC_ACQ_REL);
    fsm_take_ranges(); /* those no worker has started, or could start for */
    fsm_wait_until(&fsm_pool.unfinished, 0, 1, &fsm_pool.done);
    pthread_mutex_unlock(&fsm_pool.owner);
    return 1;
}

/* A call on threads of its own: ranges are claimed from `next`. */
typedef struct {
    const fsm_job *job;
    ptrdiff_t next;
} fsm_own_claims;

static void *fsm_claim_own_ranges(void *arg)
{
    fsm_own_claims *c = arg;
    for (ptrdiff_t r; (r = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED)) < c->job->nranges;)
        fsm_run_range(c->job, r);
    return NULL;
}

/* The job on threads started for it and joined before returning; ranges
 * that no thread could start for run on the caller. */
static void fsm_run_on_new_threads(const fsm_job *job)
{
    fsm_own_claims claims = {job, 1};
    pthread_t tids[FSM_MAX_THREADS];
    int started[FSM_MAX_THREADS];
    for (ptrdiff_t t = 1; t < job->nthreads; t++)
        started[t] = fsm_start_thread(&tids[t], 0, fsm_claim_own_ranges, &claims);
    fsm_run_range(job, 0);
    fsm_claim_own_ranges(&claims);
    for (ptrdiff_t t = 1; t < job->nthreads; t++)
        if (started[t])
            pthread_join(tids[t], NULL);
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
    ptrdiff_t nranges = nthreads * FSM_RANGES_PER_THREAD;
    if (nranges > by_work) nranges = by_work;
    if (nranges > ntasks) nranges = ntasks;
    const fsm_job job = {fn, ctx, ntasks, nranges, nthreads};
    if (!fsm_pool_run(&job))
        fsm_run_on_new_threads(&job);
}
