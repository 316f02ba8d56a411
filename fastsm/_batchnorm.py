"""Batch normalization, functional form: forward, backward, and the
per-feature statistics of data split into shards.

The common call (contiguous float32/float64 data and per-feature arrays)
is taken whole by the kernel module's fast_forward / fast_backward; anything
else is checked in fastsm/_batchnorm_args.py (shared with the reference),
which gives every error message.  The kernels see the input as (outer, C,
inner), C-contiguous, and per-feature float64 arrays.  The per-feature
arithmetic (C values) is done in float64, here or in the fast path.
"""
import numpy as np

from . import _batchnorm_kernels as _k
from ._batchnorm_args import backward_args, feature_view, forward_args, stats_parts
from ._layout import F32, F64, _writes_directly
from ._result_cache import contiguous, empty
from ._threads import get_num_threads


def _run_into(out, shape, compute, result, inputs, kernel):
    """Runs kernel(target) where target is a C-contiguous array of the compute
    dtype that ends up in the result: `out` itself when possible."""
    if out is None:
        if compute == result:
            dst = empty(shape, compute, like=inputs[0])
            kernel(dst)
            return dst
        tmp = empty(shape, compute, like=inputs[0])
        kernel(tmp)
        return contiguous(tmp, result)
    if _writes_directly(out, compute, inputs, fresh=False):
        kernel(out)
    else:
        tmp = empty(shape, compute, like=inputs[0])
        kernel(tmp)
        np.copyto(out, tmp, casting="unsafe")
    return out


def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, *,
                       training=True, momentum=0.1, eps=1e-5, axis=1, out=None):
    """Batch normalization over every axis but `axis`, as
    ``torch.nn.functional.batch_norm``.

    ``y = (x - mean) * invstd * weight + bias`` with ``invstd = 1 / sqrt(var + eps)``.
    In training the batch mean and biased variance are used and, when given,
    the running statistics are updated in place:
    ``r = (1 - momentum) * r + momentum * batch``, with the unbiased batch
    variance for `running_var`.  Otherwise the running statistics are used.
    Statistics accumulate in float64, reduced in fixed blocks: results do
    not depend on the thread count.  In training, float32 data whose feature
    axis is followed by fewer than 32 values, as (N, C), sums its deviations
    eight rows at a time in float32 first (relative error about 1e-7;
    `batch_norm_stats` stays in float64).  Special values follow PyTorch: a
    feature holding +inf (or -inf) has that mean and a NaN variance, so a NaN
    y; a NaN, or both infinities, give a NaN mean.  One
    difference: with an infinite weight PyTorch's ``x * a + b'`` form gives
    NaN for the whole feature, this ``(x - mean) * a + b`` form +-inf (NaN
    only where x equals the mean).

    Parameters
    ----------
    x : array_like
        Input; float16 is computed in float32, integers and bools in float64.
    weight, bias : array_like of shape (C,), optional
        Affine parameters; None means 1 and 0.
    running_mean, running_var : ndarray of shape (C,), optional
        Writable floating arrays, updated in their own dtype when training;
        required when ``training=False``.
    training : bool, default True
    momentum : float in [0, 1], default 0.1
        For a cumulative average (PyTorch's ``momentum=None``) use `BatchNorm`.
    eps : float > 0, default 1e-5
    axis : int, default 1
        The feature axis: 1 for (N, C) and (N, C, H, W), -1 for channels-last,
        0 for the (features, examples) layout.
    out : ndarray, optional
        Where to write `y` (may be `x`); `x`'s shape, the result dtype.

    Returns
    -------
    y : ndarray
        `x`'s shape and result dtype (float16 for float16 input); `out` if given.
    mean, invstd : ndarray of shape (C,)
        The statistics used: the batch's in training, else the running ones.
        float32 for float16/float32 input, float64 for float64.

    Raises
    ------
    TypeError
        A complex, object or string dtype; running statistics that are not
        floating ndarrays; a non-number momentum or eps (None included).
    ValueError
        One value per feature when training; weight, bias or a running
        statistic not of shape (C,); a read-only running statistic or `out`;
        momentum outside [0, 1]; eps <= 0; missing running statistics when not
        training; an axis out of range; a bad `out`.  Nothing is written.

    Examples
    --------
    >>> import numpy as np, fastsm
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> rm, rv = np.zeros(2), np.ones(2)
    >>> y, mean, invstd = fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, eps=0.0001)
    >>> y.round(4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> mean
    array([ 2., 20.])
    >>> rm, rv
    (array([0.2, 2. ]), array([ 1.1, 20.9]))
    """
    result = _k.fast_forward(x, weight, bias, running_mean, running_var, training, momentum, eps,
                             axis, out)
    if result is not None:
        return result
    args = forward_args(x, weight, bias, running_mean, running_var, training, momentum, eps,
                        axis, out)
    v = args.view
    xc = contiguous(v.x, v.compute)
    count = v.outer * v.inner
    threads = get_num_threads()
    invstd = np.empty(v.C)
    if training and xc.size:
        mean, m2 = np.empty(v.C), np.empty(v.C)

        def normalize(target):
            _k.train(xc, target, v.outer, v.C, v.inner, args.weight, args.bias, args.eps, mean,
                     m2, invstd, threads)
    else:
        scale = np.empty(v.C)
        if training:  # no values: NaN statistics
            mean, m2 = np.full(v.C, np.nan), np.full(v.C, np.nan)
            _k.invstd(m2, count, args.eps, args.weight, invstd, scale)
        else:
            mean = np.array(running_mean, F64)  # a copy: returned to the caller
            _k.invstd(contiguous(np.asarray(running_var), F64), 1.0, args.eps, args.weight,
                      invstd, scale)

        def normalize(target):
            if xc.size:
                _k.apply(None, xc, target, v.outer, v.C, v.inner, None, scale, mean, args.bias,
                         threads)

    y = _run_into(out, v.x.shape, v.compute, v.result, (xc,), normalize)
    if training and count:
        if running_mean is not None:
            _update_running(running_mean, mean, args.momentum, 1.0)
        if running_var is not None:
            _update_running(running_var, m2, args.momentum, 1.0 / (count - 1))
    return y, mean.astype(v.compute, copy=False), invstd.astype(v.compute, copy=False)


