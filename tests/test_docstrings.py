"""Every docstring example of the public modules runs and prints what it says."""
import doctest
import importlib

import pytest

MODULES = ["fastsm._softmax", "fastsm._xent", "fastsm._binary", "fastsm._batchnorm",
           "fastsm._threads", "fastsm._memory", "fastsm.nn", "fastsm.models", "fastsm._dask_linear",
           "fastsm._dask_binary", "fastsm._dask_batchnorm", "fastsm.dask"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if "dask" in name:
        pytest.importorskip("dask.array")
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failed == 0
    assert attempted > 0, f"{name} has no examples"
