"""Inputs the fuzzer and the sweep found, kept as facts.

tests/fuzz/regressions/ holds the fuzzer's byte strings, replayed here
through the fuzz target itself; the rest are the same findings in plain form.
"""
import pathlib
import sys

import numpy as np
import pytest

import fastsm
import fastsm.reference as ref

REGRESSIONS = sorted((pathlib.Path(__file__).parent / "fuzz" / "regressions").iterdir())


@pytest.fixture(scope="module")
def fuzz_target():
    pytest.importorskip("atheris")
    sys.path.insert(0, str(pathlib.Path(__file__).parent / "fuzz"))
    try:
        import fuzz_api
    finally:
        sys.path.pop(0)
    return fuzz_api


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.name)
def test_fuzz_regression_input(fuzz_target, path):
    fuzz_target.one_input(path.read_bytes())


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", [((0,), -1), ((3, 0), 0), ((0, 4), None), ((2, 0), (0, 1))])
def test_reference_gives_empty_results_for_empty_inputs(name, shape, axis):
    # Found by the sweep: the reference raised (max of an empty slice).
    x = np.ones(shape, np.float32)
    want = getattr(ref, name)(x, axis=axis)
    assert want.shape == shape and want.dtype == np.float32
    assert getattr(fastsm, name)(x, axis=axis).shape == shape


def test_log_softmax_backward_overflowing_sum_does_not_depend_on_the_axis_layout():
    # Found by the fuzzer: grads near the float64 maximum with alternating signs
    # sum to 0 in order, but to inf - inf = NaN in the long-row kernel's lanes
    # (NumPy's pairwise sum, the reference, gives NaN too).  The kernels now
    # redo a sum that overflowed with its terms scaled down.
    n = 64
    g = 1e308 * (-1.0) ** np.arange(n)
    logp = np.full(n, -np.log(n))
    rows = fastsm.log_softmax_backward(g[None], logp[None], axis=1)[0]
    columns = fastsm.log_softmax_backward(np.stack([g, g], 1), np.stack([logp, logp], 1),
                                          axis=0)[:, 0]
    np.testing.assert_array_equal(rows, columns)