def _update_running(r, batch, momentum, factor):
    """r = (1 - momentum) * r + momentum * factor * batch, in r's dtype (one
    rounding from float64).  float32 and float64 in any layout or byte order
    go through the C kernel (a native contiguous copy when r is not one), so
    that every form of r gets the same bits."""
    native = r.dtype.newbyteorder("=")
    if native != F32 and native != F64:
        r[...] = (1 - momentum) * r.astype(F64) + momentum * (factor * batch)
    elif r.dtype == native and r.flags.c_contiguous and r.flags.aligned:
        _k.update_running(r, batch, momentum, factor)
    else:
        work = np.array(r, dtype=native, order="C")
        _k.update_running(work, batch, momentum, factor)
        r[...] = work


def batch_norm_backward(grad, x, weight, mean, invstd, *, training=True, axis=1, out=None):
    """Gradients of `batch_norm_forward` with respect to x, weight and bias.

    With ``xhat = (x - mean) * invstd``, per feature over the n values:
    ``dweight = sum(grad * xhat)``, ``dbias = sum(grad)``, and in training
    ``dx = weight * invstd * (grad - mean(grad) - xhat * mean(grad * xhat))``;
    with ``training=False`` (running statistics, held fixed)
    ``dx = grad * weight * invstd``.  Sums accumulate in float64; float32
    data adds its terms eight at a time in float32 first.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to `y`; `x`'s shape.
    x : array_like
        The forward input.
    weight : array_like of shape (C,) or None
        None counts as ones.
    mean, invstd : array_like of shape (C,)
        As returned by `batch_norm_forward`.
    training : bool, default True
        Whether the forward pass used batch statistics.
    axis : int, default 1
    out : ndarray, optional
        Where to write `dx` (may be `grad` or `x`).

    Returns
    -------
    dx : ndarray
        `x`'s shape and the result dtype of `grad` and `x`; `out` if given.
    dweight, dbias : ndarray of shape (C,)
        Always returned; float32 for float16/float32 input, float64 for float64.

    Raises
    ------
    TypeError
        A complex, object or string dtype.
    ValueError
        `grad` and `x` of different shapes; weight, mean or invstd not of
        shape (C,); an axis out of range; a bad `out`.  Nothing is written.

    Examples
    --------
    >>> import numpy as np, fastsm
    >>> x = np.array([[0.0], [1.0], [5.0]])
    >>> y, mean, invstd = fastsm.batch_norm_forward(x, eps=0.0001)
    >>> grad = np.array([[1.0], [0.0], [0.0]])
    >>> dx, dw, db = fastsm.batch_norm_backward(grad, x, None, mean, invstd)
    >>> dx.ravel().round(4), dw.round(4), db
    (array([ 0.1763, -0.2204,  0.0441]), array([-0.9258]), array([1.]))
    """
    result = _k.fast_backward(grad, x, weight, mean, invstd, training, axis, out)
    if result is not None:
        return result
    args = backward_args(grad, x, weight, mean, invstd, axis, out)
    v = args.view
    gc = contiguous(args.grad, v.compute)
    xc = contiguous(v.x, v.compute)
    count = v.outer * v.inner
    sum_g, sum_gxc = np.zeros(v.C), np.zeros(v.C)
    if count and v.C:  # the kernels take sizes >= 1
        _k.grad_sums(gc, xc, v.outer, v.C, v.inner, args.mean, sum_g, sum_gxc,
                     get_num_threads())

    def differentiate(target):
        if xc.size:
            dx_into(target, gc, xc, (v.outer, v.C, v.inner), args.invstd, args.weight,
                    args.mean, (sum_g, sum_gxc) if training else None, count,
                    get_num_threads())

    dx = _run_into(out, v.x.shape, v.compute, v.result, (gc, xc), differentiate)
    return (dx, (sum_gxc * args.invstd).astype(v.compute, copy=False),
            sum_g.astype(v.compute, copy=False))


