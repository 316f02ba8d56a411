"""Facts about cross_entropy, cross_entropy_grad and cross_entropy_with_grad."""
import itertools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsm
import fastsm.reference as ref
from conftest import layouts

# (logits shape, class axis)
SHAPES = [((7, 5), -1), ((300, 100), -1), ((3, 70), 1), ((4, 3, 6), 1), ((2, 130, 3), 1),
          ((5, 4, 2, 3), 1), ((6,), 0), ((9, 1), -1), ((260, 3), 0)]
OPTIONS = [dict(reduction=r, label_smoothing=s, weighted=w)
           for r, s, w in itertools.product(["mean", "sum", "none"], [0.0, 0.2], [False, True])]
TOL = {np.float32: 2e-5, np.float64: 1e-12, np.float16: 2e-3}


def sample_shape(shape, axis):
    return shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]


def make_case(rng, shape, axis, kind, dtype=np.float64, ignore_some=True):
    """Logits, and index or probability targets, for a shape and class axis."""
    c = shape[axis]
    x = (rng.normal(size=shape) * 3).astype(dtype)
    if kind == "index":
        t = rng.integers(0, c, size=sample_shape(shape, axis))
        if ignore_some and t.size > 2:
            t.flat[::3] = -100
    else:
        t = rng.random(shape)
        t /= t.sum(axis=axis, keepdims=True)
        t = t.astype(dtype)
    return x, t


def options(opts, c, rng, dtype=np.float64):
    kw = {k: v for k, v in opts.items() if k != "weighted"}
    kw["weight"] = (rng.random(c) + 0.5).astype(dtype) if opts["weighted"] else None
    return kw


def assert_close(actual, expected, dtype):
    tol = TOL[dtype]
    assert np.asarray(actual).dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=tol, atol=tol)


# ---- agreement with the reference -----------------------------------------

@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference(rng, shape, axis, kind, opts, dtype):
    x, t = make_case(rng, shape, axis, kind, dtype)
    kw = options(opts, shape[axis], rng, dtype)
    loss, grad = fastsm.cross_entropy_with_grad(x, t, axis=axis, **kw)
    ref_loss, ref_grad = ref.cross_entropy_with_grad(x, t, axis=axis, **kw)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    assert grad.dtype == dtype and grad.shape == shape
    if kw["reduction"] == "none":
        assert loss.shape == sample_shape(shape, axis) and loss.dtype == dtype
    else:
        assert type(loss) is dtype


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_loss_and_grad_alone_equal_the_fused_call(rng, kind, reduction):
    x, t = make_case(rng, (50, 3, 7), 1, kind)
    kw = dict(axis=1, reduction=reduction, label_smoothing=0.1, weight=[1.0, 2.0, 0.5])
    loss, grad = fastsm.cross_entropy_with_grad(x, t, **kw)
    np.testing.assert_array_equal(fastsm.cross_entropy(x, t, **kw), loss)
    np.testing.assert_array_equal(fastsm.cross_entropy_grad(x, t, **kw), grad)


@pytest.mark.parametrize("kind", ["index", "prob"])
def test_layout_does_not_change_the_result(rng, kind):
    x, t = make_case(rng, (6, 5, 9), 1, kind)
    expected = fastsm.cross_entropy_with_grad(x, t, axis=1, reduction="none")
    for name, view in layouts(x):
        loss, grad = fastsm.cross_entropy_with_grad(view, t, axis=1, reduction="none")
        np.testing.assert_array_equal(loss, expected[0], err_msg=name)
        np.testing.assert_array_equal(grad, expected[1], err_msg=name)
    for name, view in layouts(t):
        loss, grad = fastsm.cross_entropy_with_grad(x, view, axis=1, reduction="none")
        np.testing.assert_array_equal(loss, expected[0], err_msg=name)
        np.testing.assert_array_equal(grad, expected[1], err_msg=name)


def test_float16_is_computed_in_float32(rng):
    x, t = make_case(rng, (20, 6), -1, "index", np.float16)
    loss, grad = fastsm.cross_entropy_with_grad(x, t)
    loss32, grad32 = fastsm.cross_entropy_with_grad(x.astype(np.float32), t)
    assert type(loss) is np.float16 and grad.dtype == np.float16
    assert loss == np.float16(loss32)
    np.testing.assert_array_equal(grad, grad32.astype(np.float16))


