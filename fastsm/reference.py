"""fastsm's functions written in plain NumPy: the oracle of the tests and the
baseline of the benchmarks.  Same names, signatures and semantics as the
public API (dtype rules, axis handling, special values), none of its speed.
"""
import numpy as np

from ._layout import as_array, check_out, normalize_axis


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
    return normalize_axis(axis, x.ndim)


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
    axis = normalize_axis(axis, x.ndim)
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
    axis = normalize_axis(axis, grad.ndim)
    dx = y * (grad - np.sum(grad * y, axis=axis, keepdims=True))
    return _finish(dx, result, out)


def log_softmax_backward(grad, logp, axis=-1, *, out=None):
    grad, logp, result = _pair(grad, logp, ("grad", "logp"))
    axis = normalize_axis(axis, grad.ndim)
    with np.errstate(over="ignore", invalid="ignore"):
        dx = grad - np.exp(logp) * np.sum(grad, axis=axis, keepdims=True)
    return _finish(dx, result, out)
