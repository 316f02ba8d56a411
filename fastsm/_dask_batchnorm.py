"""Batch normalization of dask arrays (see fastsm.dask).

The per-feature statistics come from one tree reduction: each chunk's
(count, mean, m2) by ``fastsm.batch_norm_stats``, combined by
``fastsm.merge_stats``, so the feature axis and every other may be chunked.
The backward pass's sums, sum(grad) and sum(grad * (x - mean)) per feature,
are each chunk's in float64 by the NumPy API's kernel, added in a tree; dx
is then one task per chunk.

In training, `batch_norm_forward` computes those statistics at call time
(one reduction, ``dask.compute`` on the active scheduler) and updates the
running statistics in place then, as the NumPy API does; the normalised
output stays lazy, one task per chunk.  In inference nothing is computed at
call time; the running statistics are copied, so a later change to them does
not reach the lazy result.
"""
import dask
import dask.array as da
import numpy as np

from . import _dask_blocks as _b
from ._batchnorm import _update_running
from ._batchnorm_args import backward_args, feature_view, forward_args
from ._dask_common import as_dask, ghost, meta, no_out, to_dask

F64 = np.dtype(np.float64)


def _stats(x, feature):
    """(mean, m2) per feature as lazy float64 arrays of shape (C,)."""
    others = tuple(a for a in range(x.ndim) if a != feature)
    record = da.reduction(x, _b.stats_chunk, _b.stats_combine, combine=_b.stats_combine,
                          axis=others, keepdims=True, dtype=_b.STATS,
                          meta=meta(x.ndim, _b.STATS), name="fastsm-batch-norm-stats")
    record = record.reshape(x.shape[feature])
    return record["mean"], record["m2"]


def batch_norm_stats(x, axis=1):
    """``fastsm.batch_norm_stats`` of a dask array: (count, mean, m2).

    `count` is a Python int (it follows from the shape); `mean` and `m2` are
    lazy float64 arrays of shape (C,), from one tree reduction in which each
    chunk's statistics are combined by ``fastsm.merge_stats``.

    Examples
    --------
    >>> import dask.array as da, fastsm.dask
    >>> x = da.from_array([[1.0, 2.0], [3.0, 6.0], [5.0, 7.0]], chunks=1)
    >>> count, mean, m2 = fastsm.dask.batch_norm_stats(x)
    >>> count, mean.compute(), m2.compute()
    (3, array([3., 5.]), array([ 8., 14.]))
    """
    x, _, _ = as_dask(x, "x")
    v = feature_view(ghost(x.shape, x.dtype), axis)
    mean, m2 = _stats(x, v.axis)
    return v.outer * v.inner, mean, m2


def _per_feature(a, x, feature):
    """A (C,) array (a dask array stays lazy) as a float64 dask array that
    broadcasts along x's other axes, in x's chunks along the feature axis."""
    if a is None:
        return None
    shape = tuple(x.shape[feature] if i == feature else 1 for i in range(x.ndim))
    chunks = tuple(x.chunks[i] if i == feature else (1,) for i in range(x.ndim))
    if isinstance(a, da.Array):
        a = a.astype(F64).reshape(shape)
        return a if a.chunks == chunks else a.rechunk(chunks)
    return da.from_array(np.asarray(a, F64).reshape(shape), chunks=chunks)


def _with_known_chunks(*named):
    """Per-feature arguments (value, name) as given, dask ones checked for
    known chunk sizes."""
    return [to_dask(a, name) if isinstance(a, da.Array) else a for a, name in named]


def _ghost_if_lazy(a):
    """What the NumPy API's checks see of a per-feature argument: a dask
    array's shape and dtype, without computing it."""
    return ghost(a.shape, a.dtype) if isinstance(a, da.Array) else a


