"""The sigmoid kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_binary.py) pass C-contiguous arrays of one dtype, float32 or
float64, of the same size.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()

cdef extern from "sigmoid.h" nogil:
    void fsm_sigmoid_f32(const float *x, float *out, ptrdiff_t n, int max_threads)
    void fsm_sigmoid_f64(const double *x, double *out, ptrdiff_t n, int max_threads)
    void fsm_sigmoid_minus_f32(const float *x, const float *t, const float *pos_weight,
                               ptrdiff_t period, float *out, ptrdiff_t n, int max_threads)
    void fsm_sigmoid_minus_f64(const double *x, const double *t, const double *pos_weight,
                               ptrdiff_t period, double *out, ptrdiff_t n, int max_threads)


def sigmoid(cnp.ndarray x, cnp.ndarray out, int threads):
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(x)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            fsm_sigmoid_f32(<const float *>xp, <float *>op, n, threads)
    else:
        with nogil:
            fsm_sigmoid_f64(<const double *>xp, <double *>op, n, threads)


def sigmoid_minus(cnp.ndarray x, cnp.ndarray t, pos_weight, cnp.ndarray out, int threads):
    """pos_weight: None, or a C-contiguous array whose values repeat along x."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *tp = cnp.PyArray_DATA(t)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef void *pp = NULL
    cdef ptrdiff_t period = 0
    cdef ptrdiff_t n = cnp.PyArray_SIZE(x)
    if pos_weight is not None:
        pp = cnp.PyArray_DATA(<cnp.ndarray>pos_weight)
        period = cnp.PyArray_SIZE(<cnp.ndarray>pos_weight)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            fsm_sigmoid_minus_f32(<const float *>xp, <const float *>tp, <const float *>pp, period,
                                  <float *>op, n, threads)
    else:
        with nogil:
            fsm_sigmoid_minus_f64(<const double *>xp, <const double *>tp, <const double *>pp,
                                  period, <double *>op, n, threads)
