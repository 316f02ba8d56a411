"""What fastsm.dask runs on each block of an array: plain NumPy in, NumPy
out, no dask.  These functions are pickled by reference and run on the
workers.

Each block's kernel runs on one thread: the scheduler already runs one task
per worker thread, and more kernel threads would only compete for the cores.

Partial results of a reduction split across blocks are NumPy structured
arrays (one record per slice), so that dask's tree reduction concatenates and
combines them as it does any array:
  LSE    (m, s): the slice's max and sum(exp(x - m)), for the log-sum-exp;
  STATS  (n, mean, m2): batch-norm statistics of the values per feature.
"""
import math

import numpy as np

from . import _batchnorm_kernels as _nk
from . import _binary_kernels as _bk
from . import _xent_kernels as _xk
from ._batchnorm import batch_norm_forward, batch_norm_stats, dx_into, merge_stats
from ._binary import _check as binary_check, _repeating, binary_cross_entropy_with_logits
from ._binary import gradient_into
from ._result_cache import contiguous, empty
from ._threads import threads
from ._xent import _mean, _plan, cross_entropy_with_grad

F64 = np.dtype(np.float64)
LSE = np.dtype([("m", F64), ("s", F64)])
STATS = np.dtype([("n", np.int64), ("mean", F64), ("m2", F64)])


def single_threaded(f, *args, **kwargs):
    """f(*args, **kwargs) with fastsm's kernels on one thread."""
    with threads(1):
        return f(*args, **kwargs)


# ---- log-sum-exp over slices split across blocks --------------------------

def _lse_record(m, s):
    r = np.empty(m.shape, LSE)
    r["m"], r["s"] = m, s
    return r


def lse_chunk(x, axis, keepdims=True, **_):
    """(max, sum of exp(x - max)) over `axis` of one block, in float64.  A
    block whose max is -inf adds nothing (s = 0); NaN and +inf give NaN."""
    x = x.astype(F64, copy=False)
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        s = np.sum(np.exp(x - m), axis=axis, keepdims=True)
    return _lse_record(m, np.where(m == -np.inf, 0.0, s))


