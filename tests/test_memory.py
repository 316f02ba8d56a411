"""Memory: no growth of the resident set over 100,000 small calls of each
public function (every call form: plain, out=, in place, another axis,
Fortran order, float16), and no allocation on the out= paths (tracemalloc
sees NumPy's array allocations).

The run takes a few seconds per function.  The `slow` variant repeats the
RSS check with a million calls; it runs only with `pytest --run-slow`.
"""
import copy
import itertools
import os
import tracemalloc

import numpy as np
import pytest

from public_api import LIVE

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def call_forms(entry, rng):
    """Argument sets covering the call paths of `entry` on a small input."""
    forms = []
    for dtype, layout, axis in [(np.float32, "C", -1), (np.float64, "C", 0),
                                (np.float16, "C", -1), (np.float64, "F", -1)]:
        if not entry.axis_kind:
            axis = None
        kwargs = entry.make(rng, (16, 10), dtype, axis, False)
        if layout == "F":
            kwargs = {k: np.asfortranarray(v) if k in entry.arrays else v
                      for k, v in kwargs.items()}
        forms.append(kwargs)
        if entry.has_out():
            with_out = copy.deepcopy(kwargs)
            with_out["out"] = np.empty_like(
                np.asarray(entry.out_of(entry.call(entry.fast, copy.deepcopy(kwargs)))))
            forms.append(with_out)
    return forms


def rss_growth(entry, calls):
    forms = call_forms(entry, np.random.default_rng(3))
    cycle = itertools.cycle(forms)
    for kwargs in itertools.islice(cycle, 5000):  # warm up caches and free lists
        entry.call(entry.fast, kwargs)
    before = resident_bytes()
    for kwargs in itertools.islice(cycle, calls):
        entry.call(entry.fast, kwargs)
    return resident_bytes() - before


# A leak of even 32 bytes a call would grow the resident set by 3 MB here.
@pytest.mark.parametrize("entry", LIVE, ids=lambda e: e.name)
def test_no_resident_memory_growth_over_100000_calls(entry):
    assert rss_growth(entry, 100_000) < 2 * 2**20


@pytest.mark.slow
@pytest.mark.parametrize("entry", LIVE, ids=lambda e: e.name)
def test_no_resident_memory_growth_over_a_million_calls(entry):
    assert rss_growth(entry, 1_000_000) < 2 * 2**20


def out_path_cases():
    """(entry, dtype, axis, in_place) for every out= form that needs no
    copy of an input: C-contiguous float32/float64 inputs along an int axis."""
    for entry in LIVE:
        if not entry.has_out():
            continue
        axes = [-1, 0] if entry.axis_kind else [None]
        for dtype, axis, in_place in itertools.product([np.float32, np.float64], axes,
                                                       [False, True]):
            if in_place and not entry.inplace:
                continue
            yield pytest.param(entry, dtype, axis, in_place,
                               id=f"{entry.name}-{np.dtype(dtype).name}-axis{axis}"
                                  f"{'-in-place' if in_place else ''}")


@pytest.mark.parametrize("entry,dtype,axis,in_place", out_path_cases())
def test_out_paths_allocate_no_array(entry, dtype, axis, in_place):
    shape = (256, 128)
    kwargs = entry.make(np.random.default_rng(4), shape, dtype, axis, False)
    like = np.asarray(entry.out_of(entry.call(entry.fast, copy.deepcopy(kwargs))))
    kwargs["out"] = kwargs[entry.inplace[0]] if in_place else np.empty_like(like)
    entry.call(entry.fast, kwargs)  # warm up
    smallest = min(a.nbytes for a in kwargs.values() if isinstance(a, np.ndarray)
                   and a.shape == shape)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(10):
            entry.call(entry.fast, kwargs)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # Python's own per-call objects take a few hundred bytes and per-feature
    # vectors (batch norm's mean, invstd, factors) a few KB; an array of the
    # result's shape would take `smallest` (128 KB or more).
    assert peak < smallest // 4, f"{peak} bytes allocated at the peak"
