"""Training throughput: one epoch of the same network (Linear 256 ->
BatchNorm -> ReLU -> Linear 10, Adam, batch 256, float32, 200,000 x 256
rows) with fastsm's kernels, with the fastsm.reference functions, and in
PyTorch (skipped when missing), all on the same number of threads.  The
side-by-side table with ratios: python bench/ratios_models.py

Run: python -m pytest bench/test_bench_models.py
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastsm
from fastsm._network import FAST_OPS, REFERENCE_OPS
from ratios_models import numpy_trainer, synthetic, torch_trainer

ROWS = 200_000
THREADS = 2


@pytest.fixture(scope="module")
def data():
    return synthetic(ROWS)


@pytest.fixture(autouse=True)
def same_threads():
    with threadpool_limits(THREADS, user_api="blas"), fastsm.threads(THREADS):
        yield


def run(benchmark, name, epoch):
    benchmark.group = f"training epoch {ROWS}x256 -> 256 BN ReLU -> 10, Adam, batch 256"
    benchmark.name = name
    benchmark.extra_info.update(rows=ROWS)
    loss = benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    assert np.isfinite(loss)


@pytest.mark.parametrize("name,ops", [("fastsm", FAST_OPS), ("numpy-reference", REFERENCE_OPS)],
                         ids=["fastsm", "numpy-reference"])
def test_epoch_numpy(benchmark, data, name, ops):
    run(benchmark, name, numpy_trainer(ops, *data))


def test_epoch_torch(benchmark, data):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    run(benchmark, "torch", torch_trainer(*data))
