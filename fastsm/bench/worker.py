"""Measure every (case, shape) of one library, in this process or in a worker.

Each library runs in a process of its own, which serves it for the whole
run: the parent writes one JSON task a line on the worker's stdin (a case
at a shape, in the runs), and the worker answers with one JSON event a line
on stdout, prefixed with `PREFIX` so that anything a library prints there
cannot be taken for a result, and ends each task with a "done" event.  The
library is imported once, so rounds cost little beyond their samples.  No
thread pool of one library (OpenMP, Eigen, OpenBLAS) runs while another is
timed: a worker waits on its stdin between tasks, and the run goes on to the
next library only once the worker is idle (`Worker.settle`).
"""
import copy
import json
import os
import subprocess
import sys
import sysconfig
import time

import numpy as np

from .. import reference
from .cases import CASES
from .libraries import LIBRARIES, Unavailable
from .timing import time_call

PREFIX = "fastsm-bench-event "

# Worker.settle: how often it asks for a worker's CPU time, and how long it
# waits at most (where it cannot ask, always).
SETTLE_POLL_SECONDS = 0.005
SETTLE_MAX_SECONDS = 0.5


def prepare(case, library, handle, inputs):
    """The callable that runs `case` in `library` on NumPy `inputs`.

    Raises
    ------
    Unavailable
        The library does not have the operation.
    """
    impl = case.impls.get(library.name)
    if impl is None:
        raise Unavailable(f"{library.name} has no {case.name}")
    converted = {name: library.convert(handle, array) for name, array in inputs.items()}
    call = impl(handle, converted)
    if library.finish is None:
        return call
    return lambda: library.finish(call())


def run_library(task, emit, handles=None):
    """Measure `task["cases"]` x `task["shapes"]` in `task["library"]`.

    Parameters
    ----------
    task : dict
        ``library``, ``cases`` (names), ``shapes`` (lists of ints), ``dtype``,
        ``threads``, ``repeats``, ``seed``; ``check`` (default True): compare
        each first result with the NumPy reference (``matches_reference``).
    emit : callable
        Called with each event: ``{"event": "library", ...}`` when the task
        loads its library, then one ``{"event": "result", ...}`` per case and
        shape.
    handles : dict, optional
        Libraries loaded by earlier tasks, by name and threads; a task
        loads its library (and adds it) only if it is not there.
    """
    library = LIBRARIES[task["library"]]
    handles = {} if handles is None else handles
    key = (library.name, task["threads"])
    if key not in handles:
        try:
            handle = library.load(task["threads"])
        except ImportError as exc:
            emit({"event": "library", "library": library.name, "status": "missing",
                  "note": f"not installed ({exc})"})
            for name in task["cases"]:
                for shape in task["shapes"]:
                    emit(_record(CASES[name], library, shape, task["dtype"],
                                 status="skipped", note=f"{library.name} is not installed"))
            return
        handles[key] = handle
        emit({"event": "library", "library": library.name, "status": "ok",
              "version": library.version(handle), "threads": task["threads"],
              "threadpools": threadpool_info()})
    for name in task["cases"]:
        for shape in task["shapes"]:
            emit(measure(CASES[name], library, handles[key], tuple(shape), task))


def measure(case, library, handle, shape, task):
    """One result record: the timing of `case` at `shape` in `library`, and
    whether its first result agrees with the NumPy reference."""
    dtype = np.dtype(task["dtype"])
    record = _record(case, library, shape, dtype.name, status="ok", note="")
    try:
        # The same seed for every library: they all see the same inputs.
        inputs = case.make_inputs(shape, dtype, np.random.default_rng(task["seed"]))
        record["bytes"] = case.bytes_moved(inputs)
        run = prepare(case, library, handle, inputs)
        if task.get("check", True):
            expected = _expected(case, inputs)
            record["matches_reference"] = (None if expected is None else
                                           _agree(library.to_numpy(run()), expected, dtype))
        record.update(time_call(run, task["repeats"]))
    except Unavailable as exc:
        record.update(status="unavailable", note=str(exc))
    except Exception as exc:  # a library failing one case must not stop the others
        record.update(status="error", note=f"{type(exc).__name__}: {exc}")
    return record


