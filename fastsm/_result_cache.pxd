cimport numpy as cnp

# A fresh C-ordered array of x's shape and dtype; large ones from the cache.
cdef cnp.ndarray empty_like(cnp.ndarray x)
