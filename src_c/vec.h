/* 32-byte vectors of float and double (GCC and Clang vector extensions).
 * Each ISA clone of a caller compiles them to its own instructions: two SSE
 * operations per vector in the baseline, one AVX operation with AVX2. */
#ifndef FASTSM_VEC_H
#define FASTSM_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FSM_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Functions take vectors by pointer and are always inlined: GCC warns that
 * a vector passed or returned by value is passed differently with and
 * without AVX, although inlined code is never passed at all.  The warning
 * on returned values can be silenced, the note on arguments cannot. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* float and double lanes, with the unsigned lanes of their bits and the
 * signed lanes of their comparisons' results. */
typedef float fsm_v8f __attribute__((vector_size(32)));
typedef uint32_t fsm_v8u __attribute__((vector_size(32)));
typedef int32_t fsm_v8i __attribute__((vector_size(32)));
typedef double fsm_v4d __attribute__((vector_size(32)));
typedef uint64_t fsm_v4u __attribute__((vector_size(32)));
typedef int64_t fsm_v4i __attribute__((vector_size(32)));

/* The same at 64 bytes, for code compiled for AVX-512 only (the *_avx512.c
 * files): elsewhere GCC splits them into slow pieces. */
typedef float fsm_v16f __attribute__((vector_size(64)));
typedef uint32_t fsm_v16u __attribute__((vector_size(64)));
typedef int32_t fsm_v16i __attribute__((vector_size(64)));
typedef double fsm_v8d __attribute__((vector_size(64)));
typedef uint64_t fsm_v8lu __attribute__((vector_size(64)));
typedef int64_t fsm_v8li __attribute__((vector_size(64)));

/* The first w lanes (w up to the width) of a 32-byte vector: loaded with the
 * other lanes set to fill, and stored, lane by lane; nothing past the w
 * elements is touched.  (vec_masked.h has the 64-byte ones.) */
#define FSM_DEFINE_FIRST_LANES(V, T, name)                                              \
    FSM_ALWAYS_INLINE V fsm_load_first_##name(const T *p, ptrdiff_t w, T fill)          \
    {                                                                                   \
        V v;                                                                            \
        for (int k = 0; k < (int)(sizeof v / sizeof(T)); k++) v[k] = fill;             \
        for (ptrdiff_t k = 0; k < w; k++) v[k] = p[k];                                  \
        return v;                                                                       \
    }                                                                                   \
    FSM_ALWAYS_INLINE void fsm_store_first_##name(T *p, const V *v, ptrdiff_t w)        \
    {                                                                                   \
        memcpy(p, v, (size_t)w * sizeof(T));                                            \
    }

FSM_DEFINE_FIRST_LANES(fsm_v8f, float, v8f)
FSM_DEFINE_FIRST_LANES(fsm_v4d, double, v4d)

/* Lane by lane: a where mask (a vector comparison's result) is set, else b. */
#define FSM_VSELECT(mask, a, b)                                                          \
    ((__typeof__(a))(((mask) & (__typeof__(mask))(a)) | (~(mask) & (__typeof__(mask))(b))))

#endif
