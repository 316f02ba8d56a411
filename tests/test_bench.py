"""The benchmark command itself: options, the JSON document, tiny runs in
this process and through worker processes, --check and the reports.

No timing is asserted (the machine is shared); one repetition of tiny shapes.
"""
import copy
import importlib
import io
import json
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastsm.bench import main
from fastsm.bench._cli import ProgressBar, parse_args
from fastsm.bench.cases import CASES, FAMILIES, SIZES, Case, parse_shape, select
from fastsm.bench.libraries import LIBRARIES, Library, api
from fastsm.bench.report import check, markdown_table, text_table
from fastsm.bench.run import SCHEMA, _pool, run_benchmark
from fastsm.bench.timing import summarize, time_call
from fastsm.bench.worker import Worker, _cpu_ns

TINY = {"cases": ["softmax"], "libraries": ["fastsm", "numpy"], "shapes": [(8, 5)],
        "dtype": "float32", "threads": 1, "repeats": 1, "seed": 0}

RESULT_KEYS = {"op", "family", "library", "shape", "dtype", "status", "note"}
MEASURED_KEYS = RESULT_KEYS | {"bytes", "median_s", "min_s", "max_s", "samples", "times",
                               "calls_per_sample", "matches_reference", "gbps", "copy_gbps",
                               "fraction_of_copy", "speedup_vs_numpy"}


@pytest.fixture(scope="module")
def tiny_run():
    return run_benchmark(TINY, isolate=False)


def _result(doc, library):
    return next(r for r in doc["results"] if r["library"] == library)


