"""Cross-entropy of dask arrays (see fastsm.dask).

Whole class slices in a chunk: one task per chunk runs the fused kernel and
gives both the chunk's gradient and its loss (per sample, or summed in
float64); the sums are added in a tree.  For "mean" with class weights the
denominator (the sum of the weights of the non-ignored index targets) is a
reduction of its own over the targets, computed first, and the kernel scales
the gradient by it in the same pass; without weights it is counted by the
kernel tasks themselves (see _whole_classes_counted).

Class axis split across chunks: the log-sum-exp of each sample comes from a
tree reduction of per-chunk (max, sum of exp) partials, then the loss and
gradient are blockwise expressions of it, in float64 (PyTorch's formulas, as
fastsm.reference writes them).
"""
import math

import dask.array as da
import numpy as np

from . import _dask_blocks as _b
from ._dask_common import as_dask, lse, meta, no_out, sum_of_parts, to_dask, whole
from ._xent import _check_options, check_shapes, class_weight

F64 = np.dtype(np.float64)


class _Call:
    """The checked arguments of one call."""
    __slots__ = ("x", "t", "axis", "weight", "ignore_index", "smoothing", "reduction",
                 "is_index", "compute", "result")


def _prepare(logits, target, axis, weight, ignore_index, reduction, label_smoothing):
    c = _Call()
    c.smoothing, c.ignore_index = _check_options(reduction, label_smoothing, ignore_index)
    c.reduction = reduction
    c.x, c.compute, c.result = as_dask(logits, "logits")
    t = to_dask(target, "target")
    c.axis, _, c.is_index = check_shapes(c.x.shape, axis, t.dtype, t.shape)
    c.weight = class_weight(weight, c.x.shape[c.axis], c.compute)
    chunks = c.x.chunks
    if c.is_index:
        chunks = chunks[:c.axis] + chunks[c.axis + 1:]
    c.t = t.rechunk(chunks) if t.chunks != chunks else t
    return c


def _target_options(c):
    return dict(n=c.x.shape[c.axis], ignore_index=c.ignore_index, weight=c.weight)


def _denominator(c):
    """What "mean" divides by: a lazy 0-d float64 array for index targets
    (which it also checks), the number of samples for probabilities."""
    if not c.is_index:
        return float(math.prod(c.t.shape[:c.axis] + c.t.shape[c.axis + 1:]))
    sums = c.t.map_blocks(_b.target_weight_sum, **_target_options(c),
                          chunks=tuple((1,) * len(b) for b in c.t.chunks), dtype=F64,
                          meta=meta(c.t.ndim, F64))
    return sum_of_parts(sums)


def _indices(ndim, axis):
    """blockwise's index letters of the logits, and of index targets (the
    logits' less `axis`)."""
    dims = "".join(chr(ord("a") + d) for d in range(ndim))
    return dims, dims[:axis] + dims[axis + 1:]


def _whole_classes(c, want_grad, denominator):
    """(loss parts, gradient) when each chunk holds whole class slices."""
    x, t, axis = c.x, c.t, c.axis
    dims, index_dims = _indices(x.ndim, axis)
    t_dims = dims
    if c.is_index:
        if denominator is None:  # no denominator pass has checked the targets
            t = t.map_blocks(_b.valid_targets, **_target_options(c), dtype=np.int64)
        t_dims = index_dims  # blockwise pairs the blocks: no reshape tasks
    pairs = da.blockwise(_b.xent_block, dims, x, dims, t, t_dims,
                         denominator, None if denominator is None else "", axis=axis,
                         weight=c.weight, ignore_index=c.ignore_index, smoothing=c.smoothing,
                         per_sample=c.reduction == "none", want_grad=want_grad, dtype=object,
                         meta=meta(x.ndim, object), token="fastsm-xent")
    grad = None
    if want_grad:
        grad = da.map_blocks(_b.item, pairs, 1, dtype=c.result, meta=meta(x.ndim, c.result))
    one = x.chunks[:axis] + ((1,),) + x.chunks[axis + 1:]
    if c.reduction == "none":
        parts = da.map_blocks(_b.item, pairs, 0, chunks=one, dtype=c.result,
                              meta=meta(x.ndim, c.result))
        return da.squeeze(parts, axis), grad
    parts = da.map_blocks(_b.item, pairs, 0, chunks=tuple((1,) * len(b) for b in one),
                          dtype=F64, meta=meta(x.ndim, F64))
    return parts, grad


def _whole_classes_counted(c, want_grad):
    """(loss, gradient) of "mean" over index targets without class weights
    when each chunk holds whole class slices.  The denominator is the number
    of samples not ignored, known only once every target has been read: each
    kernel pass scales its gradient by 1 / (all samples) at once and counts
    its kept samples, and only if some were ignored does a last blockwise step
    rescale the gradient.  So no pass over the targets comes first, and no
    kernel waits for a reduction."""
    x, axis = c.x, c.axis
    dims, index_dims = _indices(x.ndim, axis)
    samples = math.prod(x.shape[:axis] + x.shape[axis + 1:])
    pairs = da.blockwise(_b.xent_counting_block, dims, x, dims, c.t, index_dims,
                         axis=axis, ignore_index=c.ignore_index, smoothing=c.smoothing,
                         samples=samples, want_grad=want_grad, dtype=object,
                         meta=meta(x.ndim, object), token="fastsm-xent-counted")
    ones = tuple((1,) * len(b) for b in x.chunks)
    parts = da.map_blocks(_b.item, pairs, 0, chunks=ones + ((2,),), new_axis=x.ndim, dtype=F64,
                          meta=meta(x.ndim + 1, F64))
    totals = parts.sum(axis=tuple(range(x.ndim)), split_every=dict.fromkeys(range(x.ndim), 32))
    loss = da.map_blocks(_b.finish_counted_loss, totals, c.result, drop_axis=0, dtype=c.result,
                         meta=meta(0, c.result))
    grad = None
    if want_grad:
        grad = da.blockwise(_b.kept_rescaled, dims, pairs, dims, totals, "z", samples=samples,
                            concatenate=True, dtype=c.result, meta=meta(x.ndim, c.result))
    return loss, grad


