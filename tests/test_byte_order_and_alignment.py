"""Arrays in the other byte order (as data read from a file may be) and
arrays one byte off their elements' alignment: every function reads them by
value, writes an `out=` of either kind correctly, and updates running
statistics of either kind in place.  (test_hypothesis_sweep draws these
layouts too; here each function meets each of them for sure.)"""
import numpy as np
import pytest

import fastsm
import fastsm.reference as ref
from public_api import LIVE, assert_agree, relayout

ODD_LAYOUTS = ("swapped", "unaligned")


@pytest.mark.parametrize("entry", LIVE, ids=lambda e: e.name)
@pytest.mark.parametrize("layout", ODD_LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_and_out_in_odd_layouts_give_the_native_results(entry, layout, dtype):
    shape, axis = (5, 37), (-1 if entry.axis_kind else None)
    kwargs = entry.make(np.random.default_rng(3), shape, dtype, axis, False)
    want = entry.call(entry.fast, dict(kwargs))
    odd = {k: relayout(v, layout) if k in entry.arrays else v for k, v in kwargs.items()}
    if entry.has_out():
        odd["out"] = relayout(np.zeros_like(np.asarray(entry.out_of(want))), layout)
    got = entry.call(entry.fast, odd)
    assert_agree(entry, got, want, kwargs, axis)
    if entry.has_out():
        assert entry.out_of(got) is odd["out"]


def _per_feature_arrays(layout):
    """Running statistics, weight and bias of 3 features in `layout`."""
    return [relayout(np.array(v), layout) for v in
            ([0.5, -1.0, 2.0], [1.0, 4.0, 0.25], [1.5, -0.5, 2.0], [0.1, 0.2, -0.3])]


@pytest.mark.parametrize("layout", ODD_LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_per_feature_arrays_in_odd_layouts(layout, dtype):
    x = np.random.default_rng(4).standard_normal((6, 3)).astype(dtype)
    mean, var, weight, bias = _per_feature_arrays("C")
    odd_mean, odd_var, odd_weight, odd_bias = _per_feature_arrays(layout)
    want = fastsm.batch_norm_forward(x, weight, bias, mean, var)
    got = fastsm.batch_norm_forward(x, odd_weight, odd_bias, odd_mean, odd_var)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # The running statistics are updated in place, in their own layout.
    assert odd_mean.dtype.isnative == (layout != "swapped")
    np.testing.assert_array_equal(odd_mean, mean)
    np.testing.assert_array_equal(odd_var, var)
    assert not np.array_equal(mean, _per_feature_arrays("C")[0])  # they did move

    grad = np.ones_like(x)
    want = fastsm.batch_norm_backward(grad, x, weight, got[1], got[2])
    odd = [relayout(np.asarray(a), layout) for a in (weight, got[1], got[2])]
    for g, w in zip(fastsm.batch_norm_backward(grad, x, *odd), want):
        np.testing.assert_array_equal(g, w)


def test_swapped_running_statistics_match_the_reference():
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    rm, rv = np.zeros(2, ">f8"), np.ones(2, ">f8")
    fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, momentum=0.1)
    # 0.9 * 0 + 0.1 * mean, and 0.9 * 1 + 0.1 * the unbiased variance (2 and 200)
    np.testing.assert_allclose(rm, [0.2, 2.0], rtol=1e-15)
    np.testing.assert_allclose(rv, [1.1, 20.9], rtol=1e-15)


@pytest.mark.parametrize("module", [fastsm, ref], ids=["fastsm", "reference"])
def test_binary_gradient_into_its_own_weight(module):
    x, t = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.0, 1.0])
    sigmoid = 1 / (1 + np.exp(-x))
    w = np.array([2.0, 0.5, 3.0])
    want = w * (sigmoid - t) / 3
    got = module.binary_cross_entropy_with_logits_grad(x, t, weight=w, out=w)
    assert got is w
    np.testing.assert_allclose(w, want, rtol=1e-15)


def test_binary_gradient_into_an_array_holding_pos_weight():
    x = np.random.default_rng(5).standard_normal((4, 3))
    t = (x > 0).astype(np.float64)
    out = np.full((4, 3), 2.0)
    pos_weight = out[1]  # a row of out, read for every row
    want = fastsm.binary_cross_entropy_with_logits_grad(x, t, pos_weight=np.full(3, 2.0))
    got = fastsm.binary_cross_entropy_with_logits_grad(x, t, pos_weight=pos_weight, out=out)
    np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize("value", [2**63, 2**64 - 100])  # the latter wraps to -100 as int64
def test_index_targets_beyond_int64_are_outside_the_classes(value):
    target = np.array([0, value], np.uint64)
    with pytest.raises(ValueError, match="target .* outside the classes"):
        fastsm.cross_entropy(np.zeros((2, 3)), target, reduction="none")


@pytest.mark.parametrize("module", [fastsm, ref], ids=["fastsm", "reference"])
def test_mean_over_weights_that_cancel_is_infinite_as_pytorch(module):
    x, t, w = np.array([[0.0, 1.0], [2.0, 0.0]]), np.array([0, 1]), np.array([1.0, -1.0])
    # Sample losses log(1 + e) and log(1 + e^2), weighted 1 and -1, over 1 - 1 = 0.
    assert np.log1p(np.e) - np.log1p(np.e**2) < 0
    assert module.cross_entropy(x, t, weight=w) == -np.inf
    loss, grad = module.cross_entropy_with_grad(x, t, weight=w)
    assert loss == -np.inf
    np.testing.assert_array_equal(grad, 0)
    assert np.isnan(module.cross_entropy(x, np.array([-100, -100]), weight=w))
