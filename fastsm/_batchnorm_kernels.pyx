"""Batch-normalization kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_batchnorm.py) pass C-contiguous arrays: data of one dtype,
float32 or float64, laid out as (outer, C, inner), and float64 per-feature
arrays of length C.  An optional per-feature array is passed as None.
Arrays are typed as ndarray rather than memoryviews: acquiring a memoryview
costs about half a microsecond per argument.

fast_forward and fast_backward take the common call of the public
functions whole, checks included, and return None for anything else.
"""
cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stddef cimport ptrdiff_t
from libc.string cimport memcpy

from ._fast_path cimport plain_out, same_shape
from ._result_cache cimport empty_like

from ._threads import get_num_threads

cnp.import_array()

cdef extern from "parallel.h":
    ptrdiff_t FSM_PARALLEL_GRAIN

cdef extern from "batchnorm.h" nogil:
    void fsm_bn_update_running_f32(float *r, const double *batch, ptrdiff_t C, double momentum, double factor)
    void fsm_bn_update_running_f64(double *r, const double *batch, ptrdiff_t C, double momentum, double factor)
    void fsm_bn_invstd(const double *v, ptrdiff_t C, double divisor, double eps, const double *weight, double *invstd, double *scale)
    void fsm_bn_backward_factors(const double *invstd, const double *weight, const double *sum_g, const double *sum_gxc, ptrdiff_t C, double count, double *k, double *s, double *t)
    void fsm_bn_widen_f32(const float *src, ptrdiff_t n, double *dst)
    void fsm_bn_narrow_f32(const double *src, ptrdiff_t n, float *dst)
    int fsm_bn_stats_f32(const float *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, double *mean, double *m2, int max_threads)
    int fsm_bn_stats_f64(const double *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, double *mean, double *m2, int max_threads)
    int fsm_bn_grad_sums_f32(const float *g, const float *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *mean, double *sum_g, double *sum_gxc, int max_threads)
    int fsm_bn_grad_sums_f64(const double *g, const double *x, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *mean, double *sum_g, double *sum_gxc, int max_threads)
    int fsm_bn_apply_f32(const float *g, const float *x, float *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *a, const double *s, const double *mean, const double *t, int max_threads)
    int fsm_bn_apply_f64(const double *g, const double *x, double *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *a, const double *s, const double *mean, const double *t, int max_threads)
    int fsm_bn_train_f32(const float *x, float *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *weight, const double *bias, double eps, double *mean, double *m2, double *invstd, int max_threads)
    int fsm_bn_train_f64(const double *x, double *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *weight, const double *bias, double eps, double *mean, double *m2, double *invstd, int max_threads)
    int fsm_bn_backward_f32(const float *g, const float *x, float *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *mean, const double *invstd, const double *weight, double *sum_g, double *sum_gxc, int max_threads)
    int fsm_bn_backward_f64(const double *g, const double *x, double *out, ptrdiff_t outer, ptrdiff_t C, ptrdiff_t inner, const double *mean, const double *invstd, const double *weight, double *sum_g, double *sum_gxc, int max_threads)


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


# ---- the common call, whole -------------------------------------------------
#
# fast_forward and fast_backward take the common call in a few C-level checks
# and return None for anything else, which fastsm/_batchnorm.py sends through
# the general path (and its validation and error messages).  Common: C-contiguous
# aligned float32/float64 data, an int axis, per-feature arrays that are
# contiguous float32/float64 of length C (or None where allowed), float
# momentum and eps in range, and `out` None or an array of the data's shape
# and dtype that is the input itself or apart from it.


cdef inline bint plain_data(object a):
    """A nonempty C-contiguous aligned float32/float64 ndarray in native byte
    order, of at least one dimension."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int typ = cnp.PyArray_TYPE(arr)
    return (cnp.PyArray_NDIM(arr) > 0 and (typ == cnp.NPY_FLOAT32 or typ == cnp.NPY_FLOAT64)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_SIZE(arr) > 0)


cdef inline bint plain_param(object a, ptrdiff_t C):
    """A contiguous aligned float32/float64 ndarray in native byte order, of
    shape (C,)."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int typ = cnp.PyArray_TYPE(arr)
    return (cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_DIM(arr, 0) == C
            and (typ == cnp.NPY_FLOAT32 or typ == cnp.NPY_FLOAT64)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr))


cdef inline bint plain_running(object r, ptrdiff_t C):
    """A running statistic the training call may update in place, or None."""
    return r is None or (plain_param(r, C) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>r))


cdef inline int feature_axis(cnp.ndarray x, object axis):
    """`axis` as an index into x's dimensions, or -1 if it is not a plain one."""
    if type(axis) is not int:
        return -1
    cdef int nd = cnp.PyArray_NDIM(x)
    cdef long a = axis
    if a < -nd or a >= nd:
        return -1
    return <int>(a + nd if a < 0 else a)


