/* Run-time ISA selection for hot loops: GCC and Clang on x86-64 compile a
 * baseline, an AVX2 and an AVX-512 version of each FSM_HOT function and pick
 * one when the library loads.  Elsewhere FSM_HOT is empty.
 *
 * The softmax and cross-entropy kernels are also built whole a second time
 * for AVX-512 (the *_avx512.c files, GCC only), with 64-byte vectors in
 * their row passes; fsm_avx512_usable() tells whether to call that build. */
#ifndef FASTSM_DISPATCH_H
#define FASTSM_DISPATCH_H

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define FSM_X86_LINUX 1
#else
#define FSM_X86_LINUX 0
#endif

#if FSM_X86_LINUX && !defined(FSM_NO_CLONES)
#define FSM_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FSM_HOT
#endif

#if FSM_X86_LINUX && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define FSM_AVX512_BUILD 1
#else
#define FSM_AVX512_BUILD 0
#endif

/* Whether the CPU and the OS enable every feature of x86-64-v4; asked once
 * (per translation unit), the answer kept for the calls after. */
static inline int fsm_avx512_usable(void)
{
#if FSM_AVX512_BUILD
    static int known = -1; /* written once with the same value by any thread */
    int usable = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (usable < 0) {
        __builtin_cpu_init();
        usable = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
                 && __builtin_cpu_supports("avx512cd");
        __atomic_store_n(&known, usable, __ATOMIC_RELAXED);
    }
    return usable;
#else
    return 0;
#endif
}

/* The build of public function `name` to call: name_avx512 where the CPU
 * runs it, else name_base. */
#if FSM_AVX512_BUILD
#define FSM_PICK(name) (fsm_avx512_usable() ? name##_avx512 : name##_base)
#else
#define FSM_PICK(name) name##_base
#endif

#define FSM_CAT2(a, b) a##b
#define FSM_CAT(a, b) FSM_CAT2(a, b)

#endif
