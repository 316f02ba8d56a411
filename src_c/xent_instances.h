/* xent_template.h for float and double.  The includer defines ISA (the
 * suffix of the public names) and FSM_WIDE_ROWS (1: 64-byte vectors in the
 * row passes, for the AVX-512 build). */
#include "vec.h"
#include "vexp.h"

#define REAL float
#define ACC double
#define SUF f32
#define EXP fsm_expf
#define EXP_NONPOS fsm_expf_nonpos
#if FSM_WIDE_ROWS
#define VREAL fsm_v16f
#define VEXP_NONPOS fsm_vexpf_nonpos_w
#else
#define VREAL fsm_v8f
#define VEXP_NONPOS fsm_vexpf_nonpos
#endif
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
#if FSM_WIDE_ROWS
#define VREAL fsm_v8d
#define VEXP_NONPOS fsm_vexp_nonpos_w
#else
#define VREAL fsm_v4d
#define VEXP_NONPOS fsm_vexp_nonpos
#endif
#include "xent_template.h"
#undef REAL
#undef ACC
#undef SUF
#undef EXP
#undef EXP_NONPOS
#undef VREAL
#undef VEXP_NONPOS
