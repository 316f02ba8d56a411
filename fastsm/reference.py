"""fastsm's functions written in plain NumPy: the oracle of the tests and the
baseline of the benchmarks.  Same names, signatures and semantics as the
public API (dtype rules, axis handling, special values), none of its speed.
"""
import numpy as np

from ._layout import as_array, check_out, check_scalar_axis, normalize_axis


def _finish(result, result_dtype, out):
    result = np.asarray(result).astype(result_dtype, copy=False)
    if out is None:
        return result
    check_out(out, result.shape, result_dtype)
    out[...] = result
    return out


def _prepare(x, name="x"):
    arr, compute, result = as_array(x, name)
    return arr.astype(compute, copy=False), result


def _reduce_axis(x, axis):
    """The axis argument as numpy reductions take it (tuples and None pass)."""
    if axis is None or isinstance(axis, tuple):
        return axis
    return _int_axis(axis, x.ndim)


def _int_axis(axis, ndim):
    """An int axis, normalized; a scalar's axis 0 or -1 is None (its one
    value), as in PyTorch and SciPy."""
    if ndim == 0:
        check_scalar_axis(axis)
        return None
    return normalize_axis(axis, ndim)


def _shifted(x, axis):
    """x - max over axis, with the max taken as PyTorch does: a slice with
    NaN or +inf, or all -inf, gets NaN everywhere (inf - inf, NaN - x).
    The initial -inf lets empty arrays through (empty results, as API.md)."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        return x - m


def softmax(x, axis=-1, *, out=None):
    x, result = _prepare(x)
    axis = _reduce_axis(x, axis)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        e = np.exp(_shifted(x, axis))
        y = e / np.sum(e, axis=axis, keepdims=True)
    return _finish(y, result, out)


def log_softmax(x, axis=-1, *, out=None):
    x, result = _prepare(x)
    axis = _reduce_axis(x, axis)
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        s = _shifted(x, axis)
        y = s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return _finish(y, result, out)


def hardmax(x, axis=-1, *, out=None):
    x, result = _prepare(x)
    axis = _int_axis(axis, x.ndim)
    if axis is None:
        return _finish(np.ones_like(x), result, out)
    y = np.zeros_like(x)
    if x.size:
        np.put_along_axis(y, np.expand_dims(np.argmax(x, axis=axis), axis), 1, axis=axis)
    return _finish(y, result, out)


def _pair(a, b, names):
    a, ca, ra = as_array(a, names[0])
    b, cb, rb = as_array(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[1]} has shape {b.shape}, {names[0]} has shape {a.shape}")
    result = np.result_type(ra, rb)
    compute = np.float32 if result in (np.float16, np.float32) else np.float64
    return a.astype(compute), b.astype(compute), result


def softmax_backward(grad, y, axis=-1, *, out=None):
    grad, y, result = _pair(grad, y, ("grad", "y"))
    axis = _int_axis(axis, grad.ndim)
    dx = y * (grad - np.sum(grad * y, axis=axis, keepdims=True))
    return _finish(dx, result, out)


def log_softmax_backward(grad, logp, axis=-1, *, out=None):
    grad, logp, result = _pair(grad, logp, ("grad", "logp"))
    axis = _int_axis(axis, grad.ndim)
    with np.errstate(over="ignore", invalid="ignore"):
        dx = grad - np.exp(logp) * np.sum(grad, axis=axis, keepdims=True)
    return _finish(dx, result, out)


# ---- cross-entropy ---------------------------------------------------------
# Argument checking is shared with the public API (fastsm._xent._plan: it
# only validates and lays out); the maths below is plain NumPy.

def _xent(logits, target, axis, weight, ignore_index, reduction, label_smoothing):
    """(loss, gradient) in the compute dtype, logits' layout (outer, n, inner)."""
    from ._xent import _plan
    p = _plan(logits, target, axis, weight, ignore_index, reduction, label_smoothing)
    n, eps = p.n, p.smoothing
    x = p.x.reshape(p.outer, n, p.inner)
    w = np.ones(n, p.compute) if p.weight is None else p.weight
    wb = w[None, :, None]
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        m = np.max(x, axis=1, keepdims=True) if x.size else np.zeros_like(x[:, :1])
        shifted = x - m
        lse = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        logp = shifted - lse
        prob = np.exp(logp)
        if p.is_index:
            t = p.target.reshape(p.outer, p.inner)
            valid = t != p.ignore_index
            if np.any(valid & ((t < 0) | (t >= n))):
                raise ValueError("target holds a class index outside [0, n)")
            safe = np.where(valid, t, 0)
            onehot = (np.arange(n)[None, :, None] == safe[:, None, :])
            wy = np.where(valid, w[safe], 0)
            # Ignored samples are masked, not multiplied by 0: NaN logits
            # there give a loss and gradient of 0, as in PyTorch.
            nll = np.where(valid, -np.sum(np.where(onehot, logp, 0), axis=1) * wy, 0)
            loss = (1 - eps) * nll
            if eps:  # PyTorch adds the smoothing term only when asked (-inf logits)
                # Summed in float64, as the kernels do: in float32 the sum of
                # log-probabilities of huge logits overflows where the term does not.
                smooth = -np.sum(logp * wb, axis=1, dtype=np.float64)
                loss = loss + (eps / n * np.where(valid, smooth, 0)).astype(loss.dtype)
            grad = np.where(valid[:, None, :],
                            (1 - eps) * wy[:, None, :] * (prob - onehot)
                            + eps / n * (np.sum(w) * prob - wb), 0)
            denominator = np.sum(wy, dtype=np.float64)
        else:
            tw = ((1 - eps) * p.target.reshape(x.shape) + eps / n) * wb
            loss = -np.sum(logp * tw, axis=1)
            grad = np.sum(tw, axis=1, keepdims=True) * prob - tw
            denominator = float(p.outer * p.inner)
        if reduction == "none":
            return loss.reshape(p.sample_shape).astype(p.result), grad, p
        total = np.sum(loss, dtype=np.float64)
        if reduction == "sum":
            return p.result.type(total), grad, p
        with np.errstate(invalid="ignore", divide="ignore"):  # 0: NaN or +-inf, as PyTorch
            loss = p.result.type(np.float64(total) / denominator)
        if denominator == 0:
            return loss, np.zeros_like(grad), p
        return loss, grad / denominator, p


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0):
    return _xent(logits, target, axis, weight, ignore_index, reduction, label_smoothing)[0]