def test_integer_logits_and_lists_compute_in_float64():
    loss, grad = fastsm.cross_entropy_with_grad([[1, 2, 3], [0, 0, 0]], [2, 0])
    ref_loss, ref_grad = ref.cross_entropy_with_grad(np.array([[1.0, 2, 3], [0, 0, 0]]), [2, 0])
    assert type(loss) is np.float64 and grad.dtype == np.float64
    assert_close(loss, ref_loss, np.float64)
    assert_close(grad, ref_grad, np.float64)


# ---- agreement with PyTorch ---------------------------------------------

@pytest.mark.parametrize("shape,axis", [((40, 7), -1), ((4, 5, 3, 2), 1), ((300, 70), -1)])
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_matches_torch(rng, shape, axis, kind, opts):
    torch = pytest.importorskip("torch")
    x, t = make_case(rng, shape, axis, kind)
    kw = options(opts, shape[axis], rng)
    axis %= len(shape)
    x_torch = torch.tensor(np.moveaxis(x, axis, 1) if x.ndim > 1 else x, requires_grad=True)
    t_torch = torch.tensor(np.moveaxis(t, axis, 1) if kind == "prob" and t.ndim > 1 else t)
    torch_kw = dict(kw, weight=None if kw["weight"] is None else torch.tensor(kw["weight"]))
    expected = torch.nn.functional.cross_entropy(x_torch, t_torch, **torch_kw)
    expected.sum().backward()
    expected_grad = np.moveaxis(x_torch.grad.numpy(), 1, axis) if x.ndim > 1 else x_torch.grad
    for impl in (fastsm, ref):
        loss, grad = impl.cross_entropy_with_grad(x, t, axis=axis, **kw)
        # torch's "none" losses have shape (N, d1, ...): ours for axis=1 or a 2-D axis=-1
        assert_close(loss, expected.detach().numpy(), np.float64)
        assert_close(grad, np.asarray(expected_grad), np.float64)


def test_all_ignored_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.arange(12.0).reshape(4, 3)
    t = np.full(4, 7)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(x_torch, torch.tensor(t), ignore_index=7)
    expected.backward()
    loss, grad = fastsm.cross_entropy_with_grad(x, t, ignore_index=7)
    assert math.isnan(loss) and math.isnan(expected.item())
    np.testing.assert_array_equal(grad, x_torch.grad.numpy())
    np.testing.assert_array_equal(grad, 0)


# ---- gradients: 4th-order central differences ----------------------------

@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_gradient_is_the_derivative_of_the_loss(rng, kind, opts):
    shape, axis = (4, 5, 3), 1
    x, t = make_case(rng, shape, axis, kind)
    kw = options(opts, shape[axis], rng)

    def total(z):
        return float(np.sum(fastsm.cross_entropy(z, t, axis=axis, **kw)))

    h = 1e-3
    numeric = np.empty_like(x)
    for k in range(x.size):
        step = np.zeros_like(x)
        step.flat[k] = h
        numeric.flat[k] = (-total(x + 2 * step) + 8 * total(x + step) - 8 * total(x - step)
                           + total(x - 2 * step)) / (12 * h)
    grad = fastsm.cross_entropy_grad(x, t, axis=axis, **kw)
    np.testing.assert_allclose(grad, numeric, rtol=1e-8, atol=1e-9)


# ---- the facts that define cross-entropy ----------------------------------

