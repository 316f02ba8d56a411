"""Cross-entropy from logits: the loss, its gradient, or both in one pass.

Every argument is checked here, targets included (one read-only C scan of
the index targets), before the kernel writes anything.  The common call of a
training loop (2-D contiguous logits, int64 labels, no weight) takes a
shortcut in _xent_kernels.index_fast, which makes the same checks in C.
"""
import math
import operator

import numpy as np

from . import _xent_kernels as _k
from ._layout import F32, as_array, check_out, normalize_axis
from ._result_cache import contiguous, empty
from ._threads import get_num_threads

_REDUCTIONS = ("mean", "sum", "none")
_INT64 = np.dtype(np.int64)
_INT64_MAX = np.iinfo(np.int64).max


class _Plan:
    """The checked arguments of one call, in the kernel's layout."""
    __slots__ = ("x", "owned", "target", "is_index", "weight", "ignore_index", "smoothing",
                 "reduction", "compute", "result", "shape", "sample_shape", "outer", "n",
                 "inner")


def _check_options(reduction, label_smoothing, ignore_index):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    try:
        smoothing = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError("label_smoothing must be a real number, "
                        f"got {type(label_smoothing).__name__}") from None
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    try:
        ignore_index = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}") from None
    if not -2**63 <= ignore_index < 2**63:
        raise ValueError(f"ignore_index {ignore_index} does not fit in int64")
    return smoothing, ignore_index


def check_shapes(shape, axis, target_dtype, target_shape):
    """Checks a target of `target_shape` and `target_dtype` against logits of
    `shape` (metadata only, nothing is read).  Returns (axis normalised, the
    index-target shape, whether the target holds class indices)."""
    if len(shape) == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    axis = normalize_axis(axis, len(shape))
    sample_shape = shape[:axis] + shape[axis + 1:]
    if shape[axis] == 0 and math.prod(sample_shape):
        raise ValueError("logits have no classes: the class axis has length 0")
    kind = target_dtype.kind
    if kind in "iu":
        if target_shape != sample_shape:
            hint = (" (an integer array of the logits' shape: pass a one-hot target as float)"
                    if target_shape == shape else "")
            raise ValueError(f"index target has shape {target_shape}, expected {sample_shape} "
                             f"(the logits' shape {shape} without axis {axis}){hint}")
        return axis, sample_shape, True
    if kind == "f":
        if target_shape != shape:
            raise ValueError(f"probability target has shape {target_shape}, expected the "
                             f"logits' shape {shape}")
        return axis, sample_shape, False
    raise TypeError(f"target must hold integer class indices or floating probabilities, "
                    f"got dtype {target_dtype}")


def class_weight(weight, n, compute):
    """The per-class weights as a contiguous array of the compute dtype, or None."""
    if weight is None:
        return None
    w, _, _ = as_array(weight, "weight")
    if w.shape != (n,):
        raise ValueError(f"weight has shape {w.shape}, expected ({n},): one per class")
    return contiguous(w, compute)


def _plan(logits, target, axis, weight, ignore_index, reduction, label_smoothing):
    p = _Plan()
    p.smoothing, p.ignore_index = _check_options(reduction, label_smoothing, ignore_index)
    p.reduction = reduction
    x, p.compute, p.result = as_array(logits, "logits")
    t = target if type(target) is np.ndarray else np.asarray(target)
    axis, p.sample_shape, p.is_index = check_shapes(x.shape, axis, t.dtype, t.shape)
    p.shape = x.shape
    p.outer, p.n = math.prod(x.shape[:axis]), x.shape[axis]
    p.inner = math.prod(x.shape[axis + 1:])
    if p.is_index and t.dtype.kind == "u" and t.size and t.max() > _INT64_MAX:
        raise ValueError(f"target {t.max()} is outside the classes [0, {p.n})")
    p.target = contiguous(t, _INT64 if p.is_index else p.compute)
    p.weight = class_weight(weight, p.n, p.compute)
    p.x = contiguous(x, p.compute)
    # A copy made here may receive the gradient: no second allocation.
    p.owned = p.x is not logits and p.x.flags.owndata
    return p


