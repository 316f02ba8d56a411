"""The conventions API.md promises for every function of the softmax family:
dtypes, array-likes, out= and in place, empty inputs, errors raised before
anything is written, threads."""
import threading

import numpy as np
import pytest

import fastsm
import fastsm.reference as ref

UNARY = ["softmax", "log_softmax", "hardmax"]
BINARY = ["softmax_backward", "log_softmax_backward"]


def call(name, x, **kw):
    if name in BINARY:
        return getattr(fastsm, name)(x, np.full(np.shape(x), 0.25, np.result_type(x, np.float16)),
                                     **kw)
    return getattr(fastsm, name)(x, **kw)


@pytest.mark.parametrize("name", UNARY + BINARY)
@pytest.mark.parametrize("dtype,result", [
    (np.float16, np.float16), (np.float32, np.float32), (np.float64, np.float64),
    (np.int8, np.float64), (np.int64, np.float64), (np.uint16, np.float64), (np.bool_, np.float64),
])
def test_result_dtype(name, dtype, result):
    x = np.arange(12).reshape(3, 4).astype(dtype)
    assert call(name, x).dtype == result


@pytest.mark.parametrize("name", UNARY)
def test_float16_is_computed_in_float32(name):
    x = (np.random.default_rng(1).standard_normal((50, 7)) * 3).astype(np.float16)
    want = getattr(fastsm, name)(x.astype(np.float32)).astype(np.float16)
    np.testing.assert_array_equal(getattr(fastsm, name)(x), want)


@pytest.mark.parametrize("name", UNARY)
def test_array_likes(name):
    f = getattr(fastsm, name)
    np.testing.assert_array_equal(f([[1, 2, 3]]), f(np.array([[1.0, 2.0, 3.0]])))
    np.testing.assert_array_equal(f((0.5, 0.25)), f(np.array([0.5, 0.25])))


def test_scalar_with_axis_none_is_one():
    assert fastsm.softmax(3.0, axis=None) == 1.0
    assert fastsm.log_softmax(np.float32(3.0), axis=None) == 0.0


@pytest.mark.parametrize("axis", [0, -1, np.int64(-1)])
def test_scalar_is_one_slice_along_axis_0_or_minus_1(axis):
    # As torch.softmax(torch.tensor(3.), -1) and scipy.special.softmax(3.0, axis=-1).
    for module in (fastsm, ref):
        assert module.softmax(3.0, axis=axis) == 1.0
        assert module.log_softmax(np.float32(-7.0), axis=axis) == 0.0
        assert module.hardmax(np.float16(2.0), axis=axis) == 1.0
        assert module.softmax_backward(2.0, 1.0, axis=axis) == 0.0  # 1 * (2 - 2 * 1)
        assert module.log_softmax_backward(2.0, 0.0, axis=axis) == 0.0  # 2 - e^0 * 2


@pytest.mark.parametrize("name", UNARY + BINARY)
@pytest.mark.parametrize("axis", [1, -2])
def test_scalar_axis_beyond_0_is_an_axis_error(name, axis):
    with pytest.raises(np.exceptions.AxisError, match="dimension 0"):
        call(name, np.float64(3.0), axis=axis)


@pytest.mark.parametrize("name", UNARY + BINARY)
@pytest.mark.parametrize("dtype", [np.complex128, object, "U3"])
def test_bad_dtypes_are_type_errors(name, dtype):
    x = np.ones((2, 3), dtype=dtype)
    with pytest.raises(TypeError, match="dtype"):
        call(name, x) if name in UNARY else getattr(fastsm, name)(x, x)


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_axis_out_of_range_is_an_axis_error(name):
    with pytest.raises(np.exceptions.AxisError):
        call(name, np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError):
        call(name, np.ones((2, 3)), axis=-3)


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_non_int_axis_is_a_type_error(name):
    with pytest.raises(TypeError, match="axis"):
        call(name, np.ones((2, 3)), axis=1.0)


@pytest.mark.parametrize("name", ["hardmax"] + BINARY)
def test_tuple_axis_only_for_softmax_and_log_softmax(name):
    with pytest.raises(TypeError, match="axis"):
        call(name, np.ones((2, 3)), axis=(0, 1))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_repeated_axes_are_rejected(name):
    with pytest.raises(ValueError, match="repeated"):
        getattr(fastsm, name)(np.ones((2, 3)), axis=(1, -1))


@pytest.mark.parametrize("name", BINARY)
def test_backward_shapes_must_match(name):
    with pytest.raises(ValueError, match="shape"):
        getattr(fastsm, name)(np.ones((2, 3)), np.ones((3, 2)))


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_out_is_written_and_returned(name):
    x = np.random.default_rng(2).standard_normal((40, 9))
    out = np.empty_like(x)
    got = call(name, x, out=out)
    assert got is out
    np.testing.assert_array_equal(out, call(name, x))


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("axis", [0, -1])
def test_in_place(name, axis):
    x = np.random.default_rng(3).standard_normal((40, 90)).astype(np.float32)
    want = getattr(fastsm, name)(x, axis=axis)
    assert getattr(fastsm, name)(x, axis=axis, out=x) is x
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("which", [0, 1])
def test_backward_in_place_over_either_input(name, which):
    rng = np.random.default_rng(4)
    g = rng.standard_normal((30, 70))
    y = fastsm.softmax(rng.standard_normal((30, 70)))
    second = y if name == "softmax_backward" else np.log(y)
    want = getattr(fastsm, name)(g, second)
    target = (g, second)[which]
    getattr(fastsm, name)(g, second, out=target)
    np.testing.assert_array_equal(target, want)


