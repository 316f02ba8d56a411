"""Concurrency: many Python threads calling every public function at once,
each with its own `fastsm.threads(n)`, get the single-threaded results bit for
bit; `set_num_threads` from several threads is safe; the kernels work in a
child after `os.fork()` (no thread pool or lock carried over that could hang).
"""
import copy
import os
import random
import signal
import threading
import time

import numpy as np
import pytest

import fastsm
from public_api import LIVE

# 300,000 elements: enough work for the kernels to start threads
# (src_c/parallel.h: one thread per 2**17 elements).
SHAPE = (600, 500)


def assert_identical(got, want):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_identical(g, w)
    else:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), strict=True)


@pytest.fixture(scope="module")
def cases():
    """(entry, kwargs, single-threaded result) for every live function."""
    rng = np.random.default_rng(5)
    out = []
    for entry in LIVE:
        dtype = np.float32 if len(out) % 2 else np.float64
        kwargs = entry.make(rng, SHAPE, dtype, 1 if entry.axis_kind else None, True)
        with fastsm.threads(1):
            out.append((entry, kwargs, entry.call(entry.fast, copy.deepcopy(kwargs))))
    return out


def run_together(target, count):
    """Runs target(i) for i < count in that many Python threads started
    together; re-raises the first failure in the calling thread."""
    barrier = threading.Barrier(count)
    failures = []

    def body(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # handed to the main thread
            failures.append(exc)

    workers = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "a worker hung"
    if failures:
        raise failures[0]


def test_threads_with_different_settings_give_the_single_threaded_results(cases):
    def work(i):
        order = list(cases)
        random.Random(i).shuffle(order)
        with fastsm.threads(1 + i % 4):
            for _ in range(3):
                for entry, kwargs, want in order:
                    assert_identical(entry.call(entry.fast, copy.deepcopy(kwargs)), want)

    run_together(work, 6)


def test_out_calls_from_threads_write_only_their_own_out(cases):
    entries = [(e, kw, w) for e, kw, w in cases if e.has_out()]

    def work(i):
        with fastsm.threads(1 + i % 3):
            for entry, kwargs, want in entries:
                kwargs = copy.deepcopy(kwargs)
                kwargs["out"] = np.empty_like(np.asarray(entry.out_of(want)))
                for _ in range(3):
                    assert entry.out_of(entry.call(entry.fast, kwargs)) is kwargs["out"]
                    assert_identical(kwargs["out"], entry.out_of(want))

    run_together(work, 4)


def test_set_num_threads_from_several_threads(cases):
    entry, kwargs, want = cases[0]
    default = fastsm.get_num_threads()

    def work(i):
        rnd = random.Random(i)
        for _ in range(300):
            if i % 2:  # setters race each other and the computing threads
                fastsm.set_num_threads(rnd.randint(1, 8))
                assert 1 <= fastsm.get_num_threads() <= 8
            else:  # an override holds in its own thread whatever the others set
                k = rnd.randint(1, 5)
                with fastsm.threads(k):
                    assert fastsm.get_num_threads() == k
                    if rnd.random() < 0.05:
                        assert_identical(entry.call(entry.fast, copy.deepcopy(kwargs)), want)
                    assert fastsm.get_num_threads() == k

    try:
        run_together(work, 6)
        assert 1 <= fastsm.get_num_threads() <= 8
    finally:
        fastsm.set_num_threads(default)


def wait_child(pid, timeout):
    """The child's exit status, or a kill and a failure after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {timeout} s")


@pytest.mark.parametrize("busy_thread", [False, True],
                         ids=["after-a-parallel-call", "while-another-thread-computes"])
def test_kernels_work_in_a_forked_child(cases, busy_thread):
    entry, kwargs, want = cases[0]
    with fastsm.threads(2):
        assert_identical(entry.call(entry.fast, copy.deepcopy(kwargs)), want)  # threads ran
    stop = threading.Event()
    busy = None
    if busy_thread:
        def spin():
            with fastsm.threads(2):
                while not stop.is_set():
                    entry.call(entry.fast, copy.deepcopy(kwargs))
        busy = threading.Thread(target=spin)
        busy.start()
        time.sleep(0.05)
    try:
        pid = os.fork()
        if pid == 0:  # the child: every function, with threads, then exit
            code = 1
            try:
                with fastsm.threads(2):
                    for e, kw, w in cases:
                        assert_identical(e.call(e.fast, copy.deepcopy(kw)), w)
                code = 0
            finally:
                os._exit(code)
        assert wait_child(pid, timeout=60) == 0
    finally:
        stop.set()
        if busy is not None:
            busy.join()
