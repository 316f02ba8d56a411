/* The softmax-family kernels built for AVX-512 alone (see avx512_build.h;
 * the exp pass about 30% faster than with 32-byte vectors on Zen 4).
 * softmax.c calls these when the CPU has x86-64-v4. */
#define FSM_INSTANCES "softmax_instances.h"
#include "avx512_build.h"
