"""Shared machinery of the pytest-benchmark suites, read from the same case
registry as ``python -m fastsm.bench`` (fastsm/bench/cases.py), so the two
cannot drift apart.

A suite module sets ``OPS`` (operation names; optionally ``SHAPES``) and writes
one test taking ``op, library, shape`` and the ``benchmark_case`` fixture:
every library that has the operation is parametrised (a missing one is
skipped), and each benchmark's group is "<op> <shape>", so that
``pytest bench/ --benchmark-json FILE`` puts fastsm beside every other
library.  Unlike the command, all libraries share this one process: their
thread pools can disturb each other; the command's numbers are the reference.
"""
import numpy as np
import pytest

from fastsm.bench.cases import CASES, shape_label
from fastsm.bench.libraries import LIBRARIES, Unavailable
from fastsm.bench.worker import prepare

SHAPES = [(64, 10), (4096, 1000), (1_000_000, 10), (256, 32_000)]
DTYPE = np.dtype(np.float32)
SEED = 20261125


def pytest_addoption(parser):
    parser.addoption("--bench-threads", type=int, default=None,
                     help="threads for every library (default: the usable cores)")


def pytest_generate_tests(metafunc):
    if not {"op", "library", "shape"} <= set(metafunc.fixturenames):
        return
    shapes = getattr(metafunc.module, "SHAPES", SHAPES)
    params = [pytest.param(op, library, shape, id=f"{op}-{shape_label(shape)}-{library}")
              for op in metafunc.module.OPS for shape in shapes
              for library in LIBRARIES if library in CASES[op].impls]
    metafunc.parametrize("op, library, shape", params)


@pytest.fixture(scope="session")
def loaded_libraries(request):
    """Library name -> its handle, or the ImportError that made it missing."""
    import fastsm
    threads = request.config.getoption("--bench-threads") or fastsm.get_num_threads()
    handles = {}

    def load(name):
        if name not in handles:
            try:
                handles[name] = LIBRARIES[name].load(threads)
            except ImportError as exc:
                handles[name] = exc
        return handles[name]
    return load


@pytest.fixture
def benchmark_case(benchmark, loaded_libraries):
    """benchmark_case(op, library, shape): time `op` in `library` at `shape`."""
    def run(op, library, shape):
        handle = loaded_libraries(library)
        if isinstance(handle, ImportError):
            pytest.skip(f"{library} is not installed ({handle})")
        case = CASES[op]
        inputs = case.make_inputs(shape, DTYPE, np.random.default_rng(SEED))
        try:
            call = prepare(case, LIBRARIES[library], handle, inputs)
        except Unavailable as exc:  # an operation this build of fastsm lacks
            pytest.skip(str(exc))
        benchmark.group = f"{op} {shape_label(shape)}"
        benchmark.extra_info.update(library=library, bytes=case.bytes_moved(inputs))
        benchmark(call)
    return run
