"""Every public function against its `fastsm.reference` twin over random
shapes (empty, 1, around the vector widths and block sizes), layouts, axes,
dtypes, options, `out=` forms, thread counts and values including NaN, +-inf
and huge ones.  The functions come from tests/public_api.py."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastsm
from public_api import BY_NAME, DTYPES, LAYOUTS, LIVE, assert_agree, clone, relayout

# Side lengths that cross the kernels' edges: vector widths (4, 8, 16 lanes),
# the short-row limit (64) and the slab width (128).
# Examples per function: FASTSM_SWEEP_EXAMPLES=5000 for a long sweep.  CI's
# default keeps the file near 15 s however many functions are live.
EXAMPLES = int(os.environ.get("FASTSM_SWEEP_EXAMPLES", max(60, 750 // max(len(LIVE), 1))))

LONG_SIDES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 257]


@st.composite
def shapes(draw, min_ndim, min_side):
    ndim = draw(st.integers(min_ndim, 4))
    sides = draw(st.lists(st.integers(min_side, 5), min_size=ndim, max_size=ndim))
    if draw(st.booleans()):  # one long side
        sides[draw(st.integers(0, ndim - 1))] = draw(st.sampled_from(LONG_SIDES))
    return tuple(sides)


def axes(draw, kind, ndim):
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    if kind == "axes":
        return draw(st.one_of(
            st.integers(-ndim, ndim - 1), st.none(),
            st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple)))
    return None


def outcome(fn):
    try:
        return fn(), None
    except Exception as exc:  # compared by type below
        return None, exc


@pytest.mark.parametrize("name", [e.name for e in LIVE])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_agrees_with_the_reference(name, data):
    entry = BY_NAME[name]
    shape = data.draw(shapes(entry.min_ndim, entry.min_side), label="shape")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    axis = axes(data.draw, entry.axis_kind, len(shape))
    special = entry.specials and data.draw(st.booleans(), label="special")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    kwargs = entry.make(np.random.default_rng(seed), shape, dtype, axis, special)
    kwargs = {k: relayout(v, layout) if k in entry.arrays else v for k, v in kwargs.items()}

    ref_kwargs = clone(kwargs)
    want, ref_error = outcome(lambda: entry.call(entry.ref, ref_kwargs))

    out_mode = data.draw(st.sampled_from(["none", "fresh", "input"] if entry.has_out()
                                         else ["none"]), label="out")
    if ref_error is None and out_mode != "none":
        like = np.asarray(entry.out_of(want))
        if out_mode == "fresh":
            kwargs["out"] = relayout(np.full_like(like, 3), data.draw(st.sampled_from(LAYOUTS)))
        else:
            same = [k for k in entry.inplace if kwargs[k].dtype == like.dtype]
            if same:
                kwargs["out"] = kwargs[data.draw(st.sampled_from(same))]
    unchanged = {k: v.copy() for k, v in kwargs.items()
                 if isinstance(v, np.ndarray) and k not in entry.writes
                 and not any(v is o for o in [kwargs.get("out")])}

    with fastsm.threads(data.draw(st.integers(1, 3), label="threads")):
        got, error = outcome(lambda: entry.call(entry.fast, kwargs))
    assert type(error) is type(ref_error), (error, ref_error)
    if error is not None:
        return
    assert_agree(entry, got, want, kwargs, axis)
    if "out" in kwargs:
        assert entry.out_of(got) is kwargs["out"]
    else:  # whatever the inputs' byte order, as NumPy's ufuncs
        assert all(np.asarray(r).dtype.isnative for r in (got if isinstance(got, tuple) else [got]))
    for k in [k for k in entry.writes if k in kwargs]:
        assert_agree(entry, kwargs[k], ref_kwargs[k], kwargs, axis)
    for k, before in unchanged.items():
        np.testing.assert_array_equal(kwargs[k], before, err_msg=f"{k} was modified")