def _denominator(p):
    """What "mean" divides by; for index targets also validates them."""
    if not p.is_index:
        return float(p.outer * p.inner)
    bad, weight_sum = _k.check_index(p.target, p.n, p.ignore_index, p.weight,
                                     p.compute == F32)
    if bad >= 0:
        where = np.unravel_index(bad, p.sample_shape)
        raise ValueError(f"target {p.target.flat[bad]} at {tuple(map(int, where))} is "
                         f"outside the classes [0, {p.n}) and is not ignore_index "
                         f"({p.ignore_index})")
    return weight_sum


def _grad_destination(p, out):
    """(array the kernel writes the gradient to, array to copy it into after or None)."""
    scratch = p.x if p.owned else None
    if out is None:
        return (empty(p.shape, p.compute, like=p.x) if scratch is None else scratch), None
    check_out(out, p.shape, p.result)
    if out is p.x and (p.is_index or not np.may_share_memory(out, p.target)) \
            and (p.weight is None or not np.may_share_memory(out, p.weight)):
        return out, None  # out=logits, the in-place call of a training loop
    if out.dtype == p.compute and out.flags.c_contiguous and out.flags.aligned \
            and not np.may_share_memory(out, p.target) \
            and (p.weight is None or not np.may_share_memory(out, p.weight)) \
            and (not np.may_share_memory(out, p.x)
                 or out.__array_interface__["data"][0] == p.x.__array_interface__["data"][0]):
        return out, None
    return (empty(p.shape, p.compute, like=p.x) if scratch is None else scratch), out