cdef inline void to_double(object a, double *dst, ptrdiff_t C):
    """dst = a (a plain_param) in float64."""
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32:
        fsm_bn_widen_f32(<const float *>cnp.PyArray_DATA(arr), C, dst)
    else:
        memcpy(dst, cnp.PyArray_DATA(arr), C * sizeof(double))


cdef inline double *to_double_or_null(object a, double *dst, ptrdiff_t C):
    if a is None:
        return NULL
    to_double(a, dst, C)
    return dst


cdef cnp.ndarray per_feature_result(const double *v, ptrdiff_t C, int typ):
    """A new (C,) array of dtype typ holding v."""
    cdef cnp.npy_intp n = C
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(1, &n, typ, 0)
    if typ == cnp.NPY_FLOAT32:
        fsm_bn_narrow_f32(v, C, <float *>cnp.PyArray_DATA(r))
    else:
        memcpy(cnp.PyArray_DATA(r), v, C * sizeof(double))
    return r


cdef inline void update_from(object r, const double *batch, ptrdiff_t C, double momentum,
                             double factor):
    """update_running of a plain_running r from a C array."""
    cdef cnp.ndarray arr = <cnp.ndarray>r
    if cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32:
        fsm_bn_update_running_f32(<float *>cnp.PyArray_DATA(arr), batch, C, momentum, factor)
    else:
        fsm_bn_update_running_f64(<double *>cnp.PyArray_DATA(arr), batch, C, momentum, factor)


cdef inline int threads_for(cnp.ndarray x):
    # Below the grain the kernels run on the calling thread whatever they are
    # allowed (and the result never depends on it), so the setting is not read.
    return 1 if cnp.PyArray_SIZE(x) < FSM_PARALLEL_GRAIN else get_num_threads()


cdef inline cnp.ndarray target_for(object out, cnp.ndarray x):
    if out is not None:
        return <cnp.ndarray>out
    return empty_like(x)


cdef inline void split(cnp.ndarray x, int ax, ptrdiff_t *outer, ptrdiff_t *C, ptrdiff_t *inner):
    """x seen as (outer, C, inner) around axis ax."""
    cdef int d
    outer[0] = 1
    inner[0] = 1
    for d in range(ax):
        outer[0] *= cnp.PyArray_DIM(x, d)
    for d in range(ax + 1, cnp.PyArray_NDIM(x)):
        inner[0] *= cnp.PyArray_DIM(x, d)
    C[0] = cnp.PyArray_DIM(x, ax)


def fast_forward(x, weight, bias, running_mean, running_var, training, momentum, eps, axis,
                 out):
    """batch_norm_forward's (y, mean, invstd) for the common call, else None."""
    if not plain_data(x) or (training is not True and training is not False):
        return None
    if type(momentum) is not float or type(eps) is not float:
        return None
    cdef double mom = momentum, ep = eps
    if not (0.0 <= mom <= 1.0 and ep > 0.0):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int ax = feature_axis(a, axis)
    if ax < 0:
        return None
    cdef ptrdiff_t outer, C, inner
    split(a, ax, &outer, &C, &inner)
    if weight is not None and not plain_param(weight, C):
        return None
    if bias is not None and not plain_param(bias, C):
        return None
    if training:
        if outer * inner < 2 or not plain_running(running_mean, C) \
                or not plain_running(running_var, C):
            return None
    elif not plain_param(running_mean, C) or not plain_param(running_var, C):
        return None
    if out is not None and not plain_out(out, a, a):
        return None

    cdef double *scratch = <double *>PyMem_Malloc(6 * C * sizeof(double))
    if scratch == NULL:
        raise MemoryError("batch norm: out of memory for per-feature values")
    cdef double *mean = scratch
    cdef double *m2 = scratch + C
    cdef double *inv = scratch + 2 * C
    cdef double *scale = scratch + 3 * C
    cdef const double *wp = to_double_or_null(weight, scratch + 4 * C, C)
    cdef const double *bp = to_double_or_null(bias, scratch + 5 * C, C)
    cdef cnp.ndarray y = target_for(out, a)
    cdef int threads = threads_for(a), status = 0, typ = cnp.PyArray_TYPE(a)
    cdef void *xp = cnp.PyArray_DATA(a)
    cdef void *yp = cnp.PyArray_DATA(y)
    try:
        if training:
            with nogil:
                if typ == cnp.NPY_FLOAT32:
                    status = fsm_bn_train_f32(<const float *>xp, <float *>yp, outer, C, inner,
                                              wp, bp, ep, mean, m2, inv, threads)
                else:
                    status = fsm_bn_train_f64(<const double *>xp, <double *>yp, outer, C, inner,
                                              wp, bp, ep, mean, m2, inv, threads)
            check(status)
            if running_mean is not None:
                update_from(running_mean, mean, C, mom, 1.0)
            if running_var is not None:
                update_from(running_var, m2, C, mom, 1.0 / <double>(outer * inner - 1))
        else:
            to_double(running_mean, mean, C)
            to_double(running_var, m2, C)
            fsm_bn_invstd(m2, C, 1.0, ep, wp, inv, scale)
            with nogil:
                if typ == cnp.NPY_FLOAT32:
                    status = fsm_bn_apply_f32(NULL, <const float *>xp, <float *>yp, outer, C,
                                              inner, NULL, scale, mean, bp, threads)
                else:
                    status = fsm_bn_apply_f64(NULL, <const double *>xp, <double *>yp, outer, C,
                                              inner, NULL, scale, mean, bp, threads)
            check(status)
        return y, per_feature_result(mean, C, typ), per_feature_result(inv, C, typ)
    finally:
        PyMem_Free(scratch)


