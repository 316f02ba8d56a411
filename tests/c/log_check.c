/* fsm_log_ge1 (log_ge1.h) against libm's log: within 2 ulp on [1, 2^1023]
 * (near 1, where the result is small; on sums of exps up to 1e6; on every
 * binade), exact at 1 and at powers of two, NaN and +inf passed through.
 * Built with AddressSanitizer and UndefinedBehaviorSanitizer by the Makefile. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "log_ge1.h"

static int failures;

static int64_t ulps_apart(double a, double b)
{
    int64_t x, y;
    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    return x > y ? x - y : y - x;
}

static void check(double s, int64_t tolerance)
{
    const double got = fsm_log_ge1(s), want = log(s);
    if (ulps_apart(got, want) > tolerance && failures++ < 10)
        fprintf(stderr, "log(%.17g): %.17g, libm %.17g\n", s, got, want);
}

/* xorshift64: the same values on every run */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(void)
{
    uint64_t state = 88172645463325252ULL;
    const double unit = 1.0 / 9007199254740992.0; /* 2^-53 */
    for (long i = 0; i < 3000000; i++) {
        const double u = (double)(next_random(&state) >> 11) * unit; /* [0, 1) */
        check(1 + u * 0.01, 2);
        check(1 + u * 1e6, 2);
        const uint64_t one = 0x3ff0000000000000ULL, top = 0x7fe0000000000000ULL;
        const uint64_t bits = one + next_random(&state) % (top - one);
        double s;
        memcpy(&s, &bits, sizeof s);
        check(s, 2);
    }
    for (int k = 0; k < 1023; k++) check(ldexp(1, k), 0);
    if (!isnan(fsm_log_ge1(NAN)) || fsm_log_ge1(INFINITY) != INFINITY) {
        fprintf(stderr, "log of NaN or +inf not passed through\n");
        failures++;
    }
    printf("log_check: %d failures\n", failures);
    return failures != 0;
}