def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *,
                       training=True, momentum=0.1, eps=1e-5, axis=1, out=None):
    """``fastsm.batch_norm_forward`` of a dask array: (y, mean, invstd).

    In training the batch statistics are computed when this function is
    called (one reduction on the active scheduler, see the module notes) and
    `running_mean` / `running_var` (NumPy arrays) are updated in place before
    it returns, with PyTorch's rule as in the NumPy API; `y` is lazy.  With
    ``training=False`` nothing is computed until `y` is.  `weight` and `bias`
    may be NumPy or dask arrays of shape (C,); dask ones stay lazy (checked
    from their metadata).

    Returns
    -------
    y : dask.array.Array
        `x`'s shape and chunks, the result dtype.
    mean, invstd : dask.array.Array of shape (C,)
        The statistics used, in the dtype of ``fastsm.batch_norm_forward``.

    Raises
    ------
    TypeError, ValueError
        As ``fastsm.batch_norm_forward``, before anything is computed or
        written; TypeError for `out`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsm.dask
    >>> x = da.from_array(np.array([[1.0, 10.0], [3.0, 30.0]]), chunks=1)
    >>> rm, rv = np.zeros(2), np.ones(2)
    >>> y, mean, invstd = fastsm.dask.batch_norm_forward(x, running_mean=rm, running_var=rv,
    ...                                                  eps=0.0001)
    >>> y.compute().round(4), rm
    (array([[-1., -1.],
           [ 1.,  1.]]), array([0.2, 2. ]))
    """
    no_out(out)
    x, _, _ = as_dask(x, "x")
    affine = _with_known_chunks((weight, "weight"), (bias, "bias"))
    args = forward_args(ghost(x.shape, x.dtype), *map(_ghost_if_lazy, affine), running_mean,
                        running_var, training, momentum, eps, axis, None)
    v = args.view
    if training:
        count = v.outer * v.inner
        mean, m2 = dask.compute(*_stats(x, v.axis))
        with np.errstate(invalid="ignore", divide="ignore"):
            var = m2 / count
        if count:
            if running_mean is not None:
                _update_running(running_mean, mean, args.momentum, 1.0)
            if running_var is not None:
                _update_running(running_var, m2, args.momentum, 1.0 / (count - 1))
    else:
        mean, var = np.array(running_mean, F64), np.array(running_var, F64)
    invstd = 1.0 / np.sqrt(var + args.eps)
    weight, bias = (a if isinstance(a, da.Array) else given
                    for a, given in zip(affine, (args.weight, args.bias)))
    per_feature = [_per_feature(a, x, v.axis) for a in (mean, var, weight, bias)]
    y = da.map_blocks(_b.normalize_block, x, *per_feature, eps=args.eps, feature=v.axis,
                      dtype=v.result, meta=meta(x.ndim, v.result))
    return y, da.from_array(mean.astype(v.compute)), da.from_array(invstd.astype(v.compute))


def batch_norm_backward(grad, x, weight, mean, invstd, *, training=True, axis=1, out=None):
    """``fastsm.batch_norm_backward`` of dask arrays: (dx, dweight, dbias), lazily.

    `weight`, `mean` and `invstd` may be NumPy or dask arrays of shape (C,)
    (such as `batch_norm_forward`'s results).  The per-feature sums reduce
    over every axis but the feature axis, each chunk's by fastsm's kernel,
    added in a tree; any axis may be chunked.

    Returns
    -------
    dx : dask.array.Array
        `x`'s shape and chunks (`grad` is rechunked to them when they
        differ), the result dtype of `grad` and `x`.
    dweight, dbias : dask.array.Array of shape (C,)
        In the dtype of ``fastsm.batch_norm_backward``.

    Raises
    ------
    TypeError, ValueError
        As ``fastsm.batch_norm_backward``, at call time; TypeError for `out`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsm.dask
    >>> x = da.from_array(np.array([[0.0], [1.0], [5.0]]), chunks=1)
    >>> y, mean, invstd = fastsm.dask.batch_norm_forward(x, eps=0.0001)
    >>> grad = da.from_array(np.array([[1.0], [0.0], [0.0]]), chunks=2)
    >>> dx, dw, db = fastsm.dask.batch_norm_backward(grad, x, None, mean, invstd)
    >>> dx.compute().ravel().round(4), dw.compute().round(4), db.compute()
    (array([ 0.1763, -0.2204,  0.0441]), array([-0.9258]), array([1.]))
    """
    no_out(out)
    grad, x = to_dask(grad, "grad"), to_dask(x, "x")
    per_feature = _with_known_chunks((weight, "weight"), (mean, "mean"), (invstd, "invstd"))
    args = backward_args(ghost(grad.shape, grad.dtype), ghost(x.shape, x.dtype),
                         *map(_ghost_if_lazy, per_feature), axis, None)
    v = args.view
    if grad.chunks != x.chunks:
        grad = grad.rechunk(x.chunks)
    weight, mean, invstd = (_per_feature(a, x, v.axis) for a in per_feature)
    dims = "".join(chr(ord("a") + d) for d in range(x.ndim))
    others = tuple(a for a in range(x.ndim) if a != v.axis)
    parts = da.blockwise(_b.grad_sums_block, dims + "z", grad, dims, x, dims, mean, dims,
                         new_axes={"z": 2}, adjust_chunks=dict.fromkeys(others, 1),
                         feature=v.axis, compute=v.compute, dtype=F64,
                         meta=meta(x.ndim + 1, F64))
    sums = parts.sum(axis=others, keepdims=True, split_every=dict.fromkeys(others, 32))
    sum_g, sum_gxc = sums[..., 0], sums[..., 1]
    training_sums = (sum_g, dims, sum_gxc, dims) if training else (None, None, None, None)
    dx = da.blockwise(_b.batch_norm_dx_block, dims, grad, dims, x, dims, mean, dims,
                      invstd, dims, weight, None if weight is None else dims, *training_sums,
                      feature=v.axis, count=v.outer * v.inner, compute=v.compute,
                      result=v.result, dtype=v.result, meta=meta(x.ndim, v.result))
    C = x.shape[v.axis]
    dweight = (sum_gxc * invstd).reshape(C).astype(v.compute)
    return dx, dweight, sum_g.reshape(C).astype(v.compute)
