"""bench/ratios_models.py on a tiny problem: every side trains the same
network, and the fastsm and NumPy-reference sides (same seed, same
shuffling) follow the same loss curve."""
import importlib.util
import pathlib

import pytest

pytest.importorskip("threadpoolctl")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "ratios_models.py"


def test_tiny_run_of_the_throughput_script(capsys):
    spec = importlib.util.spec_from_file_location("ratios_models", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    times, losses = script.main(["--rows", "1000", "--epochs", "2", "--threads", "1"])
    assert {"fastsm", "numpy reference"} <= set(times)
    for name, curve in losses.items():
        assert len(curve) == len(times[name]) == 2
        assert curve[1] < curve[0]
    for a, b in zip(losses["fastsm"], losses["numpy reference"]):
        assert a == pytest.approx(b, rel=1e-4)
    assert "time / fastsm" in capsys.readouterr().out
