/* log(s) for double s >= 1 (a sum of exps after max-subtraction lies in
 * [1, n]), written so that loops over many samples vectorise: libm's log is
 * a call per sample, which dominates short rows.  s = 2^k * m with m in
 * [sqrt(1/2), sqrt(2)), log m = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172,
 * by its series to z^21 (truncation below 1e-17).  Within 2 ulp of libm on
 * [1, 2^1023]; NaN and +inf pass through. */
#ifndef FASTSM_LOG_GE1_H
#define FASTSM_LOG_GE1_H

#include <math.h>

#include "vexp.h"

FSM_ALWAYS_INLINE double fsm_log_ge1(double s)
{
    const uint64_t sqrt_half = 0x3fe6a09e667f3bcdULL; /* bits of sqrt(1/2) */
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const uint64_t shifted = fsm_bits_f64(s) - sqrt_half;
    /* k = shifted >> 52 lies in [0, 4096) (s >= 1, or NaN/inf, whose result is
     * replaced below): converted through the bits of 2^52 + k, which
     * vectorises where int64-to-double conversion has no instruction (AVX2). */
    const double k = fsm_from_bits_f64(0x4330000000000000ULL | (shifted >> 52)) - 4503599627370496.0;
    const double m = fsm_from_bits_f64((shifted & 0x000fffffffffffffULL) + sqrt_half);
    const double z = (m - 1) / (m + 1), z2 = z * z;
    /* the series' 2/3 + 2/5 z2 + ... + 2/21 z2^9 by Estrin's scheme: a
     * chain of 5 multiplies where Horner's has 9 */
    const double z4 = z2 * z2, z8 = z4 * z4;
    const double p01 = 2.0 / 3 + 2.0 / 5 * z2, p23 = 2.0 / 7 + 2.0 / 9 * z2;
    const double p45 = 2.0 / 11 + 2.0 / 13 * z2, p67 = 2.0 / 15 + 2.0 / 17 * z2;
    const double p89 = 2.0 / 19 + 2.0 / 21 * z2;
    const double p = (p01 + z4 * p23) + z8 * ((p45 + z4 * p67) + z8 * p89);
    const double log_m = z * 2 + z * z2 * p;
    const double result = k * ln2_hi + (log_m + k * ln2_lo);
    return s == s && s < (double)INFINITY ? result : s;
}

#endif
