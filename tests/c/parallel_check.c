/* fsm_parallel_for's contract: [0, ntasks) split into the documented ranges,
 * range 0 on the calling thread, the others on whichever thread claims them
 * (workers do, while the caller is busy; the caller does, while a worker is
 * slow), every task run once, whatever sequence of thread counts the pool has seen; calls from
 * several threads at once and from inside a range; calls in a forked child,
 * also one forked while another thread is inside a call; idle workers that
 * use no CPU.  Built with AddressSanitizer and UndefinedBehaviorSanitizer by
 * `make check`, and with ThreadSanitizer by `make tsan` (worth a run after a
 * change to parallel.c). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "parallel.h"

enum { MAX_RANGES = 2048, MAX_TASKS = 2000 };

typedef struct {
    ptrdiff_t begin, end;
    int on_caller;
} seen_range;

/* What one call did, recorded by the ranges themselves. */
typedef struct {
    pthread_t caller;
    long dwell_ns; /* each range sleeps this long (to keep a call in flight) */
    unsigned nranges;
    seen_range ranges[MAX_RANGES];
    unsigned char visits[MAX_TASKS];
} record;

static void sleep_ns(long ns)
{
    const struct timespec t = {ns / 1000000000, ns % 1000000000};
    nanosleep(&t, NULL);
}

static void record_range(void *ctx, ptrdiff_t begin, ptrdiff_t end)
{
    record *r = ctx;
    unsigned i = __atomic_fetch_add(&r->nranges, 1, __ATOMIC_RELAXED);
    if (i < MAX_RANGES)
        r->ranges[i] = (seen_range){begin, end, pthread_equal(pthread_self(), r->caller)};
    for (ptrdiff_t j = begin; j < end; j++)
        __atomic_fetch_add(&r->visits[j], 1, __ATOMIC_RELAXED);
    if (r->dwell_ns)
        sleep_ns(r->dwell_ns);
}

/* The number of ranges parallel.h promises: FSM_RANGES_PER_THREAD per
 * thread (threads: at most max_threads and 256), at most one per task and
 * one per grain of work; one when the call stays on one thread. */
static ptrdiff_t expected_ranges(ptrdiff_t ntasks, ptrdiff_t work, int max_threads)
{
    const ptrdiff_t grains = ntasks * work / FSM_PARALLEL_GRAIN;
    ptrdiff_t t = max_threads < 256 ? max_threads : 256;
    if (t > grains) t = grains;
    if (t > ntasks) t = ntasks;
    if (t <= 1)
        return 1;
    ptrdiff_t r = FSM_RANGES_PER_THREAD * t;
    if (r > grains) r = grains;
    return r < ntasks ? r : ntasks;
}

static int by_begin(const void *a, const void *b)
{
    ptrdiff_t x = ((const seen_range *)a)->begin, y = ((const seen_range *)b)->begin;
    return (x > y) - (x < y);
}

/* One call, checked; returns the number of failures (and says which). */
static long check_call(ptrdiff_t ntasks, ptrdiff_t work, int max_threads, long dwell_ns)
{
    record *r = calloc(1, sizeof *r);
    r->caller = pthread_self();
    r->dwell_ns = dwell_ns;
    fsm_parallel_for(ntasks, work, max_threads, record_range, r);
    const ptrdiff_t t = expected_ranges(ntasks, work, max_threads);
    long failures = r->nranges != (unsigned)t;
    if (!failures) {
        qsort(r->ranges, (size_t)t, sizeof *r->ranges, by_begin);
        for (ptrdiff_t i = 0; i < t; i++)
            failures += r->ranges[i].begin != ntasks * i / t
                        || r->ranges[i].end != ntasks * (i + 1) / t
                        || (i == 0 && !r->ranges[i].on_caller);
    }
    for (ptrdiff_t j = 0; j < ntasks; j++)
        failures += r->visits[j] != 1;
    if (failures)
        fprintf(stderr, "ntasks %td, work %td, max_threads %d: %u ranges, %ld failures\n",
                ntasks, work, max_threads, r->nranges, failures);
    free(r);
    return failures;
}

