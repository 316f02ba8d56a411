/* Cross-entropy kernels: one template, instantiated for float and double.
 * float sums of exps accumulate in float over short blocks, then in double;
 * losses accumulate in double.  Every exp is of x - max <= 0, so the kernels
 * use vexp.h's exp for non-positive arguments (results below the smallest
 * normal number flushed to 0).
 * The public kernels call the AVX-512 build (xent_avx512.c) where the CPU
 * has it, else this file's, whose hot loops are cloned per ISA; both give
 * the same results.  The target check, not a hot loop, is built here only. */
#include "xent.h"
#include "dispatch.h"
#include "parallel.h"

#define ISA _base
#define FSM_WIDE_ROWS 0
#include "xent_instances.h"

#if FSM_AVX512_BUILD
FSM_DECLARE_XENT(float, f32_avx512)
FSM_DECLARE_XENT(double, f64_avx512)
#endif

#define FSM_DISPATCH(REAL, SUF)                                                               \
    double fsm_xent_index_##SUF(const REAL *x, const int64_t *target, const REAL *weight,     \
                                int64_t ignore_index, double label_smoothing,                 \
                                double grad_scale, REAL *grad, REAL *loss, ptrdiff_t outer,   \
                                ptrdiff_t n, ptrdiff_t inner, int max_threads)                \
    {                                                                                         \
        return FSM_PICK(fsm_xent_index_##SUF)(x, target, weight, ignore_index,                \
                                              label_smoothing, grad_scale, grad, loss, outer, \
                                              n, inner, max_threads);                         \
    }                                                                                         \
    double fsm_xent_prob_##SUF(const REAL *x, const REAL *target, const REAL *weight,         \
                               double label_smoothing, double grad_scale, REAL *grad,         \
                               REAL *loss, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,     \
                               int max_threads)                                               \
    {                                                                                         \
        return FSM_PICK(fsm_xent_prob_##SUF)(x, target, weight, label_smoothing, grad_scale,  \
                                             grad, loss, outer, n, inner, max_threads);       \
    }

FSM_DISPATCH(float, f32)
FSM_DISPATCH(double, f64)
