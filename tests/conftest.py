"""Shared test inputs: arrays of every layout the API promises to handle."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import settings

import fastsm

# Every run replays the same examples, so that passing does not depend on
# luck; HYPOTHESIS_PROFILE=explore draws new ones (and keeps failures found).
settings.register_profile("replay", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "replay"))

RNG_SEED = 20261125


@pytest.fixture
def rng():
    return np.random.default_rng(RNG_SEED)


def layouts(a):
    """(name, array) pairs holding the values of `a` in different memory layouts:
    C order, Fortran order, a strided view, a reversed (negative-stride) view."""
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    padded = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = padded[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    yield "strided", view
    reversed_ = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
    yield "negative", reversed_[tuple(slice(None, None, -1) for _ in a.shape)]


def ulp_close(actual, expected, ulps, dtype):
    """Assert |actual - expected| <= ulps * eps(dtype) * max(|expected|, tiny)."""
    finfo = np.finfo(dtype)
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    scale = np.maximum(np.abs(expected), finfo.tiny)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite & ~np.isnan(expected)],
                                  expected[~finite & ~np.isnan(expected)])
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected)[finite] / scale[finite]
    assert err.size == 0 or err.max() <= ulps * finfo.eps, f"max error {err.max() / finfo.eps:.2f} ulp"


# ---- the `slow` marker: long variants that CI does not run ---------------------

def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true",
                     help="also run the tests marked slow (long memory and fuzz runs)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running variant; run with --run-slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def run_python(tmp_path):
    """Runs `code` in a fresh interpreter that imports the fastsm under test:
    from an empty directory, so that a source checkout in the current
    directory cannot shadow the built package."""
    root = str(pathlib.Path(fastsm.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))

    def run(code):
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=tmp_path, env=env)
    return run