/* Every split, with thread counts that grow and shrink the pool. */
static long check_splits(void)
{
    static const int threads[] = {1, 2, 3, 4, 8, 5, 2, 300, 1, 3};
    static const ptrdiff_t tasks[] = {1, 2, 3, 7, 64, 1001, MAX_TASKS};
    static const ptrdiff_t works[] = {1, FSM_PARALLEL_GRAIN / 2, FSM_PARALLEL_GRAIN,
                                      3 * FSM_PARALLEL_GRAIN};
    long failures = 0;
    for (size_t i = 0; i < sizeof threads / sizeof *threads; i++)
        for (size_t j = 0; j < sizeof tasks / sizeof *tasks; j++)
            for (size_t k = 0; k < sizeof works / sizeof *works; k++)
                failures += check_call(tasks[j], works[k], threads[i], 0);
    return failures;
}

/* Ranges the caller is slow to reach run on workers: with each range taking
 * 50 ms, a call of 4 ranges runs some of them off the calling thread. */
static long check_workers_take_ranges(void)
{
    record *r = calloc(1, sizeof *r);
    r->caller = pthread_self();
    r->dwell_ns = 50000000;
    fsm_parallel_for(4, FSM_PARALLEL_GRAIN, 4, record_range, r);
    long off_caller = 0;
    for (unsigned i = 0; i < r->nranges; i++) off_caller += !r->ranges[i].on_caller;
    free(r);
    return off_caller == 0;
}

/* When one thread runs slow, the others take over its share: with ranges
 * that take 20 ms off the calling thread and no time on it, the caller runs
 * most of the 16 ranges of a two-thread call rather than half of them. */
static void slow_off_caller(void *ctx, ptrdiff_t begin, ptrdiff_t end)
{
    record *r = ctx;
    const int on_caller = pthread_equal(pthread_self(), r->caller);
    unsigned i = __atomic_fetch_add(&r->nranges, 1, __ATOMIC_RELAXED);
    if (i < MAX_RANGES)
        r->ranges[i] = (seen_range){begin, end, on_caller};
    if (!on_caller)
        sleep_ns(20000000);
}

static long check_free_threads_take_a_slow_threads_share(void)
{
    record *r = calloc(1, sizeof *r);
    r->caller = pthread_self();
    fsm_parallel_for(16, FSM_PARALLEL_GRAIN, 2, slow_off_caller, r);
    long on_caller = 0;
    for (unsigned i = 0; i < r->nranges; i++) on_caller += r->ranges[i].on_caller;
    const long failed = r->nranges != 16 || on_caller < 12;
    if (failed)
        fprintf(stderr, "%u ranges, %ld of them on the caller\n", r->nranges, on_caller);
    free(r);
    return failed;
}

/* Several threads calling at once: each call gets its own ranges, all of them. */
enum { CALLERS = 4, CALLS_EACH = 200 };

typedef struct {
    int id;
    long failures;
} caller;

static void *concurrent_caller(void *arg)
{
    caller *c = arg;
    for (int k = 0; k < CALLS_EACH; k++)
        c->failures += check_call(16 + (c->id + k) % 50, FSM_PARALLEL_GRAIN, 1 + (c->id + k) % 4,
                                  k % 10 == 0 ? 20000 : 0);
    return NULL;
}

static long check_concurrent_callers(void)
{
    pthread_t tids[CALLERS];
    caller callers[CALLERS];
    long failures = 0;
    for (int i = 0; i < CALLERS; i++) {
        callers[i] = (caller){i, 0};
        if (pthread_create(&tids[i], NULL, concurrent_caller, &callers[i]) != 0)
            return 1;
    }
    for (int i = 0; i < CALLERS; i++) {
        pthread_join(tids[i], NULL);
        failures += callers[i].failures;
    }
    return failures;
}

/* A call made from inside a range finds the pool in use and must not wait for it. */
static long nested_failures;

