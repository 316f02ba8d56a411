/* Branch-free exp for float and double, written so that the compiler
 * vectorises the loops that call it.  Range reduction x = k*ln2 + r with
 * |r| <= ln2/2, a polynomial for exp(r), then a scale by 2^k built from
 * exponent bits.  The scale is applied as two factors 2^(k/2) * 2^(k - k/2),
 * so results near overflow and in the subnormal range come out right.
 * Special values: exp(-inf) = 0, exp(+inf) = +inf, exp(NaN) = NaN.
 * Accuracy: within 2 ulp over the whole range (checked in the tests). */
#ifndef FASTSM_VEXP_H
#define FASTSM_VEXP_H

#include <stdint.h>
#include <string.h>

#include "vec.h"

FSM_ALWAYS_INLINE uint32_t fsm_bits_f32(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
FSM_ALWAYS_INLINE float fsm_from_bits_f32(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }
FSM_ALWAYS_INLINE uint64_t fsm_bits_f64(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return u; }
FSM_ALWAYS_INLINE double fsm_from_bits_f64(uint64_t u) { double x; memcpy(&x, &u, sizeof x); return x; }

#define FSM_ROUND_MAGIC_F32 12582912.0f          /* 1.5 * 2^23: adding it rounds to an integer */
#define FSM_ROUND_MAGIC_F64 6755399441055744.0   /* 1.5 * 2^52 */

/* The range reduction and polynomial of exp as expressions, shared by the
 * scalar functions and the vector ones below (GCC vector extensions take the
 * same operators, with scalars broadcast).  x is clamped or NaN; t receives
 * x*log2(e) + the rounding constant, whose low mantissa bits hold k. */
#define FSM_EXPF_REDUCED(x, t, k, r, p)                                                  \
    do {                                                                                \
        (t) = (x) * 1.44269504088896341f + FSM_ROUND_MAGIC_F32;                          \
        (k) = (t) - FSM_ROUND_MAGIC_F32;                                                 \
        (r) = ((x) - (k) * 0.693359375f) - (k) * -2.12194440e-4f; /* ln2 in two parts */ \
        /* Near-minimax degree-6 polynomial for exp on [-ln2/2, ln2/2]. */              \
        (p) = 1.383684459142387e-3f * (r) + 8.374815806746483e-3f;                       \
        (p) = (p) * (r) + 4.166822507977486e-2f;                                         \
        (p) = (p) * (r) + 1.666641980409622e-1f;                                         \
        (p) = (p) * (r) + 4.999999105930328e-1f;                                         \
        (p) = (p) * (r) + 1.0f;                                                          \
        (p) = (p) * (r) + 1.0f;                                                          \
    } while (0)

#define FSM_EXP_REDUCED(x, t, k, r, p)                                                   \
    do {                                                                                \
        (t) = (x) * 1.4426950408889634 + FSM_ROUND_MAGIC_F64;                            \
        (k) = (t) - FSM_ROUND_MAGIC_F64;                                                 \
        (r) = ((x) - (k) * 6.93147180369123816490e-01) - (k) * 1.90821492927058770002e-10; \
        /* Taylor series to r^13: truncation below 1e-17 for |r| <= ln2/2. */           \
        (p) = 1.0 / 6227020800.0 * (r) + 1.0 / 479001600.0;                              \
        (p) = (p) * (r) + 1.0 / 39916800.0;                                              \
        (p) = (p) * (r) + 1.0 / 3628800.0;                                               \
        (p) = (p) * (r) + 1.0 / 362880.0;                                                \
        (p) = (p) * (r) + 1.0 / 40320.0;                                                 \
        (p) = (p) * (r) + 1.0 / 5040.0;                                                  \
        (p) = (p) * (r) + 1.0 / 720.0;                                                   \
        (p) = (p) * (r) + 1.0 / 120.0;                                                   \
        (p) = (p) * (r) + 1.0 / 24.0;                                                    \
        (p) = (p) * (r) + 1.0 / 6.0;                                                     \
        (p) = (p) * (r) + 0.5;                                                           \
        (p) = (p) * (r) + 1.0;                                                           \
        (p) = (p) * (r) + 1.0;                                                           \
    } while (0)

/* exp(x) = 2^k * p for a clamped x (or NaN): returns p = exp(r) with
 * x = k*ln2 + r, |r| <= ln2/2, and sets *t to x*log2(e) + the rounding
 * constant, whose low mantissa bits hold k. */
FSM_ALWAYS_INLINE float fsm_expf_reduced(float x, float *t)
{
    float k, r, p;
    FSM_EXPF_REDUCED(x, *t, k, r, p);
    return p;
}

FSM_ALWAYS_INLINE double fsm_exp_reduced(double x, double *t)
{
    double k, r, p;
    FSM_EXP_REDUCED(x, *t, k, r, p);
    return p;
}

FSM_ALWAYS_INLINE float fsm_expf(float x)
{
    /* Beyond these exp overflows to inf or underflows to 0; clamping keeps k
     * small enough for the two-factor scale.  Comparisons are false for NaN,
     * so a NaN passes through the clamp and through the arithmetic. */
    const float hi = 89.0f, lo = -104.0f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float t;
    const float p = fsm_expf_reduced(xc, &t);
    /* Split k as k1 + k2 and shift each, plus the exponent bias, into an
     * exponent field (|k| <= 151).  Unsigned arithmetic: a NaN's garbage bits
     * must not overflow a signed int. */
    int32_t ki = (int32_t)(fsm_bits_f32(t) - fsm_bits_f32(FSM_ROUND_MAGIC_F32));
    int32_t k1 = ki / 2, k2 = ki - k1;
    float scale1 = fsm_from_bits_f32(((uint32_t)k1 + 127u) << 23);
    float scale2 = fsm_from_bits_f32(((uint32_t)k2 + 127u) << 23);
    return p * scale1 * scale2;
}

FSM_ALWAYS_INLINE double fsm_exp(double x)
{
    const double hi = 710.0, lo = -746.0;
    double xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    double t;
    const double p = fsm_exp_reduced(xc, &t);
    int64_t ki = (int64_t)(fsm_bits_f64(t) - fsm_bits_f64(FSM_ROUND_MAGIC_F64));
    int64_t k1 = ki / 2, k2 = ki - k1;
    double scale1 = fsm_from_bits_f64(((uint64_t)k1 + 1023u) << 52);
    double scale2 = fsm_from_bits_f64(((uint64_t)k2 + 1023u) << 52);
    return p * scale1 * scale2;
}

/* ---- exp for the arguments of softmax, x - max(x) <= 0 (or NaN) ----------
 * No overflow handling, and results below the smallest normal number
 * (x < -87.3 in float, -708.4 in double) are flushed to 0 instead of being
 * rounded to a subnormal: an absolute error below 1.2e-38 (2.3e-308).
 * The float one reduces by ln2/16 and looks up 2^(j/16) in a table of 16
 * (one register permute in vector code), which leaves a cubic for exp(r) - 1
 * where fsm_expf needs degree 6: three fewer multiply-adds, about a sixth
 * faster; within 1.06 ulp (1.27 without FMA), checked over every float. */

/* 2^(j/16) rounded to float, j = 0..15, as bits less j << 19: k = 16q + j
 * shifted left by 19 puts q in the exponent field and j just below it,
 * which the entry takes back out (see FSM_EXPF16_SCALE). */
static const uint32_t fsm_exp2_sixteenths[16] = {
    0x3f800000u, 0x3f7daac3u, 0x3f7b95c2u, 0x3f79c3d3u, 0x3f7837f0u, 0x3f76f532u,
    0x3f75fed7u, 0x3f75583fu, 0x3f7504f3u, 0x3f7508a4u, 0x3f75672au, 0x3f76248cu,
    0x3f7744fdu, 0x3f78ccdfu, 0x3f7ac0c7u, 0x3f7d257du};

/* x = k*ln2/16 + r, |r| <= ln2/32 (ln2/16 in two parts, the first exact
 * times any k in range): t receives x*16/ln2 + the rounding constant, whose
 * low bits hold k; p = exp(r) - 1, its truncation below 1e-8. */
#define FSM_EXPF16_REDUCED(x, t, k, r, p)                                                \
    do {                                                                                \
        (t) = (x) * 23.0831203f + FSM_ROUND_MAGIC_F32;                                   \
        (k) = (t) - FSM_ROUND_MAGIC_F32;                                                 \
        (r) = ((x) - (k) * 0.0433349609375f) - (k) * -1.32621525e-5f;                    \
        (p) = (0.166666672f * (r) + 0.5f) * (r);                                         \
        (p) = (p) * (r) + (r);                                                           \
    } while (0)

/* The bits of 2^(k/16) from t's bits ti and the table entry tj for j = k
 * mod 16 (the rounding constant's bits vanish when shifted by 19).  Two
 * vector operations where shifting q = k >> 4 into place took three.
 * Unsigned arithmetic: for a NaN or a flushed argument the bits are
 * garbage, never undefined. */
#define FSM_EXPF16_SCALE(ti, tj) ((tj) + ((ti) << 19))

/* Below these (log of the smallest normal float, double) the exps for
 * arguments <= 0 return 0. */
#define FSM_EXPF_NONPOS_MIN -87.3365402f
#define FSM_EXP_NONPOS_MIN -708.3964185322641

FSM_ALWAYS_INLINE float fsm_expf_nonpos(float x)
{
    float t, k, r, p;
    FSM_EXPF16_REDUCED(x, t, k, r, p);
    const uint32_t ti = fsm_bits_f32(t);
    const float s = fsm_from_bits_f32(FSM_EXPF16_SCALE(ti, fsm_exp2_sixteenths[ti & 15]));
    return x < FSM_EXPF_NONPOS_MIN ? 0.0f : s * p + s;
}

FSM_ALWAYS_INLINE double fsm_exp_nonpos(double x)
{
    const double lo = FSM_EXP_NONPOS_MIN;
    double t;
    const double p = fsm_exp_reduced(x < lo ? lo : x, &t);
    uint64_t scale = (fsm_bits_f64(t) << 52)
                     + (((uint64_t)1023 << 52) - (fsm_bits_f64(FSM_ROUND_MAGIC_F64) << 52));
    double result = p * fsm_from_bits_f64(scale);
    return x < lo ? 0.0 : result;
}

/* The table entries of the lanes' j, from two vectors of 8 or one of 16
 * (a shuffle takes its indices modulo the entries, as the permute
 * instructions do: j is the low four bits of ti). */
FSM_ALWAYS_INLINE fsm_v8u fsm_exp2_sixteenths_v8(const fsm_v8u *ti)
{
    fsm_v8u lo, hi;
    memcpy(&lo, fsm_exp2_sixteenths, sizeof lo);
    memcpy(&hi, fsm_exp2_sixteenths + 8, sizeof hi);
    return __builtin_shuffle(lo, hi, *ti);
}

FSM_ALWAYS_INLINE fsm_v16u fsm_exp2_sixteenths_v16(const fsm_v16u *ti)
{
    fsm_v16u all;
    memcpy(&all, fsm_exp2_sixteenths, sizeof all);
    return __builtin_shuffle(all, *ti);
}

/* fsm_expf_nonpos and fsm_exp_nonpos on the vector *xp, bit for bit.  Lanes
 * below the cut-off are not clamped first: whatever the arithmetic makes of
 * them, they are replaced by 0 at the end.  NaN lanes stay NaN.  Defined
 * for the 32-byte vectors and, with a _w suffix, the 64-byte ones. */
#define FSM_DEFINE_VEXPF_NONPOS(name, VF, VU, lookup)                                    \
    FSM_ALWAYS_INLINE VF name(const VF *xp)                                              \
    {                                                                                    \
        const VF x = *xp;                                                                \
        VF t, k, r, p;                                                                   \
        FSM_EXPF16_REDUCED(x, t, k, r, p);                                               \
        const VU ti = (VU)t;                                                             \
        const VF s = (VF)FSM_EXPF16_SCALE(ti, lookup(&ti));                              \
        return FSM_VSELECT(x < FSM_EXPF_NONPOS_MIN, (VF){0}, s * p + s);                 \
    }

#define FSM_DEFINE_VEXP_NONPOS(name, VD, VU)                                             \
    FSM_ALWAYS_INLINE VD name(const VD *xp)                                              \
    {                                                                                    \
        const VD x = *xp;                                                                \
        VD t, k, r, p;                                                                   \
        FSM_EXP_REDUCED(x, t, k, r, p);                                                  \
        const VU scale = ((VU)t << 52) + (((uint64_t)1023 << 52)                         \
                                          - (fsm_bits_f64(FSM_ROUND_MAGIC_F64) << 52));  \
        const VD result = p * (VD)scale;                                                 \
        return FSM_VSELECT(x < FSM_EXP_NONPOS_MIN, (VD){0}, result);                     \
    }

FSM_DEFINE_VEXPF_NONPOS(fsm_vexpf_nonpos, fsm_v8f, fsm_v8u, fsm_exp2_sixteenths_v8)
FSM_DEFINE_VEXP_NONPOS(fsm_vexp_nonpos, fsm_v4d, fsm_v4u)
FSM_DEFINE_VEXPF_NONPOS(fsm_vexpf_nonpos_w, fsm_v16f, fsm_v16u, fsm_exp2_sixteenths_v16)
FSM_DEFINE_VEXP_NONPOS(fsm_vexp_nonpos_w, fsm_v8d, fsm_v8lu)

#endif
