/* The body of an AVX-512 build of a kernel family (softmax_avx512.c,
 * xent_avx512.c): the includer defines FSM_INSTANCES, the header that
 * instantiates the family's templates.  The whole translation unit targets
 * x86-64-v4 with 512-bit auto-vectorisation, its row passes take 64-byte
 * vectors, and its public names end in _avx512. */
#define FSM_NO_CLONES
#include "dispatch.h"

#if FSM_AVX512_BUILD
#pragma GCC target("arch=x86-64-v4", "prefer-vector-width=512")
#include "parallel.h"

#define ISA _avx512
#define FSM_WIDE_ROWS 1
#include FSM_INSTANCES
#else
typedef int fsm_no_avx512_build; /* ISO C wants a declaration */
#endif
