"""batch_norm_forward / batch_norm_backward: agreement with the NumPy
reference over dtypes, layouts and feature axes, hand-computed values,
central finite differences, accuracy far from zero, thread independence,
and bad input rejected before anything is written."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsm
import fastsm.reference as ref
from conftest import layouts

# (shape, feature axis): (N, C) rows, NCHW, channels-last, (features, examples),
# short runs (inner < 32 takes the column layout), C = 1.
CASES = [((64, 10), 1), ((6, 5, 7, 9), 1), ((6, 7, 9, 5), -1), ((10, 300), 0),
         ((3, 4, 40), 1), ((300, 2, 3), 1), ((50, 1), 1), ((2, 1, 33), 1), ((5, 3, 4100), 1),
         ((700, 17), -1)]
TOL = {np.float16: 2e-3, np.float32: 2e-5, np.float64: 1e-12}


def inputs(rng, shape, axis, dtype, loc=3.0, scale=2.0):
    C = shape[axis]
    x = (rng.standard_normal(shape) * scale + loc).astype(dtype)
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    return x, w, b


def close(actual, expected, dtype):
    tol = TOL[dtype]
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_forward_matches_reference(rng, shape, axis, dtype, training):
    x, w, b = inputs(rng, shape, axis, dtype)
    C = shape[axis]
    results = []
    for mod in (fastsm, ref):
        rm, rv = np.linspace(-1, 1, C).astype(dtype), np.linspace(0.5, 2, C).astype(dtype)
        y, mean, invstd = mod.batch_norm_forward(x, w, b, rm, rv, training=training, axis=axis,
                                                 momentum=0.3)
        results.append((y, mean, invstd, rm, rv))
    for got, want in zip(*results):
        assert got.dtype == want.dtype and got.shape == want.shape
        close(got, want, dtype)


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_reference(rng, shape, axis, dtype, training):
    x, w, b = inputs(rng, shape, axis, dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    rm, rv = np.zeros(C, dtype), np.full(C, 1.5, dtype)
    _, mean, invstd = ref.batch_norm_forward(x, w, b, rm, rv, training=training, axis=axis)
    got = fastsm.batch_norm_backward(grad, x, w, mean, invstd, training=training, axis=axis)
    want = ref.batch_norm_backward(grad, x, w, mean, invstd, training=training, axis=axis)
    for g, e in zip(got, want):
        assert g.dtype == e.dtype and g.shape == e.shape
        close(g, e, dtype)


@pytest.mark.parametrize("shape,axis", [((20, 3, 5), 1), ((30, 4), -1)])
def test_every_layout_gives_the_same_bits(rng, shape, axis):
    x, w, b = inputs(rng, shape, axis, np.float32)
    grad = rng.standard_normal(shape).astype(np.float32)
    y0, m0, i0 = fastsm.batch_norm_forward(x, w, b, axis=axis)
    d0 = fastsm.batch_norm_backward(grad, x, w, m0, i0, axis=axis)
    for name, xv in layouts(x):
        y, m, i = fastsm.batch_norm_forward(xv, w, b, axis=axis)
        np.testing.assert_array_equal(y, y0, err_msg=name)
        np.testing.assert_array_equal(m, m0, err_msg=name)
        for got, want in zip(fastsm.batch_norm_backward(grad, xv, w, m, i, axis=axis), d0):
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("dtype,result", [(np.float16, np.float16), (np.int32, np.float64),
                                          (np.bool_, np.float64)])
def test_other_dtypes_follow_the_conventions(rng, dtype, result):
    x = (rng.standard_normal((40, 3)) * 3).astype(dtype)
    y, mean, invstd = fastsm.batch_norm_forward(x)
    assert y.dtype == result
    assert mean.dtype == invstd.dtype == (np.float32 if dtype == np.float16 else np.float64)
    y_ref, mean_ref, _ = ref.batch_norm_forward(x)
    close(y, y_ref, np.float16 if dtype == np.float16 else np.float64)
    close(mean, mean_ref, np.float32)


def test_float16_is_computed_in_float32(rng):
    x = rng.standard_normal((64, 6)).astype(np.float16)
    y, mean, invstd = fastsm.batch_norm_forward(x)
    y32, mean32, invstd32 = fastsm.batch_norm_forward(x.astype(np.float32))
    np.testing.assert_array_equal(y, y32.astype(np.float16))
    np.testing.assert_array_equal(mean, mean32)


def test_hand_computed_values():
    x = np.array([[1.0, -2.0], [3.0, -2.0], [5.0, 4.0]])
    rm, rv = np.zeros(2), np.ones(2)
    y, mean, invstd = fastsm.batch_norm_forward(x, [2.0, 1.0], [0.5, 0.0], rm, rv, eps=1e-12,
                                                momentum=0.5)
    # feature 0: mean 3, biased var 8/3; feature 1: mean 0, biased var 8
    np.testing.assert_allclose(mean, [3.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(invstd, [np.sqrt(3 / 8), np.sqrt(1 / 8)], rtol=1e-12)
    np.testing.assert_allclose(y[:, 0], 2 * np.array([-2.0, 0.0, 2.0]) * np.sqrt(3 / 8) + 0.5,
                               rtol=1e-12)
    np.testing.assert_allclose(y[:, 1], np.array([-2.0, -2.0, 4.0]) / np.sqrt(8), rtol=1e-12)
    # running: 0.5 * old + 0.5 * batch, with the unbiased variance (4 and 12)
    np.testing.assert_allclose(rm, [1.5, 0.0], atol=1e-15)
    np.testing.assert_allclose(rv, [2.5, 6.5], rtol=1e-14)


def test_inference_uses_the_running_statistics():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    rm, rv = np.array([1.0, -1.0]), np.array([4.0, 0.25])
    y, mean, invstd = fastsm.batch_norm_forward(x, None, [0.0, 1.0], rm, rv, training=False,
                                                eps=1e-300)
    np.testing.assert_allclose(y, [[0.0, 7.0], [1.0, 11.0]], rtol=1e-14)  # (x - m) * invstd + b
    np.testing.assert_array_equal(mean, rm)
    np.testing.assert_allclose(invstd, [0.5, 2.0], rtol=1e-14)
    np.testing.assert_array_equal(rm, [1.0, -1.0])  # untouched


def central_difference(f, x, h):
    """d f / d x by a 4th-order central difference, f scalar."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        def at(step):
            xs = x.copy()
            xs[i] += step
            return f(xs)
        grad[i] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
    return grad


