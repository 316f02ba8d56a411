/* Cross-entropy kernels: one template, instantiated for float and double.
 * float sums of exps accumulate in float over short blocks, then in double;
 * losses accumulate in double.  float uses the exp for non-positive
 * arguments of xent_exp.h (every exp here is of x - max). */
#include "xent.h"
#include "parallel.h"
#include "xent_exp.h"

#define REAL float
#define ACC double
#define SUF f32
#define EXP fsm_xent_expf_nonpos
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
