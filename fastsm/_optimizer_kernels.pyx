"""The fused Adam step: arrays in, the C kernel run outside the GIL.

Callers (fastsm/_optimizers.py) pass four C-contiguous, non-overlapping
arrays of one dtype, float32 or float64, of the same size.
"""
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t

cnp.import_array()

cdef extern from "adam.h" nogil:
    void fsm_adam_f32(float *p, const float *g, float *m, float *v, ptrdiff_t n, float b1,
                      float b2, float step, float eps, int max_threads)
    void fsm_adam_f64(double *p, const double *g, double *m, double *v, ptrdiff_t n, double b1,
                      double b2, double step, double eps, int max_threads)


def adam(cnp.ndarray p, cnp.ndarray g, cnp.ndarray m, cnp.ndarray v, double b1, double b2,
         double step, double eps, int threads):
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *mp = cnp.PyArray_DATA(m)
    cdef void *vp = cnp.PyArray_DATA(v)
    cdef ptrdiff_t n = cnp.PyArray_SIZE(p)
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32:
        with nogil:
            fsm_adam_f32(<float *>pp, <const float *>gp, <float *>mp, <float *>vp, n, <float>b1,
                         <float>b2, <float>step, <float>eps, threads)
    else:
        with nogil:
            fsm_adam_f64(<double *>pp, <const double *>gp, <double *>mp, <double *>vp, n, b1,
                         b2, step, eps, threads)