@pytest.mark.parametrize("shape,axis", [((5, 3), 1), ((3, 2, 4), 1), ((2, 3, 2), -1), ((3, 5), 0)])
@pytest.mark.parametrize("training", [True, False])
def test_backward_is_the_derivative(rng, shape, axis, training):
    x, w, b = inputs(rng, shape, axis, np.float64)
    R = rng.standard_normal(shape)  # L = sum(R * y), so dL/dy = R
    C = shape[axis]
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)

    def loss(x_, w_=w, b_=b):
        y, _, _ = fastsm.batch_norm_forward(x_, w_, b_, rm.copy(), rv.copy(), training=training,
                                            axis=axis)
        return np.sum(R * y)

    _, mean, invstd = fastsm.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training=training,
                                                axis=axis)
    dx, dw, db = fastsm.batch_norm_backward(R, x, w, mean, invstd, training=training, axis=axis)
    np.testing.assert_allclose(dx, central_difference(loss, x, 1e-3), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(dw, central_difference(lambda w_: loss(x, w_), w, 1e-3),
                               rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(db, central_difference(lambda b_: loss(x, w, b_), b, 1e-3),
                               rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("shape,axis", [((4096, 8), 1), ((16, 8, 1000), 1), ((8, 1000, 3), -1)])
def test_variance_far_from_zero_is_accurate_in_float32(rng, shape, axis):
    # Values around 1e4 with spread 1: E[x^2] - E[x]^2 in float32 would lose
    # every digit (1e8 against ulp 8).
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    y, mean, invstd = fastsm.batch_norm_forward(x, axis=axis, eps=1e-12)
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    exact_var = np.var(x.astype(np.float64), axis=axes)
    np.testing.assert_allclose(1 / invstd.astype(np.float64) ** 2, exact_var, rtol=1e-6)
    np.testing.assert_allclose(mean, np.mean(x.astype(np.float64), axis=axes), rtol=1e-7)
    # y keeps its precision too: x - mean is exact near the mean.
    exact_y = ((x.astype(np.float64) - np.mean(x.astype(np.float64), axis=axes, keepdims=True))
               / np.sqrt(np.expand_dims(exact_var, axes)))
    np.testing.assert_allclose(y, exact_y, atol=2e-5)


@pytest.mark.parametrize("shape,axis", [((3000, 70), 1), ((9, 40, 2000), 1), ((7000, 5, 3), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(rng, shape, axis, dtype):
    x, w, b = inputs(rng, shape, axis, dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    results = []
    for n in (1, 2, 3, 8):
        with fastsm.threads(n):
            y, mean, invstd = fastsm.batch_norm_forward(x, w, b, axis=axis)
            results.append((y, mean, invstd,
                            *fastsm.batch_norm_backward(grad, x, w, mean, invstd, axis=axis),
                            *fastsm.batch_norm_stats(x, axis=axis)[1:]))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


def at_offset(a, offset):
    """A C-contiguous copy of `a` that starts `offset` elements into a buffer."""
    buf = np.empty(a.size + offset, a.dtype)
    view = buf[offset:].reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("shape", [(37, 300), (20, 1040), (9, 40, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_alignment(rng, shape, dtype):
    # The loops over columns start their vectors at 64-byte lines of the data.
    x, w, b = inputs(rng, shape, 1, dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    y0, m0, i0 = fastsm.batch_norm_forward(x, w, b)
    d0 = fastsm.batch_norm_backward(grad, x, w, m0, i0)
    for offset in (1, 3, 5, 16):
        xv, out = at_offset(x, offset), at_offset(np.zeros_like(x), 2 * offset + 1)
        y, m, i = fastsm.batch_norm_forward(xv, w, b, out=out)
        for got, want in zip((y, m, i), (y0, m0, i0)):
            np.testing.assert_array_equal(got, want)
        dx = fastsm.batch_norm_backward(at_offset(grad, offset + 2), xv, w, m, i, out=out)
        for got, want in zip(dx, d0):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_written_past_the_caches(rng, dtype):
    # Outputs of 16 MB and more in runs of 2 KB and more go out by
    # non-temporal stores, a buffer at a time from each run's first whole
    # cache line: the values, alignment, threads and in place as elsewhere.
    shape = (3, 2, 703, 1001) if dtype == np.float32 else (3, 2, 501, 703)
    x, w, b = inputs(rng, shape, 1, dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    want = ref.batch_norm_forward(x, w, b, rm.copy(), rv.copy())
    want_eval = ref.batch_norm_forward(x, w, b, rm, rv, training=False)
    want_dx = ref.batch_norm_backward(grad, x, w, want[1], want[2])
    got = fastsm.batch_norm_forward(x, w, b, rm.copy(), rv.copy())
    for g, e in zip(got, want):
        close(g, e, dtype)
    close(fastsm.batch_norm_forward(x, w, b, rm, rv, training=False)[0], want_eval[0], dtype)
    dx = fastsm.batch_norm_backward(grad, x, w, got[1], got[2])
    for g, e in zip(dx, want_dx):
        close(g, e, dtype)
    with fastsm.threads(1):
        np.testing.assert_array_equal(fastsm.batch_norm_forward(x, w, b)[0], got[0])
        np.testing.assert_array_equal(fastsm.batch_norm_backward(grad, x, w, got[1], got[2])[0],
                                      dx[0])
    xv = at_offset(x, 3)
    np.testing.assert_array_equal(fastsm.batch_norm_forward(xv, w, b, out=xv)[0], got[0])
    gv = at_offset(grad, 1)
    np.testing.assert_array_equal(
        fastsm.batch_norm_backward(gv, x, w, got[1], got[2], out=gv)[0], dx[0])


def test_out_and_in_place(rng):
    x, w, b = inputs(rng, (30, 4, 6), 1, np.float32)
    y, _, _ = fastsm.batch_norm_forward(x, w, b)
    out = np.empty_like(x)
    assert fastsm.batch_norm_forward(x, w, b, out=out)[0] is out
    np.testing.assert_array_equal(out, y)
    strided = np.empty((30, 4, 12), np.float32)[:, :, ::2]
    fastsm.batch_norm_forward(x, w, b, out=strided)
    np.testing.assert_array_equal(strided, y)
    xc = x.copy()
    fastsm.batch_norm_forward(xc, w, b, out=xc)
    np.testing.assert_array_equal(xc, y)

    grad = rng.standard_normal(x.shape).astype(np.float32)
    _, mean, invstd = fastsm.batch_norm_forward(x, w, b)
    dx, _, _ = fastsm.batch_norm_backward(grad, x, w, mean, invstd)
    g = grad.copy()
    assert fastsm.batch_norm_backward(g, x, w, mean, invstd, out=g)[0] is g
    np.testing.assert_array_equal(g, dx)


def strided_copy(a):
    """A writable view with a stride of 2 holding the values of 1-D `a`."""
    view = np.zeros(2 * a.size, a.dtype)[::2]
    view[...] = a
    return view


# Per-feature arrays holding the same values in forms that take the fast path
# (contiguous float32/float64 arrays) and forms that do not.
PARAM_FORMS = [("same", lambda a: a), ("float64", lambda a: a.astype(np.float64)),
               ("list", lambda a: a.tolist()), ("strided", strided_copy)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_per_feature_arrays_of_any_form_give_the_same_bits(rng, dtype, training):
    x, w, b = inputs(rng, (40, 6, 5), 1, dtype)
    grad = rng.standard_normal(x.shape).astype(dtype)
    rm0, rv0 = np.linspace(-1, 1, 6).astype(dtype), np.linspace(0.5, 2, 6).astype(dtype)
    results = []
    for name, form in PARAM_FORMS:
        # updated running statistics must be ndarrays of their own dtype
        updatable = name in ("same", "strided")
        rm, rv = (form(rm0.copy()), form(rv0.copy())) if updatable or not training \
            else (rm0.copy(), rv0.copy())
        y, mean, invstd = fastsm.batch_norm_forward(x, form(w), form(b), rm, rv,
                                                    training=training, momentum=0.3)
        back = fastsm.batch_norm_backward(grad, x, form(w), form(mean), form(invstd),
                                          training=training)
        running = (rm, rv) if training else ()
        results.append((name, (y, mean, invstd) + running + back))
    for name, got in results[1:]:
        for g, want in zip(got, results[0][1]):
            assert g.dtype == want.dtype, name
            np.testing.assert_array_equal(g, want, err_msg=name)


def test_out_overlapping_an_input_in_part(rng):
    x, w, b = inputs(rng, (30, 4, 6), 1, np.float64)
    grad = rng.standard_normal(x.shape)
    y, mean, invstd = fastsm.batch_norm_forward(x, w, b)
    dx, _, _ = fastsm.batch_norm_backward(grad, x, w, mean, invstd)
    buf = np.zeros(x.size + 5)
    buf[:x.size] = x.ravel()
    xv, out = buf[:x.size].reshape(x.shape), buf[5:].reshape(x.shape)
    assert fastsm.batch_norm_forward(xv, w, b, out=out)[0] is out
    np.testing.assert_array_equal(out, y)
    buf[:x.size] = grad.ravel()
    gv = buf[:x.size].reshape(x.shape)
    assert fastsm.batch_norm_backward(gv, x, w, mean, invstd, out=out)[0] is out
    np.testing.assert_array_equal(out, dx)


def test_inputs_are_not_modified(rng):
    x, w, b = inputs(rng, (20, 3), 1, np.float64)
    grad = rng.standard_normal(x.shape)
    saved = [a.copy() for a in (x, w, b, grad)]
    _, mean, invstd = fastsm.batch_norm_forward(x, w, b)
    fastsm.batch_norm_backward(grad, x, w, mean, invstd)
    for a, s in zip((x, w, b, grad), saved):
        np.testing.assert_array_equal(a, s)


def test_empty_batches():
    x = np.zeros((0, 3), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, mean, invstd = fastsm.batch_norm_forward(x, None, None, rm, rv)
    assert y.shape == (0, 3) and np.isnan(mean).all()
    np.testing.assert_array_equal(rm, 0)   # as PyTorch: no update from an empty batch
    np.testing.assert_array_equal(rv, 1)
    dx, dw, db = fastsm.batch_norm_backward(x, x, None, np.zeros(3), np.ones(3))
    assert dx.shape == (0, 3)
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)


@pytest.mark.parametrize("shape", [(5, 0), (5, 0, 3), (2, 3, 0)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_features_or_empty_runs(shape, training, dtype):
    # (5, 0) once crashed the process: the kernels were called with C = 0.
    x, C = np.zeros(shape, dtype), shape[1]
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    y, mean, invstd = fastsm.batch_norm_forward(x, None, None, rm, rv, training=training)
    assert y.shape == shape and mean.shape == invstd.shape == (C,)
    dx, dw, db = fastsm.batch_norm_backward(x, x, None, np.zeros(C), np.ones(C),
                                            training=training)
    assert dx.shape == shape and dx.dtype == dtype
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)
    for got, want in zip((dx, dw, db), ref.batch_norm_backward(x, x, None, np.zeros(C),
                                                               np.ones(C), training=training)):
        np.testing.assert_array_equal(got, want)


def bad_forward_calls(C):
    ok = dict(weight=np.ones(C), bias=np.zeros(C))
    yield "one value per feature", dict(x=np.ones((1, C)), **ok), ValueError
    yield "one value per feature (4-d)", dict(x=np.ones((1, C, 1, 1)), **ok), ValueError
    yield "weight length", dict(x=np.ones((4, C)), weight=np.ones(C + 1)), ValueError
    yield "bias length", dict(x=np.ones((4, C)), bias=np.ones((C, 1))), ValueError
    for m in (-0.1, 1.5, float("nan")):
        yield f"momentum {m}", dict(x=np.ones((4, C)), momentum=m), ValueError
    yield "momentum None", dict(x=np.ones((4, C)), momentum=None), TypeError
    for eps in (0.0, -1e-5, float("nan")):
        yield f"eps {eps}", dict(x=np.ones((4, C)), eps=eps), ValueError
    yield "axis", dict(x=np.ones((4, C)), axis=2), ValueError
    yield "complex", dict(x=np.ones((4, C), complex)), TypeError
    yield "out shape", dict(x=np.ones((4, C)), out=np.zeros((4, C + 1))), ValueError
    yield "out dtype", dict(x=np.ones((4, C)), out=np.zeros((4, C), np.float32)), ValueError


@pytest.mark.parametrize("case", list(bad_forward_calls(3)), ids=lambda c: c[0])
def test_bad_forward_input_writes_nothing(case):
    _, kwargs, error = case
    C = 3
    rm, rv = np.full(C, 0.5), np.full(C, 2.0)
    x = kwargs.pop("x")
    x_before = x.copy()
    out = kwargs.get("out")
    out_before = None if out is None else out.copy()
    with pytest.raises(error):
        fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, **kwargs)
    with pytest.raises(error):
        ref.batch_norm_forward(x, running_mean=rm.copy(), running_var=rv.copy(), **kwargs)
    np.testing.assert_array_equal(rm, 0.5)
    np.testing.assert_array_equal(rv, 2.0)
    np.testing.assert_array_equal(x, x_before)
    if out is not None:
        np.testing.assert_array_equal(out, out_before)


@pytest.mark.parametrize("running_mean,error", [
    ([0.0, 0.0, 0.0], TypeError),                      # not an ndarray: cannot be updated
    (np.zeros(3, np.int64), TypeError),
    (np.zeros(4), ValueError),
    (np.zeros((3, 1)), ValueError),
])
def test_bad_running_statistics_are_rejected(running_mean, error):
    rv = np.ones(3)
    with pytest.raises(error):
        fastsm.batch_norm_forward(np.ones((4, 3)), running_mean=running_mean, running_var=rv)
    np.testing.assert_array_equal(rv, 1.0)


def test_read_only_running_statistics_are_rejected():
    rm, rv = np.zeros(3), np.ones(3)
    rv.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastsm.batch_norm_forward(np.arange(12.0).reshape(4, 3), running_mean=rm, running_var=rv)
    np.testing.assert_array_equal(rm, 0.0)


def test_inference_reads_read_only_running_statistics(rng):
    x = rng.normal(size=(5, 3))
    rm, rv = rng.normal(size=3), rng.random(3) + 0.5
    expected = fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, training=False)[0]
    rm.flags.writeable = rv.flags.writeable = False
    y = fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, training=False)[0]
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda v, dt: v.astype(dt),                                   # contiguous
    lambda v, dt: np.repeat(v.astype(dt), 2)[::2],                # strided view
], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_running_statistics_of_any_float_dtype_and_layout(rng, make, dtype):
    x = rng.standard_normal((30, 3)) * 2 + 1
    rm, rv = make(np.full(3, 0.5), dtype), make(np.full(3, 2.0), dtype)
    rm_ref, rv_ref = np.full(3, 0.5, dtype), np.full(3, 2.0, dtype)
    fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, momentum=0.25)
    ref.batch_norm_forward(x, running_mean=rm_ref, running_var=rv_ref, momentum=0.25)
    assert rm.dtype == dtype
    close(rm, rm_ref, dtype)
    close(rv, rv_ref, dtype)


def test_returned_statistics_are_new_arrays():
    rm, rv = np.zeros(3), np.ones(3)
    x = np.arange(12.0).reshape(4, 3)
    for training in (True, False):
        _, mean, invstd = fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv,
                                                    training=training)
        assert not np.shares_memory(mean, rm) and not np.shares_memory(invstd, rv)


def test_inference_needs_running_statistics():
    with pytest.raises(ValueError, match="running"):
        fastsm.batch_norm_forward(np.ones((4, 3)), training=False)


def test_one_value_per_feature_is_fine_in_inference():
    y, _, _ = fastsm.batch_norm_forward(np.ones((1, 3)), running_mean=np.zeros(3),
                                        running_var=np.ones(3), training=False, eps=1e-300)
    np.testing.assert_allclose(y, 1.0)


def test_bad_backward_input_is_rejected():
    x = np.ones((4, 3))
    with pytest.raises(ValueError):
        fastsm.batch_norm_backward(np.ones((4, 2)), x, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError):
        fastsm.batch_norm_backward(x, x, np.ones(2), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError):
        fastsm.batch_norm_backward(x, x, None, None, np.ones(3))
    out = np.full((4, 3), 7.0)
    with pytest.raises(ValueError):
        fastsm.batch_norm_backward(x, x, None, np.zeros(3), np.ones(4), out=out)
    np.testing.assert_array_equal(out, 7.0)


@settings(max_examples=60, deadline=None)
@given(outer=st.integers(1, 40), C=st.integers(1, 9), inner=st.integers(1, 70),
       loc=st.floats(-1e3, 1e3), seed=st.integers(0, 2**32 - 1))
def test_batch_statistics_normalise_each_feature(outer, C, inner, loc, seed):
    if outer * inner < 2:
        return
    x = np.random.default_rng(seed).standard_normal((outer, C, inner)) + loc
    y, mean, invstd = fastsm.batch_norm_forward(x, eps=1e-300)
    var = x.var(axis=(0, 2))
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(1 / invstd ** 2, var, rtol=1e-8)
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-9)
    np.testing.assert_allclose(y.var(axis=(0, 2)), 1, rtol=1e-8)


torch_cases = pytest.mark.parametrize("shape", [(16, 5), (4, 3, 6, 7)])


def fastsm_and_torch(torch, x, w, b, rm, rv, grad, training, momentum):
    """(fastsm's, PyTorch's) output, running mean and variance (updated in place on
    both sides), dx, dweight and dbias, as NumPy arrays."""
    F = torch.nn.functional
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    y, mean, invstd = fastsm.batch_norm_forward(x, w, b, rm, rv, training=training,
                                                momentum=momentum)
    dx, dw, db = fastsm.batch_norm_backward(grad, x, w, mean, invstd, training=training)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.batch_norm(xt, rm_t, rv_t, wt, bt, training, momentum, 1e-5)
    yt.backward(torch.tensor(grad))
    return [(got, want.detach().numpy()) for got, want in
            [(y, yt), (rm, rm_t), (rv, rv_t), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]]


@torch_cases
@pytest.mark.parametrize("training", [True, False])
def test_matches_torch(rng, shape, training):
    torch = pytest.importorskip("torch")
    x, w, b = inputs(rng, shape, 1, np.float32)
    grad = rng.standard_normal(shape).astype(np.float32)
    C = shape[1]
    rm, rv = np.full(C, 0.5, np.float32), np.full(C, 2.0, np.float32)
    for got, want in fastsm_and_torch(torch, x, w, b, rm, rv, grad, training, momentum=0.2):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,axis", [((5, 3), 1), ((5, 3), -1), ((4, 3, 6, 6), 1), ((3, 7), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_feature_gives_nan_statistics(shape, axis, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    index = [0] * len(shape)
    index[axis] = 1
    x[tuple(index)] = np.nan
    count, mean, m2 = fastsm.batch_norm_stats(x, axis=axis)
    _, want_mean, want_m2 = ref.batch_norm_stats(x, axis=axis)
    np.testing.assert_array_equal(np.isnan(mean), np.isnan(want_mean))
    np.testing.assert_array_equal(np.isnan(m2), np.isnan(want_m2))
    assert np.isnan(m2[1]) and not np.isnan(m2[0])
    _, _, invstd = fastsm.batch_norm_forward(x, axis=axis)
    assert np.isnan(invstd[1]) and np.isfinite(invstd[0])


# Special values, as PyTorch: a feature holding +inf (or -inf) has that mean
# and a NaN variance (so NaN y, dx and dweight); NaN or both infinities give a
# NaN mean.  In eval mode infinities pass through y = (x - rm) * invstd * w + b.
# Not covered: an infinite weight, where PyTorch computes y = x * a + b' with
# a = invstd * w and gets NaN for every value of the feature, while fastsm's
# (x - mean) * a + b (which keeps the precision of data far from zero) gives
# +-inf, and NaN only where x equals the mean.
SPECIAL_CASES = {
    "x +inf": dict(x=(0, 0, np.inf)), "x -inf": dict(x=(1, 0, -np.inf)),
    "x +-inf": dict(x=(0, 0, np.inf), x2=(2, 0, -np.inf)), "x nan": dict(x=(1, 0, np.nan)),
    "bias inf": dict(bias=np.inf), "bias -inf": dict(bias=-np.inf), "bias nan": dict(bias=np.nan),
    "weight nan": dict(weight=np.nan), "rm inf": dict(rm=np.inf), "rm -inf": dict(rm=-np.inf),
    "rm nan": dict(rm=np.nan), "rv inf": dict(rv=np.inf), "rv -inf": dict(rv=-np.inf),
    "rv nan": dict(rv=np.nan),
}


@pytest.mark.parametrize("case", list(SPECIAL_CASES))
@pytest.mark.parametrize("shape", [(3, 2), (3, 2, 40)])  # column and run layouts
@pytest.mark.parametrize("training", [True, False])
def test_special_values_as_torch(rng, case, shape, training):
    torch = pytest.importorskip("torch")
    spec = SPECIAL_CASES[case]
    x = rng.standard_normal(shape).astype(np.float32)
    for key in ("x", "x2"):
        if key in spec:
            n, c, value = spec[key]
            x[n, c] = value
    C = shape[1]
    params = {"weight": rng.uniform(0.5, 2, C), "bias": rng.standard_normal(C),
              "rm": rng.standard_normal(C), "rv": rng.uniform(0.5, 2, C)}
    for key, arr in params.items():
        if key in spec:
            arr[0] = spec[key]
    w, b, rm, rv = (params[k].astype(np.float32) for k in ("weight", "bias", "rm", "rv"))
    grad = rng.standard_normal(shape).astype(np.float32)
    for got, want in fastsm_and_torch(torch, x, w, b, rm, rv, grad, training, momentum=0.1):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
    if training and "x" in spec:
        mean = fastsm.batch_norm_forward(x, training=True)[1]
        ref_mean = ref.batch_norm_forward(x, training=True)[1]
        np.testing.assert_array_equal(mean, ref_mean)  # +-inf or NaN, as torch's saved mean


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 40)])
def test_huge_finite_values_keep_a_finite_mean(dtype, shape):
    # Sums of values near the dtype's maximum overflow; the mean of equal huge
    # values is that value and their m2 is 0, in fastsm as in the reference.
    x = np.full(shape, np.finfo(dtype).max / 2, dtype)
    x[:, 1] = -x[:, 1]
    for mod in (fastsm, ref):
        count, mean, m2 = mod.batch_norm_stats(x)
        np.testing.assert_array_equal(mean, x[0, :, ...].reshape(3, -1)[:, 0].astype(np.float64))
        np.testing.assert_array_equal(m2, 0.0)


@pytest.mark.parametrize("shape,axis", [((1000, 3), 1), ((3, 1000), 0), ((250, 3, 4, 1), 1),
                                        ((10, 3, 100), 1)])
def test_float64_values_at_both_ends_of_the_range_have_a_finite_mean(shape, axis):
    # Summed about the first value (the largest double), the others' deviations
    # overflow: the mean is then the plain sum of x / n, which cannot.  Feature
    # 0 holds +max, -max and zeros (mean 0), feature 1 +max once and -max
    # elsewhere (mean (2 - n) / n * max); m2 overflows to inf, so invstd is 0
    # and y is the bias.
    big = np.finfo(np.float64).max
    v = np.moveaxis(np.zeros(shape), axis, 0)  # features first
    n = v[0].size
    v[0].flat[0], v[0].flat[1] = big, -big
    v[1].flat[:] = -big
    v[1].flat[0] = big
    x = np.ascontiguousarray(np.moveaxis(v, 0, axis))
    count, mean, m2 = fastsm.batch_norm_stats(x, axis=axis)
    assert mean[0] == 0 and m2[0] == np.inf
    np.testing.assert_allclose(mean[1], big / n * (2 - n), rtol=1e-12)
    bias = np.array([1.5, -2.0, 0.25])
    y, mean_y, invstd = fastsm.batch_norm_forward(x, None, bias, axis=axis)
    np.testing.assert_array_equal(mean_y, mean)
    np.testing.assert_array_equal(invstd[:2], 0.0)
    np.testing.assert_array_equal(np.moveaxis(y, axis, 0)[0], 1.5)
    np.testing.assert_array_equal(np.moveaxis(y, axis, 0)[1], -2.0)
    np.testing.assert_allclose(ref.batch_norm_stats(x, axis=axis)[1][1], mean[1], rtol=1e-12)


def _far_apart(dtype, shape, axis):
    """A feature [big, -big, -big] whose x - mean overflows the dtype, and
    one with eps negligible, in the layout of (shape, axis)."""
    big = np.finfo(dtype).max * 0.99
    x = np.array([[big, 1e30], [-big, 2e30], [-big, 4e30]], dtype)
    x = np.ascontiguousarray(x.T if axis == 0 else x)
    return np.repeat(x[:, :, None], shape[2], axis=2) if len(shape) == 3 else x


LAYOUTS_FAR_APART = [((3, 2), 1), ((3, 2, 40), 1), ((2, 3), 0)]  # columns, runs, axis 0


@pytest.mark.parametrize("shape,axis", LAYOUTS_FAR_APART)
def test_float32_values_further_apart_than_the_largest_float(shape, axis):
    # 3e38 - -1e38 overflows float32, yet y is finite: [sqrt(2), -1/sqrt(2),
    # -1/sqrt(2)] for the huge feature whatever its scale, so y equals y of
    # the data scaled down by 2^-20 (exactly).  The statistics are in float64.
    x = _far_apart(np.float32, shape, axis)
    small = x * np.float32(2.0 ** -20)
    y, mean, invstd = fastsm.batch_norm_forward(x, axis=axis)
    y_small, mean_small, invstd_small = fastsm.batch_norm_forward(small, axis=axis)
    np.testing.assert_allclose(y, y_small, rtol=1e-6)
    huge = y.take(0, axis=axis).reshape(3, -1)[:, 0]
    np.testing.assert_allclose(huge, [np.sqrt(2), -np.sqrt(0.5), -np.sqrt(0.5)], rtol=1e-6)
    # dx scales as 1/scale: dx(g, x) = dx(g, x * 2^-20) * 2^-20.
    g = (np.arange(x.size, dtype=np.float32).reshape(x.shape) % 5 - 2) * np.float32(1e10)
    dx = fastsm.batch_norm_backward(g, x, None, mean, invstd, axis=axis)[0]
    dx_small = fastsm.batch_norm_backward(g, small, None, mean_small, invstd_small, axis=axis)[0]
    assert np.isfinite(dx).all()
    np.testing.assert_allclose(dx * np.float32(2.0 ** 20), dx_small, rtol=1e-5)


@pytest.mark.parametrize("shape,axis", LAYOUTS_FAR_APART)
def test_a_factor_beyond_half_the_largest_float(shape, axis):
    # weight * invstd = 2.5e38: twice that overflows float32, so the feature
    # (and in the column layout every feature) takes s*(x - mean) unhalved.
    x = np.array([[0.5, 1.0], [-0.5, 2.0], [0.0, 4.0]], np.float32)
    x = np.ascontiguousarray(x.T if axis == 0 else x)
    if len(shape) == 3:
        x = np.repeat(x[:, :, None], shape[2], axis=2)
    weight, bias = np.array([2.5e38, 2.0], np.float32), np.array([1.0, -1.0], np.float32)
    rm, rv = np.zeros(2, np.float32), np.full(2, 1 - 1e-5, np.float32)
    y = fastsm.batch_norm_forward(x, weight, bias, rm, rv, training=False, axis=axis)[0]
    want = ref.batch_norm_forward(x, weight, bias, rm, rv, training=False, axis=axis)[0]
    np.testing.assert_allclose(y, want, rtol=1e-6)
    huge = y.take(0, axis=axis).reshape(3, -1)[:, 0]
    np.testing.assert_allclose(huge, [1.25e38, -1.25e38, 1.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_with_many_features_shares_the_finish_among_threads(rng, dtype):
    # (256, 1024) and wider finish their statistics on every thread, each a
    # range of features: one feature's factor beyond half the largest float
    # (every feature then unhalved), non-finite features and the running
    # statistics must come out as with one thread and as the reference.
    x = rng.standard_normal((256, 1536)).astype(dtype)
    x[7, 100], x[9, 1200], x[:, 1300] = np.inf, np.nan, 5.0
    weight = rng.standard_normal(1536).astype(dtype)
    weight[1500] = np.finfo(dtype).max / 1.5
    bias = rng.standard_normal(1536).astype(dtype)
    outs = []
    for threads in (1, 2):
        rm, rv = np.zeros(1536, dtype), np.ones(1536, dtype)
        with fastsm.threads(threads), np.errstate(all="ignore"):
            outs.append(fastsm.batch_norm_forward(x, weight, bias, rm, rv) + (rm, rv))
    for one, two in zip(*outs):
        np.testing.assert_array_equal(one, two)
    rm, rv = np.zeros(1536, dtype), np.ones(1536, dtype)
    with np.errstate(all="ignore"):
        want = ref.batch_norm_forward(x, weight, bias, rm, rv)
    finite = np.isfinite(x).all(axis=0) & (np.arange(1536) != 1500)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(outs[1][0][:, finite], want[0][:, finite], rtol=tol, atol=tol)
    np.testing.assert_allclose(outs[1][3], rm, rtol=tol, atol=tol)
    np.testing.assert_allclose(outs[1][4][finite], rv[finite], rtol=tol)
    assert np.isnan(outs[1][0][:, [100, 1200]]).all() and (outs[1][0][:, 1300] == bias[1300]).all()
    huge = outs[1][0][:, 1500].astype(np.float64)
    np.testing.assert_allclose(huge, want[0][:, 1500].astype(np.float64), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", LAYOUTS_FAR_APART)
def test_inference_further_from_the_running_mean_than_the_largest_float(dtype, shape, axis):
    x = _far_apart(dtype, shape, axis)
    big = np.finfo(dtype).max
    rm, rv = np.full(2, -big / 2, dtype), np.full(2, big / 4, dtype)
    y = fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, training=False,
                                  axis=axis)[0]
    # (x - rm) * invstd, halved so that the float64 math cannot overflow either
    want = (x.astype(np.float64) / 2 - rm[0] / 2.0) * (2 / np.sqrt(np.float64(rv[0])))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, want, rtol=1e-6)
