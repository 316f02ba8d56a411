/* Softmax-family kernels on the canonical view (outer, n, inner), C-contiguous:
 * element (o, i, j) sits at o*n*inner + i*inner + j and each operation runs
 * along i.  `out` may be the same array as any input (in place); otherwise
 * arrays must not overlap.  All sizes are >= 1.  Each function writes every
 * element of `out` and nothing else; max_threads >= 1. */
#ifndef FASTSM_SOFTMAX_H
#define FASTSM_SOFTMAX_H

#include <stddef.h>

#define FSM_DECLARE_SOFTMAX(REAL, SUF)                                                        \
    void fsm_softmax_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,            \
                           ptrdiff_t inner, int max_threads);                                 \
    void fsm_log_softmax_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,        \
                               ptrdiff_t inner, int max_threads);                             \
    void fsm_hardmax_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,            \
                           ptrdiff_t inner, int max_threads);                                 \
    void fsm_softmax_backward_##SUF(const REAL *grad, const REAL *y, REAL *out,               \
                                    ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,            \
                                    int max_threads);                                         \
    void fsm_log_softmax_backward_##SUF(const REAL *grad, const REAL *logp, REAL *out,        \
                                        ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,        \
                                        int max_threads);

FSM_DECLARE_SOFTMAX(float, f32)
FSM_DECLARE_SOFTMAX(double, f64)

#endif
