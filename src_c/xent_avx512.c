/* The cross-entropy kernels built for AVX-512 alone (see avx512_build.h):
 * the same lanes as xent.c's two 32-byte vectors, so the same results.
 * xent.c calls these when the CPU has x86-64-v4. */
#define FSM_INSTANCES "xent_instances.h"
#include "avx512_build.h"
