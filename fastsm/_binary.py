"""The binary case (logistic regression): sigmoid and binary cross-entropy
from logits, as ``torch.nn.functional``.

The sigmoid, the loss and its gradient are C kernels (src_c/sigmoid.c).  Every
formula goes through exp(-|x|), which never overflows, so results are finite
for finite logits of any magnitude.
"""
import numpy as np

from . import _binary_kernels as _k
from ._layout import _writes_directly, as_array, check_out
from ._result_cache import contiguous, empty
from ._threads import get_num_threads

_REDUCTIONS = ("mean", "sum", "none")


def _sigmoid_into(x, dst):
    """sigmoid(x) into `dst` by the C kernel: x and dst C-contiguous, of one
    float dtype and size (dst may be x)."""
    _k.sigmoid(x, dst, get_num_threads())
    return dst


def _destination(out, x, inputs, read_after=()):
    """`out` when the kernel can write it directly, else a fresh array like x.
    `read_after` are arrays read after the first writes (or at other
    indices): `out` must not touch them at all."""
    if (out is not None and _writes_directly(out, x.dtype, inputs, fresh=False)
            and not any(a is not None and np.may_share_memory(out, a) for a in read_after)):
        return out
    return empty(x.shape, x.dtype, like=x)


def _deliver(dst, out, result):
    if out is None:
        return contiguous(dst, result)
    if dst is not out:
        np.copyto(out, dst, casting="unsafe")
    return out


