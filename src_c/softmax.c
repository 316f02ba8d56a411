/* Softmax-family kernels: one template, instantiated for float and double.
 * float slices sum their exps in float lanes, 16 terms at most to a lane,
 * and add those partial sums in double.  Softmax results below the
 * smallest normal number are flushed to 0 (see fsm_expf_nonpos). */
#include "softmax.h"
#include "parallel.h"

#define REAL float
#define ACC double
#define SUF f32
#define EXP fsm_expf
#define EXP_NONPOS fsm_expf_nonpos
#define VREAL fsm_v8f
#define VMASK fsm_v8i
#define VEXP_NONPOS fsm_vexpf_nonpos
#include "softmax_template.h"
#undef REAL
#undef ACC
#undef SUF
#undef EXP
#undef EXP_NONPOS
#undef VREAL
#undef VMASK
#undef VEXP_NONPOS

#define REAL double
#define ACC double
#define SUF f64
#define EXP fsm_exp
#define EXP_NONPOS fsm_exp_nonpos
#define VREAL fsm_v4d
#define VMASK fsm_v4i
#define VEXP_NONPOS fsm_vexp_nonpos
#include "softmax_template.h"
