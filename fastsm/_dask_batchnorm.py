"""Batch normalization of dask arrays (see fastsm.dask).

The per-feature statistics come from one tree reduction: each chunk's
(count, mean, m2) by ``fastsm.batch_norm_stats``, combined by
``fastsm.merge_stats``, so the feature axis and every other may be chunked.

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
from ._batchnorm_args import feature_view, forward_args
from ._dask_common import as_dask, ghost, meta, no_out

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
    """A (C,) array as a dask array that broadcasts along x's other axes, in
    x's chunks along the feature axis."""
    if a is None:
        return None
    shape = tuple(-1 if i == feature else 1 for i in range(x.ndim))
    chunks = tuple(x.chunks[i] if i == feature else (1,) for i in range(x.ndim))
    return da.from_array(np.asarray(a, F64).reshape(shape), chunks=chunks)


def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *,
                       training=True, momentum=0.1, eps=1e-5, axis=1, out=None):
    """``fastsm.batch_norm_forward`` of a dask array: (y, mean, invstd).

    In training the batch statistics are computed when this function is
    called (one reduction on the active scheduler, see the module notes) and
    `running_mean` / `running_var` (NumPy arrays) are updated in place before
    it returns, with PyTorch's rule as in the NumPy API; `y` is lazy.  With
    ``training=False`` nothing is computed until `y` is.

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
    args = forward_args(ghost(x.shape, x.dtype), weight, bias, running_mean, running_var,
                        training, momentum, eps, axis, None)
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
    per_feature = [_per_feature(a, x, v.axis) for a in (mean, var, args.weight, args.bias)]
    y = da.map_blocks(_b.normalize_block, x, *per_feature, eps=args.eps, feature=v.axis,
                      dtype=v.result, meta=meta(x.ndim, v.result))
    return y, da.from_array(mean.astype(v.compute)), da.from_array(invstd.astype(v.compute))