def cross_entropy_with_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                            reduction="mean", label_smoothing=0.0, out=None):
    loss, grad, p = _xent(logits, target, axis, weight, ignore_index, reduction,
                          label_smoothing)
    return loss, _finish(grad.reshape(p.shape), p.result, out)


def cross_entropy_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                       reduction="mean", label_smoothing=0.0, out=None):
    return cross_entropy_with_grad(logits, target, axis=axis, weight=weight,
                                   ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=label_smoothing, out=out)[1]


# ---- sigmoid and binary cross-entropy -------------------------------------

def sigmoid(x, *, out=None):
    x, result = _prepare(x)
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return _finish(y, result, out)


def _bce(logits, target, weight, pos_weight, reduction):
    from ._binary import _check
    x, t, w, pw, result = _check(logits, target, weight, pos_weight, reduction)
    with np.errstate(over="ignore", under="ignore"):
        softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)  # log(1 + e^-x)
        e = np.exp(-np.abs(x))
        sigmoid_neg = np.where(x >= 0, e / (1 + e), 1 / (1 + e))       # sigmoid(-x)
    log_weight = 1 if pw is None else 1 + (pw - 1) * t
    loss = (1 - t) * x + log_weight * softplus_neg
    grad = (1 - t) - log_weight * sigmoid_neg
    if pw is not None:  # an infinite target or pos_weight: PyTorch's order of operations
        with np.errstate(invalid="ignore", over="ignore"):
            torch_order = (pw * t + 1 - t) * (1 - sigmoid_neg) - pw * t
        grad = np.where(np.isfinite(t) & np.isfinite(pw), grad, torch_order)
    if w is not None:
        loss, grad = loss * w, grad * w
    loss, grad = np.broadcast_to(loss, x.shape), np.broadcast_to(grad, x.shape)
    if reduction == "none":
        return loss.astype(result), grad, result
    if reduction == "sum":
        return result.type(np.sum(loss, dtype=np.float64)), grad, result
    return (result.type(np.mean(loss, dtype=np.float64) if x.size else np.nan),
            grad / max(x.size, 1), result)


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    return _bce(logits, target, weight, pos_weight, reduction)[0]


def binary_cross_entropy_with_logits_grad(logits, target, *, weight=None, pos_weight=None,
                                          reduction="mean", out=None):
    _, grad, result = _bce(logits, target, weight, pos_weight, reduction)
    return _finish(grad, result, out)
# ---- batch normalization ---------------------------------------------------

from ._batchnorm_args import backward_args, feature_view, forward_args, stats_parts  # noqa: E402


def _other_axes(ndim, axis):
    return tuple(a for a in range(ndim) if a != axis)


def _per_feature_shape(ndim, axis):
    """Shape that broadcasts a (C,) array along `axis` of an ndim array."""
    return tuple(-1 if a == axis else 1 for a in range(ndim))


