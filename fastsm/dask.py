"""fastsm on dask arrays: the same names and signatures as the NumPy API,
taking and returning lazy ``dask.array`` objects (scalars as 0-d arrays)
whose computed values equal the NumPy API's on the computed data, however
the input is chunked.  Runs on whatever Dask scheduler is active: threads,
processes, or a ``distributed`` cluster (``Client("tcp://...")``).

How the work is split:

* When the axis an operation runs along lies within one chunk, each chunk is
  one task that calls fastsm's kernel (``map_blocks``): no rechunk, no copy.
* When it spans several chunks, nothing is rechunked either: each chunk
  gives a small partial result (max and sum of exp for the log-sum-exp;
  the sum of grad * y or of grad for the backward passes; count, mean and
  m2 for batch norm, sum(grad) and sum(grad * (x - mean)) for its backward
  pass; max and first argmax for hardmax), the partials are
  combined in a tree (``dask.array.reduction``), and a blockwise pass
  writes the result.
* The binary case (sigmoid, binary cross-entropy) is elementwise: one task
  per chunk, and the chunks' float64 loss sums added in a tree.

Each task runs fastsm's kernels on one thread: the parallelism is Dask's, one
task per worker thread.  ``out=`` is not supported (dask arrays are
immutable): passing it is a ``TypeError``.  Arguments are checked when the
function is called, from the arrays' shapes and dtypes, with the NumPy API's
errors; only what depends on the values (an index target outside the
classes) raises when the result is computed.

This module needs ``dask[array]`` (and ``distributed`` for a cluster);
``import fastsm`` alone does not import dask.
"""
import warnings

import dask.array as da

from . import _dask_blocks as _b
from ._dask_common import as_dask, lse, meta, no_out, whole
from ._dask_batchnorm import batch_norm_backward, batch_norm_forward, batch_norm_stats
from ._dask_binary import (binary_cross_entropy_with_logits,
                           binary_cross_entropy_with_logits_grad, sigmoid)
from ._dask_linear import linear_loss_and_grad
from ._dask_xent import cross_entropy, cross_entropy_grad, cross_entropy_with_grad
from ._layout import axes_to_end, check_scalar_axis, common_dtypes, normalize_axis
from ._softmax import hardmax as _hardmax, log_softmax as _log_softmax, softmax as _softmax
from ._softmax import log_softmax_backward as _log_softmax_backward
from ._softmax import softmax_backward as _softmax_backward

__all__ = ["softmax", "log_softmax", "hardmax", "softmax_backward", "log_softmax_backward",
           "cross_entropy", "cross_entropy_grad", "cross_entropy_with_grad", "sigmoid",
           "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_grad",
           "batch_norm_forward", "batch_norm_backward", "batch_norm_stats",
           "linear_loss_and_grad"]


def _reduced_axes(ndim, axis, allow_axes):
    if allow_axes and (axis is None or isinstance(axis, tuple)):
        perm, count = axes_to_end(axis, ndim)
        return perm[ndim - count:]
    if ndim == 0:  # one slice of one value
        check_scalar_axis(axis)
        return ()
    return (normalize_axis(axis, ndim),)


def _by_block(kernel, x, axis, result):
    """kernel(block, axis=axis) on every block, one task each."""
    return da.map_blocks(_b.single_threaded, kernel, x, axis=axis, dtype=result,
                         meta=meta(x.ndim, result))


def _exp_family(kernel, from_lse, x, axis, out):
    no_out(out)
    x, compute, result = as_dask(x, "x")
    axes = _reduced_axes(x.ndim, axis, allow_axes=True)
    if whole(x, axes):
        return _by_block(kernel, x, axis, result)
    return da.map_blocks(from_lse, x, lse(x, axes), compute, result, dtype=result,
                         meta=meta(x.ndim, result))


def softmax(x, axis=-1, *, out=None):
    """``fastsm.softmax`` of a dask array, lazily.

    Parameters
    ----------
    x : dask.array.Array or array_like
    axis : int, tuple of ints or None, default -1
        As in ``fastsm.softmax``; the axes may span several chunks.
    out : None
        Not supported for dask arrays.

    Returns
    -------
    dask.array.Array
        Of `x`'s shape and chunks, the result dtype of ``fastsm.softmax``.

    Raises
    ------
    TypeError, ValueError
        As ``fastsm.softmax``, at call time; TypeError for `out`.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> x = da.from_array([[1.0, 1.0, 2.0, 0.0]], chunks=(1, 2))
    >>> fastsm.dask.softmax(x).compute().round(4)
    array([[0.1966, 0.1966, 0.5344, 0.0723]])
    """
    return _exp_family(_softmax, _b.softmax_from_lse, x, axis, out)


def log_softmax(x, axis=-1, *, out=None):
    """``fastsm.log_softmax`` of a dask array, lazily; arguments as `softmax`.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> x = da.from_array([0.0, 0.0, 0.0, 0.0], chunks=2)
    >>> fastsm.dask.log_softmax(x).compute().round(4)
    array([-1.3863, -1.3863, -1.3863, -1.3863])
    """
    return _exp_family(_log_softmax, _b.log_softmax_from_lse, x, axis, out)