def test_loss_depends_only_on_the_probability_of_the_true_class():
    a = np.log([[0.1, 0.5, 0.1, 0.1, 0.2]])
    b = np.log([[0.1, 0.6, 0.1, 0.1, 0.1]])
    la, lb = fastsm.cross_entropy(a, [0]), fastsm.cross_entropy(b, [0])
    assert la == pytest.approx(lb, rel=1e-15)
    assert la == pytest.approx(-math.log(0.1), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_perfect_prediction_costs_nothing(dtype):
    x = np.array([[1000.0, 0.0, 0.0], [0.0, 0.0, 1000.0]], dtype)
    loss, grad = fastsm.cross_entropy_with_grad(x, [0, 2])
    assert loss == 0
    np.testing.assert_array_equal(grad, 0)
    assert fastsm.cross_entropy(x, np.eye(3, dtype=dtype)[[0, 2]]) == 0


def test_hand_computed_values():
    # log(1 + e^-2) for class 0 of [2, 0]; uniform logits cost log C.
    assert fastsm.cross_entropy([[2.0, 0.0]], [0]) == pytest.approx(math.log1p(math.exp(-2)))
    assert fastsm.cross_entropy(np.zeros((3, 7)), [0, 3, 6]) == pytest.approx(math.log(7))
    # label smoothing 1: the target is uniform whatever the label.
    assert fastsm.cross_entropy([[1.0, 2.0, 3.0]], [2], label_smoothing=1.0) == pytest.approx(
        fastsm.cross_entropy([[1.0, 2.0, 3.0]], np.full((1, 3), 1 / 3)))
    # weighted mean: sum(w_y * l) / sum(w_y)
    x, t, w = np.zeros((2, 2)), np.array([0, 1]), np.array([1.0, 3.0])
    assert fastsm.cross_entropy(x, t, weight=w) == pytest.approx(math.log(2))
    assert fastsm.cross_entropy(x, t, weight=w, reduction="sum") == pytest.approx(4 * math.log(2))


def test_two_classes_are_the_logistic_case(rng):
    z = rng.normal(size=50) * 4
    y = rng.integers(0, 2, size=50)
    logits = np.stack([np.zeros_like(z), z], axis=1)
    np.testing.assert_allclose(fastsm.softmax(logits)[:, 1], fastsm.sigmoid(z), rtol=1e-14)
    loss, grad = fastsm.cross_entropy_with_grad(logits, y)
    assert loss == pytest.approx(fastsm.binary_cross_entropy_with_logits(z, y.astype(float)),
                                 rel=1e-14)
    np.testing.assert_allclose(
        grad[:, 1], fastsm.binary_cross_entropy_with_logits_grad(z, y.astype(float)),
        rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("kind", ["index", "prob"])
def test_extreme_logits_stay_finite(kind):
    x = np.array([[1e30, -1e30, 0.0], [-1e30, 1e30, -1e30], [3e38, -3e37, 1.0]], np.float32)
    t = np.array([1, 0, 2]) if kind == "index" else np.full((3, 3), 1 / 3, np.float32)
    for reduction in ("mean", "sum", "none"):
        loss, grad = fastsm.cross_entropy_with_grad(x, t, reduction=reduction)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    if kind == "index":
        loss = fastsm.cross_entropy(x, t, reduction="none")
        assert loss[0] == np.float32(2e30) and loss[1] == np.float32(2e30)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 3), st.floats(0, 1),
       st.booleans(), st.sampled_from(["index", "prob"]), st.integers(0, 2**32 - 1))
def test_gradient_sums_to_zero_and_loss_is_nonnegative(n, c, inner, smoothing, weighted, kind,
                                                       seed):
    rng = np.random.default_rng(seed)
    x, t = make_case(rng, (n, c, inner), 1, kind)
    weight = rng.random(c) + 0.1 if weighted else None
    loss, grad = fastsm.cross_entropy_with_grad(x, t, axis=1, weight=weight, reduction="none",
                                                label_smoothing=smoothing)
    assert np.all(loss >= -1e-12)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-12 * c)


# ---- conventions ------------------------------------------------------------

def test_ignored_targets_cost_nothing_and_get_zero_gradient(rng):
    x, _ = make_case(rng, (10, 4), -1, "index")
    t = np.array([0, 5, 1, 5, 2, 3, 5, 0, 1, 2])
    loss, grad = fastsm.cross_entropy_with_grad(x, t, ignore_index=5, reduction="none",
                                                label_smoothing=0.3)
    assert np.all(loss[t == 5] == 0) and np.all(grad[t == 5] == 0)
    kept = t != 5
    mean = fastsm.cross_entropy(x, t, ignore_index=5, label_smoothing=0.3)
    assert mean == pytest.approx(loss[kept].mean(), rel=1e-14)


