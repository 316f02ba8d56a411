"""The thread pool behind the kernels (src_c/parallel.c; every extension module
links its own): results do not depend on how many workers a pool has or had;
a forked child, which inherits no workers, computes its parent's results, also
when another thread was inside a kernel at the fork, and so does its own
child; idle workers sleep instead of spinning.
"""
import copy
import os
import threading
import time

import numpy as np
import pytest

import fastsm
from fastsm._optimizers import Adam
from public_api import LIVE
from test_concurrency import wait_child

# 300,000 elements: enough work for every kernel to use threads
# (src_c/parallel.h: one thread per 2**17 elements).
SHAPE = (600, 500)


def adam_step(p, g):
    """One fused Adam step (the optimizer module's kernel) from p."""
    p = p.copy()
    Adam([p], learning_rate=0.01).step([g])
    return p


@pytest.fixture(scope="module")
def calls():
    """(function, kwargs) for every public function and the fused Adam: a
    call into every extension module, each with its own pool."""
    rng = np.random.default_rng(11)
    out = []
    for entry in LIVE:
        dtype = np.float32 if len(out) % 2 else np.float64
        kwargs = entry.make(rng, SHAPE, dtype, 1 if entry.axis_kind else None, True)
        out.append((lambda kw, entry=entry: entry.call(entry.fast, kw), kwargs))
    p, g = rng.standard_normal((2,) + SHAPE).astype(np.float32)
    out.append((lambda kw: adam_step(**kw), {"p": p, "g": g}))
    return out


def run_all(calls, threads):
    """Every call's results (as arrays), on `threads` threads."""
    with fastsm.threads(threads):
        results = [fn(copy.deepcopy(kwargs)) for fn, kwargs in calls]
    return [np.asarray(a) for r in results for a in (r if isinstance(r, tuple) else (r,))]


def same(got, want):
    return len(got) == len(want) and all(
        g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w, equal_nan=True)
        for g, w in zip(got, want))


@pytest.fixture(scope="module")
def single_threaded(calls):
    return run_all(calls, 1)


def test_results_do_not_depend_on_the_pools_history(calls, single_threaded):
    # The pools grow to 16 threads and are then asked for fewer and more.
    for threads in (2, 16, 3, 2, 8, 5, 2):
        assert same(run_all(calls, threads), single_threaded), threads


def exit_code_in_child(body):
    """Forks; the child exits 0 if body() is true, 1 if not or if it raised.
    Returns the child's exit code; fails the test if it hangs."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 1
        finally:
            os._exit(code)
    return wait_child(pid, timeout=60)


def test_a_forked_child_and_grandchild_compute_the_parents_results(calls, single_threaded):
    assert same(run_all(calls, 2), single_threaded)  # every pool has a worker now

    def child():
        here = same(run_all(calls, 2), single_threaded)
        return here and exit_code_in_child(lambda: same(run_all(calls, 2), single_threaded)) == 0

    assert exit_code_in_child(child) == 0


def test_a_child_forked_while_another_thread_computes_works(calls, single_threaded):
    stop = threading.Event()
    errors = []

    def compute():
        try:
            while not stop.is_set():
                assert same(run_all(calls, 2), single_threaded)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)
            raise

    busy = threading.Thread(target=compute)
    busy.start()
    try:
        # Forks land at different points of the busy thread's calls, some
        # while a pool is in use and the fork copies its lock held.
        for delay in (0.01, 0.037, 0.071, 0.113, 0.2):
            time.sleep(delay)
            assert exit_code_in_child(lambda: same(run_all(calls, 2), single_threaded)) == 0
    finally:
        stop.set()
        busy.join()
    assert not errors


def test_idle_workers_use_no_cpu(calls):
    run_all(calls, 4)  # every pool has three workers
    before = time.process_time()
    time.sleep(0.5)
    # A spinning worker would use about 0.5 s per worker.
    assert time.process_time() - before < 0.1