def _record(case, library, shape, dtype, status, note):
    return {"event": "result", "op": case.name, "family": case.family,
            "library": library.name, "shape": list(shape), "dtype": str(dtype),
            "status": status, "note": note}


def _expected(case, inputs):
    """The NumPy reference's result, or None where it has no such function."""
    try:
        run = prepare(case, LIBRARIES["numpy"], reference, copy.deepcopy(inputs))
    except Unavailable:
        return None
    return LIBRARIES["numpy"].to_numpy(run())


def _agree(got, expected, dtype):
    """Whether the outputs present in both agree, to a tolerance of the dtype."""
    tol = 2e-3 if dtype.itemsize <= 4 else 1e-9
    for g, e in zip(got, expected):
        g, e = np.asarray(g, np.float64), np.asarray(e, np.float64)
        if g.shape != e.shape:
            return False
        scale = np.abs(e[np.isfinite(e)]).max(initial=1.0)
        if not np.allclose(g, e, rtol=tol, atol=tol * scale, equal_nan=True):
            return False
    return True


def threadpool_info():
    """threadpoolctl's view of the native thread pools loaded here (if installed)."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    keys = ("user_api", "internal_api", "num_threads", "version", "filepath")
    return [{k: pool.get(k) for k in keys} for pool in threadpoolctl.threadpool_info()]


class Worker:
    """A worker process serving one library's tasks, started on the first.

    `run` returns None once the task is done, or the worker's exit code if
    it ended before (after which the next task starts a new one)."""

    def __init__(self):
        self.process = None

    def run(self, task, emit):
        if self.process is None:
            self.process = _start_worker()
        try:
            self.process.stdin.write(json.dumps(task) + "\n")
            self.process.stdin.flush()
        except OSError:  # it died since the last task
            return self._ended()
        for line in self.process.stdout:
            if not line.startswith(PREFIX):
                sys.stderr.write(line)
                continue
            event = json.loads(line[len(PREFIX):])
            if event["event"] == "done":
                return None
            emit(event)
        return self._ended()

    def settle(self):
        """Returns once the worker uses (almost) no CPU: thread pools spin
        for a while after their last call (ONNX Runtime's for about 50 ms,
        OpenMP's about 10 ms), and must not while another library is timed."""
        used = _cpu_ns(self.process.pid)
        if used is None:  # no /proc to ask
            time.sleep(SETTLE_MAX_SECONDS)
            return
        deadline = time.monotonic() + SETTLE_MAX_SECONDS
        while time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_SECONDS)
            now = _cpu_ns(self.process.pid)
            if now is None or now - used < SETTLE_POLL_SECONDS * 1e9 / 10:
                return
            used = now

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            for line in self.process.stdout:  # anything printed on the way out
                sys.stderr.write(line)
            self.process.wait()
            self.process = None

    def _ended(self):
        code = self.process.wait()
        self.process = None
        return code


def _cpu_ns(pid):
    """Nanoseconds on the CPU of all threads of process `pid` so far (None
    where /proc does not say)."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:  # a thread that has just ended
                pass
        return total
    except (OSError, ValueError, IndexError):
        return None


def _start_worker():
    env = dict(os.environ)
    # The worker must import this very fastsm, also from a source tree that
    # is not installed (an installed one is found anyway; putting
    # site-packages ahead of the standard library would be wrong).
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    installed = {os.path.abspath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    if package_parent not in installed:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                          env.get("PYTHONPATH")]))
    # `-m` puts the working directory first on sys.path: run from the standard
    # library's directory, so that a source tree in the caller's directory
    # (without its compiled kernels) cannot shadow the fastsm found above.
    return subprocess.Popen([sys.executable, "-m", "fastsm.bench", "--worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=sysconfig.get_paths()["stdlib"])


def serve():
    """The worker process's main: tasks on stdin, a line each; events on stdout."""
    def emit(event):
        sys.stdout.write(PREFIX + json.dumps(event) + "\n")
        sys.stdout.flush()

    handles = {}
    for line in sys.stdin:
        run_library(json.loads(line), emit, handles)
        emit({"event": "done"})
    return 0