static void nested_range(void *ctx, ptrdiff_t begin, ptrdiff_t end)
{
    (void)ctx;
    long failures = 0;
    for (ptrdiff_t i = begin; i < end; i++)
        failures += check_call(8, FSM_PARALLEL_GRAIN, 3, 0);
    __atomic_fetch_add(&nested_failures, failures, __ATOMIC_RELAXED);
}

static long check_nested_calls(void)
{
    fsm_parallel_for(2, FSM_PARALLEL_GRAIN, 2, nested_range, NULL);
    return nested_failures;
}

/* Runs check in a forked child (killed if it hangs); 1 if the child failed.
 * It forks once the workers the last calls started have had time to finish
 * starting: AddressSanitizer's runtime can hang a child forked while a thread
 * starts (see FORK_WHILE_BUSY_DEADLOCKS_SANITIZER below). */
static long in_child(long (*check)(void))
{
    sleep_ns(100000000);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        alarm(60);
        _exit(check() != 0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 1;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static long splits_here_and_in_a_child(void)
{
    return check_splits() + in_child(check_splits);
}

static long check_forked_child(void)
{
    return in_child(splits_here_and_in_a_child);
}

/* AddressSanitizer's runtime can hang a child forked while another thread is
 * starting or ending a thread (its thread registry stays locked in the
 * child), whatever the pool does: under it this check is left out.  The
 * plain build runs it (make plain), and tests/test_parallel_pool.py forks
 * while a call runs in an unsanitised process. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_WHILE_BUSY_DEADLOCKS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_WHILE_BUSY_DEADLOCKS_SANITIZER 1
#endif
#endif
#ifndef FORK_WHILE_BUSY_DEADLOCKS_SANITIZER
#define FORK_WHILE_BUSY_DEADLOCKS_SANITIZER 0
#endif

#if !FORK_WHILE_BUSY_DEADLOCKS_SANITIZER
/* A thread that keeps the pool busy with slow calls until told to stop. */
static int stop_busy;

static void *busy_caller(void *arg)
{
    long *failures = arg;
    while (!__atomic_load_n(&stop_busy, __ATOMIC_ACQUIRE))
        *failures += check_call(4, FSM_PARALLEL_GRAIN, 4, 200000);
    return NULL;
}

static long check_fork_while_busy(void)
{
    long failures = 0, busy_failures = 0;
    pthread_t busy;
    if (pthread_create(&busy, NULL, busy_caller, &busy_failures) != 0)
        return 1;
    for (int i = 0; i < 5; i++) {
        sleep_ns(50000 + 70000 * i); /* fork at different points of a call */
        failures += in_child(check_splits);
    }
    __atomic_store_n(&stop_busy, 1, __ATOMIC_RELEASE);
    pthread_join(busy, NULL);
    return failures + busy_failures;
}

#endif

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* After a call on 8 threads, the process idles at (almost) no CPU. */
static long check_idle_workers_sleep(void)
{
    check_call(64, FSM_PARALLEL_GRAIN, 8, 0);
    const double before = cpu_seconds();
    sleep_ns(300000000);
    const double used = cpu_seconds() - before;
    if (used > 0.05)
        fprintf(stderr, "idle workers used %.3f s of CPU in 0.3 s\n", used);
    return used > 0.05;
}

int main(void)
{
    static const struct {
        const char *name;
        long (*check)(void);
    } checks[] = {
        {"splits", check_splits}, /* first: the pool exists before the forks */
        {"workers take ranges", check_workers_take_ranges},
        {"free threads take a slow thread's share", check_free_threads_take_a_slow_threads_share},
        {"concurrent callers", check_concurrent_callers},
        {"nested calls", check_nested_calls},
        {"splits in a forked child and grandchild", check_forked_child},
#if !FORK_WHILE_BUSY_DEADLOCKS_SANITIZER
        {"fork while another thread is in a call", check_fork_while_busy},
#endif
        {"idle workers sleep", check_idle_workers_sleep},
    };
    long failures = 0;
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        const long f = checks[i].check();
        if (f)
            fprintf(stderr, "%s: %ld failures\n", checks[i].name, f);
        failures += f;
    }
    printf("parallel_check: %ld failures\n", failures);
    return failures != 0;
}
