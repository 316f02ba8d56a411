"""fastsm.dask against the NumPy API on the same data, however it is chunked:
along the axis an operation runs on, across it, unevenly, one row per chunk.
Run on the synchronous scheduler; tests/test_dask_cluster.py runs on a
distributed cluster."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import fastsm  # noqa: E402
import fastsm.dask as fd  # noqa: E402

RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}

# Chunkings of a (20, 11) array: whole, rows split, classes split, both, uneven,
# one row per chunk.
CHUNKINGS = {
    "whole": (20, 11),
    "rows": (3, 11),
    "columns": (20, 4),
    "both": (7, 3),
    "uneven": ((5, 1, 14), (2, 9)),
    "one-row": (1, 11),
    "one-element": (1, 1),
}


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="sync"):
        yield


def close(actual, expected):
    """`actual` (computed) equals the NumPy API's `expected` to the dtype's
    tolerance, NaN where it is NaN, in the same dtype and shape."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    rtol = RTOL[np.dtype(expected.dtype)]
    atol = rtol * max(1.0, float(np.nanmax(np.abs(expected[np.isfinite(expected)]), initial=0)))
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol)


def chunked(a, chunks):
    return da.from_array(a, chunks=chunks)


def _boom(block):
    raise AssertionError("the data was read")


def untouchable(shape, dtype=np.float64, chunks=None):
    """A dask array whose computation fails: for checks that must need no data."""
    return da.zeros(shape, dtype=dtype, chunks=chunks or shape).map_blocks(_boom, dtype=dtype)


# ---- softmax family ----------------------------------------------------------

UNARY = ["softmax", "log_softmax", "hardmax"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_unary_equals_numpy_api(name, chunks, axis, dtype, rng):
    x = (rng.standard_normal((20, 11)) * 4).astype(dtype)
    y = getattr(fd, name)(chunked(x, chunks), axis=axis)
    assert isinstance(y, da.Array) and y.chunks == chunked(x, chunks).chunks
    close(y.compute(), getattr(fastsm, name)(x, axis=axis))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [None, (0, 2), (2, 0), (1,)])
@pytest.mark.parametrize("chunks", [(4, 3, 5), (1, 2, 2), ((1, 3), 3, (2, 3))])
def test_several_axes_across_chunks(name, axis, chunks, rng):
    x = rng.standard_normal((4, 3, 5)) * 10
    close(getattr(fd, name)(chunked(x, chunks), axis=axis).compute(),
          getattr(fastsm, name)(x, axis=axis))


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("chunks", [(2, 3, 4), (1, 1, 2), (2, 2, 1)])
def test_3d_along_the_middle_axis(name, chunks, rng):
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    close(getattr(fd, name)(chunked(x, chunks), axis=1).compute(),
          getattr(fastsm, name)(x, axis=1))


def special_rows():
    """Rows of PyTorch's special cases, each value placed in a different chunk."""
    inf, nan = np.inf, np.nan
    return np.array([
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [1.0, 2.0, nan, 4.0, 5.0, 6.0],           # NaN: NaN throughout
        [1.0, 2.0, 3.0, 4.0, inf, 6.0],           # +inf: NaN throughout
        [-inf, -inf, -inf, -inf, -inf, -inf],     # all -inf: NaN throughout
        [-inf, 2.0, -inf, -inf, 5.0, -inf],       # -inf among finite: 0 / -inf
        [-inf, -inf, -inf, -inf, 5.0, 5.0],       # a chunk all -inf, a tie
        [3e38, -3e38, 1.0, 0.0, 3e38, 2.0],       # extremes (float32 range)
        [7.0, 7.0, 7.0, 7.0, 7.0, 7.0],           # ties: the first wins
        [nan, 7.0, 7.0, nan, 8.0, 7.0],           # the first NaN wins (hardmax)
    ])


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", [(9, 6), (9, 2), (2, 1), (1, 4)])
def test_special_values_as_the_numpy_api(name, dtype, chunks):
    x = special_rows().astype(dtype)
    with np.errstate(all="ignore"):
        close(getattr(fd, name)(chunked(x, chunks)).compute(), getattr(fastsm, name)(x))


def test_hardmax_ties_and_nan_go_to_the_first_across_chunks():
    x = np.array([[0.0, 5.0, 1.0, 5.0], [np.nan, 0.0, np.nan, 9.0], [1.0, 2.0, 9.0, np.nan]])
    want = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    np.testing.assert_array_equal(fd.hardmax(chunked(x, (1, 1))).compute(), want)


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("chunks", [((2,), (1, 0, 2)), ((2,), (0, 3)), ((0, 2), (1, 2)),
                                    ((1, 1), (0, 1, 0, 1, 1, 0)), ((2,), (0, 0))])
def test_empty_chunks_along_the_axis(name, chunks):
    x = np.array([[0.0, 1.0, 2.0], [9.0, 4.0, 5.0]])[:, :sum(chunks[1])]
    y = getattr(fd, name)(chunked(x, chunks))
    assert y.chunks == chunked(x, chunks).chunks
    close(y.compute(), getattr(fastsm, name)(x))