def sigmoid(x, *, out=None):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, exact to rounding for any x.

    Parameters
    ----------
    x : array_like
        float32/float64 computed natively, float16 in float32, integers in float64.
    out : ndarray, optional
        Where to write the result (may be `x`): its shape and result dtype.

    Returns
    -------
    ndarray
        The result; `out` if given.

    Raises
    ------
    TypeError
        A complex, object or string input.
    ValueError
        An `out` of the wrong shape or dtype, or read-only.

    Examples
    --------
    >>> import fastsm
    >>> fastsm.sigmoid([0.0, 1000.0, -1000.0])
    array([0.5, 1. , 0. ])
    """
    arr, compute, result = as_array(x, "x")
    if out is not None:
        check_out(out, arr.shape, result)
    xc = contiguous(arr, compute)
    return _deliver(_sigmoid_into(xc, _destination(out, xc, [xc])), out, result)


def _check(logits, target, weight, pos_weight, reduction):
    """Validated (x, t, w, pw, result dtype): x and t in the compute dtype and
    of one shape; w and pw (or None) broadcastable to it."""
    x, t, extra, compute, result = check_arguments(logits, target, weight, pos_weight,
                                                   reduction)
    extra = [None if a is None else a.astype(compute, copy=False) for a in extra]
    return contiguous(x, compute), contiguous(t, compute), extra[0], extra[1], result


def check_arguments(logits, target, weight, pos_weight, reduction):
    """The checks of `_check`, which read shapes and dtypes only: (x, t,
    [w, pw], compute dtype, result dtype), the arrays as given (ndarrays)."""
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    x, compute, result = as_array(logits, "logits")
    t, _, _ = as_array(target, "target")
    if t.shape != x.shape:
        raise ValueError(f"target has shape {t.shape}, logits have shape {x.shape}")
    extra = []
    for name, arr in (("weight", weight), ("pos_weight", pos_weight)):
        if arr is None:
            extra.append(None)
            continue
        a, _, _ = as_array(arr, name)
        try:
            np.broadcast_shapes(a.shape, x.shape)
        except ValueError:
            raise ValueError(f"{name} of shape {a.shape} does not broadcast to the logits' "
                             f"shape {x.shape}") from None
        if np.broadcast_shapes(a.shape, x.shape) != x.shape:
            raise ValueError(f"{name} of shape {a.shape} would enlarge the logits' shape "
                             f"{x.shape}")
        extra.append(a)
    return x, t, extra, compute, result


def _repeating(a, shape):
    """`a` (a weight or pos_weight, or None) as a C-contiguous array that
    repeats along an array of `shape` (the kernels read element i from index
    i % its size): as it is when it spans trailing axes only (per class), else
    broadcast to the full shape."""
    if a is None:
        return None
    core = a.shape
    while core and core[0] == 1:
        core = core[1:]
    if core == shape[len(shape) - len(core):]:
        return contiguous(a.reshape(core), a.dtype)
    return contiguous(np.broadcast_to(a, shape), a.dtype)


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    """Binary cross-entropy between ``sigmoid(logits)`` and `target`, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``loss = -w [lw t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x))]`` with
    ``lw = pos_weight`` (1 when absent), computed without overflow or log(0)
    for any finite logit.

    Parameters
    ----------
    logits : array_like
    target : array_like
        Probabilities, the logits' shape.
    weight : array_like, optional
        Per-element weights, broadcast to the logits' shape.
    pos_weight : array_like, optional
        Weight of the positive term, broadcast along the trailing axes (per
        class for (N, C) logits).
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" averages over all elements.

    Returns
    -------
    numpy scalar or ndarray
        A scalar of the logits' dtype, or the per-element losses for "none".

    Raises
    ------
    TypeError
        Complex, object or string inputs.
    ValueError
        A target of another shape, a weight that does not broadcast, an
        unknown reduction.

    Examples
    --------
    >>> import fastsm
    >>> float(fastsm.binary_cross_entropy_with_logits([0.0], [1.0]))  # log 2
    0.6931471805599453
    """
    x, t, w, pw, result = _check(logits, target, weight, pos_weight, reduction)
    w, pw = _repeating(w, x.shape), _repeating(pw, x.shape)
    if reduction == "none":
        loss = empty(x.shape, x.dtype, like=x)
        _k.bce_loss(x, t, w, pw, loss, get_num_threads())
        return loss.astype(result, copy=False)
    total = _k.bce_loss(x, t, w, pw, None, get_num_threads())
    if reduction == "mean":
        total = total / x.size if x.size else np.nan
    return result.type(total)


def binary_cross_entropy_with_logits_grad(logits, target, *, weight=None, pos_weight=None,
                                          reduction="mean", out=None):
    """Gradient of `binary_cross_entropy_with_logits` with respect to the logits:
    ``w [(1 - t) - lw sigmoid(-x)]`` (``sigmoid(x) - t`` without weights),
    divided by the element count for "mean"; for "none" the gradient of the sum.

    Parameters
    ----------
    logits, target, weight, pos_weight, reduction
        As `binary_cross_entropy_with_logits`.
    out : ndarray, optional
        Where to write the gradient (may be `logits`): its shape and dtype.
        Nothing else of the logits' size is allocated, unless `pos_weight`
        varies along a leading axis (it is then broadcast to the full shape).

    Returns
    -------
    ndarray
        The gradient; `out` if given.

    Raises
    ------
    TypeError, ValueError
        As `binary_cross_entropy_with_logits`; also a bad `out`.

    Examples
    --------
    >>> import fastsm
    >>> fastsm.binary_cross_entropy_with_logits_grad([0.0, 0.0], [1.0, 0.0])
    array([-0.25,  0.25])
    """
    x, t, w, pw, result = _check(logits, target, weight, pos_weight, reduction)
    if out is not None:
        check_out(out, x.shape, result)
    grad = _destination(out, x, [x, t], read_after=(w, pw))
    gradient_into(grad, x, t, w, pw, grad.size if reduction == "mean" else 0,
                  get_num_threads())
    return _deliver(grad, out, result)


def gradient_into(grad, x, t, w, pw, divisor, threads):
    """The binary cross-entropy's gradient into `grad` (x's shape and dtype,
    x and t as _check gives them), divided by `divisor` unless it is 0."""
    _k.sigmoid_minus(x, t, _repeating(pw, x.shape), grad, threads)
    if w is not None:
        np.multiply(grad, w, out=grad)
    if divisor:
        np.divide(grad, divisor, out=grad)
