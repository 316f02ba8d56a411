"""The binary case (logistic regression): sigmoid and binary cross-entropy
from logits, as ``torch.nn.functional``.

Written with NumPy ufuncs on preallocated buffers (no C kernel yet).  Every
formula goes through exp(-|x|), which never overflows, so results are finite
for finite logits of any magnitude.
"""
import numpy as np

from ._layout import as_array, check_out

_REDUCTIONS = ("mean", "sum", "none")


def _exp_neg_abs(x):
    e = np.abs(x)
    np.negative(e, out=e)
    return np.exp(e, out=e)


def _sigmoid_into(x, e, out, negate=False):
    """sigmoid(x) (sigmoid(-x) when negate) into `out` (not `e`), given e = exp(-|x|):
    1 / (1 + e) on the side where that is the answer, e / (1 + e) on the other."""
    r = np.add(e, 1, out=out)
    np.reciprocal(r, out=r)
    small = x >= 0 if negate else x < 0
    np.multiply(e, r, out=r, where=small)
    return r


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
    xc = arr.astype(compute, copy=False)
    y = _sigmoid_into(xc, _exp_neg_abs(xc), np.empty(arr.shape, compute))
    if out is None:
        return y.astype(result, copy=False)
    np.copyto(out, y, casting="unsafe")
    return out


def _check(logits, target, weight, pos_weight, reduction):
    """Validated (x, t, w, pw, result dtype): x and t in the compute dtype and
    of one shape; w and pw (or None) broadcastable to it."""
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
        extra.append(a.astype(compute, copy=False))
    return (x.astype(compute, copy=False), t.astype(compute, copy=False), extra[0], extra[1],
            result)


def _parts(x, t, pw, want_loss, want_grad):
    """(loss terms, gradient terms), unweighted and unreduced:
    loss = (1 - t) x + lw softplus(-x), grad = (1 - t) - lw sigmoid(-x), with
    lw = 1 + (pos_weight - 1) t (PyTorch's pos_weight), 1 without it."""
    e = _exp_neg_abs(x)
    log_weight = None
    if pw is not None:
        log_weight = (pw - 1) * t
        log_weight += 1
    loss = grad = None
    if want_loss:
        loss = np.log1p(e)
        loss += np.maximum(-x, 0)                       # softplus(-x) = log(1 + exp(-x))
        if log_weight is not None:
            loss *= log_weight
        loss += (1 - t) * x
    if want_grad:
        grad = _sigmoid_into(x, e, np.empty_like(e), negate=True)  # sigmoid(-x)
        if log_weight is not None:
            grad *= log_weight
        np.subtract(1 - t, grad, out=grad)
    return loss, grad


def _reduce(loss, reduction, result):
    if reduction == "none":
        return loss.astype(result, copy=False)
    total = np.sum(loss, dtype=np.float64)
    if reduction == "sum":
        return result.type(total)
    return result.type(total / loss.size if loss.size else np.nan)


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
    with np.errstate(over="ignore", under="ignore"):
        loss, _ = _parts(x, t, pw, True, False)
    if w is not None:
        loss *= w
    return _reduce(loss, reduction, result)


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
    with np.errstate(over="ignore", under="ignore"):
        _, grad = _parts(x, t, pw, False, True)
    if w is not None:
        grad *= w
    if reduction == "mean" and grad.size:
        grad /= grad.size
    if out is None:
        return grad.astype(result, copy=False)
    np.copyto(out, grad, casting="unsafe")
    return out
