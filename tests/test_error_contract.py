"""API.md's error contract, table-driven over tests/public_api.py: every bad
argument of every public function raises the promised exception with a
message naming the argument, and leaves every input and `out` array as it was.

(test_conventions.py holds the softmax family's other conventions; this file
covers each argument of each function, and the merged families join by table.)
"""
import numpy as np
import pytest

import fastsm
from public_api import LIVE, THREAD_BAD, THREAD_SETTERS

SHAPE = (3, 4, 5)


def valid_arguments(entry):
    """Valid keyword arguments with, where the function takes one, a valid
    `out` filled with a sentinel (so a write before the raise shows)."""
    rng = np.random.default_rng(0)
    axis = 1 if entry.axis_kind else None
    kwargs = entry.make(rng, SHAPE, np.float64, axis, False)
    if entry.has_out():
        like = np.asarray(entry.out_of(entry.call(entry.fast, kwargs)))
        kwargs["out"] = np.full_like(like, 7)
    return kwargs


def arrays_in(value):
    """Every ndarray in an argument (lists and tuples searched too)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from arrays_in(item)


BAD_CASES = [pytest.param(entry, bad, id=f"{entry.name}-{bad.arg}-{bad.id}")
             for entry in LIVE for bad in entry.bad]


@pytest.mark.parametrize("entry", LIVE, ids=lambda e: e.name)
def test_the_valid_arguments_are_accepted(entry):
    # The other tests change one argument of these; they must be valid alone.
    kwargs = valid_arguments(entry)
    result = entry.call(entry.fast, kwargs)
    if entry.has_out():
        assert entry.out_of(result) is kwargs["out"]


@pytest.mark.parametrize("entry,bad", BAD_CASES)
def test_bad_argument_raises_names_it_and_writes_nothing(entry, bad):
    kwargs = valid_arguments(entry)
    kwargs.update(bad.also)
    kwargs[bad.arg] = bad.bad_value(kwargs)
    arrays = [a for value in kwargs.values() for a in arrays_in(value)]
    before = [a.copy() for a in arrays]
    with pytest.raises(bad.error, match=bad.pattern()):
        entry.call(entry.fast, kwargs)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("entry,bad", BAD_CASES)
def test_the_reference_raises_the_same_exception(entry, bad):
    # The oracle keeps the contract too, so comparisons against it are fair.
    kwargs = valid_arguments(entry)
    kwargs.update(bad.also)
    kwargs[bad.arg] = bad.bad_value(kwargs)
    with pytest.raises(bad.error):
        entry.call(entry.ref, kwargs)


@pytest.mark.parametrize("setter", THREAD_SETTERS)
@pytest.mark.parametrize("bad", THREAD_BAD, ids=lambda b: b.id)
def test_bad_thread_count_raises_names_n_and_changes_nothing(setter, bad):
    before = fastsm.get_num_threads()
    with pytest.raises(bad.error, match=r"\bn\b"):
        if setter == "threads":
            with fastsm.threads(bad.value):
                pass
        else:
            fastsm.set_num_threads(bad.value)
    assert fastsm.get_num_threads() == before


@pytest.mark.parametrize("entry", [e for e in LIVE if e.has_out()], ids=lambda e: e.name)
def test_failed_in_place_call_leaves_the_input(entry):
    # out= one of the inputs, and a bad axis: the input must not be half-written.
    if not entry.inplace or not entry.axis_kind:
        pytest.skip("no axis or no in-place form")
    kwargs = valid_arguments(entry)
    target = kwargs[entry.inplace[0]]
    kwargs["out"] = target
    kwargs["axis"] = target.ndim
    before = target.copy()
    with pytest.raises(ValueError):
        entry.call(entry.fast, kwargs)
    np.testing.assert_array_equal(target, before)