def test_softmax_of_rows_split_across_chunks_sums_to_one(rng):
    x = rng.standard_normal((6, 1000)) * 30
    y = fd.softmax(chunked(x, (2, 77))).compute()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-13)


def test_whole_slices_run_one_kernel_task_per_chunk_and_never_rechunk(rng):
    x = chunked(rng.standard_normal((40, 10)), (7, 10))
    for f in (fd.softmax, fd.log_softmax, fd.hardmax):
        y = f(x)
        graph = dict(y.__dask_graph__())
        assert len(graph) == 2 * x.npartitions  # the input chunks and one task each
        assert not any("rechunk" in str(k) for k in graph)


def test_split_slices_never_rechunk(rng):
    x = chunked(rng.standard_normal((40, 10)), (7, 3))
    target = chunked(np.arange(40) % 10, 7)
    for y in (fd.softmax(x), fd.hardmax(x), *fd.cross_entropy_with_grad(x, target),
              fd.batch_norm_stats(x)[1]):
        assert not any("rechunk" in str(k) for k in dict(y.__dask_graph__()))


def test_scalar_with_axis_none():
    assert fd.softmax(da.from_array(np.float64(3.0)), axis=None).compute() == 1.0


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("axis", [0, -1, None])
@pytest.mark.parametrize("value", [np.float32(3.0), np.float16(-2.0), np.int16(7),
                                   np.float64(np.nan)])
def test_0d_input_is_one_slice_of_one_value(name, axis, value):
    if name == "hardmax" and axis is None:
        axis = 0
    y = getattr(fd, name)(da.from_array(np.asarray(value)), axis=axis)
    assert y.shape == ()
    close(y.compute(), getattr(fastsm, name)(np.asarray(value), axis=axis))


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("axis", [1, -2])
def test_0d_input_takes_no_other_axis(name, axis):
    raises_as_numpy_api(lambda: getattr(fastsm, name)(np.float64(1.0), axis=axis),
                        lambda: getattr(fd, name)(untouchable(()), axis=axis))


def test_array_likes_are_accepted():
    close(fd.softmax([[1.0, 2.0, 3.0]]).compute(), fastsm.softmax([[1.0, 2.0, 3.0]]))


# ---- backward passes of the softmax family ---------------------------------------

BACKWARD = {"softmax_backward": fastsm.softmax, "log_softmax_backward": fastsm.log_softmax}


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_backward_equals_numpy_api(name, chunks, axis, dtype, rng):
    grad = (rng.standard_normal((20, 11)) * 4).astype(dtype)
    forward = BACKWARD[name](rng.standard_normal((20, 11)), axis=axis).astype(dtype)
    got = getattr(fd, name)(chunked(grad, chunks), chunked(forward, chunks), axis=axis)
    assert got.chunks == chunked(grad, chunks).chunks
    close(got.compute(), getattr(fastsm, name)(grad, forward, axis=axis))


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("chunks", [((2, 0, 3), 4), (5, (1, 0, 3)), ((2, 3), (4, 0))])
@pytest.mark.parametrize("axis", [0, 1])
def test_backward_of_mixed_dtypes_and_chunks(name, chunks, axis, rng):
    grad = rng.standard_normal((5, 4)).astype(np.float32)
    forward = BACKWARD[name](rng.standard_normal((5, 4)), axis=axis)
    got = getattr(fd, name)(chunked(grad, chunks), chunked(forward, 2), axis=axis)
    close(got.compute(), getattr(fastsm, name)(grad, forward, axis=axis))


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("axis", [0, -1])
def test_backward_of_a_0d_array(name, axis):
    got = getattr(fd, name)(da.from_array(np.float64(2.0)), da.from_array(np.float64(0.0)),
                            axis=axis)
    close(got.compute(), getattr(fastsm, name)(np.float64(2.0), np.float64(0.0), axis=axis))


BACKWARD_BAD = [
    ("axis", dict(axis=2)),
    ("tuple axis", dict(axis=(0, 1))),
    ("shapes", dict(other=np.zeros((4, 2)))),
    ("grad dtype", dict(grad=np.zeros((4, 3), complex))),
    ("other dtype", dict(other=np.zeros((4, 3), complex))),
    ("0-d axis", dict(grad=np.float64(1.0), other=np.float64(1.0), axis=1)),
]


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("case", BACKWARD_BAD, ids=[c[0] for c in BACKWARD_BAD])
def test_backward_errors(name, case):
    kwargs = dict(case[1])
    pair_raises_as_numpy_api(name, kwargs.pop("grad", np.zeros((4, 3))),
                             kwargs.pop("other", np.zeros((4, 3))), kwargs)
    with pytest.raises(TypeError, match="out"):
        getattr(fd, name)(untouchable(3), untouchable(3), out=np.zeros(3))


def test_backward_within_chunks_is_one_kernel_task_per_chunk(rng):
    g = chunked(rng.standard_normal((40, 10)), (7, 10))
    for name in BACKWARD:
        graph = dict(getattr(fd, name)(g, g).__dask_graph__())
        assert len(graph) == 2 * g.npartitions


