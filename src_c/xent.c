/* Cross-entropy kernels: one template, instantiated for float and double.
 * float samples accumulate their sums and losses in double. */
#include "xent.h"
#include "parallel.h"

#define REAL float
#define ACC double
#define SUF f32
#define EXP fsm_expf
#include "xent_template.h"
#undef REAL
#undef ACC
#undef SUF
#undef EXP

#define REAL double
#define ACC double
#define SUF f64
#define EXP fsm_exp
#include "xent_template.h"
