"""The test registry itself (tests/public_api.py), including the entries that
are not live yet: their argument builders and bad cases must work on the day
the functions are merged."""
import numpy as np
import pytest

import fastsm
from public_api import DTYPES, ENTRIES, LIVE, LAYOUTS, relayout

SHAPES = [(1, 1), (3, 5), (2, 3, 4), (4, 1, 2, 3)]


def test_every_public_function_has_an_entry():
    # Functions only: classes (the BatchNorm layer) have tests of their own.
    functions = {n for n in fastsm.__all__ if not isinstance(getattr(fastsm, n), type)}
    names = {e.name for e in ENTRIES} | {"set_num_threads", "get_num_threads", "threads",
                                                "release_memory"}
    assert functions <= names
    assert {e.name for e in LIVE} == {e.name for e in ENTRIES} & set(fastsm.__all__)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_builders_give_arrays_of_the_shape_and_bad_values(entry, shape, dtype):
    rng = np.random.default_rng(1)
    axis = -1 if entry.axis_kind else None
    for special in (False, True):
        with np.errstate(all="ignore"):
            kwargs = entry.make(rng, shape, dtype, axis, special)
            kwargs = entry.to_domain(kwargs, axis)
        for name in entry.arrays:
            assert np.shape(kwargs[name]) == shape, name
        if entry.has_out():
            kwargs["out"] = np.zeros(shape)
        for bad in entry.bad:
            bad.bad_value(dict(kwargs, **dict(bad.also)))  # computable, does not raise


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(0,), (3,), (2, 5), (3, 0, 2), (2, 3, 4)])
def test_relayout_keeps_the_values(layout, shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    b = relayout(a, layout)
    np.testing.assert_array_equal(a, b, strict=layout != "swapped")
    assert b.dtype.newbyteorder("=") == a.dtype
    assert b.dtype.isnative == (layout != "swapped")
    if layout == "unaligned" and a.size:
        assert not b.flags.aligned
    if layout == "negative" and a.size > 1:
        assert any(s < 0 for s in b.strides)
    if layout == "strided" and a.ndim and a.size:
        assert not b.flags.c_contiguous or a.size == 1
