"""Timing one callable honestly, and the machine's copy bandwidth.

A sample is a loop of enough calls to last `SAMPLE_SECONDS`, so that the
clock's resolution and the loop's own cost vanish; the first call (compiling,
first-touch page faults) and the calibration loops are the warm-up and are
not counted.  The median of the samples is the result; min and max show the
spread, which on a shared machine can be large.
"""
import gc
import statistics
import time

import numpy as np

SAMPLE_SECONDS = 0.01


def time_call(run, repeats):
    """Seconds per call of `run()`.

    Parameters
    ----------
    run : callable
        Called with no arguments.
    repeats : int
        Number of timed samples.

    Returns
    -------
    dict
        ``median_s``, ``min_s``, ``max_s`` (per call), ``samples``, ``times`` (per call,
        each sample's), ``calls_per_sample``.
    """
    run()
    calls = 1
    while True:
        elapsed = _sample(run, calls)
        if elapsed >= SAMPLE_SECONDS or calls >= 1 << 20:
            break
        calls *= 2 if elapsed == 0 else max(2, min(100, int(SAMPLE_SECONDS / elapsed * 1.2)))
    times = [_sample(run, calls) / calls for _ in range(repeats)]
    return dict(summarize(times), calls_per_sample=calls)


def samples_per_round(repeats, rounds):
    """Each round's share of `repeats` samples, rounded up."""
    return -(-repeats // rounds)


def summarize(times):
    """``median_s``, ``min_s``, ``max_s`` and ``samples`` of per-call times,
    and the ``times`` themselves (so that runs can be pooled)."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "samples": len(times), "times": list(times)}


def _sample(run, calls):
    # The collector would charge one library for another's garbage.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            run()
        return time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()


def copy_bandwidth(nbytes, repeats):
    """GB/s of a copy that moves `nbytes` in all (reads half, writes half).

    The copy is the limit an operation moving the same bytes can reach: it
    reads and writes as much memory and does no arithmetic.  Small sizes fit
    in cache and measure the cache (and call overhead), as the operations do.
    """
    half = max(nbytes // 2, 1)
    src = np.ones(half, np.uint8)
    dst = np.empty_like(src)
    return copy_figures(nbytes, time_call(lambda: np.copyto(dst, src), repeats)["times"])


def copy_figures(nbytes, times):
    """copy_bandwidth's record from the per-call times of its copies."""
    median = statistics.median(times)
    return {"bytes": int(nbytes), "median_s": median,
            "gbps": 2 * max(nbytes // 2, 1) / median / 1e9, "times": list(times)}
