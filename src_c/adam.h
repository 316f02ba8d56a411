/* One Adam step, in place, over n contiguous parameters:
 *     m[i] = b1 m[i] + (1 - b1) g[i]
 *     v[i] = b2 v[i] + (1 - b2) g[i]^2
 *     p[i] -= step * m[i] / (sqrt(v[i]) + eps)
 * The caller folds the bias corrections into `step` and `eps` (see
 * fastsm/_optimizers.py).  One pass instead of NumPy's dozen; computed in
 * the parameters' dtype, as PyTorch.  p, g, m and v must not overlap. */
#ifndef FASTSM_ADAM_H
#define FASTSM_ADAM_H

#include <stddef.h>

void fsm_adam_f32(float *restrict p, const float *restrict g, float *restrict m,
                  float *restrict v, ptrdiff_t n, float b1, float b2, float step, float eps,
                  int max_threads);
void fsm_adam_f64(double *restrict p, const double *restrict g, double *restrict m,
                  double *restrict v, ptrdiff_t n, double b1, double b2, double step,
                  double eps, int max_threads);

#endif
