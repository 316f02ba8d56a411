/* Softmax-family kernels: one template, instantiated for float and double.
 * float slices sum their exps in float lanes, 16 terms at most to a lane,
 * and add those partial sums in double.  Softmax results below the
 * smallest normal number are flushed to 0 (see fsm_expf_nonpos).
 * The public functions call the AVX-512 build (softmax_avx512.c) where the
 * CPU has it, else this file's, whose hot loops are cloned per ISA. */
#include "softmax.h"
#include "dispatch.h"
#include "parallel.h"

#define ISA _base
#define FSM_WIDE_ROWS 0
#include "softmax_instances.h"

#if FSM_AVX512_BUILD
FSM_DECLARE_SOFTMAX(float, f32_avx512)
FSM_DECLARE_SOFTMAX(double, f64_avx512)
#endif

#define FSM_DISPATCH(REAL, SUF)                                                               \
    void fsm_softmax_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,            \
                           ptrdiff_t inner, int max_threads)                                  \
    {                                                                                         \
        FSM_PICK(fsm_softmax_##SUF)(x, out, outer, n, inner, max_threads);                    \
    }                                                                                         \
    void fsm_log_softmax_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,        \
                               ptrdiff_t inner, int max_threads)                              \
    {                                                                                         \
        FSM_PICK(fsm_log_softmax_##SUF)(x, out, outer, n, inner, max_threads);                \
    }                                                                                         \
    void fsm_hardmax_##SUF(const REAL *x, REAL *out, ptrdiff_t outer, ptrdiff_t n,            \
                           ptrdiff_t inner, int max_threads)                                  \
    {                                                                                         \
        FSM_PICK(fsm_hardmax_##SUF)(x, out, outer, n, inner, max_threads);                    \
    }                                                                                         \
    void fsm_softmax_backward_##SUF(const REAL *grad, const REAL *y, REAL *out,               \
                                    ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,            \
                                    int max_threads)                                          \
    {                                                                                         \
        FSM_PICK(fsm_softmax_backward_##SUF)(grad, y, out, outer, n, inner, max_threads);     \
    }                                                                                         \
    void fsm_log_softmax_backward_##SUF(const REAL *grad, const REAL *logp, REAL *out,        \
                                        ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,        \
                                        int max_threads)                                      \
    {                                                                                         \
        FSM_PICK(fsm_log_softmax_backward_##SUF)(grad, logp, out, outer, n, inner,            \
                                                 max_threads);                                \
    }

FSM_DISPATCH(float, f32)
FSM_DISPATCH(double, f64)
