"""Argument checks of the batch-norm functions, shared by fastsm and
fastsm.reference so that both accept and reject exactly the same calls.

Every check runs before anything is computed or written: a call that raises
leaves x, out and the running statistics unchanged.
"""
import math
import numbers
from typing import NamedTuple

import numpy as np

from ._layout import F64, as_array, check_out, common_dtypes, normalize_axis
from ._result_cache import contiguous


class FeatureView(NamedTuple):
    """An input seen as (outer, C, inner) around its feature axis."""
    x: np.ndarray
    compute: np.dtype   # dtype the kernels run in, and of mean, invstd, dweight, dbias
    result: np.dtype    # dtype of y / dx
    axis: int
    outer: int
    C: int
    inner: int


def feature_view(x, axis, name="x"):
    x, compute, result = as_array(x, name)
    return _view(x, compute, result, axis)


def _view(x, compute, result, axis):
    if x.ndim == 0:
        raise ValueError("batch norm needs an array with a feature axis, got a scalar")
    axis = normalize_axis(axis, x.ndim)
    shape = x.shape
    return FeatureView(x, compute, result, axis, math.prod(shape[:axis]), shape[axis],
                       math.prod(shape[axis + 1:]))


def per_feature(a, C, name, required=False):
    """`a` as a contiguous float64 array of shape (C,), or None."""
    if a is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    arr, _, _ = as_array(a, name)
    if arr.shape != (C,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({C},): one value per feature")
    return contiguous(arr, F64)


def check_running(r, C, name, updated):
    """A running statistic of shape (C,): when `updated` (training), a writable
    floating ndarray; otherwise any array-like, read-only ones included."""
    if r is None:
        return
    if not updated:
        per_feature(r, C, name)
        return
    if type(r) is not np.ndarray:
        raise TypeError(f"{name} must be a numpy.ndarray (it is updated in place), "
                        f"got {type(r).__name__}")
    if r.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype, got {r.dtype}")
    if r.shape != (C,):
        raise ValueError(f"{name} has shape {r.shape}, expected ({C},): one value per feature")
    if not r.flags.writeable:
        raise ValueError(f"{name} is read-only")


def check_momentum(momentum):
    if momentum is None:
        raise TypeError("momentum=None (a cumulative average) needs the number of batches "
                        "seen: use fastsm.BatchNorm, or pass 1 / num_batches_tracked")
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"momentum must be a float, got {type(momentum).__name__}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    return float(momentum)


def check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    if not eps > 0.0:
        raise ValueError(f"eps must be positive, got {eps}")
    return float(eps)


class ForwardArgs(NamedTuple):
    view: FeatureView
    weight: object       # float64 (C,) or None, likewise bias
    bias: object
    momentum: float
    eps: float


def forward_args(x, weight, bias, running_mean, running_var, training, momentum, eps, axis,
                 out):
    view = feature_view(x, axis)
    C = view.C
    weight = per_feature(weight, C, "weight")
    bias = per_feature(bias, C, "bias")
    check_running(running_mean, C, "running_mean", training)
    check_running(running_var, C, "running_var", training)
    momentum = check_momentum(momentum)
    eps = check_eps(eps)
    if training:
        if view.outer * view.inner == 1:
            raise ValueError(f"Expected more than 1 value per feature when training, got input "
                             f"of shape {view.x.shape} with the features on axis {view.axis}")
    elif running_mean is None or running_var is None:
        raise ValueError("running_mean and running_var are required when training=False")
    if out is not None:
        check_out(out, view.x.shape, view.result)
    return ForwardArgs(view, weight, bias, momentum, eps)


class BackwardArgs(NamedTuple):
    grad: np.ndarray
    view: FeatureView    # of x, with the dtypes of grad and x together
    weight: object
    mean: np.ndarray
    invstd: np.ndarray


def backward_args(grad, x, weight, mean, invstd, axis, out):
    grad, gc, gr = as_array(grad, "grad")
    x, xc, xr = as_array(x, "x")
    if grad.shape != x.shape:
        raise ValueError(f"grad has shape {grad.shape}, x has shape {x.shape}")
    compute, result = common_dtypes((gc, gr), (xc, xr))
    view = _view(x, compute, result, axis)
    C = view.C
    weight = per_feature(weight, C, "weight")
    mean = per_feature(mean, C, "mean", required=True)
    invstd = per_feature(invstd, C, "invstd", required=True)
    if out is not None:
        check_out(out, x.shape, result)
    return BackwardArgs(grad, view, weight, mean, invstd)


def stats_parts(parts):
    """The (count, mean, m2) triples of merge_stats, checked: counts are
    non-negative ints, means and m2s float64 arrays of one shape (C,)."""
    checked = []
    for i, part in enumerate(parts):
        try:
            count, mean, m2 = part
        except (TypeError, ValueError):
            raise TypeError(f"part {i} must be a (count, mean, m2) triple") from None
        if isinstance(count, (bool, np.bool_)) or not isinstance(count, numbers.Integral):
            raise TypeError(f"part {i}: count must be an int, got {type(count).__name__}")
        if count < 0:
            raise ValueError(f"part {i}: count must be non-negative, got {count}")
        mean = np.asarray(mean, F64)
        m2 = np.asarray(m2, F64)
        if mean.ndim != 1 or m2.shape != mean.shape:
            raise ValueError(f"part {i}: mean and m2 must be of one shape (C,), got "
                             f"{mean.shape} and {m2.shape}")
        if checked and mean.shape != checked[0][1].shape:
            raise ValueError(f"part {i} has {mean.shape[0]} features, part 0 has "
                             f"{checked[0][1].shape[0]}")
        checked.append((int(count), mean, m2))
    if not checked:
        raise ValueError("merge_stats needs at least one part")
    return checked