def hardmax(x, axis=-1, *, out=None):
    """``fastsm.hardmax`` of a dask array, lazily: the one-hot of the first
    argmax (NaN counts as the largest, as ``numpy.argmax``).

    Across chunks, each chunk gives its (max, first argmax) and dask combines
    them in order (``dask.array.argmax``), so the first occurrence wins.

    Parameters
    ----------
    x : dask.array.Array or array_like
    axis : int, default -1
    out : None

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> x = da.from_array([[3.0, 1.0, 3.0, 0.0]], chunks=(1, 2))
    >>> fastsm.dask.hardmax(x).compute()
    array([[1., 0., 0., 0.]])
    """
    no_out(out)
    x, _, result = as_dask(x, "x")
    axes = _reduced_axes(x.ndim, axis, allow_axes=False)
    if whole(x, axes):
        return _by_block(_hardmax, x, axis, result)
    (a,) = axes
    if x.shape[a] == 0:
        return x.astype(result)
    # dask's argmax fails on an empty chunk: it reads the others only
    filled = [i for i, size in enumerate(x.chunks[a]) if size]
    scanned = x.blocks[(slice(None),) * a + (filled,)] if len(filled) < len(x.chunks[a]) else x
    first = da.argmax(scanned, axis=a, keepdims=True)
    position = da.arange(x.shape[a], chunks=(x.chunks[a],))
    position = position[(None,) * a + (slice(None),) + (None,) * (x.ndim - a - 1)]
    with warnings.catch_warnings():  # the one-hot has x's chunks, more than either operand
        warnings.simplefilter("ignore", da.PerformanceWarning)
        return (position == first).astype(result)


def _backward(kernel, from_sum, summand, grad, other, name, axis, out):
    """A backward pass ``f(grad, other, sum along axis of summand(grad, other))``:
    the kernel on each block when the axis lies within one chunk, else float64
    partial sums combined in dask's tree and a blockwise pass."""
    no_out(out)
    grad, *grad_dtypes = as_dask(grad, "grad")
    other, *other_dtypes = as_dask(other, name)
    if other.shape != grad.shape:
        raise ValueError(f"{name} has shape {other.shape}, grad has shape {grad.shape}")
    compute, result = common_dtypes(grad_dtypes, other_dtypes)
    axes = _reduced_axes(grad.ndim, axis, allow_axes=False)
    if other.chunks != grad.chunks:
        other = other.rechunk(grad.chunks)
    if whole(grad, axes):
        return da.map_blocks(_b.single_threaded, kernel, grad, other, axis=axis, dtype=result,
                             meta=meta(grad.ndim, result))
    # split_every given: the tree (and so the rounding) does not follow dask's config
    total = summand(grad.astype(_b.F64), other.astype(_b.F64)).sum(
        axis=axes, keepdims=True, split_every=dict.fromkeys(axes, 16))
    return da.map_blocks(from_sum, grad, other, total, compute, result, dtype=result,
                         meta=meta(grad.ndim, result))


def softmax_backward(grad, y, axis=-1, *, out=None):
    """``fastsm.softmax_backward`` of dask arrays, lazily:
    ``y * (grad - sum(grad * y, axis))``.

    Parameters
    ----------
    grad, y : dask.array.Array or array_like
        Of one shape; `y` is rechunked to `grad`'s chunks when they differ.
    axis : int, default -1
        May span several chunks.
    out : None
        Not supported for dask arrays.

    Returns
    -------
    dask.array.Array
        Of `grad`'s shape and chunks, the result dtype of the NumPy API.

    Raises
    ------
    TypeError, ValueError
        As ``fastsm.softmax_backward``, at call time; TypeError for `out`.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> g = da.from_array([1.0, 0.0, 0.0, 0.0], chunks=2)
    >>> y = da.from_array([0.25, 0.25, 0.25, 0.25], chunks=2)
    >>> fastsm.dask.softmax_backward(g, y).compute()
    array([ 0.1875, -0.0625, -0.0625, -0.0625])
    """
    return _backward(_softmax_backward, _b.softmax_backward_from_sum, lambda g, y: g * y,
                     grad, y, "y", axis, out)


def log_softmax_backward(grad, logp, axis=-1, *, out=None):
    """``fastsm.log_softmax_backward`` of dask arrays, lazily:
    ``grad - exp(logp) * sum(grad, axis)``; arguments as `softmax_backward`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsm.dask
    >>> g = da.from_array([1.0, 0.0, 0.0, 0.0], chunks=2)
    >>> logp = da.from_array(np.log([0.25, 0.25, 0.25, 0.25]), chunks=2)
    >>> fastsm.dask.log_softmax_backward(g, logp).compute()
    array([ 0.75, -0.25, -0.25, -0.25])
    """
    return _backward(_log_softmax_backward, _b.log_softmax_backward_from_sum,
                     lambda g, logp: g, grad, logp, "logp", axis, out)
