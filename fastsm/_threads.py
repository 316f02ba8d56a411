"""How many threads the kernels may use.

`set_num_threads` sets the process-wide default; `threads(n)` overrides it for
the code inside the ``with`` block, in the current thread (or asyncio task)
only, so concurrent callers do not change each other's setting.  Results never
depend on the number: the kernels split work in a fixed way.
"""
import contextlib
import contextvars
import operator
import os


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_default = _usable_cores()
_override = contextvars.ContextVar("fastsm_threads", default=None)


def _check(n):
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return n


def set_num_threads(n):
    """Set the default number of threads the kernels use (at least 1)."""
    global _default
    _default = _check(n)


def get_num_threads():
    """The number of threads the kernels use here and now."""
    n = _override.get()
    return _default if n is None else n


@contextlib.contextmanager
def threads(n):
    """Use `n` threads inside the ``with`` block (in this thread only).

    Examples
    --------
    >>> import fastsm
    >>> with fastsm.threads(1):
    ...     fastsm.get_num_threads()
    1
    """
    token = _override.set(_check(n))
    try:
        yield
    finally:
        _override.reset(token)
