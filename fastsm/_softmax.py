"""The softmax family: softmax, log_softmax, hardmax and their backward passes.

Each function first offers the call to the kernels' fast path (a contiguous
float32 or float64 array along its last axis, and no `out` or one the
kernel can write as it stands), which declines anything else; the general path is fastsm/_layout.py's `run_slices`.
"""
from . import _softmax_kernels as _k
from ._layout import run_slices

_RAISES = """
    Raises
    ------
    TypeError
        An input of complex, object or string dtype; a non-int axis.
    ValueError
        An axis out of range (``numpy.exceptions.AxisError``); inputs of
        different shapes; an `out` of the wrong shape or dtype, or read-only.
"""


def softmax(x, axis=-1, *, out=None):
    """Softmax along `axis`: ``exp(x - max) / sum(exp(x - max))``.

    Numerically stable for inputs of any magnitude.  As in PyTorch, a slice
    holding NaN or +inf, or only -inf, is NaN throughout, and a -inf entry
    among finite ones gives exactly 0.

    Parameters
    ----------
    x : array_like
        Input.  float32 and float64 are computed natively; float16 in float32;
        integers and bools in float64.
    axis : int, tuple of ints or None, default -1
        The axis (or axes, taken together) each softmax runs along; None means
        all axes, as in ``scipy.special.softmax``.
    out : ndarray, optional
        Where to write the result (may be `x` itself); same shape as `x` and
        the result's dtype.

    Returns
    -------
    ndarray
        The result, of `x`'s shape; `out` if given.
    {raises}
    Examples
    --------
    >>> import fastsm
    >>> fastsm.softmax([[1.0, 1.0], [0.0, 1.0]]).round(4)
    array([[0.5   , 0.5   ],
           [0.2689, 0.7311]])
    """
    result = _k.fast_softmax(x, axis, out)
    return result if result is not None else \
        run_slices(_k.softmax, (x,), ("x",), axis, out, allow_axes=True)


def log_softmax(x, axis=-1, *, out=None):
    """Log of the softmax along `axis`: ``x - max - log(sum(exp(x - max)))``.

    Finite wherever ``x - max`` is representable; -inf where that difference
    overflows or the entry is -inf; NaN throughout a slice with NaN, +inf, or
    only -inf (as PyTorch).  Arguments as in `softmax`.

    Returns
    -------
    ndarray
        The result, of `x`'s shape; `out` if given.
    {raises}
    Examples
    --------
    >>> import fastsm
    >>> fastsm.log_softmax([0.0, 0.0]).round(4)
    array([-0.6931, -0.6931])
    """
    result = _k.fast_log_softmax(x, axis, out)
    return result if result is not None else \
        run_slices(_k.log_softmax, (x,), ("x",), axis, out, allow_axes=True)


def hardmax(x, axis=-1, *, out=None):
    """One-hot of the argmax along `axis` (ties and NaN: the first, as
    ``numpy.argmax``), in `x`'s floating dtype.

    Parameters
    ----------
    x : array_like
    axis : int, default -1
    out : ndarray, optional

    Returns
    -------
    ndarray
        The result, of `x`'s shape; `out` if given.
    {raises}
    Examples
    --------
    >>> import fastsm
    >>> fastsm.hardmax([[3.0, 1.0, 3.0], [0.0, 2.0, 1.0]])
    array([[1., 0., 0.],
           [0., 1., 0.]])
    """
    result = _k.fast_hardmax(x, axis, out)
    return result if result is not None else run_slices(_k.hardmax, (x,), ("x",), axis, out)


def softmax_backward(grad, y, axis=-1, *, out=None):
    """Gradient through softmax: ``y * (grad - sum(grad * y, axis))``.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to the softmax output.
    y : array_like
        The softmax output, ``softmax(x, axis)``; same shape as `grad`.
    axis : int, default -1
    out : ndarray, optional
        May be `grad` or `y` itself.

    Returns
    -------
    ndarray
        Gradient with respect to `x`; `out` if given.
    {raises}
    Examples
    --------
    >>> import fastsm
    >>> fastsm.softmax_backward([1.0, 1.0], [0.25, 0.75])
    array([0., 0.])
    """
    result = _k.fast_softmax_backward(grad, y, axis, out)
    return result if result is not None else \
        run_slices(_k.softmax_backward, (grad, y), ("grad", "y"), axis, out)


def log_softmax_backward(grad, logp, axis=-1, *, out=None):
    """Gradient through log_softmax: ``grad - exp(logp) * sum(grad, axis)``.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to the log_softmax output.
    logp : array_like
        The log_softmax output; same shape as `grad`.
    axis : int, default -1
    out : ndarray, optional
        May be `grad` or `logp` itself.

    Returns
    -------
    ndarray
        Gradient with respect to `x`; `out` if given.
    {raises}
    Examples
    --------
    >>> import fastsm, numpy as np
    >>> fastsm.log_softmax_backward([1.0, 0.0], np.log([0.5, 0.5]))
    array([ 0.5, -0.5])
    """
    result = _k.fast_log_softmax_backward(grad, logp, axis, out)
    return result if result is not None else \
        run_slices(_k.log_softmax_backward, (grad, logp), ("grad", "logp"), axis, out)


for _f in (softmax, log_softmax, hardmax, softmax_backward, log_softmax_backward):
    _f.__doc__ = _f.__doc__.replace("{raises}", _RAISES)
del _f