def dx_into(target, gc, xc, layout, invstd, weight, mean, sums, count, threads):
    """batch_norm_backward's dx into `target`, all arrays C-contiguous with
    `layout` (outer, C, inner), per-feature ones float64.  `sums` are
    (sum(g), sum(g * (x - mean))) over the `count` values of each feature
    in training, None with the statistics held fixed (then dx = g * k)."""
    k = invstd if weight is None else invstd * weight
    if sums is None:
        _k.apply(gc, None, target, *layout, k, None, None, None, threads)
        return
    sum_g, sum_gxc = sums
    with np.errstate(invalid="ignore", over="ignore"):  # PyTorch's grouping:
        s = -invstd * invstd * sum_gxc / count  # k * ((g - mean(g)) - (x - mean) * proj)
        t = -sum_g / count
    _k.apply(gc, xc, target, *layout, k, s, mean, t, threads)


def batch_norm_stats(x, axis=1):
    """Per-feature statistics of one shard of data: (count, mean, m2).

    `count` is the number of values per feature, `mean` their mean and `m2`
    the sum of squared deviations from it (float64 arrays of shape (C,),
    float32 data accumulated in float64).  `merge_stats` combines shards
    exactly; the variance is ``m2 / count`` (biased) or ``m2 / (count - 1)``.
    An empty shard has count 0, mean NaN and m2 0.  A feature holding +inf
    (or -inf) has that mean and m2 NaN; a NaN, or both infinities, NaN for both.

    Parameters
    ----------
    x : array_like
    axis : int, default 1
        The feature axis.

    Returns
    -------
    count : int
    mean, m2 : ndarray of float64, shape (C,)

    Raises
    ------
    TypeError
        A complex, object or string dtype.
    ValueError
        A scalar, or an axis out of range.

    Examples
    --------
    >>> import fastsm
    >>> fastsm.batch_norm_stats([[1.0, 2.0], [3.0, 6.0]])
    (2, array([2., 4.]), array([2., 8.]))
    """
    v = feature_view(x, axis)
    count = v.outer * v.inner
    mean, m2 = np.full(v.C, np.nan), np.zeros(v.C)
    if count and v.C:
        _k.stats(contiguous(v.x, v.compute), v.outer, v.C, v.inner, mean, m2,
                 get_num_threads())
    return count, mean, m2


def merge_stats(parts):
    """Combines per-shard (count, mean, m2) into those of all the data
    (Chan, Golub and LeVeque's pairwise update, folded left to right).

    A part with count 0 is the identity.  The result equals
    ``batch_norm_stats`` of the concatenated shards up to rounding.

    Parameters
    ----------
    parts : iterable of (int, array_like, array_like)
        As returned by `batch_norm_stats` (or by this function).

    Returns
    -------
    count : int
    mean, m2 : ndarray of float64, shape (C,)

    Raises
    ------
    TypeError
        A part that is not a triple, or a non-int count.
    ValueError
        No parts, a negative count, or parts with different numbers of features.

    Examples
    --------
    >>> import fastsm
    >>> a = fastsm.batch_norm_stats([[1.0], [3.0]])
    >>> b = fastsm.batch_norm_stats([[5.0]])
    >>> fastsm.merge_stats([a, b])
    (3, array([3.]), array([8.]))
    """
    parts = stats_parts(parts)
    shape = parts[0][1].shape
    count, mean, m2 = 0, np.full(shape, np.nan), np.zeros(shape)
    # The IEEE sum of the infinite and NaN means: where it is not 0, so is the
    # merged mean (the fold would give inf - inf = NaN for inf and a finite
    # mean), and m2 is NaN, as batch_norm_stats of data holding infinities.
    special = np.zeros(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        for n_b, mean_b, m2_b in parts:
            if n_b == 0:
                continue
            special += np.where(np.isfinite(mean_b), 0.0, mean_b)
            if count == 0:
                count, mean, m2 = n_b, mean_b.copy(), m2_b.copy()
                continue
            total = count + n_b
            delta = mean_b - mean
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta * delta * (count * n_b / total)
            count = total
    odd = special != 0
    mean[odd] = special[odd]
    m2[odd] = np.nan
    return count, mean, m2
