/* The cost of an empty fsm_parallel_for call on 2 threads: the median over
 * many calls, made back to back or after the caller has been busy for a
 * while (long enough, and a pooled worker has gone to sleep).  A timing tool, not a
 * test: `make -C tests/c bench` builds it with optimisation and no sanitizer. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "parallel.h"

enum { CALLS = 20001 };

static void empty(void *ctx, ptrdiff_t begin, ptrdiff_t end)
{
    (void)ctx, (void)begin, (void)end;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e9 * (double)t.tv_sec + (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median ns of `calls` calls, each after `gap_us` of busy work by the
 * caller (as the interpreter does between kernel calls). */
static double median_call_ns(int calls, double gap_us)
{
    static double ns[CALLS];
    for (int i = 0; i < calls; i++) {
        double t0 = now_ns();
        while (now_ns() - t0 < 1000 * gap_us)
            continue;
        t0 = now_ns();
        /* Two tasks of a grain each: exactly two threads. */
        fsm_parallel_for(2, FSM_PARALLEL_GRAIN, 2, empty, NULL);
        ns[i] = now_ns() - t0;
    }
    qsort(ns, (size_t)calls, sizeof *ns, by_value);
    return ns[calls / 2];
}

int main(void)
{
    static const double gaps_us[] = {0, 2, 5, 10, 15, 25, 50, 1000};
    median_call_ns(CALLS, 0); /* warm up: the pool, if any, starts here */
    printf("empty 2-thread call, median ns, after a gap of busy work by the caller\n");
    for (size_t g = 0; g < sizeof gaps_us / sizeof *gaps_us; g++) {
        const int calls = gaps_us[g] >= 100 ? CALLS / 20 : CALLS / 4;
        printf("  gap %6.0f us: %8.0f ns (%d calls)\n", gaps_us[g],
               median_call_ns(calls, gaps_us[g]), calls);
    }
    return 0;
}
