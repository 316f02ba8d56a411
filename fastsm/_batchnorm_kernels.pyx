"""Batch-normalization kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_batchnorm.py) pass C-contiguous arrays: data of one dtype,
float32 or float64, laid out as (outer, C, inner), and float64 per-feature
arrays of length C.  An optional per-feature array is passed as None.
Arrays are typed as ndarray rather than memoryviews: acquiring a memoryview
costs about half a microsecond per argument.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()

cdef extern from "batchnorm.h" nogil:
    void fsm_bn_update_running_f32(float *r, const double *batch, ptrdiff_t C, double momentum, double factor)
    void fsm_bn_update_running_f64(double *r, const double *batch, ptrdiff_t C, double momentum, double factor)
    void fsm_bn_invstd(const double *v, ptrdiff_t C, double divisor, double eps, const double *weight, double *invstd, double *scale)
    int fsm_bn_stats_f32(const float *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, double *mean, double *m2, int max_threads)
    int fsm_bn_stats_f64(const double *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, double *mean, double *m2, int max_threads)
    int fsm_bn_grad_sums_f32(const float *g, const float *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *mean, double *sum_g, double *sum_gxc, int max_threads)
    int fsm_bn_grad_sums_f64(const double *g, const double *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *mean, double *sum_g, double *sum_gxc, int max_threads)
    int fsm_bn_apply_f32(const float *g, const float *x, float *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *a, const double *s, const double *mean, const double *t, int max_threads)
    int fsm_bn_apply_f64(const double *g, const double *x, double *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *a, const double *s, const double *mean, const double *t, int max_threads)
    int fsm_bn_train_f32(const float *x, float *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *weight, const double *bias, double eps, double *mean, double *m2, double *invstd, int max_threads)
    int fsm_bn_train_f64(const double *x, double *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *weight, const double *bias, double eps, double *mean, double *m2, double *invstd, int max_threads)


cdef inline void *data_or_null(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline check(int status):
    if status != 0:
        raise MemoryError("batch norm kernel: out of memory for scratch space")


def invstd(cnp.ndarray v, double divisor, double eps, weight, cnp.ndarray invstd,
           cnp.ndarray scale):
    """invstd = 1 / sqrt(v / divisor + eps), scale = invstd * weight (or invstd)."""
    fsm_bn_invstd(<const double *>cnp.PyArray_DATA(v), cnp.PyArray_DIM(v, 0), divisor, eps,
                  <const double *>data_or_null(weight), <double *>cnp.PyArray_DATA(invstd),
                  <double *>cnp.PyArray_DATA(scale))


def update_running(cnp.ndarray r, cnp.ndarray batch, double momentum, double factor):
    """r = (1 - momentum) * r + momentum * factor * batch; r contiguous float32
    or float64, batch float64."""
    cdef const double *bp = <const double *>cnp.PyArray_DATA(batch)
    if cnp.PyArray_TYPE(r) == cnp.NPY_FLOAT32:
        fsm_bn_update_running_f32(<float *>cnp.PyArray_DATA(r), bp, cnp.PyArray_DIM(r, 0),
                                  momentum, factor)
    else:
        fsm_bn_update_running_f64(<double *>cnp.PyArray_DATA(r), bp, cnp.PyArray_DIM(r, 0),
                                  momentum, factor)


def stats(cnp.ndarray x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
          cnp.ndarray mean, cnp.ndarray m2, int threads):
    """Per-feature mean and sum of squared deviations into mean, m2."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef double *mp = <double *>cnp.PyArray_DATA(mean)
    cdef double *qp = <double *>cnp.PyArray_DATA(m2)
    cdef int status
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            status = fsm_bn_stats_f32(<const float *>xp, outer, C, inner, mp, qp, threads)
    else:
        with nogil:
            status = fsm_bn_stats_f64(<const double *>xp, outer, C, inner, mp, qp, threads)
    check(status)


def grad_sums(cnp.ndarray g, cnp.ndarray x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
              cnp.ndarray mean, cnp.ndarray sum_g, cnp.ndarray sum_gxc, int threads):
    """Per-feature sum(g) and sum(g * (x - mean)) into sum_g, sum_gxc."""
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef const double *mp = <const double *>cnp.PyArray_DATA(mean)
    cdef double *sp = <double *>cnp.PyArray_DATA(sum_g)
    cdef double *sxp = <double *>cnp.PyArray_DATA(sum_gxc)
    cdef int status
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            status = fsm_bn_grad_sums_f32(<const float *>gp, <const float *>xp, outer, C, inner,
                                          mp, sp, sxp, threads)
    else:
        with nogil:
            status = fsm_bn_grad_sums_f64(<const double *>gp, <const double *>xp, outer, C, inner,
                                          mp, sp, sxp, threads)
    check(status)


def apply(g, x, cnp.ndarray out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
          a, s, mean, t, int threads):
    """out = a*g + s*(x - mean) + t per feature; g with a, x with s and mean,
    and t may be None."""
    cdef void *gp = data_or_null(g)
    cdef void *xp = data_or_null(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef const double *ap = <const double *>data_or_null(a)
    cdef const double *sp = <const double *>data_or_null(s)
    cdef const double *mp = <const double *>data_or_null(mean)
    cdef const double *tp = <const double *>data_or_null(t)
    cdef int status
    if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32:
        with nogil:
            status = fsm_bn_apply_f32(<const float *>gp, <const float *>xp, <float *>op,
                                      outer, C, inner, ap, sp, mp, tp, threads)
    else:
        with nogil:
            status = fsm_bn_apply_f64(<const double *>gp, <const double *>xp, <double *>op,
                                      outer, C, inner, ap, sp, mp, tp, threads)
    check(status)


def train(cnp.ndarray x, cnp.ndarray out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner,
          weight, bias, double eps, cnp.ndarray mean, cnp.ndarray m2, cnp.ndarray invstd,
          int threads):
    """Training forward: the batch statistics into mean, m2 and invstd, and
    out = (x - mean) * invstd * weight + bias; weight and bias may be None."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef const double *wp = <const double *>data_or_null(weight)
    cdef const double *bp = <const double *>data_or_null(bias)
    cdef double *mp = <double *>cnp.PyArray_DATA(mean)
    cdef double *qp = <double *>cnp.PyArray_DATA(m2)
    cdef double *ip = <double *>cnp.PyArray_DATA(invstd)
    cdef int status
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            status = fsm_bn_train_f32(<const float *>xp, <float *>op, outer, C, inner, wp, bp,
                                      eps, mp, qp, ip, threads)
    else:
        with nogil:
            status = fsm_bn_train_f64(<const double *>xp, <double *>op, outer, C, inner, wp, bp,
                                      eps, mp, qp, ip, threads)
    check(status)
