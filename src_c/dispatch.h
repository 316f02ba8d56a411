/* Run-time ISA selection for hot loops: GCC and Clang on x86-64 compile a
 * baseline, an AVX2 and an AVX-512 version of each FSM_HOT function and pick
 * one when the library loads.  Elsewhere FSM_HOT is empty. */
#ifndef FASTSM_DISPATCH_H
#define FASTSM_DISPATCH_H

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(FSM_NO_CLONES)
#define FSM_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FSM_HOT
#endif

#define FSM_CAT2(a, b) a##b
#define FSM_CAT(a, b) FSM_CAT2(a, b)

#endif
