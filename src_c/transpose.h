/* Moves between short rows and the lanes of vectors `width` elements wide
 * (a multiple of L = 8 floats or 4 doubles): `count` rows (a multiple of
 * width) of n elements each, C-contiguous, and their lane form, in which
 * each group of width rows holds element i of its row k at
 * lanes[i*width + k], groups one after another, so that lanes + i*width is
 * the vector of element i of every row of the first group.  On x86-64 with
 * AVX (checked at run time) the work is done in LxL register tiles, and the
 * columns left over (all of them elsewhere) one element at a time. */
#ifndef FASTSM_TRANSPOSE_H
#define FASTSM_TRANSPOSE_H

#include <stddef.h>

#define FSM_LANES_F32 8
#define FSM_LANES_F64 4

void fsm_rows_to_lanes_f32(const float *rows, ptrdiff_t n, ptrdiff_t count, ptrdiff_t width,
                           float *lanes);
void fsm_lanes_to_rows_f32(const float *lanes, ptrdiff_t n, ptrdiff_t count, ptrdiff_t width,
                           float *rows);
void fsm_rows_to_lanes_f64(const double *rows, ptrdiff_t n, ptrdiff_t count, ptrdiff_t width,
                           double *lanes);
void fsm_lanes_to_rows_f64(const double *lanes, ptrdiff_t n, ptrdiff_t count, ptrdiff_t width,
                           double *rows);

/* The same moves with the columns left over (n % L of them) in tiles too:
 * faster for short rows.  fsm_lanes_to_rows_padded writes L - 1 elements
 * past the end of `rows` (garbage, in memory the caller owns). */
void fsm_rows_to_lanes_tiled_f32(const float *rows, ptrdiff_t n, ptrdiff_t count,
                                 ptrdiff_t width, float *lanes);
void fsm_lanes_to_rows_padded_f32(const float *lanes, ptrdiff_t n, ptrdiff_t count,
                                  ptrdiff_t width, float *rows);
void fsm_rows_to_lanes_tiled_f64(const double *rows, ptrdiff_t n, ptrdiff_t count,
                                 ptrdiff_t width, double *lanes);
void fsm_lanes_to_rows_padded_f64(const double *lanes, ptrdiff_t n, ptrdiff_t count,
                                  ptrdiff_t width, double *rows);

/* Rows to a slab and back: element i of row j at slab[i*stride + j], for
 * count rows of n elements (stride >= count). */
void fsm_rows_to_slab_f32(const float *rows, ptrdiff_t n, ptrdiff_t count, float *slab,
                          ptrdiff_t stride);
void fsm_slab_to_rows_f32(const float *slab, ptrdiff_t stride, ptrdiff_t n, ptrdiff_t count,
                          float *rows);
void fsm_rows_to_slab_f64(const double *rows, ptrdiff_t n, ptrdiff_t count, double *slab,
                          ptrdiff_t stride);
void fsm_slab_to_rows_f64(const double *slab, ptrdiff_t stride, ptrdiff_t n, ptrdiff_t count,
                          double *rows);

#endif
