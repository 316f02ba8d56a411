"""Softmax-family kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_softmax.py through fastsm/_layout.py) pass C-contiguous
arrays of one dtype, float32 or float64, laid out as (outer, n, inner).
Arrays are typed as ndarray rather than memoryviews: acquiring a memoryview
costs about half a microsecond per argument, a quarter of a small call.

The fast_* functions take the common call whole (contiguous float32 or
float64 arrays along the last axis, `out` absent or an array the kernel can
write as it stands) in a few C-level checks, and
return None for anything else, which fastsm/_layout.py handles.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

from ._fast_path cimport plain_out, same_shape
from ._result_cache cimport empty_like

from ._threads import get_num_threads

cnp.import_array()

cdef extern from "parallel.h":
    ptrdiff_t FSM_PARALLEL_GRAIN

cdef extern from "softmax.h" nogil:
    void fsm_softmax_f32(const float *x, float *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_softmax_f64(const double *x, double *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_log_softmax_f32(const float *x, float *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_log_softmax_f64(const double *x, double *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_hardmax_f32(const float *x, float *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_hardmax_f64(const double *x, double *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_softmax_backward_f32(const float *grad, const float *y, float *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_softmax_backward_f64(const double *grad, const double *y, double *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_log_softmax_backward_f32(const float *grad, const float *logp, float *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)
    void fsm_log_softmax_backward_f64(const double *grad, const double *logp, double *out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int max_threads)

ctypedef void (*unary_f32)(const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int) noexcept nogil
ctypedef void (*unary_f64)(const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int) noexcept nogil
ctypedef void (*binary_f32)(const float *, const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int) noexcept nogil
ctypedef void (*binary_f64)(const double *, const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int) noexcept nogil


cdef inline void run_unary(unary_f32 f32, unary_f64 f64, cnp.ndarray x, cnp.ndarray out,
                           ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            f32(<const float *>xp, <float *>op, outer, n, inner, threads)
    else:
        with nogil:
            f64(<const double *>xp, <double *>op, outer, n, inner, threads)


cdef inline void run_binary(binary_f32 f32, binary_f64 f64, cnp.ndarray a, cnp.ndarray b,
                            cnp.ndarray out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
                            int threads):
    cdef void *ap = cnp.PyArray_DATA(a)
    cdef void *bp = cnp.PyArray_DATA(b)
    cdef void *op = cnp.PyArray_DATA(out)
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32:
        with nogil:
            f32(<const float *>ap, <const float *>bp, <float *>op, outer, n, inner, threads)
    else:
        with nogil:
            f64(<const double *>ap, <const double *>bp, <double *>op, outer, n, inner, threads)


def softmax(cnp.ndarray x, cnp.ndarray out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    run_unary(fsm_softmax_f32, fsm_softmax_f64, x, out, outer, n, inner, threads)


def log_softmax(cnp.ndarray x, cnp.ndarray out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    run_unary(fsm_log_softmax_f32, fsm_log_softmax_f64, x, out, outer, n, inner, threads)


def hardmax(cnp.ndarray x, cnp.ndarray out, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    run_unary(fsm_hardmax_f32, fsm_hardmax_f64, x, out, outer, n, inner, threads)


def softmax_backward(cnp.ndarray grad, cnp.ndarray y, cnp.ndarray out,
                     ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    run_binary(fsm_softmax_backward_f32, fsm_softmax_backward_f64, grad, y, out,
               outer, n, inner, threads)


def log_softmax_backward(cnp.ndarray grad, cnp.ndarray logp, cnp.ndarray out,
                         ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner, int threads):
    run_binary(fsm_log_softmax_backward_f32, fsm_log_softmax_backward_f64, grad, logp, out,
               outer, n, inner, threads)


cdef inline bint plain(object a, object axis):
    """A C-contiguous aligned float32/float64 ndarray in native byte order, of
    at least one element and one dimension, and an int axis naming its last one."""
    if type(a) is not cnp.ndarray or type(axis) is not int:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef int typ = cnp.PyArray_TYPE(arr)
    return (nd > 0 and (typ == cnp.NPY_FLOAT32 or typ == cnp.NPY_FLOAT64)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_SIZE(arr) > 0
            and (axis == -1 or axis == nd - 1))


cdef inline int threads_for(cnp.ndarray x):
    # Below the grain the kernels run on the calling thread whatever they are
    # allowed (and the result never depends on it), so the setting is not read.
    return 1 if cnp.PyArray_SIZE(x) < FSM_PARALLEL_GRAIN else get_num_threads()


cdef object fast_unary(unary_f32 f32, unary_f64 f64, x, axis, out):
    """The kernel's result on x along `axis` (into `out` when given), or None
    when the call is not the common one."""
    if not plain(x, axis):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    if out is not None and not plain_out(out, a, a):
        return None
    cdef cnp.ndarray result = empty_like(a) if out is None else <cnp.ndarray>out
    cdef ptrdiff_t n = cnp.PyArray_DIM(a, cnp.PyArray_NDIM(a) - 1)
    run_unary(f32, f64, a, result, cnp.PyArray_SIZE(a) // n, n, 1, threads_for(a))
    return result


cdef object fast_binary(binary_f32 f32, binary_f64 f64, x, y, axis, out):
    """The same for two arrays of one shape and dtype."""
    if not plain(x, axis) or not plain(y, axis):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x, b = <cnp.ndarray>y
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(b) or not same_shape(a, b):
        return None
    if out is not None and not plain_out(out, a, b):
        return None
    cdef cnp.ndarray result = empty_like(a) if out is None else <cnp.ndarray>out
    cdef ptrdiff_t n = cnp.PyArray_DIM(a, cnp.PyArray_NDIM(a) - 1)
    run_binary(f32, f64, a, b, result, cnp.PyArray_SIZE(a) // n, n, 1, threads_for(a))
    return result


def fast_softmax(x, axis, out):
    return fast_unary(fsm_softmax_f32, fsm_softmax_f64, x, axis, out)


def fast_log_softmax(x, axis, out):
    return fast_unary(fsm_log_softmax_f32, fsm_log_softmax_f64, x, axis, out)


def fast_hardmax(x, axis, out):
    return fast_unary(fsm_hardmax_f32, fsm_hardmax_f64, x, axis, out)


def fast_softmax_backward(grad, y, axis, out):
    return fast_binary(fsm_softmax_backward_f32, fsm_softmax_backward_f64, grad, y, axis, out)


def fast_log_softmax_backward(grad, logp, axis, out):
    return fast_binary(fsm_log_softmax_backward_f32, fsm_log_softmax_backward_f64, grad, logp,
                       axis, out)
