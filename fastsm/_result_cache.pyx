"""Fresh arrays for fastsm's results, large ones from a cache of mapped
blocks (src_c/result_cache.c) instead of a new mmap per call.

NumPy allocates array data through the memory handler held in a context
variable (NEP 49), and an array keeps the handler it was made with, so an
array allocated under this module's handler goes back to the cache whenever
it is freed.  The handler is set only around the allocation of an array of
at least MIN_BLOCK bytes and restored right after: small arrays, and every
array NumPy allocates for anyone else, keep NumPy's own handler.
"""
cimport numpy as cnp
from libc.string cimport strncpy
from posix.unistd cimport usleep

import numpy as np

cnp.import_array()

cdef extern from "result_cache.h" nogil:
    ctypedef struct fsm_cache:
        pass
    fsm_cache *fsm_cache_new(size_t min_block, size_t capacity, int max_blocks)
    void *fsm_cache_malloc(fsm_cache *cache, size_t size)
    void *fsm_cache_malloc_at(fsm_cache *cache, size_t size, size_t page_offset)
    void *fsm_cache_calloc(fsm_cache *cache, size_t count, size_t size)
    void *fsm_cache_realloc(fsm_cache *cache, void *ptr, size_t size)
    void fsm_cache_free(fsm_cache *cache, void *ptr)
    size_t fsm_cache_release(fsm_cache *cache)
    void fsm_cache_usage(fsm_cache *cache, size_t *bytes, int *blocks)
    void fsm_cache_lock(fsm_cache *cache)
    void fsm_cache_unlock(fsm_cache *cache)

cdef extern from "<pthread.h>" nogil:
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)

cdef extern from "Python.h":
    object PyCapsule_New(void *pointer, const char *name, void *destructor)

# glibc maps every block above its mmap threshold (which it raises up to
# 32 MiB) afresh; below that it reuses freed heap blocks, though not fully (a
# 31 MiB result re-faults part of its pages on every call), and it returns
# the top of the heap to the system once more than twice the threshold is
# free there: a batch norm forward and backward of (256, 1024) float32, two
# 1 MiB results, faulted 480 pages a step, 0.95 ms against 0.1 ms without.
# Below 256 KiB a page fault costs little beside the call.
MIN_BLOCK = 256 << 10
# Room for a training step's large arrays (result, gradient, scratch) of a
# few hundred megabytes at most; more would hold memory the user may want back.
CAPACITY = 256 << 20
MAX_BLOCKS = 16

cdef size_t min_block = MIN_BLOCK
cdef fsm_cache *cache = fsm_cache_new(MIN_BLOCK, CAPACITY, MAX_BLOCKS)
if cache == NULL:
    raise MemoryError("cannot create the result cache")


# Where in its page the data of the array being allocated goes: set by
# allocate, under the GIL, around the one allocation that uses the handler.
DEFAULT_PAGE_OFFSET = 64
cdef size_t page_offset = DEFAULT_PAGE_OFFSET


cdef void *cache_malloc(void *ctx, size_t size) noexcept nogil:
    return fsm_cache_malloc_at(<fsm_cache *>ctx, size, page_offset)

cdef void *cache_calloc(void *ctx, size_t count, size_t size) noexcept nogil:
    return fsm_cache_calloc(<fsm_cache *>ctx, count, size)

cdef void *cache_realloc(void *ctx, void *ptr, size_t size) noexcept nogil:
    return fsm_cache_realloc(<fsm_cache *>ctx, ptr, size)

cdef void cache_free(void *ctx, void *ptr, size_t size) noexcept nogil:
    fsm_cache_free(<fsm_cache *>ctx, ptr)  # the block's header knows its size


# The handler must outlive every array made with it: static storage.
cdef cnp.PyDataMem_Handler handler
strncpy(handler.name, b"fastsm_result_cache", 126)
handler.version = 1
handler.allocator.ctx = cache
handler.allocator.malloc = cache_malloc
handler.allocator.calloc = cache_calloc
handler.allocator.realloc = cache_realloc
handler.allocator.free = cache_free
cdef object handler_capsule = PyCapsule_New(&handler, "mem_handler", NULL)


# A forked child gets the cache (it is only memory) but must not inherit its
# mutex locked by a thread that does not exist there.
cdef void lock_for_fork() noexcept nogil:
    fsm_cache_lock(cache)

cdef void unlock_after_fork() noexcept nogil:
    fsm_cache_unlock(cache)

if pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork) != 0:
    raise MemoryError("cannot register the result cache's fork handlers")


cdef size_t apart_from(object like):
    """The page offset for a result computed from `like` (an ndarray, or
    None), so that the kernels' loads never alias their recent stores in the
    low 12 address bits (4K aliasing: an out 48 bytes past x made softmax of
    4096 x 1000 floats about 30% slower, 0.87 against 0.62-0.65 ms).  A row
    pass loads row r of like while storing row r of the result, and also
    loads row r + 1 (its next row, L bytes on, L the last axis's bytes
    modulo a page): the result goes midway round the longer arc between those
    two streams, at least 1 KiB from each (rows of 512 floats: 12% faster
    than half a page, which lands on the second)."""
    if not isinstance(like, cnp.ndarray):
        return DEFAULT_PAGE_OFFSET
    cdef cnp.ndarray a = <cnp.ndarray>like
    cdef size_t row = 0
    if cnp.PyArray_NDIM(a) > 0:
        row = <size_t>(cnp.PyArray_DIM(a, cnp.PyArray_NDIM(a) - 1) * cnp.PyArray_ITEMSIZE(a)) % 4096
    cdef size_t gap = row // 2 + (2048 if row <= 2048 else 0)
    return (<size_t>cnp.PyArray_DATA(a) + gap) % 4096


cdef cnp.ndarray allocate(int nd, cnp.npy_intp *dims, cnp.dtype dtype, size_t offset):
    """A fresh C-ordered array of a native dtype, from the cache when it has
    at least MIN_BLOCK bytes, its data at `offset` in its page (a multiple of
    64 at most that)."""
    global page_offset
    cdef double nbytes = cnp.PyDataType_ELSIZE(dtype)  # a double cannot overflow
    cdef int d
    for d in range(nd):
        nbytes *= dims[d]
    if nbytes < min_block:
        return cnp.PyArray_EMPTY(nd, dims, dtype.type_num, 0)
    previous = cnp.PyDataMem_SetHandler(handler_capsule)
    page_offset = offset
    try:
        return cnp.PyArray_EMPTY(nd, dims, dtype.type_num, 0)
    finally:
        page_offset = DEFAULT_PAGE_OFFSET
        cnp.PyDataMem_SetHandler(previous)


cdef cnp.ndarray empty_like(cnp.ndarray x):
    return allocate(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), x.descr, apart_from(x))


def empty(tuple shape, cnp.dtype dtype, like=None):
    """``numpy.empty(shape, dtype)`` for a native dtype, C-ordered; from the
    cache when it has at least MIN_BLOCK bytes, apart from the ndarray
    `like` (the input it is computed from) in the low address bits."""
    cdef cnp.npy_intp dims[64]  # NPY_MAXDIMS: 64 in NumPy 2, 32 before
    cdef Py_ssize_t nd = len(shape), d
    if nd > 64:
        return np.empty(shape, dtype)  # raises NumPy's own error
    for d in range(nd):
        dims[d] = shape[d]
    return allocate(<int>nd, dims, dtype, apart_from(like))


def contiguous(cnp.ndarray a, cnp.dtype dtype):
    """``a.astype(dtype, order="C", copy=False)`` for a native dtype, aligned:
    `a` itself when it is C-contiguous and aligned, of that dtype and byte
    order, else a copy, from the cache when it has at least MIN_BLOCK bytes."""
    if (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_EquivTypes(a.descr, dtype)):
        return a
    if <double>cnp.PyArray_SIZE(a) * cnp.PyDataType_ELSIZE(dtype) < min_block:
        return a.astype(dtype, order="C")
    cdef cnp.ndarray result = allocate(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), dtype,
                                       apart_from(a))
    cnp.PyArray_CopyInto(result, a)
    return result


def release():
    """Unmaps every cached block; returns the bytes unmapped."""
    cdef size_t released
    with nogil:
        released = fsm_cache_release(cache)
    return released


def _hold_lock(double seconds):
    """Holds the cache's mutex for `seconds`, without the GIL: lets a test fork
    while another thread is inside the cache."""
    with nogil:
        fsm_cache_lock(cache)
        usleep(<unsigned>(seconds * 1e6))
        fsm_cache_unlock(cache)


def usage():
    """(bytes, blocks) held in the cache now, not counting blocks in use."""
    cdef size_t nbytes
    cdef int blocks
    fsm_cache_usage(cache, &nbytes, &blocks)
    return nbytes, blocks
