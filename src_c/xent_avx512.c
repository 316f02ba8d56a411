/* The cross-entropy kernels built for AVX-512 alone: 64-byte vectors in the
 * row passes (the same lanes as xent.c's two 32-byte vectors, so the same
 * results) and 512-bit auto-vectorisation elsewhere.  xent.c calls these
 * when the CPU has x86-64-v4. */
#define FSM_NO_CLONES
#include "dispatch.h"

#if FSM_AVX512_BUILD
#pragma GCC target("arch=x86-64-v4", "prefer-vector-width=512")
#include "xent.h"
#include "parallel.h"

#define ISA _avx512
#define FSM_WIDE_ROWS 1
#include "xent_instances.h"
#else
typedef int fsm_no_avx512_build; /* ISO C wants a declaration */
#endif
