/* The logistic sigmoid, elementwise over n contiguous elements:
 * out[i] = 1 / (1 + exp(-s x[i])) with s = -1 when `negate`, else 1.
 * Computed from exp(-|x|), which never overflows: exact to rounding for any
 * x, 0 and 1 at -inf and +inf, NaN for NaN.  out may be x. */
#ifndef FASTSM_SIGMOID_H
#define FASTSM_SIGMOID_H

#include <stddef.h>

void fsm_sigmoid_f32(const float *x, float *out, ptrdiff_t n, int negate, int max_threads);
void fsm_sigmoid_f64(const double *x, double *out, ptrdiff_t n, int negate, int max_threads);

/* The gradient of binary cross-entropy from logits, out[i] = sigmoid(x[i]) - t[i],
 * computed as (1 - t) - sigmoid(-x) where x >= 0, so that no digits are lost
 * when sigmoid(x) is close to 1.  out may be x or t. */
void fsm_sigmoid_minus_f32(const float *x, const float *t, float *out, ptrdiff_t n,
                           int max_threads);
void fsm_sigmoid_minus_f64(const double *x, const double *t, double *out, ptrdiff_t n,
                           int max_threads);

#endif
