"""pytest-benchmark suite of the result cache: a fresh large result with the
cache (a freed block is reused), without it (the cache emptied after every
call, so each result is freshly mapped and page-faulted, as glibc serves
blocks above its mmap threshold), and written into an existing array (out=,
the floor).

    pytest bench/test_bench_result_cache.py --benchmark-json result_cache.json
"""
import numpy as np
import pytest

import fastsm

SHAPES = [(1_000_000, 10), (256, 32_000)]
CALLS = {
    "softmax": lambda x, labels, **out: fastsm.softmax(x, **out),
    "cross_entropy_with_grad":
        lambda x, labels, **out: fastsm.cross_entropy_with_grad(x, labels, **out),
}


def fresh_cached(call, x, labels):
    call(x, labels)


def fresh_uncached(call, x, labels):
    call(x, labels)
    fastsm.release_memory()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("mode", ["cached", "uncached", "out"])
def test_fresh_result(benchmark, name, shape, mode):
    rng = np.random.default_rng(20261125)
    x = rng.standard_normal(shape, dtype=np.float32)
    labels = rng.integers(0, shape[1], shape[0])
    call = CALLS[name]
    benchmark.group = f"{name} {shape[0]}x{shape[1]} fresh result"
    fastsm.release_memory()
    if mode == "out":
        # cross-entropy writes its gradient over the logits: give it a copy
        out = np.empty_like(x) if name == "softmax" else x.copy()
        target = x if name == "softmax" else out
        benchmark(lambda: call(target, labels, out=out))
    else:
        benchmark(fresh_cached if mode == "cached" else fresh_uncached, call, x, labels)
    fastsm.release_memory()