# ---- the binary case -------------------------------------------------------------

@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_sigmoid_equals_numpy_api(chunks, dtype, rng):
    x = (rng.standard_normal((20, 11)) * 30).astype(dtype)
    y = fd.sigmoid(chunked(x, chunks))
    assert y.chunks == chunked(x, chunks).chunks
    close(y.compute(), fastsm.sigmoid(x))


def binary_weights(rng, kind):
    """(weight, pos_weight) of several shapes that broadcast to (20, 11)."""
    return {
        "none": (None, None),
        "per class": (rng.random(11), rng.random(11) + 0.5),
        "per row and column": (rng.random((20, 1)), rng.random((1, 11)) + 0.5),
        "full and scalar": (rng.random((20, 11)), 2.0),
        "dask": (da.from_array(rng.random((20, 11)), chunks=6),
                 da.from_array(rng.random(11) + 0.5, chunks=4)),
    }[kind]


@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weights", ["none", "per class", "per row and column",
                                     "full and scalar", "dask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_binary_cross_entropy_equals_numpy_api(chunks, reduction, weights, dtype, rng):
    x = (rng.standard_normal((20, 11)) * 4).astype(dtype)
    t = rng.random((20, 11))
    weight, pos_weight = binary_weights(rng, weights)
    options = dict(weight=weight, pos_weight=pos_weight, reduction=reduction)
    numpy_options = dict(options, weight=np.asarray(weight) if weight is not None else None,
                         pos_weight=np.asarray(pos_weight) if pos_weight is not None else None)
    xd = chunked(x, chunks)
    loss = fd.binary_cross_entropy_with_logits(xd, chunked(t, 4), **options)
    grad = fd.binary_cross_entropy_with_logits_grad(xd, t, **options)
    want_loss = fastsm.binary_cross_entropy_with_logits(x, t, **numpy_options)
    assert loss.shape == np.shape(want_loss) and grad.chunks == xd.chunks
    got_loss, got_grad = dask.compute(loss, grad)
    close(got_loss, want_loss)
    close(got_grad, fastsm.binary_cross_entropy_with_logits_grad(x, t, **numpy_options))


