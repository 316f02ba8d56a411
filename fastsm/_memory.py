"""The memory fastsm keeps for large results, and how to give it back."""
from . import _result_cache


def release_memory():
    """Return the memory cached for large results to the operating system.

    A result (or scratch array) of 256 KiB or more is allocated from a
    cache of mapped blocks rather than by ``malloc``, which maps fresh memory
    for large blocks on every call, and gives the top of its heap back to
    the system when several results are freed together, so that the next
    call page-faults all of it again.  When such an array is freed, its
    block stays mapped, up to 256 MiB in at most 16 blocks (least recently
    freed blocks go first), and the next result of about its size reuses
    it.  Call this to unmap the cached blocks now, for instance after
    training, before the process does something else memory-hungry.  Arrays
    in use are not affected; a later large result fills the cache again.

    Returns
    -------
    int
        The number of bytes released: 0 when nothing is cached.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsm
    >>> y = fastsm.softmax(np.zeros((1_000_000, 10), np.float32))  # 40 MB
    >>> del y  # its block stays mapped, for the next result of that size
    >>> fastsm.release_memory() >= 40_000_000
    True
    >>> fastsm.release_memory()
    0
    """
    return _result_cache.release()