def test_all_ignored_and_empty_batches():
    x = np.ones((3, 4))
    loss, grad = fastsm.cross_entropy_with_grad(x, [-100] * 3)
    assert math.isnan(loss) and np.all(grad == 0)
    assert fastsm.cross_entropy(x, [-100] * 3, reduction="sum") == 0
    empty = np.ones((0, 4), np.float32)
    assert math.isnan(fastsm.cross_entropy(empty, np.zeros(0, int)))
    assert fastsm.cross_entropy(empty, np.zeros(0, int), reduction="sum") == 0
    assert fastsm.cross_entropy(empty, np.zeros(0, int), reduction="none").shape == (0,)
    assert fastsm.cross_entropy_grad(empty, np.zeros(0, int)).shape == (0, 4)


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("shape,axis", [((500, 300), -1), ((20000, 10), -1), ((40, 10, 300), 1)])
def test_results_do_not_depend_on_the_thread_count(rng, kind, shape, axis):
    x, t = make_case(rng, shape, axis, kind, np.float32)
    results = []
    for n in (1, 2, 3, 8):
        with fastsm.threads(n):
            results.append(fastsm.cross_entropy_with_grad(x, t, axis=axis))
    for loss, grad in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("shape,axis", [((64, 10), -1), ((300, 100), -1), ((3, 5, 7), 1),
                                        ((64, 65), -1), ((7, 129), -1)])
def test_out_is_used_and_may_be_the_logits(rng, kind, shape, axis):
    x, t = make_case(rng, shape, axis, kind, np.float32)
    expected_loss, expected_grad = fastsm.cross_entropy_with_grad(x, t, axis=axis)
    out = np.empty_like(x)
    loss, grad = fastsm.cross_entropy_with_grad(x, t, axis=axis, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, expected_grad)
    loss, grad = fastsm.cross_entropy_with_grad(x, t, axis=axis, out=x)
    assert grad is x and loss == expected_loss
    np.testing.assert_array_equal(x, expected_grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_overlapping_the_logits_in_part_gets_the_right_gradient(rng, dtype):
    a = rng.standard_normal(8 * 10 + 1).astype(dtype)
    x, out = a[1:].reshape(8, 10), a[:-1].reshape(8, 10)
    t = rng.integers(0, 10, 8)
    expected_loss, expected_grad = fastsm.cross_entropy_with_grad(x.copy(), t)
    loss, grad = fastsm.cross_entropy_with_grad(x, t, out=out)
    assert grad is out and loss == expected_loss
    np.testing.assert_array_equal(out, expected_grad)


def test_out_of_another_layout_or_dtype_receives_the_gradient(rng):
    x, t = make_case(rng, (30, 6), -1, "index")
    expected = fastsm.cross_entropy_grad(x, t)
    out = np.asfortranarray(np.empty_like(x))
    assert fastsm.cross_entropy_grad(x, t, out=out) is out
    np.testing.assert_array_equal(out, expected)
    half = x.astype(np.float16)
    out16 = np.empty_like(half)
    fastsm.cross_entropy_grad(half, t, out=out16)
    np.testing.assert_array_equal(out16, fastsm.cross_entropy_grad(half, t))


def test_in_place_call_allocates_nothing(rng):
    x, t = make_case(rng, (2000, 500), -1, "index", np.float32, ignore_some=False)
    fastsm.cross_entropy_with_grad(x, t, out=x)  # warm up
    tracemalloc.start()
    try:
        fastsm.cross_entropy_with_grad(x, t, out=x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096


def test_inputs_are_not_modified(rng):
    for kind in ("index", "prob"):
        x, t = make_case(rng, (40, 8), -1, kind)
        w = rng.random(8)
        copies = [a.copy() for a in (x, t, w)]
        fastsm.cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.1)
        for a, c in zip((x, t, w), copies):
            np.testing.assert_array_equal(a, c)


def test_read_only_inputs_are_accepted(rng):
    x, t = make_case(rng, (40, 8), -1, "index")
    x.flags.writeable = t.flags.writeable = False
    loss, grad = fastsm.cross_entropy_with_grad(x, t)
    assert np.isfinite(loss) and grad.flags.writeable


# ---- errors, raised before anything is written ----------------------------

BAD_CALLS = [
    (ValueError, "outside", dict(target=np.array([0, 1, 4, 2]))),
    (ValueError, "outside", dict(target=np.array([0, -1, 2, 2]))),
    (ValueError, "expected", dict(target=np.array([0, 1, 2]))),
    (ValueError, "pass a one-hot target as float", dict(target=np.eye(4, dtype=int))),
    (ValueError, "probability target has shape", dict(target=np.ones((4, 3)))),
    (TypeError, "target", dict(target=np.array(["a", "b", "c", "d"]))),
    (ValueError, "reduction", dict(reduction="average")),
    (ValueError, "reduction", dict(reduction=None)),
    (ValueError, "label_smoothing", dict(label_smoothing=-0.1)),
    (ValueError, "label_smoothing", dict(label_smoothing=1.5)),
    (ValueError, "label_smoothing", dict(label_smoothing=float("nan"))),
    (ValueError, "weight", dict(weight=np.ones(3))),
    (ValueError, "weight", dict(weight=np.ones((4, 1)))),
    (TypeError, "ignore_index", dict(ignore_index=1.5)),
    (np.exceptions.AxisError if hasattr(np, "exceptions") else ValueError, "axis", dict(axis=2)),
    (ValueError, "shape", dict(out=np.empty((4, 5)))),
    (ValueError, "dtype", dict(out=np.empty((4, 4), np.float32))),
]


BAD_CASES = [(func, *bad) for func in ("cross_entropy", "cross_entropy_grad",
                                        "cross_entropy_with_grad")
             for bad in BAD_CALLS if func != "cross_entropy" or "out" not in bad[2]]


@pytest.mark.parametrize("func,error,match,kw", BAD_CASES, ids=lambda v: str(v)[:40])
def test_bad_input_raises_before_any_write(func, error, match, kw):
    x = np.arange(16.0).reshape(4, 4)
    original = x.copy()
    kw = dict(kw)
    target = kw.pop("target", np.array([0, 1, 2, 3]))
    if func != "cross_entropy":
        kw.setdefault("out", x)  # the in-place call: the most to lose
    with pytest.raises(error, match=match):
        getattr(fastsm, func)(x, target, **kw)
    np.testing.assert_array_equal(x, original)


def test_read_only_out_is_refused():
    x = np.zeros((2, 3))
    out = np.zeros((2, 3))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastsm.cross_entropy_grad(x, [0, 1], out=out)


def test_no_classes_is_an_error():
    with pytest.raises(ValueError, match="no classes"):
        fastsm.cross_entropy(np.zeros((3, 0)), [0, 0, 0])


@pytest.mark.parametrize("func", [ref.cross_entropy, ref.cross_entropy_grad])
def test_reference_rejects_out_of_range_labels_too(func):
    with pytest.raises(ValueError):
        func(np.zeros((2, 3)), [0, 3])


def test_ignored_samples_with_nan_logits_cost_nothing_as_in_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[np.nan, 1.0, 2.0], [1.0, 2.0, 3.0]])
    t = np.array([2, 1])
    for smoothing in (0.0, 0.1):
        want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), ignore_index=2,
                                                 reduction="none", label_smoothing=smoothing)
        for impl in (fastsm, ref):
            loss, grad = impl.cross_entropy_with_grad(x, t, ignore_index=2, reduction="none",
                                                      label_smoothing=smoothing)
            np.testing.assert_allclose(loss, want.numpy(), rtol=1e-12)
            assert (grad[0] == 0).all() and np.isfinite(grad[1]).all()