def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *,
                       training=True, momentum=0.1, eps=1e-5, axis=1, out=None):
    args = forward_args(x, weight, bias, running_mean, running_var, training, momentum, eps,
                        axis, out)
    v = args.view
    x = v.x.astype(v.compute, copy=False)
    axes = _other_axes(x.ndim, v.axis)
    count = v.outer * v.inner
    if training:
        mean, m2 = _mean_m2(x, axes, count) if count else (np.full(v.C, np.nan),) * 2
        var = m2 / max(count, 1)
        if count and running_mean is not None:
            running_mean[...] = (1 - args.momentum) * running_mean + args.momentum * mean
        if count and running_var is not None:
            running_var[...] = ((1 - args.momentum) * running_var
                                + args.momentum * var * count / (count - 1))
    else:
        mean = np.asarray(running_mean, np.float64)
        var = np.asarray(running_var, np.float64)
    invstd = 1 / np.sqrt(var + args.eps)
    scale = invstd if args.weight is None else invstd * args.weight
    shift = np.zeros(v.C) if args.bias is None else args.bias
    b = _per_feature_shape(x.ndim, v.axis)
    c = v.compute
    # The factor in the data's precision, as the kernels and PyTorch take it:
    # one below float's range is 0, and infinite data then gives NaN.
    with np.errstate(over="ignore"):
        scale = scale.astype(c).astype(np.float64)
    # In float64, as the kernels compute it: a float32 mean rounded before the
    # subtraction would lose the spread of data far from zero (values ~1e4).
    # Halved, so that x - mean does not overflow where the two lie further
    # apart than the largest float (the same value otherwise).
    half = (x.astype(np.float64) / 2 - mean.reshape(b) / 2) * scale.reshape(b)
    with np.errstate(over="ignore"):
        y = half * 2 + shift.reshape(b)
    return _finish(y, v.result, out), mean.astype(c), invstd.astype(c)


def batch_norm_backward(grad, x, weight, mean, invstd, *, training=True, axis=1, out=None):
    args = backward_args(grad, x, weight, mean, invstd, axis, out)
    v = args.view
    b = _per_feature_shape(v.x.ndim, v.axis)
    axes = _other_axes(v.x.ndim, v.axis)
    g = args.grad.astype(np.float64)
    xc = v.x.astype(np.float64) - args.mean.reshape(b)
    invstd = args.invstd
    with np.errstate(invalid="ignore", over="ignore"):
        dot = np.sum(g * xc, axis=axes)
        dweight = dot * invstd
        dbias = np.sum(g, axis=axes)
        k = invstd if args.weight is None else invstd * args.weight
        if training:
            # PyTorch's grouping, so that infinities and NaNs land where they do there.
            proj = invstd * invstd * dot / max(v.outer * v.inner, 1)
            grad_mean = dbias / max(v.outer * v.inner, 1)
            dx = ((g - grad_mean.reshape(b)) - xc * proj.reshape(b)) * k.reshape(b)
        else:
            dx = g * k.reshape(b)
    return _finish(dx, v.result, out), dweight.astype(v.compute), dbias.astype(v.compute)


def _mean_m2(x, axes, count):
    """Per-feature mean and sum of squared deviations in float64, as PyTorch
    with special values: the mean is the IEEE sum over the count (+-inf with
    infinities of one sign, NaN with both or with a NaN) and m2 is then NaN.
    The mean sums x / count - shift / count, or x / count where that
    overflows (finite values near both ends of the range), which cannot."""
    x = x.astype(np.float64)
    # About each feature's first value where finite, so that equal values
    # (huge ones included) have their own mean and m2 = 0.
    shift = x[tuple(0 if a in axes else slice(None) for a in range(x.ndim))]
    shift = np.expand_dims(np.where(np.isfinite(shift), shift, 0.0), axes)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.squeeze(shift, axes) + np.sum(x / count - shift / count, axis=axes)
        overflowed = ~np.isfinite(mean) & np.all(np.isfinite(x), axis=axes)
        mean = np.where(overflowed, np.sum(x / count, axis=axes), mean)
        d = x - np.expand_dims(mean, axes)
        m2 = np.sum(d * d, axis=axes)
    return mean, m2


def batch_norm_stats(x, axis=1):
    v = feature_view(x, axis)
    axes = _other_axes(v.x.ndim, v.axis)
    count = v.outer * v.inner
    if not count:
        return count, np.full(v.C, np.nan), np.zeros(v.C)
    mean, m2 = _mean_m2(v.x, axes, count)
    return count, mean, m2


def merge_stats(parts):
    # All shards at once about the overall mean (sums of non-negative terms),
    # rather than fastsm's pairwise fold.
    parts = [p for p in stats_parts(parts)]
    C = parts[0][1].shape[0]
    full = [(n, mean, m2) for n, mean, m2 in parts if n]
    count = sum(n for n, _, _ in full)
    if not count:
        return 0, np.full(C, np.nan), np.zeros(C)
    # About a shift: the first shard's mean where finite, so that equal means
    # merge exactly; n / count rather than n * m, which could overflow.
    shift = full[0][1]
    shift = np.where(np.isfinite(shift), shift, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = shift + sum((n / count) * (m - shift) for n, m, _ in full)
        m2 = sum(q + n * (m - mean) ** 2 for n, m, q in full)
    return count, mean, m2
