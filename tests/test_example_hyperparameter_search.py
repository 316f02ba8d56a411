"""examples/hyperparameter_search.py end to end: a small budget in the normal
suite, the example's own budget with --run-slow."""
import importlib.util
import pathlib

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hyperparameter_search.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("hyperparameter_search", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def restore_threads():
    import fastsm
    before = fastsm.get_num_threads()
    yield
    fastsm.set_num_threads(before)


def check(example, results, budget, cv):
    grid, random = results["grid"]["search"], results["random"]["search"]
    # the same budget of fits, over the same log ranges
    assert results["grid"]["fits"] == results["random"]["fits"] == budget * cv
    for search in (grid, random):
        rates = np.array(search.cv_results_["param_learning_rate"], float)
        l2 = np.array(search.cv_results_["param_l2"], float)
        assert np.all((example.LEARNING_RATES[0] <= rates) & (rates <= example.LEARNING_RATES[1]))
        assert np.all((example.L2_PENALTIES[0] <= l2) & (l2 <= example.L2_PENALTIES[1]))
    # the grid repeats k values of each parameter; random draws are all distinct
    k = int(np.sqrt(budget))
    assert len(set(grid.cv_results_["param_learning_rate"])) == k
    assert len(set(random.cv_results_["param_learning_rate"])) == budget
    for r in results.values():
        assert r["cv_score"] == max(r["search"].cv_results_["mean_test_score"])
        assert r["test_score"] > 0.5  # ten classes: chance is 0.1


def test_small_budget_end_to_end(example, capsys):
    results = example.main(["--budget", "4", "--cv", "2", "--max-epochs", "3"])
    check(example, results, 4, 2)
    out = capsys.readouterr().out
    assert "better cv score:" in out and "better test score:" in out


@pytest.mark.slow
def test_the_example_as_shipped(example):
    results = example.main([])
    check(example, results, 16, 3)
    assert max(r["test_score"] for r in results.values()) > 0.95
