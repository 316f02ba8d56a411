"""Facts about sigmoid and binary cross-entropy with logits."""
import itertools
import math

import numpy as np
import pytest

import fastsm
import fastsm.reference as ref

TOL = {np.float32: 2e-6, np.float64: 1e-14}


def make_case(rng, shape, dtype):
    x = (rng.normal(size=shape) * 5).astype(dtype)
    t = rng.random(shape).astype(dtype)
    return x, t


OPTION_SETS = [dict(), dict(weight="full"), dict(pos_weight="class"),
               dict(weight="row", pos_weight="class")]


def build(opts, shape, rng, dtype):
    kw = {}
    if opts.get("weight") == "full":
        kw["weight"] = rng.random(shape).astype(dtype)
    elif opts.get("weight") == "row":
        kw["weight"] = rng.random((shape[0], 1)).astype(dtype)
    if "pos_weight" in opts:
        kw["pos_weight"] = (rng.random(shape[-1]) * 3).astype(dtype)
    return kw


def cancellation_slack(x, t, kw, reduction):
    """The reference's rounding error where it cancels: for x < 0 it adds
    (1 - t) x and lw (-x) in the logits' dtype, each off by up to an ulp of
    |x| lw; the kernel adds terms of one sign in double instead."""
    lw = 1 + (kw.get("pos_weight", 1) - 1) * t
    slack = 2 * np.finfo(x.dtype).eps * np.abs(x) * np.maximum(lw, 1) * kw.get("weight", 1)
    slack = np.broadcast_to(slack, x.shape)
    return {"none": slack, "sum": slack.sum(), "mean": slack.mean()}[reduction]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", OPTION_SETS, ids=str)
def test_matches_reference(rng, dtype, reduction, opts):
    x, t = make_case(rng, (30, 4), dtype)
    kw = build(opts, x.shape, rng, dtype)
    loss = fastsm.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw)
    grad = fastsm.binary_cross_entropy_with_logits_grad(x, t, reduction=reduction, **kw)
    expected = ref.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw)
    expected_grad = ref.binary_cross_entropy_with_logits_grad(x, t, reduction=reduction, **kw)
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    slack = cancellation_slack(x, t, kw, reduction)
    assert np.all(np.abs(np.float64(loss) - expected) <= TOL[dtype] * np.abs(expected) + slack)
    # Where the gradient crosses 0, both sides lose digits to cancellation: absolute
    # error of a few ulp of the terms (order 1, divided by the count for "mean").
    scale = 1 / x.size if reduction == "mean" else 1
    np.testing.assert_allclose(grad, expected_grad, rtol=TOL[dtype], atol=TOL[dtype] * scale)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", OPTION_SETS, ids=str)
