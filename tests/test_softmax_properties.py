"""Hypothesis properties of the softmax family over random shapes, axes and values."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fastsm
import fastsm.reference as ref

finite_f64 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def arrays_and_axis(draw, dtype=np.float64, elements=finite_f64):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=7))
    x = draw(hnp.arrays(dtype, shape, elements=elements))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return x, axis


@settings(max_examples=200, deadline=None)
@given(arrays_and_axis())
def test_softmax_is_a_distribution(case):
    x, axis = case
    y = fastsm.softmax(x, axis)
    assert ((y >= 0) & (y <= 1)).all()
    np.testing.assert_allclose(y.sum(axis), 1, rtol=1e-13)


@settings(max_examples=200, deadline=None)
@given(arrays_and_axis(), st.floats(-1e3, 1e3))
def test_shift_invariance(case, shift):
    x, axis = case
    np.testing.assert_allclose(fastsm.softmax(x + shift, axis), fastsm.softmax(x, axis),
                               rtol=1e-9, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(arrays_and_axis())
def test_log_softmax_is_log_of_softmax_where_finite(case):
    x, axis = case
    y = fastsm.softmax(x, axis)
    with np.errstate(divide="ignore"):
        log_y = np.log(y)
    finite = np.isfinite(log_y) & (y > 1e-300)
    np.testing.assert_allclose(fastsm.log_softmax(x, axis)[finite], log_y[finite],
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(arrays_and_axis(np.float32, st.floats(width=32) | st.sampled_from([np.inf, -np.inf, np.nan])))
def test_agrees_with_reference_including_special_values(case):
    x, axis = case
    for name in ("softmax", "log_softmax", "hardmax"):
        got = getattr(fastsm, name)(x, axis)
        want = getattr(ref, name)(x, axis)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(arrays_and_axis())
def test_hardmax_is_the_one_hot_of_argmax(case):
    x, axis = case
    h = fastsm.hardmax(x, axis)
    np.testing.assert_array_equal(h.sum(axis), 1)
    np.testing.assert_array_equal(np.argmax(h, axis), np.argmax(x, axis))
