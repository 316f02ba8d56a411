/* Per-slice building blocks shared by the softmax and cross-entropy kernels,
 * instantiated once per dtype: include after defining REAL (element type),
 * ACC (accumulator type: double for both dtypes) and SUF (name suffix).  All
 * are always inlined so that each ISA clone of a caller gets its own vector
 * code.
 *
 * Reductions keep FSM_LANES independent partial results combined in a fixed
 * order at the end: the compiler vectorises them without reassociating, and
 * the result is the same on every ISA and every thread count. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "dispatch.h"
#include "vexp.h"

#ifndef FSM_LANES
#define FSM_LANES 16
#endif

#define FSM_SLICE(name) FSM_CAT(name##_, SUF)

/* Values of the next row's result fetched by a row's last pass (4 KB). */
#undef FSM_FETCH_NEXT
#define FSM_FETCH_NEXT (4096 / (ptrdiff_t)sizeof(REAL))

/* Keeps the compiler from unrolling a loop over the lanes into scalar code it
 * then fails to vectorise: as a loop it becomes one or two vector operations. */
#ifndef FSM_LANE_LOOP
#define FSM_LANE_LOOP _Pragma("GCC unroll 1")
#endif

/* The max of a row, ignoring NaN (which the callers propagate through exp;
 * -inf for a row of NaN and -inf only), in RVW lanes: lanes set to
 * -inf, each row vector folded in, then their max.  Row passes that take
 * the max of the next row alongside their own work do the same, so that a
 * row's max is the same bits whichever way it was taken. */
FSM_ALWAYS_INLINE void FSM_SLICE(fsm_max_into_lanes)(REAL *lane, const RVREAL *v)
{
    FSM_LANE_LOOP for (int k = 0; k < RVW; k++)
        lane[k] = (*v)[k] > lane[k] ? (*v)[k] : lane[k];
}

FSM_ALWAYS_INLINE REAL FSM_SLICE(fsm_max_of_lanes)(const REAL *lane)
{
    REAL m = (REAL)-INFINITY;
    for (int k = 0; k < RVW; k++) m = lane[k] > m ? lane[k] : m;
    return m;
}

FSM_ALWAYS_INLINE void FSM_SLICE(fsm_max_start)(REAL *lane)
{
    for (int k = 0; k < RVW; k++) lane[k] = (REAL)-INFINITY;
}

/* The max of the row at x, from lanes that hold its first i values (the
 * rest, n - i, fewer than RVW). */
FSM_ALWAYS_INLINE REAL FSM_SLICE(fsm_max_finish)(REAL *lane, const REAL *x, ptrdiff_t i,
                                                 ptrdiff_t n)
{
    if (i < n) {
        const RVREAL v = RLOAD_FIRST(x + i, n - i, (REAL)-INFINITY);
        FSM_SLICE(fsm_max_into_lanes)(lane, &v);
    }
    return FSM_SLICE(fsm_max_of_lanes)(lane);
}

FSM_ALWAYS_INLINE REAL FSM_SLICE(fsm_slice_max)(const REAL *x, ptrdiff_t n)
{
    REAL lane[RVW];
    FSM_SLICE(fsm_max_start)(lane);
    ptrdiff_t i = 0;
    for (; i + RVW <= n; i += RVW) {
        RVREAL v;
        memcpy(&v, x + i, sizeof v);
        FSM_SLICE(fsm_max_into_lanes)(lane, &v);
    }
    return FSM_SLICE(fsm_max_finish)(lane, x, i, n);
}

FSM_ALWAYS_INLINE ACC FSM_SLICE(fsm_combine_lanes)(ACC *lane)
{
    for (int width = FSM_LANES / 2; width > 0; width /= 2)
        for (int k = 0; k < width; k++) lane[k] += lane[k + width];
    return lane[0];
}

