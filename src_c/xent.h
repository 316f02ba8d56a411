/* Cross-entropy kernels on the canonical view (outer, n, inner), C-contiguous:
 * logit (o, i, j) sits at o*n*inner + i*inner + j, the class axis is i, and
 * slice s = o*inner + j is one sample.  All sizes are >= 1, max_threads >= 1.
 *
 * Loss of a sample, PyTorch's definition with label smoothing eps and
 * per-class weights w (all 1 when weight is NULL):
 *   index target y:  (1-eps) w[y] (lse - x[y]) + eps/n sum_c w[c] (lse - x[c]),
 *                    0 when y == ignore_index;
 *   probabilities t: sum_c w[c] t'[c] (lse - x[c]),  t' = (1-eps) t + eps/n.
 * Gradient of a sample's loss, times grad_scale: its derivative with respect
 * to the sample's logits (zero for an ignored sample).
 *
 * Each function returns the sum of the samples' losses in double, added in a
 * fixed order (the same for every thread count).  `grad` (NULL: not written)
 * has the logits' layout and may be `x` itself; `loss` (NULL: not written)
 * receives one loss per sample.  Nothing else is written; no other overlap. */
#ifndef FASTSM_XENT_H
#define FASTSM_XENT_H

#include <stddef.h>
#include <stdint.h>

#define FSM_DECLARE_XENT(REAL, SUF)                                                           \
    double fsm_xent_index_##SUF(const REAL *x, const int64_t *target, const REAL *weight,     \
                                int64_t ignore_index, double label_smoothing,                 \
                                double grad_scale, REAL *grad, REAL *loss, ptrdiff_t outer,   \
                                ptrdiff_t n, ptrdiff_t inner, int max_threads);               \
    double fsm_xent_prob_##SUF(const REAL *x, const REAL *target, const REAL *weight,         \
                               double label_smoothing, double grad_scale, REAL *grad,         \
                               REAL *loss, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,     \
                               int max_threads);

FSM_DECLARE_XENT(float, f32)
FSM_DECLARE_XENT(double, f64)

/* The position of the first target outside [0, n) that is not ignore_index,
 * or -1 when all are valid; then *weight_sum is the sum of w[y] over the
 * targets not ignored (their count when weight is NULL), added in order.
 * Reads `count` targets, writes only *weight_sum. */
ptrdiff_t fsm_xent_check_index_f32(const int64_t *target, ptrdiff_t count, ptrdiff_t n,
                                   int64_t ignore_index, const float *weight,
                                   double *weight_sum);
ptrdiff_t fsm_xent_check_index_f64(const int64_t *target, ptrdiff_t count, ptrdiff_t n,
                                   int64_t ignore_index, const double *weight,
                                   double *weight_sum);

#endif
