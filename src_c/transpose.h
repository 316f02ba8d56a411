/* Transposes of small row-major blocks, rows x cols -> cols x rows, used to
 * turn a block of short rows into a slab whose loops run across the rows.
 * On x86-64 with AVX (checked at run time) the work is done in 8x8 (float)
 * and 4x4 (double) register tiles; elsewhere, and at the edges, one element
 * at a time. */
#ifndef FASTSM_TRANSPOSE_H
#define FASTSM_TRANSPOSE_H

#include <stddef.h>

void fsm_transpose_f32(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols);
void fsm_transpose_f64(const double *src, double *dst, ptrdiff_t rows, ptrdiff_t cols);

#endif