def _mean(total, denominator):
    """total / denominator with IEEE's answers for a zero denominator, as
    PyTorch: NaN when every target is ignored (0 / 0), +-inf when class
    weights of both signs cancel."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(total) / np.float64(denominator)


def _run(p, want_grad, out):
    """(loss, gradient or None): one kernel pass."""
    denominator = _denominator(p)
    mean = p.reduction == "mean"
    if want_grad:
        grad, copy_to = _grad_destination(p, out)
    else:
        grad = copy_to = None
    samples = p.outer * p.inner
    loss_array = None
    if p.reduction == "none":
        loss_array = empty(p.sample_shape, p.compute)
    if samples and p.n:
        scale = (1.0 / denominator if denominator else 0.0) if mean else 1.0
        if p.is_index:
            total = _k.xent_index(p.x, p.target, p.weight, p.ignore_index, p.smoothing, scale,
                                  grad, loss_array, p.outer, p.n, p.inner, get_num_threads())
        else:
            total = _k.xent_prob(p.x, p.target, p.weight, p.smoothing, scale, grad,
                                 loss_array, p.outer, p.n, p.inner, get_num_threads())
    else:
        total = 0.0
        if loss_array is not None:
            loss_array[...] = 0
    if p.reduction == "none":
        loss = contiguous(loss_array, p.result)
    elif mean:
        loss = p.result.type(_mean(total, denominator))
    else:
        loss = p.result.type(total)
    if not want_grad:
        return loss, None
    if copy_to is not None:
        np.copyto(copy_to, grad, casting="unsafe")
        grad = copy_to
    else:
        grad = contiguous(grad, p.result)
    return loss, grad


_PARAMETERS = """
    logits : array_like
        Unnormalised class scores.  float32 and float64 are computed natively;
        float16 in float32 (results come back float16); integers in float64.
    target : array_like
        Either integer class indices, of the logits' shape without `axis`, or
        class probabilities (one-hot or soft), a float array of the logits'
        shape (converted to the logits' dtype).  The dtype decides which.
    axis : int, default -1
        The class axis; PyTorch's (N, C, d1, ...) layout is ``axis=1``.
    weight : array_like, optional
        Per-class weights, shape (C,).
    ignore_index : int, default -100
        Index targets equal to it contribute no loss and get zero gradient.
    reduction : {"mean", "sum", "none"}, default "mean"
        As PyTorch: "mean" divides the weighted sum by the sum of the weights
        of the non-ignored index targets (by the number of samples for
        probability targets); NaN when every target is ignored, +-inf when
        weights of both signs sum to 0 (the gradient is then 0).
    label_smoothing : float in [0, 1], default 0
        Mixes the target with the uniform distribution, PyTorch's definition."""

_RAISES = """
    Raises
    ------
    TypeError
        A target that is neither integer nor floating; logits of complex,
        object or string dtype; a non-int axis or ignore_index.
    ValueError
        A target of the wrong shape (an integer one-hot included), an index
        target outside [0, C) other than `ignore_index`, a weight not of
        shape (C,), an unknown reduction, label_smoothing outside [0, 1], an
        axis out of range, a bad `out`.  Nothing is written when it raises."""

_OUT = """
    out : ndarray, optional
        Where to write the gradient: the logits' shape and dtype.  ``out=logits``
        overwrites the logits with their gradient without allocating."""


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between ``softmax(logits, axis)`` and `target`, as
    ``torch.nn.functional.cross_entropy``.

    Computed through the log-sum-exp, so finite for finite logits of any
    magnitude.

    Parameters
    ----------{parameters}

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the logits' dtype for "mean" and "sum"; for "none" one
        loss per sample (the logits' shape without `axis`).
    {raises}

    Examples
    --------
    >>> import fastsm
    >>> float(fastsm.cross_entropy([[0.0, 0.0], [0.0, 0.0]], [0, 1]))  # log 2
    0.6931471805599453
    """
    fast = _k.index_fast(logits, target, axis, weight, ignore_index, reduction,
                         label_smoothing, None, False, get_num_threads())
    if fast is not None:
        return fast[0]
    p = _plan(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    return _run(p, False, None)[0]


def cross_entropy_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                       reduction="mean", label_smoothing=0.0, out=None):
    """Gradient of `cross_entropy` with respect to the logits.

    For "mean" without weights it is ``(softmax(logits) - onehot) / N``; for
    "none" it is the gradient of the sum of the per-sample losses.

    Parameters
    ----------{parameters}{out}

    Returns
    -------
    ndarray
        The gradient, of the logits' shape and dtype; `out` if given.
    {raises}

    Examples
    --------
    >>> import fastsm
    >>> fastsm.cross_entropy_grad([[0.0, 0.0]], [1])
    array([[ 0.5, -0.5]])
    """
    fast = _k.index_fast(logits, target, axis, weight, ignore_index, reduction,
                         label_smoothing, out, True, get_num_threads())
    if fast is not None:
        return fast[1]
    p = _plan(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    return _run(p, True, out)[1]


def cross_entropy_with_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                            reduction="mean", label_smoothing=0.0, out=None):
    """`cross_entropy` and `cross_entropy_grad` together, in one pass over
    the logits.

    Parameters
    ----------{parameters}{out}

    Returns
    -------
    loss : numpy scalar or ndarray
        As `cross_entropy`.
    grad : ndarray
        As `cross_entropy_grad`; `out` if given.
    {raises}

    Examples
    --------
    >>> import numpy as np, fastsm
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> loss, grad = fastsm.cross_entropy_with_grad(logits, [0, 1], out=logits)
    >>> round(float(loss), 4), grad is logits
    (0.1269, True)
    """
    fast = _k.index_fast(logits, target, axis, weight, ignore_index, reduction,
                         label_smoothing, out, True, get_num_threads())
    if fast is not None:
        return fast
    p = _plan(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    return _run(p, True, out)


for _f in (cross_entropy, cross_entropy_grad, cross_entropy_with_grad):
    _f.__doc__ = _f.__doc__.replace("{parameters}", _PARAMETERS).replace(
        "{out}", _OUT).replace("{raises}", _RAISES)
del _f
