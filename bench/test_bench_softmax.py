"""pytest-benchmark suite of the softmax family: fastsm beside the NumPy
reference, SciPy, PyTorch, ONNX Runtime and JAX, where each has the operation.

    pytest bench/test_bench_softmax.py --benchmark-json softmax.json
"""
from fastsm.bench.cases import FAMILIES

OPS = FAMILIES["softmax-family"]


def test_softmax_family(benchmark_case, op, library, shape):
    benchmark_case(op, library, shape)
