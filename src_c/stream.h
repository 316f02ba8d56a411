/* Copies that bypass the cache (non-temporal stores) for results larger than
 * the caches: the line is not read before it is written, which saves a third
 * of the memory traffic of a store-bound kernel.  SSE2 is part of every
 * x86-64, so no run-time dispatch is needed; elsewhere a plain copy. */
#ifndef FASTSM_STREAM_H
#define FASTSM_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vec.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>

static inline void fsm_stream_copy_f32(float *dst, const float *src, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

static inline void fsm_stream_copy_f64(double *dst, const double *src, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];
    for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

/* Writes the 32 bytes at v to p, which is 16-byte aligned, past the caches. */
FSM_ALWAYS_INLINE void fsm_stream_v32(void *p, const void *v)
{
    _mm_stream_ps((float *)p, _mm_loadu_ps((const float *)v));
    _mm_stream_ps((float *)p + 4, _mm_loadu_ps((const float *)v + 4));
}

/* Orders the streamed stores before anything the thread does next. */
static inline void fsm_stream_fence(void) { _mm_sfence(); }

#else

static inline void fsm_stream_copy_f32(float *dst, const float *src, ptrdiff_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}

static inline void fsm_stream_copy_f64(double *dst, const double *src, ptrdiff_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}

FSM_ALWAYS_INLINE void fsm_stream_v32(void *p, const void *v) { memcpy(p, v, 32); }

static inline void fsm_stream_fence(void) {}

#endif

/* Results of at least this many bytes are written with streaming stores. */
#define FSM_STREAM_BYTES ((ptrdiff_t)4 << 20)

#endif