def test_matches_torch(rng, reduction, opts):
    torch = pytest.importorskip("torch")
    x, t = make_case(rng, (30, 4), np.float64)
    x[0] = [1e30, -1e30, 700.0, -700.0]
    kw = build(opts, x.shape, rng, np.float64)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        x_torch, torch.tensor(t), reduction=reduction,
        **{k: torch.tensor(v) for k, v in kw.items()})
    expected.sum().backward()
    for impl in (fastsm, ref):
        loss = impl.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw)
        grad = impl.binary_cross_entropy_with_logits_grad(x, t, reduction=reduction, **kw)
        np.testing.assert_allclose(loss, expected.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(grad, x_torch.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("opts", OPTION_SETS, ids=str)
def test_gradient_is_the_derivative_of_the_loss(rng, opts):
    x, t = make_case(rng, (5, 3), np.float64)
    kw = build(opts, x.shape, rng, np.float64)

    def loss(z):
        return float(fastsm.binary_cross_entropy_with_logits(z, t, **kw))

    h = 1e-3
    numeric = np.empty_like(x)
    for k in range(x.size):
        step = np.zeros_like(x)
        step.flat[k] = h
        numeric.flat[k] = (-loss(x + 2 * step) + 8 * loss(x + step) - 8 * loss(x - step)
                           + loss(x - 2 * step)) / (12 * h)
    grad = fastsm.binary_cross_entropy_with_logits_grad(x, t, **kw)
    np.testing.assert_allclose(grad, numeric, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_and_symmetric(dtype):
    big = np.finfo(dtype).max
    x = np.array([-big, -1e30, -100, -1, 0, 1, 100, 1e30, big], dtype)
    y = fastsm.sigmoid(x)
    assert y.dtype == dtype and np.all(np.isfinite(y))
    assert y[0] == 0 and y[-1] == 1 and y[4] == 0.5
    np.testing.assert_allclose(y + fastsm.sigmoid(-x), 1, rtol=2 * np.finfo(dtype).eps)
    assert fastsm.sigmoid(np.array([-50.0]))[0] == pytest.approx(math.exp(-50), rel=1e-14)
    np.testing.assert_allclose(fastsm.sigmoid(x), ref.sigmoid(x), rtol=2 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_of_a_value_does_not_depend_on_its_neighbours(rng, dtype):
    # vector lanes, the last partial vector and lanes whose exp is subnormal
    # (redone apart, in blocks of 256: here in several) all give the bits a
    # one-element call gives, also in place
    x = np.concatenate([rng.normal(size=600) * 30, [-100.0, -720.0, -750.0, 3.0, -0.0] * 3])
    x = x.astype(dtype)
    rng.shuffle(x)
    alone = np.array([fastsm.sigmoid(x[i:i + 1])[0] for i in range(len(x))])
    np.testing.assert_array_equal(fastsm.sigmoid(x), alone)
    np.testing.assert_array_equal(fastsm.sigmoid(x[3:]), alone[3:])
    inplace = x.copy()
    assert fastsm.sigmoid(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, alone)


def test_sigmoid_out_and_dtypes():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    expected = fastsm.sigmoid(x)
    assert fastsm.sigmoid(x, out=x) is x
    np.testing.assert_array_equal(x, expected)
    assert fastsm.sigmoid(np.array([0], np.float16)).dtype == np.float16
    assert fastsm.sigmoid([0, 1]).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_give_finite_exact_losses(dtype):
    x = np.array([1e30, -1e30, 1e30, -1e30], dtype)
    t = np.array([1, 0, 0, 1], dtype)
    loss = fastsm.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_array_equal(loss, np.array([0, 0, 1e30, 1e30], dtype))
    grad = fastsm.binary_cross_entropy_with_logits_grad(x, t, reduction="sum")
    np.testing.assert_array_equal(grad, [0, 0, 1, -1])


def test_hand_computed_values():
    assert fastsm.binary_cross_entropy_with_logits([0.0], [1.0]) == pytest.approx(math.log(2))
    # pos_weight scales the positive term only: -p t log(s) - (1 - t) log(1 - s)
    s = 1 / (1 + math.exp(-0.5))
    expected = -(3 * 0.25 * math.log(s) + 0.75 * math.log(1 - s))
    got = fastsm.binary_cross_entropy_with_logits([0.5], [0.25], pos_weight=[3.0])
    assert got == pytest.approx(expected, rel=1e-14)


def test_empty_input():
    assert math.isnan(fastsm.binary_cross_entropy_with_logits(np.zeros(0), np.zeros(0)))
    assert fastsm.binary_cross_entropy_with_logits(np.zeros(0), np.zeros(0), reduction="sum") == 0


@pytest.mark.parametrize("kw,error,match", [
    (dict(target=np.zeros(3)), ValueError, "target has shape"),
    (dict(reduction="avg"), ValueError, "reduction"),
    (dict(weight=np.ones(3)), ValueError, "weight"),
    (dict(pos_weight=np.ones((2, 2, 4))), ValueError, "pos_weight"),
    (dict(target=np.array(["a"] * 4)), TypeError, "target"),
    (dict(out=np.empty(3)), ValueError, "shape"),
])
def test_bad_input_raises_before_any_write(kw, error, match):
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    original = x.copy()
    kw = dict(kw)
    target = kw.pop("target", np.full((2, 4), 0.5))
    kw.setdefault("out", x)
    with pytest.raises(error, match=match):
        fastsm.binary_cross_entropy_with_logits_grad(x, target, **kw)
    np.testing.assert_array_equal(x, original)


@pytest.mark.parametrize("pos_weight", [None, "class"])
def test_grad_out_may_be_the_logits(rng, pos_weight):
    x, t = make_case(rng, (6, 3), np.float64)
    kw = build({} if pos_weight is None else {"pos_weight": pos_weight}, x.shape, rng,
               np.float64)
    expected = fastsm.binary_cross_entropy_with_logits_grad(x, t, **kw)
    assert fastsm.binary_cross_entropy_with_logits_grad(x, t, out=x, **kw) is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("pw_shape", [(), (1,), (5,), (1, 5), (4, 1, 5), (3, 1), (4, 3, 1),
                                      (4, 3, 5), (1, 3, 5)])
def test_pos_weight_broadcasts_like_torch(rng, pw_shape):
    x, t = make_case(rng, (4, 3, 5), np.float64)
    pos_weight = rng.random(pw_shape) * 3
    grad = fastsm.binary_cross_entropy_with_logits_grad(x, t, pos_weight=pos_weight,
                                                        reduction="sum")
    sig = 1 / (1 + np.exp(-x))  # d/dx of -[p t log s + (1 - t) log(1 - s)], by hand
    expected = (1 - t) * sig - pos_weight * t * (1 - sig)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_zero_dimensional_inputs_keep_their_shape(dtype):
    x = np.array(0.5, dtype)
    assert fastsm.sigmoid(x).shape == ()
    assert fastsm.binary_cross_entropy_with_logits_grad(x, np.array(1.0, dtype)).shape == ()
    assert fastsm.binary_cross_entropy_with_logits(x, np.array(1.0, dtype),
                                                   reduction="none").shape == ()


# ---- the loss kernel against float64 math ---------------------------------

def softplus64(y):
    return np.logaddexp(0, np.asarray(y, np.float64))


def bce64(x, t, weight=None, pos_weight=None):
    """-p t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x)) in float64: two terms
    of one sign, from the inputs' exact values."""
    x, t = np.float64(x), np.float64(t)
    p = 1 if pos_weight is None else np.float64(pos_weight)
    w = 1 if weight is None else np.float64(weight)
    return w * (p * t * softplus64(-x) + (1 - t) * softplus64(x))


# The smallest normal number: exp(-|x|) is flushed to 0 below it.
TINY = {np.float32: np.finfo(np.float32).tiny, np.float64: np.finfo(np.float64).tiny}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_of_a_right_answer_is_log1p_exp_to_a_few_ulp(dtype):
    # t = 1 for x >= 0 and t = 0 for x < 0: the loss is log1p(exp(-|x|)), which
    # the textbook form (1 - t) x + softplus(-x) gets only to an ulp of |x|.
    x = np.concatenate([np.linspace(-100, 100, 20001), [-1e30, 1e30, -0.0]]).astype(dtype)
    t = (x >= 0).astype(dtype)
    loss = fastsm.binary_cross_entropy_with_logits(x, t, reduction="none")
    expected = np.log1p(np.exp(-np.abs(np.float64(x))))
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=4 * np.finfo(dtype).eps, atol=TINY[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (30, 4), (3, 5, 7), (2049, 3), (5, 1000)],
                         ids=str)
def test_losses_match_float64_math(rng, dtype, shape):
    x = (rng.normal(size=shape) * 20).astype(dtype)
    t = rng.random(shape).astype(dtype)
    loss = fastsm.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert loss.shape == shape and loss.dtype == dtype
    np.testing.assert_allclose(loss, bce64(x, t), rtol=8 * np.finfo(dtype).eps, atol=TINY[dtype])


# (weight shape, pos_weight shape) for logits of shape (6, 4, 5): trailing axes
# (read repeating), leading ones (broadcast to full size), scalars, full size.
WEIGHT_SHAPES = [((), None), ((5,), None), ((4, 5), None), ((6, 1, 1), None),
                 ((6, 4, 5), None), (None, (5,)), (None, (1, 5)), (None, (4, 1)),
                 (None, (6, 4, 5)), ((5,), (5,)), ((6, 1, 5), (4, 5)), ((1, 4, 1), ())]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("w_shape,pw_shape", WEIGHT_SHAPES, ids=str)
def test_weights_broadcast_and_reduce_as_float64_math(rng, dtype, reduction, w_shape, pw_shape):
    shape = (6, 4, 5)
    x = (rng.normal(size=shape) * 8).astype(dtype)
    t = rng.random(shape).astype(dtype)
    w = None if w_shape is None else (rng.random(w_shape) * 2).astype(dtype)
    pw = None if pw_shape is None else (rng.random(pw_shape) * 3).astype(dtype)
    loss = fastsm.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                                   reduction=reduction)
    terms = np.broadcast_to(bce64(x, t, w, pw), shape)
    expected = {"none": terms, "sum": terms.sum(), "mean": terms.mean()}[reduction]
    assert np.asarray(loss).dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=8 * np.finfo(dtype).eps, atol=TINY[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reductions_do_not_depend_on_the_thread_count(rng, dtype, reduction):
    shape = (1000, 301)  # a few hundred chunks, more than the kernel's sum blocks
    x = (rng.normal(size=shape) * 5).astype(dtype)
    t = rng.random(shape).astype(dtype)
    kw = dict(weight=rng.random(shape[-1]).astype(dtype),
              pos_weight=rng.random((shape[0], 1)).astype(dtype), reduction=reduction)
    results = []
    for n in (1, 2, 3):
        with fastsm.threads(n):
            results.append(fastsm.binary_cross_entropy_with_logits(x, t, **kw))
    assert results[0].tobytes() == results[1].tobytes() == results[2].tobytes()
    np.testing.assert_allclose(results[0], ref.binary_cross_entropy_with_logits(x, t, **kw),
                               rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_follow_the_textbook_formula(dtype):
    # NaN and inf where (1 - t) x + lw (log1p(exp(-|x|)) + max(-x, 0)), times w,
    # gives them (PyTorch's formula), for every special in x, t, w and pos_weight.
    specials = [-np.inf, -3.0, -0.0, 0.0, 3.0, np.inf, np.nan]
    x, t, w, pw = (a.ravel().astype(dtype) for a in np.meshgrid(
        specials, [0.0, 0.5, 1.0, 2.0, np.inf, -np.inf, np.nan],
        [1.0, 0.0, np.inf, np.nan], [1.0, 2.5, 0.0, np.inf, np.nan], indexing="ij"))
    loss = fastsm.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                                   reduction="none")
    x64, t64 = np.float64(x), np.float64(t)
    with np.errstate(all="ignore"):
        lw = 1 + (np.float64(pw) - 1) * t64
        expected = np.float64(w) * ((1 - t64) * x64 + lw * (np.log1p(np.exp(-np.abs(x64)))
                                                            + np.maximum(-x64, 0)))
    np.testing.assert_array_equal(np.isnan(loss), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(loss[~finite & ~np.isnan(expected)],
                                  expected[~finite & ~np.isnan(expected)])
    np.testing.assert_allclose(loss[finite], expected[finite], rtol=1e-6, atol=1e-6)


def test_loss_result_dtypes():
    x, t = np.array([-2.0, 0.5, 3.0]), np.array([0.0, 0.5, 1.0])
    expected = bce64(x, t)
    half = fastsm.binary_cross_entropy_with_logits(x.astype(np.float16), t.astype(np.float16),
                                                   reduction="none")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, expected, rtol=1e-3)
    assert fastsm.binary_cross_entropy_with_logits(x.astype(np.float16),
                                                   t.astype(np.float16)).dtype == np.float16
    ints = fastsm.binary_cross_entropy_with_logits(np.array([-2, 0, 3]), np.array([0, 1, 1]),
                                                   reduction="sum")
    assert ints.dtype == np.float64
    assert ints == pytest.approx(bce64([-2, 0, 3], [0, 1, 1]).sum(), rel=1e-15)


def test_strided_inputs_give_the_losses_of_their_contiguous_copies(rng):
    x = rng.normal(size=(40, 30)) * 5
    t = rng.random((30, 40)).T
    w = rng.random((80, 30))[::2]
    loss = fastsm.binary_cross_entropy_with_logits(x[:, ::-1], t, weight=w, reduction="none")
    expected = fastsm.binary_cross_entropy_with_logits(
        np.ascontiguousarray(x[:, ::-1]), np.ascontiguousarray(t), weight=np.ascontiguousarray(w),
        reduction="none")
    np.testing.assert_array_equal(loss, expected)


def test_grad_with_pos_weight_and_an_infinite_target_is_nan_as_pytorch():
    # (p t + 1 - t) sigmoid(x) - p t, PyTorch's order, is inf - inf here; the
    # stable order of the finite case would give +inf.
    x = np.array([-np.inf, 0.5], np.float32)
    t = np.array([-np.inf, np.inf], np.float32)
    grad = fastsm.binary_cross_entropy_with_logits_grad(
        x, t, pos_weight=np.float32(0.25), reduction="sum")
    assert np.isnan(grad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_special_values_match_torch(dtype):
    torch = pytest.importorskip("torch")
    values = [-np.inf, -3.0, 0.0, 0.5, 3.0, np.inf, np.nan]
    x, t = (np.array(v, dtype)[:, None] for v in zip(*itertools.product(values, values)))
    for pw in [0.25, 1.0, 3.0, 0.0, np.inf, np.nan]:
        p = np.array([pw], dtype)
        got = fastsm.binary_cross_entropy_with_logits_grad(x, t, pos_weight=p, reduction="sum")
        want_ref = ref.binary_cross_entropy_with_logits_grad(x, t, pos_weight=p,
                                                             reduction="sum")
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.functional.binary_cross_entropy_with_logits(
            xt, torch.tensor(t), pos_weight=torch.tensor(p), reduction="sum").backward()
        want = xt.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"pos_weight {pw}")
        np.testing.assert_allclose(want_ref, want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"reference, pos_weight {pw}")
