/* Softmax-family kernels: one template, instantiated for float and double.
 * float slices accumulate their sums in double. */
#include "softmax.h"
#include "parallel.h"

#define REAL float
#define ACC double
#define SUF f32
#define EXP fsm_expf
#include "softmax_template.h"
#undef REAL
#undef ACC
#undef SUF
#undef EXP

#define REAL double
#define ACC double
#define SUF f64
#define EXP fsm_exp
#include "softmax_template.h"