@pytest.mark.parametrize("shape", [(), (0, 3), (3, 0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_of_0d_and_empty_arrays(shape, reduction):
    x, t = np.full(shape, 1.5), np.full(shape, 0.25)
    loss, grad = dask.compute(fd.binary_cross_entropy_with_logits(da.from_array(x), t,
                                                                  reduction=reduction),
                              fd.binary_cross_entropy_with_logits_grad(da.from_array(x), t,
                                                                       reduction=reduction))
    np.testing.assert_array_equal(loss, fastsm.binary_cross_entropy_with_logits(
        x, t, reduction=reduction))
    close(grad, fastsm.binary_cross_entropy_with_logits_grad(x, t, reduction=reduction))


BINARY_BAD = [
    ("reduction", dict(reduction="avg")),
    ("target shape", dict(target=np.zeros((4, 2)))),
    ("weight broadcast", dict(weight=np.ones(2))),
    ("weight enlarges", dict(pos_weight=np.ones((2, 4, 3)))),
    ("logits dtype", dict(logits=np.zeros((4, 3), complex))),
    ("weight dtype", dict(weight=np.zeros(3, complex))),
]


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits",
                                  "binary_cross_entropy_with_logits_grad"])
@pytest.mark.parametrize("case", BINARY_BAD, ids=[c[0] for c in BINARY_BAD])
def test_binary_cross_entropy_errors(name, case):
    kwargs = dict(case[1])
    pair_raises_as_numpy_api(name, kwargs.pop("logits", np.zeros((4, 3))),
                             kwargs.pop("target", np.zeros((4, 3))), kwargs)


def test_binary_out_is_a_type_error():
    for call in (lambda: fd.sigmoid(untouchable(3), out=np.zeros(3)),
                 lambda: fd.binary_cross_entropy_with_logits_grad(
                     untouchable(3), untouchable(3), out=np.zeros(3))):
        with pytest.raises(TypeError, match="out"):
            call()
    raises_as_numpy_api(lambda: fastsm.sigmoid(np.zeros(3, complex)),
                        lambda: fd.sigmoid(untouchable(3, complex)))


# ---- cross-entropy -------------------------------------------------------------

XENT_CHUNKS = {
    "whole": (20, 7),
    "rows": (3, 7),
    "one-row": (1, 7),
    "classes": (20, 3),
    "both-uneven": ((5, 1, 14), (2, 1, 4)),
}


def xent_data(rng, dtype=np.float32, probabilities=False, shape=(20, 7), axis=-1):
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    n = shape[axis]
    if probabilities:
        p = rng.random(shape)
        return logits, (p / p.sum(axis=axis, keepdims=True)).astype(dtype)
    target = rng.integers(0, n, np.delete(shape, axis % len(shape)))
    target.flat[::5] = -100  # ignored samples
    return logits, target


def both(logits, target, chunks, **options):
    """((loss, grad) of fastsm.dask computed, (loss, grad) of the NumPy API)."""
    t_chunks = chunks if target.ndim == logits.ndim else chunks[0]
    got = fd.cross_entropy_with_grad(chunked(logits, chunks), chunked(target, t_chunks),
                                     **options)
    return dask.compute(*got), fastsm.cross_entropy_with_grad(logits, target, **options)


@pytest.mark.parametrize("chunks", XENT_CHUNKS.values(), ids=XENT_CHUNKS.keys())
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("probabilities", [False, True])
def test_cross_entropy_with_grad_equals_numpy_api(chunks, reduction, weighted, smoothing,
                                                  probabilities, rng):
    logits, target = xent_data(rng, probabilities=probabilities)
    weight = rng.random(7) + 0.5 if weighted else None
    (loss, grad), (want_loss, want_grad) = both(logits, target, chunks, reduction=reduction,
                                                weight=weight, label_smoothing=smoothing)
    close(loss, want_loss)
    close(grad, want_grad)


@pytest.mark.parametrize("chunks", XENT_CHUNKS.values(), ids=XENT_CHUNKS.keys())
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_and_grad_alone_equal_the_fused_call(chunks, reduction, rng):
    logits, target = xent_data(rng, np.float64)
    x, t = chunked(logits, chunks), chunked(target, chunks[0])
    close(fd.cross_entropy(x, t, reduction=reduction).compute(),
          fastsm.cross_entropy(logits, target, reduction=reduction))
    close(fd.cross_entropy_grad(x, t, reduction=reduction).compute(),
          fastsm.cross_entropy_grad(logits, target, reduction=reduction))


@pytest.mark.parametrize("chunks", [(4, 5, 3), (1, 2, 3), (4, 5, 1)])
@pytest.mark.parametrize("probabilities", [False, True])
def test_class_axis_1_of_3d_logits(chunks, probabilities, rng):
    logits, target = xent_data(rng, np.float64, probabilities, shape=(4, 5, 3), axis=1)
    t_chunks = chunks if probabilities else (chunks[0], chunks[2])
    got = fd.cross_entropy_with_grad(chunked(logits, chunks), chunked(target, t_chunks),
                                     axis=1, ignore_index=-100, label_smoothing=0.1)
    want = fastsm.cross_entropy_with_grad(logits, target, axis=1, label_smoothing=0.1)
    for a, b in zip(dask.compute(*got), want):
        close(a, b)


@pytest.mark.parametrize("chunks", [4, 2, 1, (1, 3), (2, 0, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target", [np.int64(2), np.array(-100), "dask"])
@pytest.mark.parametrize("weighted", [False, True])
def test_unbatched_logits_with_a_0d_index_target(chunks, reduction, target, weighted):
    logits = np.array([1.0, 2.0, 3.0, 0.5], np.float32)
    if isinstance(target, str):
        target = da.from_array(np.array(1))
    options = dict(reduction=reduction, weight=[1.0, 2.0, 0.5, 3.0] if weighted else None)
    want_loss, want_grad = fastsm.cross_entropy_with_grad(logits, np.asarray(target), **options)
    x = chunked(logits, chunks)
    loss, grad = fd.cross_entropy_with_grad(x, target, **options)
    alone = fd.cross_entropy(x, target, **options), fd.cross_entropy_grad(x, target, **options)
    for lazy_loss, lazy_grad in ((loss, grad), alone):
        assert lazy_loss.shape == () and lazy_grad.shape == (4,)
        got_loss, got_grad = dask.compute(lazy_loss, lazy_grad)
        close(got_loss, want_loss)
        close(got_grad, want_grad)


@pytest.mark.parametrize("chunks", [(20, 7), (4, 3)])
def test_float16_and_integer_logits(chunks, rng):
    logits, target = xent_data(rng, np.float16)
    for x in (logits, (logits * 4).astype(np.int32)):
        (loss, grad), (want_loss, want_grad) = both(x, target, chunks)
        close(loss, want_loss)
        close(grad, want_grad)


def test_target_chunks_need_not_match(rng):
    logits, target = xent_data(rng)
    got = fd.cross_entropy(chunked(logits, (6, 7)), chunked(target, 4))
    close(got.compute(), fastsm.cross_entropy(logits, target))


@pytest.mark.parametrize("chunks", [(6, 7), (6, 2)])
def test_every_target_ignored_gives_nan_and_zero_gradient(chunks, rng):
    logits = rng.standard_normal((12, 7))
    loss, grad = fd.cross_entropy_with_grad(chunked(logits, chunks),
                                            chunked(np.full(12, 3), 5), ignore_index=3)
    assert np.isnan(loss.compute())
    np.testing.assert_array_equal(grad.compute(), 0.0)


@pytest.mark.parametrize("chunks", [(6, 7), (6, 2)])
def test_mean_over_weights_that_cancel_is_infinite_as_the_numpy_api(chunks, rng):
    logits, target = rng.standard_normal((12, 7)), np.array([0, 1] * 6)
    w = np.array([1.0, -1.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    loss, grad = fd.cross_entropy_with_grad(chunked(logits, chunks), chunked(target, 5), weight=w)
    want = fastsm.cross_entropy(logits, target, weight=w)
    assert np.isinf(want) and loss.compute() == want
    np.testing.assert_array_equal(grad.compute(), 0.0)


@pytest.mark.parametrize("chunks", [(6, 7), (6, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_target_outside_the_classes_raises_when_computed(chunks, reduction, rng):
    target = np.zeros(12, int)
    target[9] = 7
    loss, grad = fd.cross_entropy_with_grad(chunked(rng.standard_normal((12, 7)), chunks),
                                            chunked(target, 4), reduction=reduction)
    with pytest.raises(ValueError, match="outside the classes"):
        dask.compute(loss, grad)


def test_mean_gradient_uses_the_global_denominator(rng):
    # Weighted mean over chunks: (softmax - onehot) * w[y] / sum(w[y]) of ALL rows.
    logits, target = xent_data(rng, np.float64)
    target[target == -100] = 0
    w = rng.random(7) + 0.1
    grad = fd.cross_entropy_grad(chunked(logits, (3, 7)), chunked(target, 3), weight=w).compute()
    onehot = np.eye(7)[target]
    want = (fastsm.softmax(logits) - onehot) * w[target][:, None] / w[target].sum()
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-15)



@pytest.mark.parametrize("chunks", [(6, 7), (1, 7), ((5, 1, 6), 7)])
def test_unweighted_mean_counts_the_kept_samples_in_the_kernel_tasks(chunks, rng):
    # No pass over the targets before the kernels: with nothing ignored the
    # gradient is the NumPy API's bit for bit; with ignored samples it is
    # rescaled to the kept count after, and the loss divides by that count.
    logits = rng.standard_normal((12, 7)).astype(np.float32)
    target = rng.integers(0, 7, 12)
    x, t = chunked(logits, chunks), chunked(target, chunks[0])
    graph = dict(fd.cross_entropy_with_grad(x, t)[1].__dask_graph__())
    assert not any("target_weight_sum" in str(key) for key in graph)
    loss, grad = dask.compute(*fd.cross_entropy_with_grad(x, t))
    want_loss, want_grad = fastsm.cross_entropy_with_grad(logits, target)
    np.testing.assert_array_equal(grad, want_grad)
    close(loss, want_loss)
    target[[0, 5, 11]] = -100
    loss, grad = dask.compute(*fd.cross_entropy_with_grad(x, chunked(target, chunks[0])))
    want_loss, want_grad = fastsm.cross_entropy_with_grad(logits, target)
    close(loss, want_loss)
    close(grad, want_grad)
    assert np.abs(grad).sum() > 0 and not grad[[0, 5, 11]].any()

# ---- batch normalization -------------------------------------------------------

BN_CASES = [
    ((30, 4), 1, (7, 4)),
    ((30, 4), 1, (7, 1)),
    ((30, 4), 1, (1, 4)),
    ((30, 4), -1, ((10, 15, 5), (3, 1))),
    ((4, 30), 0, (4, 7)),
    ((6, 3, 4, 5), 1, (2, 1, 3, 5)),
    ((6, 3, 4, 5), 1, (6, 3, 4, 5)),
    ((6, 4, 5, 3), -1, (1, 4, 2, 2)),
]


@pytest.mark.parametrize("shape,axis,chunks", BN_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_stats_equal_numpy_api(shape, axis, chunks, dtype, rng):
    x = (rng.standard_normal(shape) * 5 + 100).astype(dtype)
    count, mean, m2 = fd.batch_norm_stats(chunked(x, chunks), axis=axis)
    want = fastsm.batch_norm_stats(x, axis=axis)
    assert count == want[0] and type(count) is int
    np.testing.assert_allclose(mean.compute(), want[1], rtol=1e-12)
    np.testing.assert_allclose(m2.compute(), want[2], rtol=1e-10)


@pytest.mark.parametrize("shape,axis,chunks", BN_CASES)
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_training_equals_numpy_api(shape, axis, chunks, affine, rng):
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    C = shape[axis]
    weight, bias = (rng.random(C) + 0.5, rng.standard_normal(C)) if affine else (None, None)
    running = [rng.random(C).astype(np.float32), rng.random(C).astype(np.float32) + 1]
    want_running = [r.copy() for r in running]
    y, mean, invstd = fd.batch_norm_forward(chunked(x, chunks), weight, bias, *running,
                                            momentum=0.3, axis=axis)
    want = fastsm.batch_norm_forward(x, weight, bias, *want_running, momentum=0.3, axis=axis)
    # The running statistics are updated at call time, before y is computed.
    np.testing.assert_allclose(running[0], want_running[0], rtol=1e-6)
    np.testing.assert_allclose(running[1], want_running[1], rtol=1e-6)
    for a, b in zip(dask.compute(y, mean, invstd), want):
        close(a, b)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("chunks", [(7, 4), (7, 1)])
def test_batch_norm_forward_keeps_a_lazy_weight_and_bias_lazy(training, chunks, rng):
    x = rng.standard_normal((30, 4)).astype(np.float32)
    weight, bias = rng.random(4) + 0.5, rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    want = fastsm.batch_norm_forward(x, weight, bias, rm.copy(), rv.copy(), training=training)
    # Checked from their metadata: the call computes neither (only the
    # training statistics of x, which are needed for the running ones).
    fd.batch_norm_forward(chunked(x, chunks), untouchable((4,)), untouchable((4,)), rm.copy(),
                          rv.copy(), training=training)
    got = fd.batch_norm_forward(chunked(x, chunks), da.from_array(weight, chunks=3),
                                da.from_array(bias, chunks=1), rm, rv, training=training)
    for a, b in zip(dask.compute(*got), want):
        close(a, b)
    with pytest.raises(ValueError, match="weight"):
        fd.batch_norm_forward(chunked(x, chunks), untouchable((3,)), training=training)


@pytest.mark.parametrize("chunks", [(7, 4), (7, 1)])
def test_batch_norm_inference_uses_a_copy_of_the_running_statistics(chunks, rng):
    x = rng.standard_normal((30, 4))
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    want = fastsm.batch_norm_forward(x, None, None, rm, rv, training=False)
    y, mean, invstd = fd.batch_norm_forward(chunked(x, chunks), None, None, rm, rv,
                                            training=False)
    rm += 100  # after the call: does not reach the lazy result
    for a, b in zip(dask.compute(y, mean, invstd), want):
        close(a, b)


def test_running_statistics_of_chunked_batches_equal_those_of_whole_batches(rng):
    rm, rv = np.zeros(3), np.ones(3)
    want_rm, want_rv = rm.copy(), rv.copy()
    for _ in range(3):
        x = rng.standard_normal((50, 3)) * 2 + 5
        fd.batch_norm_forward(chunked(x, (9, 2)), running_mean=rm, running_var=rv)
        fastsm.batch_norm_forward(x, running_mean=want_rm, running_var=want_rv)
    np.testing.assert_allclose(rm, want_rm, rtol=1e-13)
    np.testing.assert_allclose(rv, want_rv, rtol=1e-13)


@pytest.mark.parametrize("shape,axis,chunks",
                         BN_CASES + [((30, 4), 1, ((10, 0, 20), (2, 0, 2)))])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_batch_norm_backward_equals_numpy_api(shape, axis, chunks, training, affine, dtype, rng):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    weight = rng.random(C) + 0.5 if affine else None
    mean, invstd = rng.standard_normal(C).astype(np.float32), rng.random(C).astype(np.float32) + 1
    want = fastsm.batch_norm_backward(grad, x, weight, mean, invstd, training=training, axis=axis)
    got = fd.batch_norm_backward(chunked(grad, 3), chunked(x, chunks), weight, mean, invstd,
                                 training=training, axis=axis)
    assert got[0].chunks == chunked(x, chunks).chunks
    for a, b in zip(dask.compute(*got), want):
        close(a, b)


@pytest.mark.parametrize("chunks", [(7, 4), (7, 1), (1, 2)])
def test_batch_norm_backward_of_the_lazy_forward_statistics(chunks, rng):
    x, grad = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    weight = rng.random(4) + 0.5
    _, mean, invstd = fd.batch_norm_forward(chunked(x, chunks), weight)
    got = fd.batch_norm_backward(chunked(grad, chunks), chunked(x, chunks),
                                 da.from_array(weight, chunks=3), mean, invstd)
    _, want_mean, want_invstd = fastsm.batch_norm_forward(x, weight)
    want = fastsm.batch_norm_backward(grad, x, weight, want_mean, want_invstd)
    for a, b in zip(dask.compute(*got), want):
        close(a, b)


# ---- the linear model's loss and gradient -------------------------------------

def numpy_linear_loss_and_grad(X, y, coef, intercept):
    Z = X @ coef + intercept
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    n = len(y)
    G = np.exp(logp)
    G[np.arange(n), y] -= 1
    return -logp[np.arange(n), y].mean(), X.T @ G / n, G.sum(axis=0) / n


@pytest.mark.parametrize("x_chunks,y_chunks", [((25, 6), 25), ((7, 2), 11), ((1, 6), 1)])
def test_linear_loss_and_grad_equals_numpy(x_chunks, y_chunks, rng):
    X, y = rng.standard_normal((100, 6)), rng.integers(0, 4, 100)
    coef, intercept = rng.standard_normal((6, 4)), rng.standard_normal(4)
    loss, g_coef, g_intercept = fd.linear_loss_and_grad(
        chunked(X, x_chunks), chunked(y, y_chunks), coef, intercept)
    want = numpy_linear_loss_and_grad(X, y, coef, intercept)
    assert type(loss) is float
    np.testing.assert_allclose(loss, want[0], rtol=1e-12)
    np.testing.assert_allclose(g_coef, want[1], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(g_intercept, want[2], rtol=1e-10, atol=1e-15)


def test_linear_gradient_matches_finite_differences(rng):
    X, y = chunked(rng.standard_normal((60, 3)), (13, 3)), chunked(rng.integers(0, 3, 60), 13)
    coef, intercept = rng.standard_normal((3, 3)), rng.standard_normal(3)
    _, g_coef, g_intercept = fd.linear_loss_and_grad(X, y, coef, intercept)
    h = 1e-5
    for i, j in np.ndindex(coef.shape):
        step = np.zeros_like(coef)
        step[i, j] = h
        up = fd.linear_loss_and_grad(X, y, coef + step, intercept)[0]
        down = fd.linear_loss_and_grad(X, y, coef - step, intercept)[0]
        assert abs((up - down) / (2 * h) - g_coef[i, j]) < 1e-7
    for j in range(3):
        step = np.zeros(3)
        step[j] = h
        up = fd.linear_loss_and_grad(X, y, coef, intercept + step)[0]
        down = fd.linear_loss_and_grad(X, y, coef, intercept - step)[0]
        assert abs((up - down) / (2 * h) - g_intercept[j]) < 1e-7


def test_linear_is_one_reduction_over_row_blocks(rng):
    X = chunked(rng.standard_normal((40, 4)), (10, 4))
    calls = []
    with dask.config.set(scheduler=lambda dsk, keys, **kw: calls.append(1)
                         or dask.get(dsk, keys, **kw)):
        fd.linear_loss_and_grad(X, chunked(rng.integers(0, 2, 40), 10), np.zeros((4, 2)),
                                np.zeros(2))
    assert calls == [1]


# ---- errors: the NumPy API's, at call time, before any data is read -------------

def raises_as_numpy_api(call_numpy, call_dask):
    with pytest.raises((TypeError, ValueError)) as numpy_error:
        call_numpy()
    with pytest.raises(numpy_error.type) as dask_error:
        call_dask()
    assert str(dask_error.value) == str(numpy_error.value)


def pair_raises_as_numpy_api(name, a, b, kwargs):
    """Function `name` of two arrays raises as the NumPy API, from dask
    arrays that fail if their data is read."""
    raises_as_numpy_api(
        lambda: getattr(fastsm, name)(a, b, **kwargs),
        lambda: getattr(fd, name)(untouchable(a.shape, a.dtype), untouchable(b.shape, b.dtype),
                                  **kwargs))


X_BAD = [
    ("axis out of range", dict(axis=2)),
    ("non-int axis", dict(axis=1.5)),
]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("case", X_BAD, ids=[c[0] for c in X_BAD])
def test_unary_errors(name, case):
    kwargs = case[1]
    raises_as_numpy_api(lambda: getattr(fastsm, name)(np.zeros((4, 3)), **kwargs),
                        lambda: getattr(fd, name)(untouchable((4, 3), chunks=(1, 1)), **kwargs))


@pytest.mark.parametrize("name", UNARY)
def test_bad_dtype_and_out(name):
    raises_as_numpy_api(lambda: getattr(fastsm, name)(np.zeros(3, complex)),
                        lambda: getattr(fd, name)(untouchable(3, complex)))
    with pytest.raises(TypeError, match="out"):
        getattr(fd, name)(untouchable(3), out=np.zeros(3))


def test_hardmax_takes_no_tuple_axis():
    raises_as_numpy_api(lambda: fastsm.hardmax(np.zeros((2, 3)), axis=(0, 1)),
                        lambda: fd.hardmax(untouchable((2, 3)), axis=(0, 1)))


XENT_BAD = [
    ("reduction", dict(reduction="avg")),
    ("smoothing", dict(label_smoothing=1.5)),
    ("ignore_index", dict(ignore_index=1.0)),
    ("axis", dict(axis=3)),
    ("weight shape", dict(weight=np.ones(3))),
    ("integer one-hot", dict(target=np.zeros((6, 4), int))),
    ("target shape", dict(target=np.zeros(5, int))),
    ("target dtype", dict(target=np.zeros(6, complex))),
    ("logits dtype", dict(logits=np.zeros((6, 4), complex))),
    ("scalar logits", dict(logits=np.float64(1.0), target=np.int64(0))),
]


@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy_grad",
                                  "cross_entropy_with_grad"])
@pytest.mark.parametrize("case", XENT_BAD, ids=[c[0] for c in XENT_BAD])
def test_cross_entropy_errors(name, case):
    kwargs = dict(case[1])
    logits = kwargs.pop("logits", np.zeros((6, 4)))
    target = kwargs.pop("target", np.zeros(6, int))
    raises_as_numpy_api(
        lambda: getattr(fastsm, name)(logits, target, **kwargs),
        lambda: getattr(fd, name)(untouchable(logits.shape, logits.dtype),
                                  untouchable(target.shape, target.dtype), **kwargs))


BN_BAD = [
    ("one value per feature", dict(x=np.zeros((1, 3)))),
    ("axis", dict(axis=2)),
    ("weight shape", dict(weight=np.ones(2))),
    ("momentum", dict(momentum=2.0)),
    ("momentum None", dict(momentum=None)),
    ("eps", dict(eps=0.0)),
    ("read-only running", dict(running_mean=np.zeros(3)[::-1][::-1].copy().view())),
    ("running not ndarray", dict(running_mean=[0.0, 0.0, 0.0])),
    ("no running when inferring", dict(training=False, running_var=None)),
]
BN_BAD[6][1]["running_mean"].flags.writeable = False


@pytest.mark.parametrize("case", BN_BAD, ids=[c[0] for c in BN_BAD])
def test_batch_norm_errors_leave_the_running_statistics_alone(case):
    kwargs = dict(case[1])
    x = kwargs.pop("x", np.zeros((5, 3)))
    rm = kwargs.pop("running_mean", np.zeros(3))
    rv = kwargs.pop("running_var", np.ones(3))
    before = [np.array(rm, copy=True), None if rv is None else rv.copy()]
    raises_as_numpy_api(
        lambda: fastsm.batch_norm_forward(x, running_mean=rm, running_var=rv, **kwargs),
        lambda: fd.batch_norm_forward(untouchable(x.shape), running_mean=rm, running_var=rv,
                                      **kwargs))
    np.testing.assert_array_equal(rm, before[0])
    if rv is not None:
        np.testing.assert_array_equal(rv, before[1])


def test_batch_norm_stats_errors():
    raises_as_numpy_api(lambda: fastsm.batch_norm_stats(np.zeros((2, 3)), axis=-3),
                        lambda: fd.batch_norm_stats(untouchable((2, 3)), axis=-3))
    raises_as_numpy_api(lambda: fastsm.batch_norm_stats(np.float64(1.0)),
                        lambda: fd.batch_norm_stats(untouchable(())))


BN_BACKWARD_BAD = [
    ("grad shape", dict(grad=np.zeros((5, 2)))),
    ("scalar", dict(grad=np.float64(1.0), x=np.float64(1.0))),
    ("axis", dict(axis=2)),
    ("weight shape", dict(weight=np.ones(2))),
    ("mean shape", dict(mean=np.zeros(4))),
    ("no invstd", dict(invstd=None)),
    ("x dtype", dict(x=np.zeros((5, 3), complex))),
    ("weight dtype", dict(weight=np.zeros(3, complex))),
]


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("case", BN_BACKWARD_BAD, ids=[c[0] for c in BN_BACKWARD_BAD])
def test_batch_norm_backward_errors(case, lazy):
    kwargs = dict(case[1])
    x = kwargs.pop("x", np.zeros((5, 3)))
    grad = kwargs.pop("grad", np.zeros(x.shape))
    per_feature = [kwargs.pop(name, default) for name, default in
                   (("weight", None), ("mean", np.zeros(3)), ("invstd", np.ones(3)))]
    lazy_per_feature = [a if a is None or not lazy else untouchable(a.shape, a.dtype)
                        for a in per_feature]
    raises_as_numpy_api(
        lambda: fastsm.batch_norm_backward(grad, x, *per_feature, **kwargs),
        lambda: fd.batch_norm_backward(untouchable(grad.shape, grad.dtype),
                                       untouchable(x.shape, x.dtype), *lazy_per_feature,
                                       **kwargs))
    with pytest.raises(TypeError, match="out"):
        fd.batch_norm_backward(untouchable((5, 3)), untouchable((5, 3)), None, np.zeros(3),
                               np.ones(3), out=np.zeros((5, 3)))


@pytest.mark.parametrize("X,y,coef,intercept,error,match", [
    ((10,), (10,), (1, 2), (2,), ValueError, "X"),
    ((10, 3), (9,), (3, 2), (2,), ValueError, "y_codes"),
    ((10, 3), (10,), (2, 2), (2,), ValueError, "coef"),
    ((10, 3), (10,), (3, 2), (3,), ValueError, "intercept"),
])
def test_linear_shape_errors(X, y, coef, intercept, error, match):
    with pytest.raises(error, match=match):
        fd.linear_loss_and_grad(untouchable(X), untouchable(y, np.int64), np.zeros(coef),
                                np.zeros(intercept))


def test_linear_float_codes_are_a_type_error():
    with pytest.raises(TypeError, match="y_codes"):
        fd.linear_loss_and_grad(untouchable((4, 2)), untouchable(4), np.zeros((2, 2)),
                                np.zeros(2))


def test_importing_fastsm_does_not_import_dask(run_python):
    result = run_python("import sys, fastsm; sys.exit('dask' in sys.modules)")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("chunks", [(10, 11), (10, 4)])
def test_calls_on_other_data_never_share_graph_keys(chunks, rng):
    """Two calls in one graph (or two L-BFGS steps on one cluster) must not
    be taken for the same computation."""
    logits = [rng.standard_normal((20, 11)) for _ in range(2)]
    target = rng.integers(0, 11, 20)
    t = da.from_array(target, chunks=chunks[0])
    losses = dask.compute(*[fd.cross_entropy_with_grad(da.from_array(x, chunks=chunks), t)
                            for x in logits])
    for x, (loss, grad) in zip(logits, losses):
        want_loss, want_grad = fastsm.cross_entropy_with_grad(x, target)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    X = da.from_array(logits[0], chunks=chunks)
    coefs = [rng.standard_normal((11, 3)) for _ in range(2)]
    results = [fd.linear_loss_and_grad(X, t % 3, coef, np.zeros(3)) for coef in coefs]
    assert results[0][0] != results[1][0]
