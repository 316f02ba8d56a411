"""Facts about the softmax family: agreement with the NumPy reference and with
float64 math, the special values of API.md, the backward passes against finite
differences, dtypes and layouts."""
import numpy as np
import pytest

import fastsm
import fastsm.reference as ref
from conftest import layouts, ulp_close

FORWARD = ["softmax", "log_softmax", "hardmax"]
BACKWARD = ["softmax_backward", "log_softmax_backward"]

SHAPES_AXES = [
    ((1, 1), -1), ((7,), 0), ((3, 5), -1), ((3, 5), 0), ((1000, 3), -1), ((3, 1000), -1),
    ((2, 3000), 1), ((300, 2), 0), ((4, 5, 6), 0), ((4, 5, 6), 1), ((4, 5, 6), 2),
    ((2, 3, 4, 5), 1), ((2, 3, 4, 5), -1), ((2, 3, 4, 5), 0), ((600, 130), -1), ((70, 200), 0),
]


def forward_input(rng, shape, dtype):
    return (rng.standard_normal(shape) * 4).astype(dtype)


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(rng, name, shape, axis, dtype):
    x = forward_input(rng, shape, dtype)
    got = getattr(fastsm, name)(x, axis=axis)
    want = getattr(ref, name)(x, axis=axis)
    assert got.dtype == want.dtype == dtype
    assert got.shape == shape
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_float64_matches_scipy_to_its_own_tolerance(rng, shape, axis):
    special = pytest.importorskip("scipy.special")
    x = forward_input(rng, shape, np.float64)
    np.testing.assert_allclose(fastsm.softmax(x, axis), special.softmax(x, axis), rtol=1e-13)
    # log_softmax = (x - max) - log(sum): near 0 the result is a difference of
    # terms of order 1, so its error is absolute, a few ulp of those terms.
    np.testing.assert_allclose(fastsm.log_softmax(x, axis), special.log_softmax(x, axis),
                               rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shape,axis", [((500, 10), -1), ((8, 32000), -1), ((64, 100), 0)])
def test_float32_within_a_few_ulp_of_float64_math(rng, shape, axis):
    x = forward_input(rng, shape, np.float32)
    shifted = x.astype(np.float64) - x.max(axis, keepdims=True)
    eps = np.finfo(np.float32).eps
    # Rounding x - max to float32 costs up to |x - max| / 2 ulp in exp's
    # argument, so the relative error of softmax grows with it (PyTorch's too).
    exact = ref.softmax(x.astype(np.float64), axis)
    rel = np.abs(fastsm.softmax(x, axis) - exact) / exact
    assert (rel <= 4 * eps * (1 + np.abs(shifted))).all()
    exact_log = ref.log_softmax(x.astype(np.float64), axis)
    err = np.abs(fastsm.log_softmax(x, axis) - exact_log)
    assert (err <= 4 * eps * (1 + np.abs(exact_log))).all()


@pytest.mark.parametrize("axis", [None, (0,), (0, 2), (2, 0), (-1, 1), (0, 1, 2), ()])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_tuple_and_none_axes_match_scipy(rng, name, axis):
    special = pytest.importorskip("scipy.special")
    x = forward_input(rng, (3, 4, 5), np.float64)
    got = getattr(fastsm, name)(x, axis=axis)
    np.testing.assert_allclose(got, getattr(special, name)(x, axis=axis), rtol=1e-13, atol=1e-14)
    assert got.flags.c_contiguous


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_result_does_not_depend_on_layout(rng, name, axis):
    x = forward_input(rng, (37, 29), np.float32)
    want = getattr(fastsm, name)(np.ascontiguousarray(x), axis=axis)
    for layout, view in layouts(x):
        got = getattr(fastsm, name)(view, axis=axis)
        np.testing.assert_array_equal(got, want, err_msg=layout)


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_backward_result_does_not_depend_on_layout(rng, name, axis):
    g = forward_input(rng, (37, 29), np.float64)
    y = fastsm.softmax(forward_input(rng, (37, 29), np.float64), axis=axis)
    second = y if name == "softmax_backward" else np.log(y)
    want = getattr(fastsm, name)(g, second, axis=axis)
    for (layout, gv), (_, sv) in zip(layouts(g), layouts(second)):
        np.testing.assert_array_equal(getattr(fastsm, name)(gv, sv, axis=axis), want,
                                      err_msg=layout)


# ---- special values, as PyTorch ------------------------------------------

inf, nan = np.inf, np.nan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 100])  # the short-row and the long-row paths
def test_special_values(dtype, n):
    x = np.zeros((6, n), dtype)
    x[0, 1] = nan                 # NaN anywhere: NaN throughout
    x[1, 2] = inf                 # +inf: NaN throughout
    x[2, :] = -inf                # all -inf: NaN throughout
    x[3, 0] = -inf                # -inf among finite: exactly 0 / -inf
    x[4, 1] = 1e30 if dtype == np.float32 else 1e300  # huge: finite, one-hot
    x[5, :] = -1e30               # all equal huge negatives: uniform
    s = fastsm.softmax(x)
    ls = fastsm.log_softmax(x)
    for row in range(3):
        assert np.isnan(s[row]).all() and np.isnan(ls[row]).all()
    assert s[3, 0] == 0 and ls[3, 0] == -inf
    np.testing.assert_allclose(s[3, 1:], 1 / (n - 1), rtol=1e-6)
    assert s[4, 1] == 1 and (s[4, np.arange(n) != 1] == 0).all()
    assert np.isfinite(ls[4, 1]) and ls[4, 1] == 0
    np.testing.assert_allclose(s[5], 1 / n, rtol=1e-6)
    np.testing.assert_array_equal(s, ref.softmax(x))
    np.testing.assert_array_equal(np.isnan(ls), np.isnan(ref.log_softmax(x)))


