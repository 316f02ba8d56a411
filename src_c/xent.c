/* Cross-entropy kernels: one template, instantiated for float and double.
 * float sums of exps accumulate in float over short blocks, then in double;
 * losses accumulate in double.  Every exp is of x - max <= 0, so the kernels
 * use vexp.h's exp for non-positive arguments (results below the smallest
 * normal number flushed to 0). */
#include "xent.h"
#include "parallel.h"

#define REAL float
#define ACC double
#define SUF f32
#define EXP fsm_expf
#define EXP_NONPOS fsm_expf_nonpos
#define VREAL fsm_v8f
#define VEXP_NONPOS fsm_vexpf_nonpos
#include "xent_template.h"
#undef REAL
#undef ACC
#undef SUF
#undef EXP
#undef EXP_NONPOS
#undef VREAL
#undef VEXP_NONPOS

#define REAL double
#define ACC double
#define SUF f64
#define EXP fsm_exp
#define EXP_NONPOS fsm_exp_nonpos
#define VREAL fsm_v4d
#define VEXP_NONPOS fsm_vexp_nonpos
#include "xent_template.h"
