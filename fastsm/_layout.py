"""Argument handling shared by every public function: array-likes and dtypes,
the axis, the canonical (outer, n, inner) view, `out=` checks.

Everything here runs before a kernel is called, so a call that raises has
written nothing.  (The common case of the softmax family, a C-contiguous
float32/float64 array along its last axis, does not come here: the kernel
module's fast path takes it.)
"""
import math
import operator

import numpy as np

from ._result_cache import contiguous, empty
from ._threads import get_num_threads

try:
    from numpy.exceptions import AxisError
except ImportError:  # numpy < 1.25
    from numpy import AxisError

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)

# Array dtype -> (dtype the kernel computes in, dtype of the result).
_NATIVE = {F32: (F32, F32), F64: (F64, F64), F16: (F32, F16)}


def as_array(x, name):
    """`x` as an ndarray, with the dtypes it computes in and returns."""
    if type(x) is not np.ndarray:
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists, objects numpy cannot convert
            raise TypeError(f"{name} must be array-like: {exc}") from None
    dtypes = _NATIVE.get(x.dtype if x.dtype.isnative else x.dtype.newbyteorder("="))
    if dtypes is None:
        if x.dtype.kind not in "biu":
            raise TypeError(f"{name} must have a real floating, integer or bool dtype, "
                            f"got {x.dtype}")
        dtypes = (F64, F64)
    return x, dtypes[0], dtypes[1]


def common_dtypes(*dtype_pairs):
    """Compute and result dtypes of several inputs together (numpy promotion)."""
    result = np.result_type(*[pair[1] for pair in dtype_pairs])
    return _NATIVE[result]


def normalize_axis(axis, ndim, name="axis"):
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(axis).__name__}") from None
    if not -ndim <= axis < ndim:
        raise AxisError(axis, ndim)
    return axis % ndim


def check_scalar_axis(axis):
    """Checks the int `axis` of a 0-d array: 0 and -1 name its one value, as
    in PyTorch and SciPy."""
    try:
        normalize_axis(axis, 1)
    except AxisError:
        raise AxisError(axis, 0) from None


def axes_to_end(axis, ndim):
    """Permutation that moves the reduced axes (an int, a tuple or None) last,
    and how many of them there are."""
    if axis is None:
        axes = tuple(range(ndim))
    elif isinstance(axis, tuple):
        axes = tuple(normalize_axis(a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"axis contains a repeated axis: {axis}")
    else:
        axes = (normalize_axis(axis, ndim),)
    kept = [a for a in range(ndim) if a not in axes]
    return tuple(kept) + axes, len(axes)


def check_out(out, shape, dtype, name="out"):
    if type(out) is not np.ndarray:
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, the result has shape {shape}")
    if out.dtype != dtype and out.dtype.newbyteorder("=") != dtype:  # byte order aside
        raise ValueError(f"{name} has dtype {out.dtype}, the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")


def _canonical(arr, perm, dtype):
    if perm is not None:
        arr = arr.transpose(perm)
    return contiguous(arr, dtype)


def _address(a):
    return a.__array_interface__["data"][0]


def _writes_directly(dst, dtype, inputs, fresh):
    """Whether the kernel can write into `dst`: the compute dtype (in native
    byte order), contiguous, aligned, and either apart from every input or
    exactly on top of it (in place)."""
    if dst.dtype != dtype or not dst.flags.c_contiguous or not dst.flags.aligned:
        return False
    if fresh:
        return True
    return all(not np.may_share_memory(dst, src)
               or (_address(src) == _address(dst) and src.size == dst.size)
               for src in inputs)


def slice_plan(shape, axis, allow_axes=False):
    """(perm, outer, n, inner) for running along `axis` of an array of `shape`:
    perm (None when no axis moves) brings the reduced axes last, and the
    moved array is viewed as (outer, n, inner)."""
    ndim = len(shape)
    if allow_axes and (axis is None or isinstance(axis, tuple)):
        perm, count = axes_to_end(axis, ndim)
        moved = [shape[a] for a in perm]
        split = ndim - count
        if perm == tuple(range(ndim)):
            perm = None
        return perm, math.prod(moved[:split]), math.prod(moved[split:]), 1
    if ndim == 0:  # one slice of one value
        check_scalar_axis(axis)
        return None, 1, 1, 1
    if type(axis) is int and -ndim <= axis < ndim:
        axis %= ndim
    else:
        axis = normalize_axis(axis, ndim)
    return None, math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def run_slices(kernel, arrays, names, axis, out, allow_axes=False):
    """Run a kernel over the slices of `arrays` (all of one shape) along `axis`.

    kernel(*inputs, out, outer, n, inner, threads) sees C-contiguous arrays of
    the compute dtype, laid out as (outer, n, inner).  With
    `allow_axes`, `axis` may also be a tuple of ints or None: those axes are
    moved to the end and treated as one.  Returns the result (`out` if given).
    """
    converted = [as_array(a, name) for a, name in zip(arrays, names)]
    shape = converted[0][0].shape
    for (arr, _, _), name in zip(converted[1:], names[1:]):
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, {names[0]} has shape {shape}")
    if len(converted) == 1:
        _, compute, result = converted[0]
    else:
        compute, result = common_dtypes(*[(c, r) for _, c, r in converted])
    perm, outer, n, inner = slice_plan(shape, axis, allow_axes)
    if out is not None:
        check_out(out, shape, result)
    dst = out if out is not None else empty(shape, result, like=converted[0][0])
    if dst.size == 0:
        return dst

    inputs = [_canonical(arr, perm, compute) for arr, _, _ in converted]
    target = dst if perm is None else dst.transpose(perm)
    threads = get_num_threads()
    if _writes_directly(target, compute, inputs, fresh=out is None):
        kernel(*inputs, target, outer, n, inner, threads)
    else:
        tmp = empty(inputs[0].shape, compute, like=inputs[0])
        kernel(*inputs, tmp, outer, n, inner, threads)
        np.copyto(target, tmp, casting="unsafe")
    return dst
