"""The cache of large result blocks (fastsm/_result_cache.pyx, src_c/result_cache.c):
large results come from it and small ones do not; every result is correct
and has memory of its own however blocks are reused; the cache stays within
its bounds; release_memory empties it; it survives fork and concurrent threads.

Arrays here are a little over the cache's threshold (or over 16 MiB, where
blocks are whole huge pages), so each test touches a few hundred megabytes
at most.
"""
import multiprocessing
import threading
import time

import numpy as np
import pytest

import fastsm
import fastsm.reference as ref
from fastsm import _result_cache

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # numpy < 2
    from numpy.core.multiarray import get_handler_name

MIB = 1 << 20
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-6, np.float64: 1e-14}


@pytest.fixture(autouse=True)
def empty_cache():
    fastsm.release_memory()
    yield
    fastsm.release_memory()


def rows_for(nbytes, n, dtype):
    """Rows of `n` columns making an array of at least `nbytes`."""
    return -(-nbytes // (n * np.dtype(dtype).itemsize))


def ramp(rows, n, dtype, shift=0.0):
    """rows x n array whose every row is 0, 1, ..., n-1 plus `shift`: its
    softmax along rows is known without computing it on the whole array."""
    return np.broadcast_to(np.arange(n, dtype=dtype) + dtype(shift), (rows, n)).copy()


def assert_rows_are(result, row):
    """Every row of `result` is the first (every element was written) and that
    one is `row` to the dtype's precision."""
    np.testing.assert_array_equal(result, np.broadcast_to(result[0], result.shape))
    np.testing.assert_allclose(result[0], row, rtol=RTOL[result.dtype.type])


def address(a):
    return a.__array_interface__["data"][0]


def block(a):
    """The page a cached block starts at: its data lies 64 to 4096 bytes in
    (where in its page depends on the input)."""
    return (address(a) - 1) // 4096


def large_calls(x, labels):
    """Every public call that returns a fresh array the size of x (fast
    path and general path)."""
    yield "softmax", lambda: fastsm.softmax(x)
    yield "log_softmax axis 0", lambda: fastsm.log_softmax(x, axis=0)
    yield "softmax Fortran", lambda: fastsm.softmax(np.asfortranarray(x))
    yield "softmax_backward", lambda: fastsm.softmax_backward(x, x)
    yield "cross_entropy_with_grad", lambda: fastsm.cross_entropy_with_grad(x, labels)[1]
    yield "cross_entropy_grad axis 0", lambda: fastsm.cross_entropy_grad(x.T, labels, axis=0)
    column = x.reshape(-1, 1)  # one class: the per-sample loss is as large as x
    yield "cross_entropy none", lambda: fastsm.cross_entropy(
        column, np.zeros(column.shape[0], np.int64), reduction="none")
    yield "sigmoid", lambda: fastsm.sigmoid(x)
    yield "binary_cross_entropy_with_logits_grad", \
        lambda: fastsm.binary_cross_entropy_with_logits_grad(x, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_results_come_from_the_cache_and_small_ones_do_not(dtype):
    n = 10
    x = ramp(rows_for(_result_cache.MIN_BLOCK, n, dtype), n, dtype)
    labels = np.arange(x.shape[0]) % n
    for name, call in large_calls(x, labels):
        result = call()
        assert get_handler_name(result) == "fastsm_result_cache", name
    small = ramp(64, n, dtype)
    assert get_handler_name(fastsm.softmax(small)) == get_handler_name(np.empty(1))
    below = ramp(rows_for(_result_cache.MIN_BLOCK, n, dtype) - 1, n, dtype)
    assert get_handler_name(fastsm.softmax(below)) == get_handler_name(np.empty(1))


def circular(d):
    """Distance of d from 0 modulo a 4096-byte page."""
    d %= 4096
    return min(d, 4096 - d)


@pytest.mark.parametrize("offset", [0, 16, 48, 1000, 2048, 4080])
@pytest.mark.parametrize("n", [1000, 512, 1024])
def test_results_lie_apart_from_their_input_in_the_low_address_bits(offset, n):
    # A row pass loads row r of x and row r + 1 (n floats on) while storing
    # row r of the result: the result's data sits at least 1 KiB, in the low
    # 12 address bits, from both streams (4K aliasing), and 64-byte aligned.
    rows = rows_for(4 * MIB, n, np.float32)
    buf = np.empty(rows * n * 4 + 8192, np.uint8)
    start = (offset - address(buf)) % 4096
    x = buf[start:start + rows * n * 4].view(np.float32).reshape(rows, n)
    x[...] = ramp(rows, n, np.float32) / n
    labels = np.zeros(rows, np.int64)
    calls = list(large_calls(x, labels)) + [
        ("batch_norm_forward", lambda: fastsm.batch_norm_forward(x)[0]),
        ("batch_norm_forward general",  # a momentum not of type float: the Python path
         lambda: fastsm.batch_norm_forward(x, momentum=np.float64(0.1))[0])]
    for name, call in calls:
        result = call()
        if name.endswith("axis 0") or "Fortran" in name or name == "cross_entropy none":
            continue  # computed from a transposed copy, or smaller than x
        d = address(result) - address(x)
        assert address(result) % 64 == 0, name
        assert circular(d) >= 1024 - 64 and circular(d - 4 * n) >= 1024 - 64, name
    assert_rows_are(fastsm.softmax(x), ref.softmax(x[:1])[0])


def test_only_results_use_the_handler():
    """The handler is restored after each allocation: NumPy's own arrays, in
    this thread, keep the default."""
    x = ramp(rows_for(_result_cache.MIN_BLOCK, 10, np.float32), 10, np.float32)
    fastsm.softmax(x)
    fastsm.softmax(x.T, axis=0)
    assert get_handler_name() == get_handler_name(np.empty(1)) != "fastsm_result_cache"
    assert get_handler_name(np.empty(x.shape, x.dtype)) != "fastsm_result_cache"


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_results_are_correct(dtype):
    n = 10
    x = ramp(rows_for(_result_cache.MIN_BLOCK, n, dtype), n, dtype)
    labels = np.arange(x.shape[0]) % n
    for name, call in large_calls(x, labels):
        for _ in range(2):  # a fresh block, then a reused one
            got = call()
            assert got.flags.c_contiguous and got.flags.writeable, name
        if name == "softmax":
            assert_rows_are(got, ref.softmax(np.arange(n, dtype=dtype)))
        if name == "cross_entropy_with_grad":
            want = ref.cross_entropy_grad(x[:n], labels[:n]) * (n / x.shape[0])
            np.testing.assert_allclose(got[:n], want, rtol=1e-5 if dtype == np.float32 else 1e-12)
        if name == "sigmoid":
            assert_rows_are(got, ref.sigmoid(np.arange(n, dtype=dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_live_results_never_share_memory(dtype):
    n = 10
    rows = rows_for(_result_cache.MIN_BLOCK, n, dtype)
    x, z = ramp(rows, n, dtype), ramp(rows, n, dtype, shift=-1e4)
    fastsm.softmax(x)  # leaves a block in the cache
    first, second = fastsm.softmax(x), fastsm.log_softmax(z)
    assert not np.shares_memory(first, second)
    first[...] = -1
    assert_rows_are(second, ref.log_softmax(np.arange(n, dtype=dtype)))
    second[...] = 7
    assert (first == -1).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("base", [16 * MIB, _result_cache.MIN_BLOCK], ids=["huge", "small"])
def test_a_freed_block_serves_a_result_of_another_shape(dtype, base):
    # Blocks of 2 MiB and more are whole huge pages, smaller ones whole pages:
    # a request a little smaller than a freed block is served by it.
    step = MIB if base >= 2 * MIB else 16 << 10
    freed = fastsm.softmax(ramp(rows_for(base + 2 * step, 10, dtype), 10, dtype, shift=3.0))
    where = block(freed)
    freed[...] = np.nan  # what a reused block holds is garbage to the next result
    del freed
    wide = ramp(rows_for(base + step, 11, dtype), 11, dtype)  # fits there
    result = fastsm.log_softmax(wide)
    assert block(result) == where
    assert_rows_are(result, ref.log_softmax(np.arange(11, dtype=dtype)))


def test_results_made_and_freed_together_come_back_without_new_memory():
    # A training step's forward and backward results, freed together at the
    # end of the step, serve the next step's: no page of theirs is faulted
    # in again (from malloc's heap, 1 MiB results faulted 480 pages a step).
    resource = pytest.importorskip("resource")
    x = np.ones((256, 1024), np.float32)
    assert x.nbytes >= _result_cache.MIN_BLOCK
    w, b = np.ones(1024, np.float32), np.zeros(1024, np.float32)

    def step():
        y, mean, invstd = fastsm.batch_norm_forward(x, w, b)
        dx = fastsm.batch_norm_backward(x, x, w, mean, invstd)[0]
        return {block(y), block(dx)}

    first = step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        assert step() == first
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults < 5 * 16


def test_a_much_smaller_request_does_not_take_a_large_block():
    big = _result_cache.empty((4 * _result_cache.MIN_BLOCK,), np.dtype(np.uint8))
    where = block(big)
    del big
    assert _result_cache.usage()[1] == 1
    small = _result_cache.empty((_result_cache.MIN_BLOCK,), np.dtype(np.uint8))
    assert block(small) != where
    assert _result_cache.usage()[1] == 1


def test_results_stay_correct_over_many_allocation_cycles():
    rng = np.random.default_rng(11)
    live = []
    for cycle in range(60):
        dtype = DTYPES[cycle % 2]
        n = int(rng.integers(5, 40))
        rows = rows_for(int(rng.integers(16, 48)) * MIB, n, dtype)
        shift = float(rng.integers(-50, 50))
        live.append((fastsm.softmax(ramp(rows, n, dtype, shift)), n, dtype))
        while len(live) > rng.integers(0, 4):
            live.pop(int(rng.integers(len(live))))
        for result, n, dtype in live:  # earlier results are untouched by later ones
            assert_rows_are(result, ref.softmax(np.arange(n, dtype=dtype)))


def test_release_memory_unmaps_the_cached_blocks():
    assert fastsm.release_memory() == 0
    x = ramp(rows_for(_result_cache.MIN_BLOCK, 10, np.float32), 10, np.float32)
    kept = fastsm.softmax(x)
    assert _result_cache.usage() == (0, 0)  # a block in use is not cached
    freed = fastsm.softmax(x)
    del freed
    cached, blocks = _result_cache.usage()
    assert blocks == 1 and cached >= x.nbytes
    assert fastsm.release_memory() == cached
    assert _result_cache.usage() == (0, 0)
    assert fastsm.release_memory() == 0
    assert_rows_are(kept, ref.softmax(np.arange(10, dtype=np.float32)))
    del kept  # a block in use when the cache was released goes back to it
    assert _result_cache.usage()[1] == 1


def test_the_cache_never_exceeds_its_bounds():
    rng = np.random.default_rng(3)
    sizes = [int(s) * MIB for s in rng.integers(16, 120, 40)]
    sizes.append(_result_cache.CAPACITY + MIB)  # larger than the whole cache
    arrays = [_result_cache.empty((size,), np.dtype(np.uint8)) for size in sizes]
    for i in rng.permutation(len(arrays)):
        arrays[i] = None
        cached, blocks = _result_cache.usage()
        assert cached <= _result_cache.CAPACITY
        assert blocks <= _result_cache.MAX_BLOCKS
    assert _result_cache.usage()[0] > _result_cache.CAPACITY // 2  # it does keep blocks


def test_resize_keeps_the_values_across_the_threshold():
    """ndarray.resize reallocates through the array's handler, to a large
    block of another size and to a small one."""
    n = _result_cache.MIN_BLOCK // 8
    a = _result_cache.empty((n,), np.dtype(np.float64))
    a[...] = np.arange(n)
    for size in (2 * n, n + 1, 100, 10, 3 * n):
        a.resize(size, refcheck=False)
        assert get_handler_name(a) == "fastsm_result_cache"
        np.testing.assert_array_equal(a[:10], np.arange(10.0))
    a[...] = 1.5
    assert a.sum() == 1.5 * a.size


def _softmax_checksum(rows):
    y = fastsm.softmax(ramp(rows, 10, np.float32))
    checksum, handler = float(y[::1000].sum(dtype=np.float64)), get_handler_name(y)
    del y
    return checksum, handler, fastsm.release_memory()


def test_a_forked_child_uses_the_populated_cache():
    rows = rows_for(_result_cache.MIN_BLOCK, 10, np.float32)
    for _ in range(3):
        fastsm.softmax(ramp(rows, 10, np.float32))
    want = float(fastsm.softmax(ramp(rows, 10, np.float32))[::1000].sum(dtype=np.float64))
    before = _result_cache.usage()
    assert before[1] >= 1
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_softmax_checksum, [rows] * 4, chunksize=1)
    for checksum, handler, released in results:
        assert checksum == want
        assert handler == "fastsm_result_cache"
        assert released >= rows * 10 * 4  # the child's result went back to its cache
    assert _result_cache.usage() == before  # the parent's cache is its own


def _allocate_and_free():
    for _ in range(3):
        _result_cache.empty((_result_cache.MIN_BLOCK,), np.dtype(np.uint8))


def test_a_fork_while_another_thread_holds_the_cache_lock_does_not_hang_the_child():
    """The cache's mutex is never inherited locked: a fork waits for the
    thread that holds it, and the child can allocate and free."""
    holder = threading.Thread(target=_result_cache._hold_lock, args=(1.0,))
    holder.start()
    time.sleep(0.2)  # the holder takes the lock at once: it needs no GIL for that
    try:
        child = multiprocessing.get_context("fork").Process(target=_allocate_and_free)
        child.start()
        child.join(timeout=30)
        if child.exitcode is None:
            child.kill()
        assert child.exitcode == 0
    finally:
        holder.join()


def test_concurrent_threads_get_correct_independent_results():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(15):
                dtype = DTYPES[int(rng.integers(2))]
                n = int(rng.integers(5, 30))
                shift = float(rng.integers(-9, 9))
                rows = rows_for(int(rng.integers(16, 40)) * MIB, n, dtype)
                with fastsm.threads(1):
                    y = fastsm.softmax(ramp(rows, n, dtype, shift))
                y[-1] = 0  # a write no other thread may see
                assert_rows_are(y[:-1], ref.softmax(np.arange(n, dtype=dtype)))
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    cached, blocks = _result_cache.usage()
    assert cached <= _result_cache.CAPACITY and blocks <= _result_cache.MAX_BLOCKS
