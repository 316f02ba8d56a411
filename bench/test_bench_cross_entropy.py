"""pytest-benchmark suite of the cross-entropy family (cross_entropy, its
gradient, both in one pass, sigmoid and binary cross-entropy): fastsm beside
the NumPy reference, PyTorch (forward + backward for the gradients) and JAX,
where each has the operation; groups are "<op> <shape>".

    pytest bench/test_bench_cross_entropy.py --benchmark-json xent.json

bench/ratios_cross_entropy.py prints the ratios of the issue's targets
(in place, loss alone, numpy.copyto's bandwidth) measured side by side.
"""
from fastsm.bench.cases import FAMILIES

OPS = FAMILIES["cross-entropy"]


def test_cross_entropy_family(benchmark_case, op, library, shape):
    benchmark_case(op, library, shape)
