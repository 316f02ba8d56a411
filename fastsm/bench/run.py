"""A whole benchmark run: the copy bandwidth, each library in turn, the
machine's description, and the figures derived from them (GB/s, fraction of
the copy bandwidth, speed-up over the NumPy reference).

The libraries take turns case by case: each round measures the copy, then
for each case and shape runs every library in turn, each with its share of
the repeats (the libraries in reverse order every other round); each figure
is the median over the samples of all rounds.  The libraries' samples of a
case are thus taken seconds apart, in every round, and on a shared machine
a slow spell weighs on all of them alike instead of on whichever happened
to run in it.  Results are compared with the NumPy reference in the first
round.

The result is a plain dict (see `SCHEMA`), written as is by ``--json``.
"""
import datetime
import os
import platform
import sys

import numpy as np

from . import worker
from .cases import CASES
from .timing import copy_bandwidth, copy_figures, samples_per_round, summarize

SCHEMA = "fastsm-bench/1"

# Environment variables that change how the libraries run; reported, never set.
ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS")


def run_benchmark(config, progress=None, isolate=True):
    """Measure every selected case, shape and library.

    Parameters
    ----------
    config : dict
        ``cases`` (names), ``libraries`` (names), ``shapes`` (tuples),
        ``dtype``, ``threads``, ``repeats`` (samples in all), ``seed``; and
        optionally ``rounds`` (default 1; see the module's docstring).
    progress : callable, optional
        Called with each result record as it arrives (once per round).
    isolate : bool, default True
        Run each library in a worker process of its own, which serves it
        for every round (False: in this one; for tests).

    Returns
    -------
    dict
        ``schema``, ``metadata``, ``libraries``, ``bandwidth``, ``results``.
    """
    rounds = config.get("rounds", 1)
    share = samples_per_round(config["repeats"], rounds)
    libraries, pooled, copy_times = {}, {}, {}
    workers = {name: worker.Worker() if isolate else None for name in config["libraries"]}
    try:
        for k in range(rounds):
            for measured in _bandwidth(config, share):
                copy_times.setdefault(measured["bytes"], []).extend(measured["times"])
            names = config["libraries"] if k % 2 == 0 else config["libraries"][::-1]
            for case in config["cases"]:
                for shape in config["shapes"]:
                    for name in names:
                        task = _task(name, config, case, shape, share, check=k == 0)
                        for record in _run_task(task, workers[name], libraries, progress):
                            _pool(pooled, (name, record["op"], tuple(record["shape"])), record)
    finally:
        for w in workers.values():
            if w is not None:
                w.close()
    # Records in the order of the libraries given, as the first round made them.
    order = {name: i for i, name in enumerate(config["libraries"])}
    results = sorted(pooled.values(), key=lambda r: order[r["library"]])
    bandwidth = [copy_figures(n, copy_times[n]) for n in sorted(copy_times)]
    derive(results, bandwidth)
    return {"schema": SCHEMA, "metadata": metadata(config), "libraries": libraries,
            "bandwidth": bandwidth, "results": results}


def _task(name, config, case, shape, repeats, check):
    """The worker task of library `name` for one case at one shape."""
    return {"library": name, "cases": [case], "shapes": [list(shape)],
            "dtype": config["dtype"], "threads": config["threads"], "repeats": repeats,
            "seed": config["seed"], "check": check}


def _run_task(task, process, libraries, progress):
    """The result records of `task` from its library's worker `process`
    (None: in this process), each also passed to `progress` as it arrives;
    notes the library in `libraries`.  Returns once the worker is idle."""
    received = []

    def emit(event):
        if event["event"] == "library":
            libraries[event["library"]] = {k: v for k, v in event.items()
                                           if k not in ("event", "library")}
        else:
            del event["event"]
            received.append(event)
            if progress is not None:
                progress(event)

    if process is None:
        worker.run_library(task, emit)
        return received
    code = process.run(task, emit)
    if code is not None:
        _report_crash(task, received, code, emit)
    else:
        process.settle()
    return received


def _pool(pooled, key, record):
    """Adds `record` to the one of `key` in `pooled`: the samples of both,
    the statistics over them.  A record that failed in any round stays
    failed; the first round's comparison with the reference stands (later
    rounds' records have none), unless another one disagrees."""
    first = pooled.get(key)
    if first is None or (first["status"] == "ok" and record["status"] != "ok"):
        pooled[key] = record
    elif first["status"] == "ok":
        first.update(summarize(first["times"] + record["times"]))
        if "matches_reference" in record:
            agree = (first.get("matches_reference"), record["matches_reference"])
            first["matches_reference"] = None if None in agree else all(agree)
        first["calls_per_sample"] = min(first["calls_per_sample"], record["calls_per_sample"])


def _bandwidth(config, repeats):
    """The copy bandwidth at every size the cases move, measured here."""
    sizes = set()
    rng = np.random.default_rng(config["seed"])
    for name in config["cases"]:
        for shape in config["shapes"]:
            try:
                inputs = CASES[name].make_inputs(tuple(shape), np.dtype(config["dtype"]), rng)
            except ValueError:  # a shape the case cannot take; its record says so
                continue
            sizes.add(CASES[name].bytes_moved(inputs))
    return [copy_bandwidth(n, repeats) for n in sorted(sizes)]


def _report_crash(task, received, code, emit):
    done = {(r["op"], tuple(r["shape"])) for r in received}
    for name in task["cases"]:
        for shape in task["shapes"]:
            if (name, tuple(shape)) not in done:
                emit({"event": "result", "op": name, "family": CASES[name].family,
                      "library": task["library"], "shape": list(shape),
                      "dtype": task["dtype"], "status": "error",
                      "note": f"the worker process exited with code {code}"})


def derive(results, bandwidth):
    """Add GB/s, the fraction of the copy bandwidth and the speed-up over the
    NumPy reference to each measured record (in place)."""
    copy_gbps = {b["bytes"]: b["gbps"] for b in bandwidth}
    numpy_time = {(r["op"], tuple(r["shape"])): r["median_s"] for r in results
                  if r["library"] == "numpy" and r["status"] == "ok"}
    for r in results:
        if r["status"] != "ok":
            continue
        r["gbps"] = r["bytes"] / r["median_s"] / 1e9
        limit = copy_gbps.get(r["bytes"])
        r["copy_gbps"] = limit
        r["fraction_of_copy"] = None if limit is None else r["gbps"] / limit
        baseline = numpy_time.get((r["op"], tuple(r["shape"])))
        r["speedup_vs_numpy"] = None if baseline is None else baseline / r["median_s"]


def metadata(config):
    """What the numbers depend on besides the code: machine, versions, settings."""
    import fastsm
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m fastsm.bench"] + config.get("argv", [])),
        "fastsm_version": fastsm.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": _processor(),
        "usable_cores": _usable_cores(),
        "dtype": config["dtype"],
        "threads": config["threads"],
        "repeats": config["repeats"],
        "rounds": config.get("rounds", 1),
        "environment": {k: os.environ.get(k) for k in ENVIRONMENT},
        "threadpools": worker.threadpool_info(),
    }


def _processor():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()