FSM_ALWAYS_INLINE ACC FSM_SLICE(fsm_slice_dot)(const REAL *a, const REAL *b, ptrdiff_t n)
{
    ACC lane[FSM_LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + FSM_LANES <= n; i += FSM_LANES)
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) lane[k] += (ACC)a[i + k] * (ACC)b[i + k];
    for (int k = 0; i < n; i++, k++) lane[k] += (ACC)a[i] * (ACC)b[i];
    return FSM_SLICE(fsm_combine_lanes)(lane);
}

/* x *= factor in row vectors; meanwhile the first FSM_FETCH_NEXT values at
 * fetch (unless NULL) are fetched: the next row's result, which its first
 * pass writes (see softmax_template.h's fsm_softmax_row); and unless next is
 * NULL, returns the max of the n values at next, as fsm_slice_max would
 * (NaN without next). */
FSM_ALWAYS_INLINE REAL FSM_SLICE(fsm_scale)(REAL *x, ptrdiff_t n, REAL factor, const REAL *fetch,
                                            const REAL *next)
{
    REAL lane[RVW];
    FSM_SLICE(fsm_max_start)(lane);
    ptrdiff_t i = 0;
    for (; i + RVW <= n; i += RVW) {
        RVREAL v;
        memcpy(&v, x + i, sizeof v);
        v *= factor;
        memcpy(x + i, &v, sizeof v);
        if (fetch && i < FSM_FETCH_NEXT) __builtin_prefetch(fetch + i);
        if (next) {
            memcpy(&v, next + i, sizeof v);
            FSM_SLICE(fsm_max_into_lanes)(lane, &v);
        }
    }
    const REAL next_max = next ? FSM_SLICE(fsm_max_finish)(lane, next, i, n) : (REAL)NAN;
    for (; i < n; i++) x[i] *= factor;
    return next_max;
}

/* Index of the largest entry, the first one on ties; a NaN counts as larger
 * than everything (the first NaN wins), as numpy.argmax.  Strided: one
 * element at a time. */
FSM_ALWAYS_INLINE ptrdiff_t FSM_SLICE(fsm_slice_argmax)(const REAL *x, ptrdiff_t n, ptrdiff_t stride)
{
    ptrdiff_t best = 0;
    REAL best_value = x[0];
    for (ptrdiff_t i = 1; i < n && best_value == best_value; i++) {
        REAL v = x[i * stride];
        if (v > best_value || v != v) {
            best = i;
            best_value = v;
        }
    }
    return best;
}

/* The same for a contiguous slice, in two vector passes: the max (NaN if
 * there is one), then a search for its first occurrence that tests
 * FSM_LANES entries at a time. */
FSM_ALWAYS_INLINE ptrdiff_t FSM_SLICE(fsm_row_argmax)(const REAL *x, ptrdiff_t n)
{
    REAL lane[FSM_LANES];
    for (int k = 0; k < FSM_LANES; k++) lane[k] = (REAL)-INFINITY;
    ptrdiff_t i = 0;
    for (; i + FSM_LANES <= n; i += FSM_LANES)
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++) {
            REAL v = x[i + k];
            lane[k] = v > lane[k] || v != v ? v : lane[k]; /* once NaN, stays NaN */
        }
    REAL m = (REAL)-INFINITY;
    for (; i < n; i++) m = x[i] > m || x[i] != x[i] ? x[i] : m;
    for (int k = 0; k < FSM_LANES; k++) m = lane[k] > m || lane[k] != lane[k] ? lane[k] : m;
    const int nan = m != m;
    for (i = 0; i + FSM_LANES <= n; i += FSM_LANES) {
        int hit = 0;
        FSM_LANE_LOOP for (int k = 0; k < FSM_LANES; k++)
            hit |= nan ? x[i + k] != x[i + k] : x[i + k] == m;
        if (hit) break;
    }
    for (; i < n; i++)
        if (nan ? x[i] != x[i] : x[i] == m) return i;
    return 0; /* not reached: the max, or a NaN, is somewhere */
}