def test_log_softmax_of_a_spread_beyond_float32_range_is_minus_inf():
    x = np.array([[3e38, -3e38, 0.0]], np.float32)
    ls = fastsm.log_softmax(x)
    assert ls[0, 0] == 0 and ls[0, 1] == -inf and ls[0, 2] == -3e38


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hardmax_ties_and_nan_go_to_the_first(dtype):
    x = np.array([[1, 3, 3], [2, 2, 2], [0, nan, nan], [-inf, -inf, -inf]], dtype)
    want = np.array([[0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], dtype)
    np.testing.assert_array_equal(fastsm.hardmax(x), want)
    np.testing.assert_array_equal(fastsm.hardmax(x.T.copy(), axis=0), want.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_accuracy_over_the_whole_range(dtype):
    # log_softmax_backward(g, logp) with g = (-1, 0, ..., 0) returns exp(logp)
    # exactly in the other entries, so it exposes the kernels' exp.
    finfo = np.finfo(dtype)
    hi = np.log(finfo.max)
    lo = np.log(finfo.smallest_subnormal)
    values = np.concatenate([np.linspace(lo - 2, hi + 2, 200001), [-inf, inf, nan, 0.0, -0.0]])
    values = values.astype(dtype)
    grad = np.zeros((values.size, 2), dtype)
    grad[:, 0] = -1
    logp = np.stack([np.zeros_like(values), values], axis=1)
    got = fastsm.log_softmax_backward(grad, logp)[:, 1]
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(values.astype(np.float64))
    normal = (want >= finfo.tiny) & (want <= finfo.max)
    ulp_close(got[normal], want[normal], 2, dtype)
    assert (got[want > finfo.max] == inf).all()
    # Subnormal results: within 1 unit of the smallest subnormal.
    sub = want < finfo.tiny
    assert np.abs(got[sub].astype(np.float64) - want[sub]).max() <= finfo.smallest_subnormal


# ---- properties -----------------------------------------------------------

def test_softmax_slices_sum_to_one_within_a_few_ulp(rng):
    for shape in [(1000, 10), (16, 32000), (3, 100000)]:
        x = forward_input(rng, shape, np.float32)
        sums = fastsm.softmax(x).astype(np.float64).sum(-1)
        assert np.abs(sums - 1).max() <= 4 * np.finfo(np.float32).eps


def test_hand_computed_values():
    e = np.e
    np.testing.assert_allclose(fastsm.softmax([0.0, 1.0]), [1 / (1 + e), e / (1 + e)], rtol=1e-15)
    np.testing.assert_allclose(fastsm.log_softmax([0.0, 1.0, 2.0]),
                               np.array([0.0, 1.0, 2.0]) - np.log(1 + e + e * e), rtol=1e-15)
    np.testing.assert_allclose(fastsm.softmax([[1.0], [2.0]], axis=0),
                               [[1 / (1 + e)], [e / (1 + e)]], rtol=1e-15)


# ---- backward passes ----------------------------------------------------------

def numerical_vjp(f, x, grad, axis, h=1e-5):
    """sum(grad * f(x)) differentiated by 4th-order central differences."""
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        def loss(d):
            xp = x.copy()
            xp[idx] += d
            return np.sum(grad * f(xp, axis=axis))
        out[idx] = (8 * (loss(h) - loss(-h)) - (loss(2 * h) - loss(-2 * h))) / (12 * h)
    return out


@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((4, 5), 0), ((3, 4, 2), 1), ((2, 70), -1)])
def test_softmax_backward_matches_finite_differences(rng, shape, axis):
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    want = numerical_vjp(fastsm.softmax, x, g, axis)
    got = fastsm.softmax_backward(g, fastsm.softmax(x, axis), axis)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((4, 5), 0), ((3, 4, 2), 1), ((2, 70), -1)])
