/* The dtype parameters of the kernel templates, for FSM_DTYPE 32 (float) or
 * 64 (double); the includer also sets FSM_WIDE_ROWS (1: the row vectors are
 * 64 bytes, for the AVX-512 build).  Include dtype_params_end.h after the
 * template to undefine them.
 *   REAL, ACC, SUF       element type, accumulator type, name suffix
 *   EXP, EXP_NONPOS      vexp.h's scalar exps: any argument, x - max <= 0
 *   VREAL, VMASK         the blocks' vector of REAL and of its comparisons
 *                        (32 bytes; 64 with FSM_WIDE_ROWS, and then
 *                        VREAL_HALF and so on are the 32-byte ones)
 *   VEXP_NONPOS          EXP_NONPOS on a VREAL
 *   RVREAL, RVEXP_NONPOS the vector of the row passes and its exp
 *   RVW                  the lanes of an RVREAL
 *   VLOAD_FIRST, VSTORE_FIRST, RLOAD_FIRST, RSTORE_FIRST
 *                        the first w lanes of a VREAL, RVREAL from and to
 *                        memory (vec.h, vec_masked.h) */
#include "vec.h"
#include "vexp.h"
#if FSM_WIDE_ROWS
#include "vec_masked.h"
#endif

#if FSM_DTYPE == 32
#define REAL float
#define SUF f32
#define EXP fsm_expf
#define EXP_NONPOS fsm_expf_nonpos
#if FSM_WIDE_ROWS
#define VREAL fsm_v16f
#define VMASK fsm_v16i
#define VEXP_NONPOS fsm_vexpf_nonpos_w
#define VLOAD_FIRST fsm_load_first_v16f
#define VSTORE_FIRST fsm_store_first_v16f
#define VREAL_HALF fsm_v8f
#define VMASK_HALF fsm_v8i
#define VEXP_NONPOS_HALF fsm_vexpf_nonpos
#define VLOAD_FIRST_HALF fsm_load_first_v8f
#define VSTORE_FIRST_HALF fsm_store_first_v8f
#define RVREAL fsm_v16f
#define RVEXP_NONPOS fsm_vexpf_nonpos_w
#define RLOAD_FIRST fsm_load_first_v16f
#define RSTORE_FIRST fsm_store_first_v16f
#else
#define VREAL fsm_v8f
#define VMASK fsm_v8i
#define VEXP_NONPOS fsm_vexpf_nonpos
#define VLOAD_FIRST fsm_load_first_v8f
#define VSTORE_FIRST fsm_store_first_v8f
#define RVREAL fsm_v8f
#define RVEXP_NONPOS fsm_vexpf_nonpos
#define RLOAD_FIRST fsm_load_first_v8f
#define RSTORE_FIRST fsm_store_first_v8f
#endif
#else
#define REAL double
#define SUF f64
#define EXP fsm_exp
#define EXP_NONPOS fsm_exp_nonpos
#if FSM_WIDE_ROWS
#define VREAL fsm_v8d
#define VMASK fsm_v8li
#define VEXP_NONPOS fsm_vexp_nonpos_w
#define VLOAD_FIRST fsm_load_first_v8d
#define VSTORE_FIRST fsm_store_first_v8d
#define VREAL_HALF fsm_v4d
#define VMASK_HALF fsm_v4i
#define VEXP_NONPOS_HALF fsm_vexp_nonpos
#define VLOAD_FIRST_HALF fsm_load_first_v4d
#define VSTORE_FIRST_HALF fsm_store_first_v4d
#define RVREAL fsm_v8d
#define RVEXP_NONPOS fsm_vexp_nonpos_w
#define RLOAD_FIRST fsm_load_first_v8d
#define RSTORE_FIRST fsm_store_first_v8d
#else
#define VREAL fsm_v4d
#define VMASK fsm_v4i
#define VEXP_NONPOS fsm_vexp_nonpos
#define VLOAD_FIRST fsm_load_first_v4d
#define VSTORE_FIRST fsm_store_first_v4d
#define RVREAL fsm_v4d
#define RVEXP_NONPOS fsm_vexp_nonpos
#define RLOAD_FIRST fsm_load_first_v4d
#define RSTORE_FIRST fsm_store_first_v4d
#endif
#endif
#define ACC double
#define RVW ((int)(sizeof(RVREAL) / sizeof(REAL)))