def fast_backward(grad, x, weight, mean, invstd, training, axis, out):
    """batch_norm_backward's (dx, dweight, dbias) for the common call, else None."""
    if not plain_data(grad) or not plain_data(x) or (training is not True
                                                      and training is not False):
        return None
    cdef cnp.ndarray g = <cnp.ndarray>grad, a = <cnp.ndarray>x
    if cnp.PyArray_TYPE(g) != cnp.PyArray_TYPE(a) or not same_shape(g, a):
        return None
    cdef int ax = feature_axis(a, axis)
    if ax < 0:
        return None
    cdef ptrdiff_t outer, C, inner
    split(a, ax, &outer, &C, &inner)
    if weight is not None and not plain_param(weight, C):
        return None
    if not plain_param(mean, C) or not plain_param(invstd, C):
        return None
    if out is not None and not plain_out(out, a, g):
        return None

    cdef double *scratch = <double *>PyMem_Malloc(8 * C * sizeof(double))
    if scratch == NULL:
        raise MemoryError("batch norm: out of memory for per-feature values")
    cdef double *mu = scratch
    cdef double *inv = scratch + C
    cdef double *sum_g = scratch + 2 * C
    cdef double *sum_gxc = scratch + 3 * C
    cdef double *k = scratch + 4 * C
    cdef double *s = scratch + 5 * C
    cdef double *t = scratch + 6 * C
    cdef const double *wp = to_double_or_null(weight, scratch + 7 * C, C)
    cdef double count = <double>(outer * inner)
    cdef cnp.ndarray dx = target_for(out, a)
    cdef int threads = threads_for(a), status = 0, typ = cnp.PyArray_TYPE(a)
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *xp = cnp.PyArray_DATA(a)
    cdef void *dp = cnp.PyArray_DATA(dx)
    cdef ptrdiff_t c
    try:
        to_double(mean, mu, C)
        to_double(invstd, inv, C)
        if training:
            with nogil:
                if typ == cnp.NPY_FLOAT32:
                    status = fsm_bn_backward_f32(<const float *>gp, <const float *>xp,
                                                 <float *>dp, outer, C, inner, mu, inv, wp,
                                                 sum_g, sum_gxc, threads)
                else:
                    status = fsm_bn_backward_f64(<const double *>gp, <const double *>xp,
                                                 <double *>dp, outer, C, inner, mu, inv, wp,
                                                 sum_g, sum_gxc, threads)
            check(status)
        else:
            with nogil:
                if typ == cnp.NPY_FLOAT32:
                    status = fsm_bn_grad_sums_f32(<const float *>gp, <const float *>xp, outer,
                                                  C, inner, mu, sum_g, sum_gxc, threads)
                else:
                    status = fsm_bn_grad_sums_f64(<const double *>gp, <const double *>xp, outer,
                                                  C, inner, mu, sum_g, sum_gxc, threads)
            check(status)
            fsm_bn_backward_factors(inv, wp, sum_g, sum_gxc, C, count, k, s, t)
            with nogil:
                if typ == cnp.NPY_FLOAT32:
                    status = fsm_bn_apply_f32(<const float *>gp, NULL, <float *>dp, outer, C,
                                              inner, k, NULL, NULL, NULL, threads)
                else:
                    status = fsm_bn_apply_f64(<const double *>gp, NULL, <double *>dp, outer, C,
                                              inner, k, NULL, NULL, NULL, threads)
            check(status)
        for c in range(C):
            sum_gxc[c] *= inv[c]
        return dx, per_feature_result(sum_gxc, C, typ), per_feature_result(sum_g, C, typ)
    finally:
        PyMem_Free(scratch)