def _saved(tmp_path, doc, name="run.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


# Options

def test_defaults_measure_everything_at_every_preset_size():
    args = parse_args([])
    assert args.cases == list(CASES)
    assert args.libs == list(LIBRARIES)
    assert args.shapes == [s for shapes in SIZES.values() for s in shapes]
    assert args.dtype == "float32" and args.threads >= 1 and args.repeats >= 1


def test_ops_take_operations_and_families():
    args = parse_args(["--ops", "hardmax,softmax-family"])
    assert args.cases == FAMILIES["softmax-family"]
    assert parse_args(["--ops", "log_softmax"]).cases == ["log_softmax"]


def test_custom_shapes_replace_the_presets_unless_sizes_are_given():
    assert parse_args(["--shape", "8x3", "--shape", "2x3x4"]).shapes == [(8, 3), (2, 3, 4)]
    assert parse_args(["--sizes", "small", "--shape", "8x3"]).shapes == [(64, 10), (8, 3)]


@pytest.mark.parametrize("argv", [
    ["--ops", "softmax,no_such_op"], ["--libs", "tensorflow"], ["--sizes", "huge"],
    ["--shape", "8by3"], ["--shape", "0x3"], ["--repeats", "0"], ["--rounds", "0"],
    ["--threads", "-1"],
    ["--dtype", "int8"], ["--json", "/no/such/folder/run.json"],
    ["--plot", "/no/such/folder/run.png"],
])
def test_bad_options_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_the_console_script_points_at_main():
    tomllib = pytest.importorskip("tomllib")
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    module, _, name = project["project"]["scripts"]["fastsm-bench"].partition(":")
    assert getattr(importlib.import_module(module), name) is main
    assert "fastsm.bench" in project["tool"]["setuptools"]["packages"]


def test_parse_shape():
    assert parse_shape("4096x1000") == (4096, 1000)
    assert parse_shape("32X64x7x7") == (32, 64, 7, 7)
    with pytest.raises(ValueError):
        parse_shape("x")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_counts_results_on_a_terminal_only():
    record = {"library": "torch", "op": "softmax", "shape": [64, 10]}
    terminal = _Terminal()
    bar = ProgressBar(4, terminal, width=8)
    bar(record)
    bar(record)
    bar.close()
    assert terminal.getvalue().split("\r")[-1].startswith("[####....] 2/4 torch softmax 64x10")
    pipe = io.StringIO()
    ProgressBar(4, pipe)(record)
    assert pipe.getvalue() == ""


def test_list_names_every_operation_and_library(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list(CASES) + list(LIBRARIES) + list(FAMILIES))


# The registry

def test_every_case_runs_in_fastsm_and_the_reference_with_inputs_of_its_shape():
    rng = np.random.default_rng(0)
    for case in CASES.values():
        assert {"fastsm", "numpy"} <= set(case.impls), case.name
        assert set(case.impls) <= set(LIBRARIES), case.name
        inputs = case.make_inputs((6, 4), np.dtype(np.float32), rng)
        assert case.bytes_moved(inputs) >= sum(a.nbytes for a in inputs.values())
    assert sorted(n for names in FAMILIES.values() for n in names) == sorted(CASES)
    with pytest.raises(ValueError, match="unknown operation"):
        select(["softmax", "nope"])


def test_time_call_reports_per_call_statistics():
    stats = time_call(lambda: None, repeats=3)
    assert stats["samples"] == 3 and stats["calls_per_sample"] >= 1
    assert 0 <= stats["min_s"] <= stats["median_s"] <= stats["max_s"]
    assert sorted(stats["times"])[1] == stats["median_s"]


def test_rounds_take_turns_case_by_case_and_pool_their_samples():
    order = []
    doc = run_benchmark(dict(TINY, repeats=5, rounds=2, shapes=[(8, 5), (3, 4)]),
                        progress=lambda r: order.append((r["library"], r["shape"])),
                        isolate=False)
    # each shape in every library before the next shape; three samples a
    # round (five rounded up to whole rounds); the second round runs the
    # libraries in reverse
    a, b = [8, 5], [3, 4]
    assert order == [("fastsm", a), ("numpy", a), ("fastsm", b), ("numpy", b),
                     ("numpy", a), ("fastsm", a), ("numpy", b), ("fastsm", b)]
    assert [(r["library"], r["shape"]) for r in doc["results"]] == [
        ("fastsm", a), ("fastsm", b), ("numpy", a), ("numpy", b)]
    for r in doc["results"]:
        assert r["samples"] == len(r["times"]) == 6
        assert r["matches_reference"] is True  # compared in the first round
        assert r["median_s"] == statistics.median(r["times"])
        assert r["min_s"] == min(r["times"]) and r["max_s"] == max(r["times"])
    copy = doc["bandwidth"][0]
    assert len(copy["times"]) == 6 and copy["median_s"] == statistics.median(copy["times"])
    assert doc["metadata"]["rounds"] == 2
    assert "median of 6 samples in 2 rounds" in text_table(doc)


def test_a_case_that_fails_in_any_round_is_reported_failed():
    def record(status, times=(), matches=True):
        r = {"status": status}
        if status == "ok":
            r.update(summarize(list(times)), matches_reference=matches, calls_per_sample=2)
        return r

    for first, second in ((record("ok", [1.0]), record("error")),
                          (record("error"), record("ok", [1.0]))):
        pooled = {}
        _pool(pooled, "k", first)
        _pool(pooled, "k", second)
        assert pooled["k"]["status"] == "error"
    pooled = {}
    _pool(pooled, "k", record("ok", [3.0, 1.0]))
    _pool(pooled, "k", record("ok", [2.0], matches=False))
    assert pooled["k"]["times"] == [3.0, 1.0, 2.0] and pooled["k"]["median_s"] == 2.0
    assert pooled["k"]["matches_reference"] is False
    unchecked = record("ok", [5.0])
    del unchecked["matches_reference"]  # a later round compares nothing
    _pool(pooled, "k", unchecked)
    assert pooled["k"]["matches_reference"] is False and pooled["k"]["samples"] == 4


# Runs and the JSON document

def test_a_tiny_run_in_process_follows_the_schema(tiny_run):
    doc = json.loads(json.dumps(tiny_run))  # all of it is plain JSON
    assert doc["schema"] == SCHEMA
    assert set(doc) == {"schema", "metadata", "libraries", "bandwidth", "results"}
    meta = doc["metadata"]
    assert {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"} <= set(meta["environment"])
    assert {"created", "command", "fastsm_version", "python", "processor", "usable_cores",
            "dtype", "threads", "repeats", "threadpools"} <= set(meta)
    assert set(doc["libraries"]) == {"fastsm", "numpy"}
    assert all(info["status"] == "ok" and info["version"] for info in doc["libraries"].values())
    assert [set(b) for b in doc["bandwidth"]] == [{"bytes", "median_s", "gbps", "times"}]
    assert len(doc["results"]) == 2
    for r in doc["results"]:
        assert set(r) == MEASURED_KEYS
        assert r["status"] == "ok" and r["matches_reference"] is True
        assert r["samples"] == 1 and r["shape"] == [8, 5] and r["dtype"] == "float32"
        assert r["bytes"] == 2 * 8 * 5 * 4
    assert _result(doc, "numpy")["speedup_vs_numpy"] == 1.0


def test_each_library_runs_in_a_worker_process_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "out.json"
    code = main(["--ops", "softmax", "--libs", "fastsm,numpy", "--shape", "8x5",
                 "--repeats", "1", "--threads", "1", "--json", str(path)])
    assert code == 0
    doc = json.loads(path.read_text())
    assert [(r["library"], r["status"]) for r in doc["results"]] == [("fastsm", "ok"),
                                                                     ("numpy", "ok")]
    assert doc["metadata"]["command"].endswith(f"--json {path}")
    assert "softmax" in capsys.readouterr().out


def test_a_worker_serves_every_round_of_its_library_and_is_replaced_if_it_dies():
    task = {"library": "fastsm", "cases": ["softmax"], "shapes": [[8, 5]], "dtype": "float32",
            "threads": 1, "repeats": 1, "seed": 0}
    w = Worker()
    try:
        events = []
        assert w.run(task, events.append) is None
        pid = w.process.pid
        assert w.run(dict(task, check=False), events.append) is None
        assert w.process.pid == pid  # the same process, fastsm imported once
        assert [e["event"] for e in events] == ["library", "result", "result"]
        assert all(e["status"] == "ok" for e in events)
        assert events[1]["matches_reference"] is True and "matches_reference" not in events[2]
        w.settle()  # an idle worker is settled at once
        # a task the worker cannot run ends it; the next task starts another
        code = w.run(dict(task, library="no-such-library"), events.append)
        assert code not in (None, 0) and w.process is None
        assert w.run(task, events.append) is None and w.process.pid != pid
    finally:
        w.close()
    assert w.process is None


def test_the_cpu_time_of_a_process_counts_all_its_threads():
    def burn(seconds):
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    burnt, done = threading.Event(), threading.Event()

    def other_thread():
        burn(0.05)
        burnt.set()
        done.wait()  # alive while counted

    before = _cpu_ns(os.getpid())
    thread = threading.Thread(target=other_thread)
    thread.start()
    burn(0.05)
    burnt.wait()
    used = _cpu_ns(os.getpid()) - before
    done.set()
    thread.join()
    assert used >= 0.09e9
    assert _cpu_ns(2 ** 22 + 1) is None  # no such process


def test_a_missing_library_is_skipped_with_a_note(monkeypatch):
    class NotInstalled(Library):
        name = "notinstalled"

        def load(self, threads):
            raise ImportError("No module named 'notinstalled'")

    monkeypatch.setitem(LIBRARIES, "notinstalled", NotInstalled())
    doc = run_benchmark(dict(TINY, libraries=["notinstalled"]), isolate=False)
    assert doc["libraries"]["notinstalled"]["status"] == "missing"
    assert [r["status"] for r in doc["results"]] == ["skipped"]
    assert "notinstalled" in text_table(doc)


def test_an_operation_fastsm_lacks_is_unavailable_not_an_error(monkeypatch):
    impl = api("no_such_function", "x")
    monkeypatch.setitem(CASES, "future_op", Case(
        "future_op", "test", CASES["softmax"].make_inputs, ("x",),
        {"fastsm": impl, "numpy": impl}))
    doc = run_benchmark(dict(TINY, cases=["future_op"]), isolate=False)
    assert {r["status"] for r in doc["results"]} == {"unavailable"}
    assert "fastsm has no future_op" in text_table(doc)


# --check and the reports

def _with_fastsm_time(doc, factor):
    doc = copy.deepcopy(doc)
    _result(doc, "fastsm")["median_s"] = factor * _result(doc, "numpy")["median_s"]
    return doc


def test_check_passes_when_fastsm_is_faster(tiny_run, tmp_path):
    assert check(_with_fastsm_time(tiny_run, 0.5)) == ([], 1)
    assert main(["--from-json", _saved(tmp_path, _with_fastsm_time(tiny_run, 0.5)),
                 "--check"]) == 0


def test_check_fails_on_a_slow_case(tiny_run, tmp_path, capsys):
    path = _saved(tmp_path, _with_fastsm_time(tiny_run, 2.0))
    assert main(["--from-json", path, "--check"]) == 1
    assert "slower than the NumPy reference" in capsys.readouterr().err


def test_check_fails_on_a_wrong_result(tiny_run):
    doc = _with_fastsm_time(tiny_run, 0.5)
    _result(doc, "fastsm")["matches_reference"] = False
    failures, _ = check(doc)
    assert len(failures) == 1 and "differs" in failures[0]


def test_check_fails_when_nothing_was_compared(tiny_run, tmp_path):
    doc = copy.deepcopy(tiny_run)
    doc["results"] = [_result(doc, "fastsm")]
    assert main(["--from-json", _saved(tmp_path, doc), "--check"]) == 1


def test_markdown_output_is_a_table_with_a_row_per_library(tiny_run, tmp_path, capsys):
    assert main(["--from-json", _saved(tmp_path, tiny_run), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| operation | shape | library | median | min | max | GB/s | % of copy | vs numpy |" \
        in lines
    assert any(line.startswith("| softmax | 8x5 | fastsm |") for line in lines)
    assert any(line.startswith("| softmax | 8x5 | numpy |") and "1.00x" in line
               for line in lines)
    assert any(line.startswith("| softmax | 8x5 | copy (limit) |") and "100%" in line
               for line in lines)


def test_a_file_that_is_not_a_run_is_refused(tmp_path, capsys):
    assert main(["--from-json", _saved(tmp_path, {"schema": "other"})]) == 2
    assert main(["--from-json", _saved(tmp_path, [1, 2])]) == 2
    not_json = tmp_path / "table.txt"
    not_json.write_text("softmax 64x10 fastsm 1 us\n")
    assert main(["--from-json", str(not_json)]) == 2
    assert main(["--from-json", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "missing.json" in err and "Traceback" not in err


def test_plot_writes_a_png(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    assert main(["--from-json", _saved(tmp_path, tiny_run), "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