def lse_combine(parts, axis, keepdims=True, **_):
    """Partials concatenated along `axis` -> one partial: the largest max, and
    each sum rescaled to it."""
    m = np.max(parts["m"], axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        rescaled = np.where(parts["m"] == -np.inf, 0.0, parts["s"] * np.exp(parts["m"] - m))
    return _lse_record(m, np.sum(rescaled, axis=axis, keepdims=True))


def softmax_from_lse(x, lse, compute, result):
    """exp(x - m) / s: the softmax of a block, given its slices' LSE record.
    An all -inf slice (m = -inf, s = 0) gives NaN, as the kernels do."""
    x = x.astype(compute, copy=False)
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        y = np.exp(x - lse["m"].astype(compute)) / lse["s"].astype(compute)
    return y.astype(result, copy=False)


def log_softmax_from_lse(x, lse, compute, result):
    """(x - m) - log(s), as the kernels compute log_softmax."""
    x = x.astype(compute, copy=False)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        y = (x - lse["m"].astype(compute)) - np.log(lse["s"]).astype(compute)
    return y.astype(result, copy=False)


def softmax_backward_from_sum(grad, y, total, compute, result):
    """y * (grad - total): softmax_backward of a block, given its slices'
    sum(grad * y)."""
    grad, y = grad.astype(compute, copy=False), y.astype(compute, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        return (y * (grad - total.astype(compute))).astype(result, copy=False)


def log_softmax_backward_from_sum(grad, logp, total, compute, result):
    """grad - exp(logp) * total: log_softmax_backward of a block, given its
    slices' sum(grad)."""
    grad, logp = grad.astype(compute, copy=False), logp.astype(compute, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        return (grad - np.exp(logp) * total.astype(compute)).astype(result, copy=False)


# ---- batch-norm statistics over blocks -------------------------------------

def _moved(a, feature):
    """A (..., C, ...) array as (parts, C)."""
    return np.moveaxis(a, feature, -1).reshape(-1, a.shape[feature])


def _stats_record(shape, feature, count, mean, m2):
    r = np.empty(shape, STATS)
    per_feature = [1] * len(shape)
    per_feature[feature] = -1
    r["n"] = count
    r["mean"] = mean.reshape(per_feature)
    r["m2"] = m2.reshape(per_feature)
    return r


def stats_chunk(x, axis, keepdims=True, **_):
    """fastsm.batch_norm_stats of one block, reducing `axis` (every axis but
    the feature axis), as a STATS record per feature."""
    feature = next(a for a in range(x.ndim) if a not in axis)
    shape = tuple(1 if a in axis else x.shape[a] for a in range(x.ndim))
    with threads(1):
        count, mean, m2 = batch_norm_stats(x, axis=feature)
    return _stats_record(shape, feature, count, mean, m2)


def stats_combine(parts, axis, keepdims=True, **_):
    """Partials concatenated along `axis` -> one, by fastsm.merge_stats."""
    feature = next(a for a in range(parts.ndim) if a not in axis)
    shape = tuple(1 if a in axis else parts.shape[a] for a in range(parts.ndim))
    C = parts.shape[feature]
    if C == 0:
        return np.empty(shape, STATS)
    counts = _moved(parts["n"], feature)[:, 0]
    means, m2s = _moved(parts["mean"], feature), _moved(parts["m2"], feature)
    count, mean, m2 = merge_stats([(int(n), mean, m2) for n, mean, m2 in zip(counts, means, m2s)])
    return _stats_record(shape, feature, count, mean, m2)


def normalize_block(x, mean, var, weight, bias, *, eps, feature):
    """batch_norm_forward of one block with given statistics (inference mode).
    The per-feature arrays come broadcast along the block's axes."""
    def flat(a):
        return None if a is None else np.array(a, F64).reshape(-1)  # writable copy
    with threads(1):
        return batch_norm_forward(x, flat(weight), flat(bias), flat(mean), flat(var),
                                  training=False, eps=eps, axis=feature)[0]


def _layout(shape, feature):
    """(outer, C, inner) of a block with the features on axis `feature`."""
    return (math.prod(shape[:feature]), shape[feature], math.prod(shape[feature + 1:]))


def _flat(a):
    """A block of a per-feature array (one chunk of length 1 along every other
    axis) as a contiguous float64 array of shape (C,)."""
    return None if a is None else np.ascontiguousarray(a, F64).reshape(-1)


def grad_sums_block(g, x, mean, *, feature, compute):
    """[sum(g), sum(g * (x - mean))] per feature of a block in float64, by
    the kernel of the NumPy API, along a new last axis; the block's other
    dimensions are 1."""
    outer, C, inner = _layout(x.shape, feature)
    sum_g, sum_gxc = np.zeros(C), np.zeros(C)
    if x.size:
        _nk.grad_sums(contiguous(g, compute), contiguous(x, compute), outer, C, inner,
                      _flat(mean), sum_g, sum_gxc, 1)
    shape = tuple(C if a == feature else 1 for a in range(x.ndim)) + (2,)
    return np.stack([sum_g, sum_gxc], axis=-1).reshape(shape)


def batch_norm_dx_block(g, x, mean, invstd, weight, sum_g, sum_gxc, *, feature, count,
                        compute, result):
    """dx of batch_norm_backward for a block, given the per-feature sums of
    the whole array (None for training=False), as the NumPy API computes it."""
    dx = empty(x.shape, compute, like=x)
    if x.size:
        training = sum_g is not None
        dx_into(dx, contiguous(g, compute), contiguous(x, compute) if training else None,
                _layout(x.shape, feature), _flat(invstd), _flat(weight), _flat(mean),
                (_flat(sum_g), _flat(sum_gxc)) if training else None, count, 1)
    return dx.astype(result, copy=False)


# ---- cross-entropy ---------------------------------------------------------

def _checked(t, n, ignore_index, weight):
    """(the index targets of a block as int64, the sum of their weights),
    after checking that each lies in [0, n) or is ignore_index."""
    t = np.ascontiguousarray(t, np.int64).reshape(np.shape(t))  # 0-d stays 0-d
    bad, weight_sum = _xk.check_index(t, n, ignore_index, weight,
                                      weight is not None and weight.dtype == np.float32)
    if bad >= 0:
        raise ValueError(f"target {t.flat[bad]} is outside the classes [0, {n}) and is not "
                         f"ignore_index ({ignore_index})")
    return t, weight_sum


def valid_targets(t, n, ignore_index, weight):
    """The block's index targets as int64, once checked."""
    return _checked(t, n, ignore_index, weight)[0]


def target_weight_sum(t, n, ignore_index, weight):
    """The sum of the weights of the block's non-ignored targets (their count
    without weights), once checked, with the block's dimensions all 1."""
    return np.full((1,) * t.ndim, _checked(t, n, ignore_index, weight)[1])


def xent_block(x, t, denominator, *, axis, weight, ignore_index, smoothing, per_sample,
               want_grad):
    """(loss part, gradient or None) of a block that holds whole class slices:
    one kernel pass.  The loss part keeps a class axis of length 1: one loss
    per sample (`per_sample`), or the block's sum in float64 with every
    dimension 1.  The gradient is scaled by 1 / denominator when a
    denominator is given."""
    p = _plan(x, t, axis, weight, ignore_index, "none" if per_sample else "sum", smoothing)
    scale = 1.0
    if denominator is not None:
        denominator = float(denominator)
        scale = 1.0 / denominator if denominator else 0.0
    grad = None
    if want_grad:
        # from the result cache, as the NumPy API's results: a chunk's fresh
        # gradient costs more in page faults than the kernel's whole pass
        grad = p.x if p.owned else empty(p.shape, p.compute, like=p.x)
    loss = np.zeros(p.sample_shape, p.compute) if per_sample else None
    total = 0.0
    if p.outer * p.inner and p.n:
        kernel = _xk.xent_index if p.is_index else _xk.xent_prob
        options = (p.ignore_index, p.smoothing) if p.is_index else (p.smoothing,)
        total = kernel(p.x, p.target, p.weight, *options, scale, grad, loss, p.outer, p.n,
                       p.inner, 1)
    if per_sample:
        part = np.expand_dims(loss.astype(p.result, copy=False), axis)
    else:
        part = np.full((1,) * x.ndim, total)
    if grad is not None:
        grad = grad.astype(p.result, copy=False)
    return part, grad


def xent_counting_block(x, t, *, axis, ignore_index, smoothing, samples, want_grad):
    """(parts, gradient or None) of a block that holds whole class slices, for
    "mean" over index targets without class weights: the targets checked and
    their kept samples counted, then one kernel pass whose gradient is scaled
    by 1 / samples, the sample count of the whole array.  parts is (loss sum,
    kept samples) along a new last axis, the block's dimensions all 1."""
    t, kept = _checked(t, x.shape[axis], ignore_index, None)
    part, grad = xent_block(x, t, samples, axis=axis, weight=None, ignore_index=ignore_index,
                            smoothing=smoothing, per_sample=False, want_grad=want_grad)
    return np.array([part.item(), kept]).reshape(part.shape + (2,)), grad


def kept_rescaled(pair, totals, samples):
    """The gradient of a counting block's pair, scaled by 1 / (kept samples of
    the whole array) in place of 1 / samples: the same array when no sample was
    ignored, else a rescaled copy (zero when all were, as the NumPy API)."""
    grad = pair[1]
    kept = float(totals[1])
    if kept == samples:
        return grad
    factor = samples / kept if kept else 0.0
    return (grad * np.float64(factor)).astype(grad.dtype, copy=False)


def finish_counted_loss(totals, result):
    """The "mean" loss from (loss sum, kept samples) of the whole array."""
    return finish_loss(totals[0], totals[1], result)


def finish_loss(total, denominator, result):
    """The reduced loss as a 0-d array of the result dtype: total / denominator
    ("mean", NaN or +-inf when it is 0, as the NumPy API) or the total ("sum",
    denominator None)."""
    if denominator is None:
        return np.asarray(total, result)
    return np.asarray(_mean(total, denominator), result)


def item(pair, i):
    """Element i of a task's tuple result."""
    return pair[i]


def take(indices, values):
    """values[indices], for a block of indices."""
    return values[indices]


def scaled(a, denominator, result):
    """a / denominator (0 where the denominator is 0), in the result dtype."""
    denominator = float(denominator)
    return (a * (1.0 / denominator if denominator else 0.0)).astype(result, copy=False)


# ---- binary cross-entropy ----------------------------------------------------
# w and pw: None, or blocks that broadcast to the logits' block.

def bce_losses(x, t, w, pw):
    """The per-element binary cross-entropy of a block."""
    return single_threaded(binary_cross_entropy_with_logits, x, t, weight=w, pos_weight=pw,
                           reduction="none")


def bce_sum(x, t, w, pw):
    """The block's summed binary cross-entropy in float64, every dimension 1."""
    x, t, w, pw, _ = binary_check(x, t, w, pw, "sum")
    total = _bk.bce_loss(x, t, _repeating(w, x.shape), _repeating(pw, x.shape), None, 1)
    return np.full((1,) * x.ndim, total)


def bce_grad(x, t, w, pw, count):
    """The block's gradient of the binary cross-entropy, divided by `count`
    (the element count of the whole array for "mean", else 0: no division),
    in the compute dtype, as the NumPy API divides its one array."""
    x, t, w, pw, result = binary_check(x, t, w, pw, "sum")
    grad = empty(x.shape, x.dtype, like=x)
    gradient_into(grad, x, t, w, pw, count, 1)
    return grad.astype(result, copy=False)


# ---- the linear model's loss and gradient ----------------------------------

def linear_block(X, y, coef, intercept, kernel_threads=1):
    """[loss, X.T @ G, sum(G)] of a block of rows, G the gradient of the summed
    cross-entropy of X @ coef + intercept, flattened into one float64 row."""
    # In the promoted dtype up front: a matmul of mixed dtypes bypasses BLAS.
    X = X.astype(np.result_type(X, coef, intercept), copy=False)
    with threads(kernel_threads):
        loss, G = cross_entropy_with_grad(X @ coef + intercept, y.reshape(-1), reduction="sum")
    row = np.empty((1, 1 + coef.size + intercept.size))
    row[0, 0] = loss
    row[0, 1:1 + coef.size] = (X.T @ G).ravel()
    row[0, 1 + coef.size:] = G.sum(axis=0)
    return row
