"""batch_norm_stats and merge_stats: statistics of data split into shards
(of any sizes, empty ones included) merge into those of the whole."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsm
import fastsm.reference as ref

MODULES = pytest.mark.parametrize("mod", [fastsm, ref], ids=["fastsm", "reference"])


def whole(x, axis):
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    x = x.astype(np.float64)
    mean = x.mean(axis=axes)
    return x.size // x.shape[axis], mean, ((x - np.expand_dims(mean, axes)) ** 2).sum(axis=axes)


def assert_stats_equal(got, want, rtol=1e-12):
    assert got[0] == want[0] and isinstance(got[0], int)
    np.testing.assert_allclose(got[1], want[1], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(got[2], want[2], rtol=rtol, atol=1e-9)


@MODULES
@pytest.mark.parametrize("shape,axis", [((50, 4), 1), ((6, 3, 40), 1), ((7, 9, 5), -1),
                                        ((4, 200), 0)])
def test_stats_of_one_shard(rng, mod, shape, axis):
    x = rng.standard_normal(shape) * 3 + 7
    assert_stats_equal(mod.batch_norm_stats(x, axis=axis), whole(x, axis))


def test_stats_hand_computed():
    count, mean, m2 = fastsm.batch_norm_stats(np.array([[1.0, 2.0], [3.0, 2.0], [8.0, 2.0]]))
    assert count == 3
    np.testing.assert_allclose(mean, [4.0, 2.0])
    np.testing.assert_allclose(m2, [26.0, 0.0])


def test_float32_data_far_from_zero(rng):
    x = (1e4 + rng.standard_normal((5000, 3))).astype(np.float32)
    assert_stats_equal(fastsm.batch_norm_stats(x), whole(x, 1), rtol=1e-9)


@MODULES
@pytest.mark.parametrize("sizes", [[1] * 9, [1, 7, 100, 3], [0, 5, 0, 1, 40], [64, 64], [111]])
def test_shards_merge_into_the_whole(rng, mod, sizes):
    x = rng.standard_normal((sum(sizes), 3, 5)) * 2 + 100
    shards = np.split(x, np.cumsum(sizes)[:-1])
    merged = mod.merge_stats([mod.batch_norm_stats(s) for s in shards])
    assert_stats_equal(merged, whole(x, 1), rtol=1e-10)


def test_merging_along_a_non_batch_axis(rng):
    x = rng.standard_normal((4, 3, 30))
    parts = [fastsm.batch_norm_stats(x[:, :, a:b]) for a, b in [(0, 1), (1, 13), (13, 30)]]
    assert_stats_equal(fastsm.merge_stats(parts), whole(x, 1))


def test_empty_shards_are_the_identity(rng):
    x = rng.standard_normal((10, 2))
    part = fastsm.batch_norm_stats(x)
    empty = fastsm.batch_norm_stats(np.zeros((0, 2)))
    assert empty[0] == 0 and np.isnan(empty[1]).all() and (empty[2] == 0).all()
    for parts in ([empty, part], [part, empty], [empty, part, empty]):
        assert_stats_equal(fastsm.merge_stats(parts), part, rtol=0)
    count, mean, m2 = fastsm.merge_stats([empty, empty])
    assert count == 0 and np.isnan(mean).all()


def test_merged_variance():
    a = fastsm.batch_norm_stats([[1.0], [2.0]])
    b = fastsm.batch_norm_stats([[3.0], [4.0], [5.0]])
    count, mean, m2 = fastsm.merge_stats([a, b])
    assert count == 5
    np.testing.assert_allclose(mean, [3.0])
    np.testing.assert_allclose(m2 / count, [2.0])        # biased
    np.testing.assert_allclose(m2 / (count - 1), [2.5])  # unbiased


@pytest.mark.parametrize("parts,error", [
    ([], ValueError),
    ([(-1, np.zeros(2), np.zeros(2))], ValueError),
    ([(2, np.zeros(2), np.zeros(2)), (2, np.zeros(3), np.zeros(3))], ValueError),
    ([(2, np.zeros(2))], TypeError),
    ([(2.5, np.zeros(2), np.zeros(2))], TypeError),
    ([(2, np.zeros(2), np.zeros(3))], ValueError),
])
@MODULES
def test_bad_parts_are_rejected(mod, parts, error):
    with pytest.raises(error):
        mod.merge_stats(parts)


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8).filter(lambda s: sum(s) > 0),
       loc=st.floats(-1e6, 1e6), seed=st.integers(0, 2**32 - 1))
def test_any_split_merges_into_the_whole(sizes, loc, seed):
    x = np.random.default_rng(seed).standard_normal((sum(sizes), 4)) + loc
    shards = np.split(x, np.cumsum(sizes)[:-1])
    merged = fastsm.merge_stats([fastsm.batch_norm_stats(s) for s in shards])
    want = whole(x, 1)
    assert merged[0] == want[0]
    np.testing.assert_allclose(merged[1], want[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged[2], want[2], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(merged[1], ref.merge_stats(
        [ref.batch_norm_stats(s) for s in shards])[1], rtol=1e-12, atol=1e-12)
