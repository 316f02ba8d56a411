/* The softmax-family kernels built for AVX-512 alone: 64-byte vectors in
 * the row passes and 512-bit auto-vectorisation elsewhere (the exp pass
 * about 30% faster than with 32-byte vectors on Zen 4).  softmax.c calls
 * these when the CPU has x86-64-v4. */
#define FSM_NO_CLONES
#include "dispatch.h"

#if FSM_AVX512_BUILD
#pragma GCC target("arch=x86-64-v4", "prefer-vector-width=512")
#include "parallel.h"

#define ISA _avx512
#define FSM_WIDE_ROWS 1
#include "softmax_instances.h"
#else
typedef int fsm_no_avx512_build; /* ISO C wants a declaration */
#endif