def test_log_softmax_backward_matches_finite_differences(rng, shape, axis):
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    want = numerical_vjp(fastsm.log_softmax, x, g, axis)
    got = fastsm.log_softmax_backward(g, fastsm.log_softmax(x, axis), axis)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_matches_reference(rng, name, shape, axis, dtype):
    g = forward_input(rng, shape, dtype)
    y = fastsm.softmax(forward_input(rng, shape, dtype), axis)
    second = y if name == "softmax_backward" else fastsm.log_softmax(y, axis)
    got = getattr(fastsm, name)(g, second, axis)
    want = getattr(ref, name)(g, second, axis)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_backward_matches_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 9))
    g = rng.standard_normal((6, 9))
    for dim in (0, 1):
        xt = torch.tensor(x, requires_grad=True)
        torch.softmax(xt, dim).backward(torch.tensor(g))
        got = fastsm.softmax_backward(g, fastsm.softmax(x, dim), dim)
        np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
        xt = torch.tensor(x, requires_grad=True)
        torch.log_softmax(xt, dim).backward(torch.tensor(g))
        got = fastsm.log_softmax_backward(g, fastsm.log_softmax(x, dim), dim)
        np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_forward_matches_torch_on_special_values():
    torch = pytest.importorskip("torch")
    x = np.array([[0, nan, 1], [inf, 0, 1], [-inf, -inf, -inf], [-inf, 0, 1], [1e30, 0, -1e30]],
                 np.float32)
    for name in ["softmax", "log_softmax"]:
        want = getattr(torch, name)(torch.tensor(x), -1).numpy()
        np.testing.assert_allclose(getattr(fastsm, name)(x), want, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("n", [64, 100, 512, 513, 1000, 1024, 1025, 3000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_does_not_depend_on_its_neighbours(rng, name, n, dtype):
    # Rows of up to 4 KB run in a pipeline (a row's exps beside the previous
    # row's result and the next row's max), longer ones pass by pass, and a
    # task's first and last rows take their own steps: the same bits for
    # every row, whichever way and whichever rows around it, in place too.
    f = getattr(fastsm, name)
    x = forward_input(rng, (13, n), dtype)
    x[4, 7] = np.inf
    x[5] = -np.inf
    x[6, :3] = np.nan
    batch = f(x)
    alone = np.concatenate([f(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(batch, alone)
    np.testing.assert_array_equal(f(x[2:9]), batch[2:9])
    with fastsm.threads(1):
        np.testing.assert_array_equal(f(x), batch)
    in_place = x.copy()
    f(in_place, out=in_place)
    np.testing.assert_array_equal(in_place, batch)
    assert np.isnan(batch[4:7]).all()  # a row with +inf, all -inf or NaN: NaN throughout
    finite = [0, 1, 2, 3, 7, 12]
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(batch[finite], getattr(ref, name)(x[finite]), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", FORWARD + BACKWARD)
@pytest.mark.parametrize("shape,axis", [((300000, 10), -1), ((1100, 1000), -1), ((40, 40000), -1),
                                        ((1000, 1100), 0)])
def test_large_results_written_with_streaming_stores(rng, name, shape, axis):
    # Results of 4 MB and more take the streaming-store paths of the kernels.
    x = forward_input(rng, shape, np.float32)
    if name in BACKWARD:
        g = forward_input(rng, shape, np.float32)
        y = fastsm.softmax(x, axis)
        second = y if name == "softmax_backward" else fastsm.log_softmax(x, axis)
        got = getattr(fastsm, name)(g, second, axis)
        want = getattr(ref, name)(g.astype(np.float64), second.astype(np.float64), axis)
        with fastsm.threads(1):
            np.testing.assert_array_equal(getattr(fastsm, name)(g, second, axis), got)
    else:
        got = getattr(fastsm, name)(x, axis)
        # In float64: NumPy's own float32 sums down a column lose ~n ulp.
        want = getattr(ref, name)(x.astype(np.float64), axis)
        with fastsm.threads(1):
            np.testing.assert_array_equal(getattr(fastsm, name)(x, axis), got)
        getattr(fastsm, name)(x, axis, out=x)
        np.testing.assert_array_equal(x, got)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("n", [8, 64, 200])  # short rows, long rows; columns with axis 0
@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_backward_dots_near_the_float32_maximum_without_overflow(n, axis):
    # float32 partial sums of grad * y overflow (the long rows sum them in
    # float lanes first), but sum(grad * y) is exactly 0, so the gradient is
    # exactly y * grad.
    g = np.float32(3e38) * np.resize(np.float32([1, 1, -1, -1]), n)
    y = np.full(n, 1 / 8, np.float32)
    g2, y2 = np.stack([g, g], axis=1 - axis), np.stack([y, y], axis=1 - axis)
    np.testing.assert_array_equal(fastsm.softmax_backward(g2, y2, axis=axis), y2 * g2)


@pytest.mark.parametrize("n", [8, 64, 200])  # short rows, long rows; columns with axis 0
@pytest.mark.parametrize("axis", [0, 1])
def test_log_softmax_backward_sums_near_the_float64_maximum_without_overflow(n, axis):
    # Partial sums of these grads overflow in every order the kernels add them
    # (in lanes, or one after another), but the sum is exactly 0, so the
    # gradient is exactly `grad`.
    g = 1e308 * np.resize([1.0, 1.0, -1.0, -1.0], n)
    logp = np.full(n, -np.log(n))
    g2, logp2 = np.stack([g, g], axis=1 - axis), np.stack([logp, logp], axis=1 - axis)
    np.testing.assert_array_equal(fastsm.log_softmax_backward(g2, logp2, axis=axis), g2)
