"""The sigmoid and binary cross-entropy kernels: arrays in, the C kernel run
outside the GIL.

Callers (fastsm/_binary.py) pass C-contiguous arrays of one dtype, float32 or
float64, of the same size; weights may be shorter, their values repeating.
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
    double fsm_bce_loss_f32(const float *x, const float *t, const float *weight,
                            ptrdiff_t weight_period, const float *pos_weight,
                            ptrdiff_t pos_period, float *loss_out, ptrdiff_t n, int max_threads)
    double fsm_bce_loss_f64(const double *x, const double *t, const double *weight,
                            ptrdiff_t weight_period, const double *pos_weight,
                            ptrdiff_t pos_period, double *loss_out, ptrdiff_t n, int max_threads)


cdef void *data_or_null(a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef ptrdiff_t size_or_zero(a):
    return 0 if a is None else cnp.PyArray_SIZE(<cnp.ndarray>a)


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
    cdef void *pp = data_or_null(pos_weight)
    cdef ptrdiff_t period = size_or_zero(pos_weight)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(x)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            fsm_sigmoid_minus_f32(<const float *>xp, <const float *>tp, <const float *>pp, period,
                                  <float *>op, n, threads)
    else:
        with nogil:
            fsm_sigmoid_minus_f64(<const double *>xp, <const double *>tp, <const double *>pp,
                                  period, <double *>op, n, threads)


def bce_loss(cnp.ndarray x, cnp.ndarray t, weight, pos_weight, out, int threads):
    """weight, pos_weight: None, or C-contiguous arrays whose values repeat
    along x.  out: None for the sum of the losses (returned), else the array
    they are written to (None returned)."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *tp = cnp.PyArray_DATA(t)
    cdef void *wp = data_or_null(weight)
    cdef void *pp = data_or_null(pos_weight)
    cdef void *op = data_or_null(out)
    cdef ptrdiff_t w_period = size_or_zero(weight), p_period = size_or_zero(pos_weight)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(x)
    cdef double total
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            total = fsm_bce_loss_f32(<const float *>xp, <const float *>tp, <const float *>wp,
                                     w_period, <const float *>pp, p_period, <float *>op, n,
                                     threads)
    else:
        with nogil:
            total = fsm_bce_loss_f64(<const double *>xp, <const double *>tp, <const double *>wp,
                                     w_period, <const double *>pp, p_period, <double *>op, n,
                                     threads)
    return None if out is not None else total
