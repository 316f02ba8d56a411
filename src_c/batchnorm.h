/* Batch-normalization kernels on the canonical view (outer, C, inner),
 * C-contiguous: element (o, c, j) sits at (o*C + c)*inner + j and belongs to
 * feature c; per-feature arrays have length C.  Statistics reduce over o and
 * j in fixed-size blocks combined in a fixed order, so results do not depend
 * on max_threads.  float32 data accumulates in double (fsm_bn_train's
 * column layout: eight rows' terms summed in float first).  All sizes are >= 1.
 * A feature holding +inf (or -inf) has that mean and m2 NaN; a NaN, or both
 * infinities, give NaN for both (PyTorch's answers).
 * Each kernel of FSM_DECLARE_BATCHNORM returns 0, or -1 when its scratch
 * memory cannot be allocated (then it has written nothing). */
#ifndef FASTSM_BATCHNORM_H
#define FASTSM_BATCHNORM_H

#include <stddef.h>

#define FSM_DECLARE_BATCHNORM(REAL, SUF)                                                      \
    /* Writes mean[c] and m2[c] (sum of squared deviations) of each feature. */               \
    int fsm_bn_stats_##SUF(const REAL *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,      \
                           double *mean, double *m2, int max_threads);                        \
    /* Writes sum_g[c] = sum(g) and sum_gxc[c] = sum(g * (x - mean[c])). */                   \
    int fsm_bn_grad_sums_##SUF(const REAL *g, const REAL *x, ptrdiff_t outer, ptrdiff_t C,    \
                               ptrdiff_t inner, const double *mean, double *sum_g,            \
                               double *sum_gxc, int max_threads);                             \
    /* Writes out = s[c]*(x - mean[c]) + t[c] elementwise, or with g given                    \
     * out = a[c]*((g + t[c]) + s[c]*(x - mean[c])).  g and a are both NULL or both           \
     * given, likewise x, s and mean; t NULL means 0.  out may be g or x. */                  \
    int fsm_bn_apply_##SUF(const REAL *g, const REAL *x, REAL *out, ptrdiff_t outer,          \
                           ptrdiff_t C, ptrdiff_t inner, const double *a, const double *s,    \
                           const double *mean, const double *t, int max_threads);             \
    /* Training forward in one call: mean[c], m2[c] as fsm_bn_stats, invstd[c] as             \
     * fsm_bn_invstd (divisor the count), and out = (x - mean)*invstd*weight + bias           \
     * (weight, bias NULL: 1, 0).  out may be x. */                                           \
    int fsm_bn_train_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t C,            \
                           ptrdiff_t inner, const double *weight, const double *bias,         \
                           double eps, double *mean, double *m2, double *invstd,              \
                           int max_threads);                                                  \
    /* Training backward in one call: sum_g[c] and sum_gxc[c] as fsm_bn_grad_sums,            \
     * and out = dx, fsm_bn_apply of the factors of fsm_bn_backward_factors                   \
     * (weight NULL: ones).  out may be g or x. */                                            \
    int fsm_bn_backward_##SUF(const REAL *g, const REAL *x, REAL *out, ptrdiff_t outer,       \
                              ptrdiff_t C, ptrdiff_t inner, const double *mean,               \
                              const double *invstd, const double *weight, double *sum_g,      \
                              double *sum_gxc, int max_threads);

/* Per-feature factors: invstd[c] = 1 / sqrt(v[c] / divisor + eps) and
 * scale[c] = invstd[c] * weight[c] (weight NULL: ones). */
void fsm_bn_invstd(const double *v, ptrdiff_t C, double divisor, double eps,
                   const double *weight, double *invstd, double *scale);

/* The factors of the training backward's elementwise pass, per feature, in
 * the order of the NumPy expressions of the general path:
 * k = invstd * weight (weight NULL: invstd), s = -invstd * invstd * sum_gxc / count
 * and t = -sum_g / count. */
void fsm_bn_backward_factors(const double *invstd, const double *weight, const double *sum_g,
                             const double *sum_gxc, ptrdiff_t C, double count, double *k,
                             double *s, double *t);

/* dst[i] = src[i] for i < n, widened to double or rounded to float. */
void fsm_bn_widen_f32(const float *src, ptrdiff_t n, double *dst);
void fsm_bn_narrow_f32(const double *src, ptrdiff_t n, float *dst);

/* Running statistic update, in r's own dtype:
 * r[c] = (1 - momentum) * r[c] + momentum * factor * batch[c], computed in double. */
void fsm_bn_update_running_f32(float *r, const double *batch, ptrdiff_t C, double momentum,
                               double factor);
void fsm_bn_update_running_f64(double *r, const double *batch, ptrdiff_t C, double momentum,
                               double factor);

FSM_DECLARE_BATCHNORM(float, f32)
FSM_DECLARE_BATCHNORM(double, f64)

#endif