def _split_classes(c, want_grad):
    """(per-sample losses in float64, unscaled gradient in float64, denominator
    for "mean") when the class axis spans chunks."""
    x, axis, n, eps = c.x, c.axis, c.x.shape[c.axis], c.smoothing
    per_class = tuple(-1 if a == axis else 1 for a in range(x.ndim))
    w = np.ones(n) if c.weight is None else c.weight.astype(F64)
    wb = da.from_array(w.reshape(per_class),  # in the logits' chunks: nothing to rechunk
                       chunks=tuple(x.chunks[a] if a == axis else (1,) for a in range(x.ndim)))
    record = lse(x, (axis,))
    shifted = x.astype(F64) - record["m"]
    logp = shifted - da.log(record["s"])
    prob = da.exp(shifted) / record["s"]
    if c.is_index:
        t = c.t.map_blocks(_b.valid_targets, **_target_options(c), dtype=np.int64)
        valid = t != c.ignore_index
        safe = da.where(valid, t, 0)
        classes = da.arange(n, chunks=(x.chunks[axis],)).reshape(per_class)
        onehot = classes == da.expand_dims(safe, axis)
        wy = da.where(valid, safe.map_blocks(_b.take, w, dtype=F64), 0.0)
        # Ignored samples are masked, not multiplied by 0: NaN logits there
        # give a loss and gradient of 0, as in PyTorch.
        loss = (1 - eps) * da.where(valid, -da.where(onehot, logp, 0.0).sum(axis) * wy, 0.0)
        if eps:
            loss = loss + eps / n * da.where(valid, -(logp * wb).sum(axis), 0.0)
        grad = da.where(da.expand_dims(valid, axis),
                        (1 - eps) * da.expand_dims(wy, axis) * (prob - onehot)
                        + eps / n * (w.sum() * prob - wb), 0.0) if want_grad else None
        denominator = wy.sum() if c.reduction == "mean" else None
    else:
        tw = ((1 - eps) * c.t.astype(F64) + eps / n) * wb
        loss = -(logp * tw).sum(axis)
        grad = tw.sum(axis, keepdims=True) * prob - tw if want_grad else None
        denominator = float(math.prod(loss.shape)) if c.reduction == "mean" else None
    return loss, grad, denominator


def _loss_and_grad(c, want_grad):
    """(lazy loss, lazy gradient or None) of a checked call."""
    mean = c.reduction == "mean"
    if whole(c.x, (c.axis,)) and mean and c.is_index and c.weight is None:
        return _whole_classes_counted(c, want_grad)
    if whole(c.x, (c.axis,)):
        denominator = _denominator(c) if mean else None
        parts, grad = _whole_classes(c, want_grad, denominator)
    else:
        parts, grad, denominator = _split_classes(c, want_grad)
        if grad is not None:
            grad = (grad.astype(c.result) if denominator is None else
                    da.map_blocks(_b.scaled, grad, denominator, c.result, dtype=c.result,
                                  meta=meta(grad.ndim, c.result)))
    if c.reduction == "none":
        return parts.astype(c.result), grad
    total = sum_of_parts(parts, F64)
    loss = da.map_blocks(_b.finish_loss, total, denominator, c.result, dtype=c.result,
                         meta=meta(0, c.result))
    return loss, grad


_DOC = """{what}, as ``fastsm.{name}``, of dask arrays, lazily.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Chunked in any way, the class axis included.
    target : dask.array.Array or array_like
        Index targets (the logits' shape less `axis`) or probabilities (the
        logits' shape); rechunked to the logits' chunks when they differ.
    axis, weight, ignore_index, reduction, label_smoothing
        As ``fastsm.{name}``; `weight` is a small array sent with the graph.{out}

    Returns
    -------
    {returns}

    Raises
    ------
    TypeError, ValueError
        As ``fastsm.{name}``, at call time, for everything knowable from the
        shapes, dtypes and options; an index target outside [0, C) (other
        than `ignore_index`) raises ValueError when the result is computed.
"""

_LOSS = """loss : dask.array.Array
        0-d for "mean" and "sum", per sample for "none"; the logits' result dtype."""
_GRAD = """grad : dask.array.Array
        The logits' shape, chunks and result dtype."""
_OUT = """
    out : None
        Not supported for dask arrays."""


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0):
    c = _prepare(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    return _loss_and_grad(c, want_grad=False)[0]


def cross_entropy_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                       reduction="mean", label_smoothing=0.0, out=None):
    no_out(out)
    c = _prepare(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    return _loss_and_grad(c, want_grad=True)[1]


def cross_entropy_with_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                            reduction="mean", label_smoothing=0.0, out=None):
    no_out(out)
    c = _prepare(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    return _loss_and_grad(c, want_grad=True)


cross_entropy.__doc__ = _DOC.format(what="Cross-entropy", name="cross_entropy", out="",
                                    returns=_LOSS)
cross_entropy_grad.__doc__ = _DOC.format(what="Gradient of the cross-entropy",
                                         name="cross_entropy_grad", out=_OUT, returns=_GRAD)
cross_entropy_with_grad.__doc__ = _DOC.format(
    what="Cross-entropy and its gradient, from one pass over each chunk",
    name="cross_entropy_with_grad", out=_OUT, returns=_LOSS + "\n    " + _GRAD)