def test_minus_inf_logit_of_another_class_is_fine_without_smoothing():
    torch = pytest.importorskip("torch")
    x = np.array([[2.0, -np.inf, 0.5], [1.0, 2.0, 3.0]])
    t = np.array([0, 2])
    want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none")
    for impl in (fastsm, ref):
        loss = impl.cross_entropy(x, t, reduction="none")
        assert np.isfinite(loss).all()
        np.testing.assert_allclose(loss, want.numpy(), rtol=1e-12)


def test_an_overflowing_term_with_factor_zero_is_nan_as_in_torch():
    # label_smoothing=1 multiplies the NLL term by 0; when that term overflows
    # to inf (here 2 * 1e308), PyTorch gives 0 * inf = NaN, not the finite or
    # infinite value of the other term.
    torch = pytest.importorskip("torch")
    x = np.array([[0.0, 1e308], [0.0, 1.0], [0.0, 0.0]])
    t = np.array([0, 0, 1])
    w = np.array([2.0, 1.0])
    for smoothing in (1.0, 0.5):
        want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                                 weight=torch.tensor(w), reduction="none",
                                                 label_smoothing=smoothing).numpy()
        for impl in (fastsm, ref):
            loss = impl.cross_entropy(x, t, weight=w, reduction="none", label_smoothing=smoothing)
            np.testing.assert_allclose(loss, want, rtol=1e-12)
    assert np.isnan(fastsm.cross_entropy(x, t, weight=w, label_smoothing=1.0, reduction="none")[0])