@pytest.mark.parametrize("name", UNARY)
def test_out_may_be_a_strided_view_or_float16(name):
    x = np.random.default_rng(5).standard_normal((20, 30)).astype(np.float16)
    base = np.zeros((20, 60), np.float16)
    view = base[:, ::2]
    getattr(fastsm, name)(x, out=view)
    np.testing.assert_array_equal(view, getattr(fastsm, name)(x))
    assert (base[:, 1::2] == 0).all()


def test_out_overlapping_the_input_gives_the_right_answer():
    a = np.random.default_rng(6).standard_normal(101).astype(np.float64)
    x, out = a[1:].reshape(10, 10), a[:-1].reshape(10, 10)
    want = fastsm.softmax(x.copy())
    fastsm.softmax(x, out=out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("which", [0, 1])
def test_backward_out_overlapping_an_input_gives_the_right_answer(name, which):
    rng = np.random.default_rng(8)
    a = rng.standard_normal(101)
    other = rng.standard_normal((10, 10))
    shifted, out = a[1:].reshape(10, 10), a[:-1].reshape(10, 10)
    args = [other, shifted] if which else [shifted, other]
    backward = getattr(fastsm, name)
    want = backward(*[arg.copy() for arg in args])
    backward(*args, out=out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("name", UNARY + BINARY)
@pytest.mark.parametrize("bad_out,error", [
    (np.zeros((4, 5)), "shape"),
    (np.zeros((5, 4), np.float32), "dtype"),
    (np.zeros((5, 4)).astype(np.int64), "dtype"),
])
def test_bad_out_is_rejected_and_nothing_is_written(name, bad_out, error):
    x = np.random.default_rng(7).standard_normal((5, 4))
    before = bad_out.copy()
    with pytest.raises(ValueError, match=error):
        call(name, x, out=bad_out)
    np.testing.assert_array_equal(bad_out, before)


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_read_only_out_is_rejected(name):
    x = np.ones((3, 4))
    out = np.zeros((3, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        call(name, x, out=out)
    assert (out == 0).all()


def test_out_must_be_an_ndarray():
    with pytest.raises(TypeError, match="out"):
        fastsm.softmax(np.ones(3), out=[0.0, 0.0, 0.0])


def test_in_place_with_bad_axis_leaves_input_unchanged():
    x = np.random.default_rng(8).standard_normal((4, 4))
    before = x.copy()
    with pytest.raises(ValueError):
        fastsm.softmax(x, axis=5, out=x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_inputs_are_never_modified(name):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 33))
    copy = x.copy()
    call(name, x)
    np.testing.assert_array_equal(x, copy)


@pytest.mark.parametrize("name", UNARY + BINARY)
@pytest.mark.parametrize("shape,axis", [((0,), 0), ((0, 5), -1), ((5, 0), -1), ((5, 0), 0),
                                        ((2, 0, 3), 1)])
def test_empty_inputs_give_empty_results(name, shape, axis):
    x = np.ones(shape, np.float32)
    got = call(name, x, axis=axis)
    assert got.shape == shape and got.dtype == np.float32


def test_read_only_input_is_fine():
    x = np.random.default_rng(10).standard_normal((8, 8))
    x.flags.writeable = False
    np.testing.assert_allclose(fastsm.softmax(x), ref.softmax(x), rtol=1e-14)


# ---- threads ------------------------------------------------------------------

def test_thread_settings():
    default = fastsm.get_num_threads()
    assert default >= 1
    with fastsm.threads(3):
        assert fastsm.get_num_threads() == 3
        with fastsm.threads(1):
            assert fastsm.get_num_threads() == 1
        assert fastsm.get_num_threads() == 3
    assert fastsm.get_num_threads() == default
    fastsm.set_num_threads(2)
    try:
        assert fastsm.get_num_threads() == 2
    finally:
        fastsm.set_num_threads(default)


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                       ("2", TypeError)])
def test_bad_thread_counts(bad, error):
    with pytest.raises(error, match="n "):
        fastsm.set_num_threads(bad)
    with pytest.raises(error):
        with fastsm.threads(bad):
            pass


def test_threads_override_is_local_to_the_python_thread():
    seen = []
    with fastsm.threads(1):
        t = threading.Thread(target=lambda: seen.append(fastsm.get_num_threads()))
        t.start()
        t.join()
    assert seen == [fastsm.get_num_threads()]


@pytest.mark.parametrize("name", UNARY + BINARY)
@pytest.mark.parametrize("shape,axis", [((20000, 10), -1), ((500, 1000), -1), ((300, 700), 0),
                                        ((4, 300, 257), 1)])
def test_results_are_bit_identical_for_any_thread_count(name, shape, axis):
    x = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    with fastsm.threads(1):
        want = call(name, x, axis=axis)
    for n in (2, 3, 7, 16):
        with fastsm.threads(n):
            np.testing.assert_array_equal(call(name, x, axis=axis), want)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal((2000, 37)).astype(np.float32) for _ in range(8)]
    expected = [fastsm.log_softmax(x) for x in inputs]
    errors = []

    def work(i):
        try:
            with fastsm.threads(1 + i % 3):
                for _ in range(20):
                    np.testing.assert_array_equal(fastsm.log_softmax(inputs[i]), expected[i])
        except AssertionError as exc:  # reported in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
