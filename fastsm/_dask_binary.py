"""The binary case of dask arrays (see fastsm.dask): sigmoid and binary
cross-entropy from logits.

Everything is elementwise: one task per chunk runs fastsm's kernel, the
weights' chunks paired with the logits' (a weight that repeats along an axis
keeps one chunk of length 1 there, broadcast by ``dask.array.blockwise``).
The "sum" and "mean" losses add the chunks' float64 sums in a tree; the
"mean" gradient divides each chunk by the element count of the whole array,
as the NumPy API divides its one array.
"""
import math

import dask.array as da
import numpy as np

from . import _dask_blocks as _b
from ._binary import binary_cross_entropy_with_logits as _bce, check_arguments
from ._binary import sigmoid as _sigmoid
from ._dask_common import as_dask, ghost, meta, no_out, sum_of_parts, to_dask

F64 = np.dtype(np.float64)


def sigmoid(x, *, out=None):
    """``fastsm.sigmoid`` of a dask array, lazily: one kernel task per chunk.

    Returns
    -------
    dask.array.Array
        Of `x`'s shape and chunks, the result dtype of ``fastsm.sigmoid``.

    Raises
    ------
    TypeError
        As ``fastsm.sigmoid``, at call time; also for `out`.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> fastsm.dask.sigmoid(da.from_array([0.0, 1000.0, -1000.0], chunks=2)).compute()
    array([0.5, 1. , 0. ])
    """
    no_out(out)
    x, _, result = as_dask(x, "x")
    return da.map_blocks(_b.single_threaded, _sigmoid, x, dtype=result,
                         meta=meta(x.ndim, result))


def _paired(a, x):
    """A weight (or None) as a dask array of x's number of dimensions whose
    chunks pair with x's: x's chunks where it varies, one chunk where its
    length is 1."""
    if a is None:
        return None
    a = a.reshape((1,) * (x.ndim - a.ndim) + a.shape)
    chunks = tuple((1,) if a.shape[i] == 1 else x.chunks[i] for i in range(x.ndim))
    return a if a.chunks == chunks else a.rechunk(chunks)


def _prepare(logits, target, weight, pos_weight, reduction):
    """(x, t, w, pw, result dtype), checked as the NumPy API checks them."""
    x, t = to_dask(logits, "logits"), to_dask(target, "target")
    extra = [None if a is None else to_dask(a, name)
             for a, name in ((weight, "weight"), (pos_weight, "pos_weight"))]
    *_, result = check_arguments(*(None if a is None else ghost(a.shape, a.dtype)
                                   for a in (x, t, *extra)), reduction)
    if t.chunks != x.chunks:
        t = t.rechunk(x.chunks)
    return x, t, _paired(extra[0], x), _paired(extra[1], x), result


def _blockwise(f, x, t, w, pw, dtype, **kwargs):
    dims = "".join(chr(ord("a") + d) for d in range(x.ndim))
    return da.blockwise(f, dims, x, dims, t, dims, w, None if w is None else dims,
                        pw, None if pw is None else dims, dtype=dtype,
                        meta=meta(x.ndim, dtype), **kwargs)


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    """``fastsm.binary_cross_entropy_with_logits`` of dask arrays, lazily.

    Parameters
    ----------
    logits, target : dask.array.Array or array_like
        Of one shape; `target` is rechunked to the logits' chunks when they differ.
    weight, pos_weight : dask.array.Array or array_like, optional
        Broadcastable to the logits' shape, as in the NumPy API.
    reduction : {"mean", "sum", "none"}, default "mean"

    Returns
    -------
    dask.array.Array
        0-d for "mean" and "sum", the logits' shape and chunks for "none"; the
        logits' result dtype.

    Raises
    ------
    TypeError, ValueError
        As ``fastsm.binary_cross_entropy_with_logits``, at call time.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> x = da.from_array([0.0, 0.0, 0.0], chunks=2)
    >>> t = da.from_array([1.0, 0.0, 1.0], chunks=2)
    >>> float(fastsm.dask.binary_cross_entropy_with_logits(x, t).compute().round(4))
    0.6931
    """
    x, t, w, pw, result = _prepare(logits, target, weight, pos_weight, reduction)
    if reduction == "none":
        return _blockwise(_b.bce_losses, x, t, w, pw, result)
    parts = _blockwise(_b.bce_sum, x, t, w, pw, F64, adjust_chunks=dict.fromkeys(range(x.ndim), 1))
    count = math.prod(x.shape) if reduction == "mean" else None
    return da.map_blocks(_b.finish_loss, sum_of_parts(parts), count, result, dtype=result,
                         meta=meta(0, result))


def binary_cross_entropy_with_logits_grad(logits, target, *, weight=None, pos_weight=None,
                                          reduction="mean", out=None):
    """``fastsm.binary_cross_entropy_with_logits_grad`` of dask arrays, lazily:
    one kernel task per chunk; arguments as `binary_cross_entropy_with_logits`.

    Returns
    -------
    dask.array.Array
        The logits' shape, chunks and result dtype.

    Raises
    ------
    TypeError, ValueError
        As the NumPy API, at call time; TypeError for `out`.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> x = da.from_array([0.0, 0.0], chunks=1)
    >>> t = da.from_array([1.0, 0.0], chunks=1)
    >>> fastsm.dask.binary_cross_entropy_with_logits_grad(x, t).compute()
    array([-0.25,  0.25])
    """
    no_out(out)
    x, t, w, pw, result = _prepare(logits, target, weight, pos_weight, reduction)
    count = math.prod(x.shape) if reduction == "mean" else 0
    return _blockwise(_b.bce_grad, x, t, w, pw, result, count=count)
