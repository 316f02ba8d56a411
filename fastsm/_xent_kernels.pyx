"""Cross-entropy kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_xent.py) pass C-contiguous arrays laid out as
(outer, n, inner), all of one dtype, float32 or float64, except index targets
(int64, one per sample).  `weight`, `grad` and `loss` may be None (not used,
not written).  Arrays are typed as ndarray rather than memoryviews, as in
_softmax_kernels.pyx: acquiring a memoryview costs about half a microsecond
per argument.
"""
cimport numpy as cnp
from libc.math cimport NAN
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t

from ._fast_path cimport apart, plain_out
from ._result_cache cimport empty_like

import numpy as np

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



cdef object _FLOAT32 = np.float32
cdef object _FLOAT64 = np.float64


cdef inline bint _plain(cnp.ndarray a, int typenum):
    """C-contiguous, aligned, native byte order, of type `typenum`."""
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY_RO(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


def index_fast(logits, target, axis, weight, ignore_index, reduction, label_smoothing, out,
               bint want_grad, int threads):
    """The common call in a few attribute tests: float32 or float64 (N, C)
    logits, C-contiguous, classes last; int64 targets (N,), all valid; no
    weight; "mean" or "sum"; no `out`, or one the gradient fits as it stands
    (out=logits included).  Returns (loss, gradient or None) as the general
    path would, or None for any other call (the general path then handles
    it, errors included)."""
    if (type(logits) is not np.ndarray or type(target) is not np.ndarray or weight is not None
            or type(axis) is not int or type(ignore_index) is not int
            or type(label_smoothing) is not float and type(label_smoothing) is not int):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>logits, t = <cnp.ndarray>target
    if cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_NDIM(t) != 1 or not (axis == -1 or axis == 1):
        return None
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    if not _plain(x, cnp.NPY_FLOAT32 if f32 else cnp.NPY_FLOAT64) or not _plain(t, cnp.NPY_INT64):
        return None
    cdef ptrdiff_t rows = cnp.PyArray_DIM(x, 0), n = cnp.PyArray_DIM(x, 1)
    if rows == 0 or n == 0 or cnp.PyArray_DIM(t, 0) != rows:
        return None
    cdef bint mean = reduction == "mean"
    if (not (mean or reduction == "sum") or not 0.0 <= label_smoothing <= 1.0
            or not -2**63 <= ignore_index < 2**63):
        return None
    if out is not None and not (plain_out(out, x, x) and apart(<cnp.ndarray>out, t)):
        return None
    cdef const int64_t *tp = <const int64_t *>cnp.PyArray_DATA(t)
    cdef int64_t ignore = ignore_index
    cdef double smoothing = label_smoothing, weight_sum, total
    cdef ptrdiff_t bad
    with nogil:
        # the weight sum does not depend on the dtype without weights
        bad = fsm_xent_check_index_f32(tp, rows, n, ignore, NULL, &weight_sum)
    if bad >= 0:
        return None
    grad = None
    if want_grad:
        grad = out if out is not None else empty_like(x)
    cdef double scale = (1.0 / weight_sum if weight_sum else 0.0) if mean else 1.0
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *gp = data_or_null(grad)
    with nogil:
        if f32:
            total = fsm_xent_index_f32(<const float *>xp, tp, NULL, ignore, smoothing, scale,
                                       <float *>gp, NULL, rows, n, 1, threads)
        else:
            total = fsm_xent_index_f64(<const double *>xp, tp, NULL, ignore, smoothing, scale,
                                       <double *>gp, NULL, rows, n, 1, threads)
    if mean:
        total = total / weight_sum if weight_sum else NAN
    return (_FLOAT32 if f32 else _FLOAT64)(total), grad
