"""Checks the kernel modules' fast paths share: whether arrays can go to a
kernel as they stand (cimported; inline, no module of its own)."""
cimport numpy as cnp


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int nd = cnp.PyArray_NDIM(a), d
    if cnp.PyArray_NDIM(b) != nd:
        return False
    for d in range(nd):
        if cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d):
            return False
    return True


cdef inline bint apart(cnp.ndarray a, cnp.ndarray b):
    """Whether two contiguous arrays share no byte."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa + cnp.PyArray_NBYTES(a) <= pb or pb + cnp.PyArray_NBYTES(b) <= pa


cdef inline bint plain_out(object out, cnp.ndarray like, cnp.ndarray other):
    """`out` writable, of `like`'s shape and dtype, contiguous, aligned, in
    native byte order, and exactly on top of each of the inputs `like` and
    `other` or apart from it."""
    if type(out) is not cnp.ndarray:
        return False
    cdef cnp.ndarray o = <cnp.ndarray>out
    if (cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(like) or not same_shape(o, like)
            or not cnp.PyArray_IS_C_CONTIGUOUS(o) or not cnp.PyArray_ISALIGNED(o)
            or not cnp.PyArray_ISNOTSWAPPED(o) or not cnp.PyArray_ISWRITEABLE(o)):
        return False
    for src in (like, other):
        if (cnp.PyArray_DATA(o) != cnp.PyArray_DATA(<cnp.ndarray>src)
                and not apart(o, <cnp.ndarray>src)):
            return False
    return True
