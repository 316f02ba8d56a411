"""Softmax-family kernels: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_softmax.py through fastsm/_layout.py) pass C-contiguous
arrays of one dtype, float32 or float64, laid out as (outer, n, inner).
Arrays are typed as ndarray rather than memoryviews: acquiring a memoryview
costs about half a microsecond per argument, a quarter of a small call.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()

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
