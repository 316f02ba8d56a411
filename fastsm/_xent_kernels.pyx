"""Cross-entropy kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_xent.py) pass C-contiguous arrays laid out as
(outer, n, inner), all of one dtype, float32 or float64, except index targets
(int64, one per sample).  `weight`, `grad` and `loss` may be None (not used,
not written).  Arrays are typed as ndarray rather than memoryviews, as in
_softmax_kernels.pyx: acquiring a memoryview costs about half a microsecond
per argument.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t

cnp.import_array()

cdef extern from "xent.h" nogil:
    double fsm_xent_index_f32(const float *x, const int64_t *target, const float *weight,
                              int64_t ignore_index, double label_smoothing, double grad_scale,
                              float *grad, float *loss, ptrdiff_t outer, ptrdiff_t n,
                              ptrdiff_t inner, int max_threads)
    double fsm_xent_index_f64(const double *x, const int64_t *target, const double *weight,
                              int64_t ignore_index, double label_smoothing, double grad_scale,
                              double *grad, double *loss, ptrdiff_t outer, ptrdiff_t n,
                              ptrdiff_t inner, int max_threads)
    double fsm_xent_prob_f32(const float *x, const float *target, const float *weight,
                             double label_smoothing, double grad_scale, float *grad, float *loss,
                             ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    double fsm_xent_prob_f64(const double *x, const double *target, const double *weight,
                             double label_smoothing, double grad_scale, double *grad,
                             double *loss, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                             int max_threads)
    ptrdiff_t fsm_xent_check_index_f32(const int64_t *target, ptrdiff_t count, ptrdiff_t n,
                                       int64_t ignore_index, const float *weight,
                                       double *weight_sum)
    ptrdiff_t fsm_xent_check_index_f64(const int64_t *target, ptrdiff_t count, ptrdiff_t n,
                                       int64_t ignore_index, const double *weight,
                                       double *weight_sum)


cdef inline void *data_or_null(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


def xent_index(cnp.ndarray x, cnp.ndarray target, weight, int64_t ignore_index,
               double label_smoothing, double grad_scale, grad, loss,
               ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    """Sum of the losses; fills `grad` and `loss` when given."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef const int64_t *tp = <const int64_t *>cnp.PyArray_DATA(target)
    cdef void *wp = data_or_null(weight)
    cdef void *gp = data_or_null(grad)
    cdef void *lp = data_or_null(loss)
    cdef double total
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            total = fsm_xent_index_f32(<const float *>xp, tp, <const float *>wp, ignore_index,
                                       label_smoothing, grad_scale, <float *>gp, <float *>lp,
                                       outer, n, inner, threads)
    else:
        with nogil:
            total = fsm_xent_index_f64(<const double *>xp, tp, <const double *>wp, ignore_index,
                                       label_smoothing, grad_scale, <double *>gp, <double *>lp,
                                       outer, n, inner, threads)
    return total


def xent_prob(cnp.ndarray x, cnp.ndarray target, weight, double label_smoothing,
              double grad_scale, grad, loss, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
              int threads):
    """Sum of the losses; fills `grad` and `loss` when given."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *tp = cnp.PyArray_DATA(target)
    cdef void *wp = data_or_null(weight)
    cdef void *gp = data_or_null(grad)
    cdef void *lp = data_or_null(loss)
    cdef double total
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            total = fsm_xent_prob_f32(<const float *>xp, <const float *>tp, <const float *>wp,
                                      label_smoothing, grad_scale, <float *>gp, <float *>lp,
                                      outer, n, inner, threads)
    else:
        with nogil:
            total = fsm_xent_prob_f64(<const double *>xp, <const double *>tp,
                                      <const double *>wp, label_smoothing, grad_scale,
                                      <double *>gp, <double *>lp, outer, n, inner, threads)
    return total


def check_index(cnp.ndarray target, ptrdiff_t n, int64_t ignore_index, weight, bint f32):
    """(position of the first invalid target or -1, sum of the targets' weights)."""
    cdef const int64_t *tp = <const int64_t *>cnp.PyArray_DATA(target)
    cdef ptrdiff_t count = cnp.PyArray_SIZE(target)
    cdef void *wp = data_or_null(weight)
    cdef double weight_sum = 0
    cdef ptrdiff_t bad
    with nogil:
        if f32:
            bad = fsm_xent_check_index_f32(tp, count, n, ignore_index, <const float *>wp,
                                           &weight_sum)
        else:
            bad = fsm_xent_check_index_f64(tp, count, n, ignore_index, <const double *>wp,
                                           &weight_sum)
    return bad, weight_sum
