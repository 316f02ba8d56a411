/* The logistic sigmoid, elementwise over n contiguous elements:
 * out[i] = 1 / (1 + exp(-x[i])).
 * Computed from exp(-|x|), which never overflows: exact to rounding for any
 * x, 0 and 1 at -inf and +inf, NaN for NaN.  out may be x. */
#ifndef FASTSM_SIGMOID_H
#define FASTSM_SIGMOID_H

#include <stddef.h>

void fsm_sigmoid_f32(const float *x, float *out, ptrdiff_t n, int max_threads);
void fsm_sigmoid_f64(const double *x, double *out, ptrdiff_t n, int max_threads);

/* The gradient of binary cross-entropy from logits, out[i] = sigmoid(x[i]) - t[i],
 * computed as (1 - t) - sigmoid(-x) where x >= 0, so that no digits are lost
 * when sigmoid(x) is close to 1.  With pos_weight (NULL for none), PyTorch's
 * weight of the positive term: out[i] = sigmoid(x) - t (1 + (p - 1) sigmoid(-x))
 * with p = pos_weight[i % period], the pos_weight array repeating along x.
 * out may be x or t. */
void fsm_sigmoid_minus_f32(const float *x, const float *t, const float *pos_weight,
                           ptrdiff_t period, float *out, ptrdiff_t n, int max_threads);
void fsm_sigmoid_minus_f64(const double *x, const double *t, const double *pos_weight,
                           ptrdiff_t period, double *out, ptrdiff_t n, int max_threads);

/* Binary cross-entropy from logits, PyTorch's definition:
 * loss[i] = w [(1 - t) x + lw softplus(-x)], lw = 1 + (p - 1) t,
 * with w = weight[i % weight_period] and p = pos_weight[i % pos_period] (each
 * array repeating along x; NULL for none, which also skips its arithmetic, so
 * an inf or NaN target without pos_weight does not turn into NaN).
 * softplus(-x) = log1p(exp(-|x|)) + max(-x, 0) never overflows, so losses are
 * finite for finite inputs.  Each loss is computed in its dtype, without
 * cancellation for x < 0 (see sigmoid.c); exp(-|x|) below the smallest
 * normal number counts as 0 (an absolute error below 1.2e-38 in float).
 * With loss_out (not overlapping the inputs), writes the n losses there and
 * returns 0; with NULL, writes
 * nothing and returns their sum, in double.  The sum is deterministic: blocks
 * fixed by n alone each sum their losses in order, and the block sums are
 * added in order, whatever the number of threads. */
double fsm_bce_loss_f32(const float *x, const float *t, const float *weight,
                        ptrdiff_t weight_period, const float *pos_weight, ptrdiff_t pos_period,
                        float *loss_out, ptrdiff_t n, int max_threads);
double fsm_bce_loss_f64(const double *x, const double *t, const double *weight,
                        ptrdiff_t weight_period, const double *pos_weight, ptrdiff_t pos_period,
                        double *loss_out, ptrdiff_t n, int max_threads);

#endif