JUST_BELOW_2_127 = float(np.nextafter(np.float32(2.0 ** 127), np.float32(0)))


@pytest.mark.parametrize("big,weight_of_target", [(2.0 ** 127, 0.5), (2.0 ** 127, 1.72),
                                                  (JUST_BELOW_2_127, 1.72)])
@pytest.mark.parametrize("inner", [1, 3, 17])
def test_an_overflowing_log_probability_overflows_as_in_torch_in_every_layout(
        inner, big, weight_of_target):
    # float32: x_t = -2^127 beside a max of 2^127 makes log p_t = -2^128 = -inf in
    # PyTorch's float32 arithmetic, so its NLL term is inf (times 1 - eps: NaN at
    # eps = 1) and its smoothing term inf; just below 2^127, log p_t is finite
    # but w_t log p_t may overflow.  Whether the classes are rows (inner = 1) or
    # columns.
    torch = pytest.importorskip("torch")
    big = np.float32(big)
    rows = np.array([[-4.2, big, -big, 2.5], [0.5, 1.0, -1.0, 2.0]], np.float32)
    x = np.ascontiguousarray(np.repeat(rows[:, :, None], inner, axis=2))  # classes on axis 1
    t = np.array([[2] * inner, [0] * inner])
    w = np.array([1.0, 2.0, weight_of_target, 1.5], np.float32)
    for smoothing in (1.0, 0.0):
        want = torch.nn.functional.cross_entropy(
            torch.tensor(x), torch.tensor(t), weight=torch.tensor(w), reduction="none",
            label_smoothing=smoothing).numpy()
        for impl in (fastsm, ref):
            loss = impl.cross_entropy(x, t, axis=1, weight=w, reduction="none",
                                      label_smoothing=smoothing)
            np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_the_smoothing_term_is_summed_in_float64_unlike_torch():
    # Where only the float32 sum of the smoothing term overflows, PyTorch gives
    # inf; fastsm (and its reference) sum in float64 and give the finite value.
    big = np.float32(JUST_BELOW_2_127)
    x = np.array([[-4.2, big, -big, 2.5]], np.float32)
    w = np.array([1.0, 2.0, 0.5, 1.5])
    logp = x.astype(np.float64) - np.float64(big)  # log-sum-exp is the max here
    want = np.float32(-(w * logp).sum() / 4)
    for impl in (fastsm, ref):
        loss = impl.cross_entropy(x, [2], weight=w.astype(np.float32), reduction="none",
                                  label_smoothing=1.0)
        np.testing.assert_allclose(loss, [want], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1])
def test_the_common_call_gives_what_the_general_path_gives(rng, dtype, reduction, smoothing):
    # 2-D contiguous logits with int64 labels and no weight take a shortcut;
    # weights of 1 take the general path and must give the same bits.
    for shape in [(64, 10), (3, 1), (200, 70), (5, 300)]:
        x, t = make_case(rng, shape, -1, "index", dtype)
        kw = dict(reduction=reduction, label_smoothing=smoothing)
        ones = np.ones(shape[1], dtype)
        loss, grad = fastsm.cross_entropy_with_grad(x, t, **kw)
        want_loss, want_grad = fastsm.cross_entropy_with_grad(x, t, weight=ones, **kw)
        assert loss.dtype == want_loss.dtype and loss == want_loss
        np.testing.assert_array_equal(grad, want_grad)
        assert fastsm.cross_entropy(x, t, axis=1, **kw) == want_loss
        np.testing.assert_array_equal(fastsm.cross_entropy_grad(x, t, **kw), want_grad)
        assert_close(loss, ref.cross_entropy(x, t, **kw), dtype)
        work = x.copy()
        loss2, grad2 = fastsm.cross_entropy_with_grad(work, t, out=work, **kw)
        assert grad2 is work and loss2 == want_loss
        np.testing.assert_array_equal(work, want_grad)
    every_ignored = np.full(shape[0], -100)
    assert np.isnan(fastsm.cross_entropy(x, every_ignored, reduction="mean"))
    assert fastsm.cross_entropy(x, every_ignored, reduction="sum") == 0
