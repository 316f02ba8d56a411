"""Pieces shared by the fastsm.dask modules: argument checks made on
metadata alone (shape, dtype, chunks), so that bad calls raise before a graph
is built, with the NumPy API's messages; and the log-sum-exp reduction."""
import math

import dask.array as da
import numpy as np

from . import _dask_blocks as _b
from ._layout import as_array


def ghost(shape, dtype):
    """A read-only ndarray of `shape` and `dtype` that holds no memory: what the
    NumPy API's checks see in place of the data."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def to_dask(x, name):
    """`x` as a dask array of known chunk sizes; array-likes become one chunk."""
    if not isinstance(x, da.Array):
        try:
            x = da.asarray(x)
        except Exception as exc:  # ragged lists, objects numpy cannot convert
            raise TypeError(f"{name} must be array-like: {exc}") from None
    if any(math.isnan(s) for s in x.shape):
        raise ValueError(f"{name} has unknown chunk sizes: call {name}.compute_chunk_sizes() "
                         "first")
    return x


def as_dask(x, name):
    """(`x` as a dask array, compute dtype, result dtype)."""
    x = to_dask(x, name)
    _, compute, result = as_array(ghost(x.shape, x.dtype), name)
    return x, compute, result


def no_out(out):
    if out is not None:
        raise TypeError("out= is not supported for dask arrays (they are immutable): "
                        "use the returned array")


def whole(x, axes):
    """Whether every axis of `axes` lies within one chunk."""
    return all(len(x.chunks[a]) == 1 for a in axes)


def sum_of_parts(parts, dtype=None):
    """The sum of an array of one value per block, up to 32 blocks at a
    time along each axis.  (Dask's own tree splits 16 blocks per node among
    the axes: 4 x 4 for a 2-d array, so a column of 20 parts would take 7
    tasks, each a round trip through the scheduler, where one will do.)"""
    return parts.sum(dtype=dtype, split_every=dict.fromkeys(range(parts.ndim), 32))


def meta(ndim, dtype):
    return np.empty((0,) * ndim, dtype)


def lse(x, axes):
    """The LSE record (max, sum of exp) of each slice over `axes` (keepdims):
    one partial per chunk, combined in a tree."""
    return da.reduction(x, _b.lse_chunk, _b.lse_combine, combine=_b.lse_combine, axis=axes,
                        keepdims=True, dtype=_b.LSE, meta=meta(x.ndim, _b.LSE),
                        name="fastsm-lse")
