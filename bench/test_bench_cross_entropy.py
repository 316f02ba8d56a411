"""Cross-entropy (float32, index targets, reduction "mean"): fastsm beside the
NumPy reference and PyTorch in each benchmark group.

Run with ``python -m pytest bench -q --benchmark-group-by=group``; compare the
median column within a group (``bench/ratios_cross_entropy.py`` prints the
ratios directly).
"""
import numpy as np
import pytest

import fastsm
import fastsm.reference as ref

SHAPES = [(64, 10), (4096, 1000), (1_000_000, 10), (256, 32000)]
IDS = [f"{n}x{c}" for n, c in SHAPES]


@pytest.fixture(params=SHAPES, ids=IDS)
def case(request):
    n, c = request.param
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, c)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    return f"{n}x{c}", x, y


def torch_functions(x, y):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    F = torch.nn.functional
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def both():
        leaf = xt.detach().requires_grad_()
        loss = F.cross_entropy(leaf, yt)
        loss.backward()
        return loss, leaf.grad

    def loss_only():
        with torch.no_grad():
            return F.cross_entropy(xt, yt)
    return both, loss_only


# ---- loss and gradient ------------------------------------------------------

def test_with_grad_fastsm(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy_with_grad {name}"
    benchmark(fastsm.cross_entropy_with_grad, x, y)


def test_with_grad_fastsm_in_place(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy_with_grad {name}"
    work = x.copy()
    benchmark(lambda: fastsm.cross_entropy_with_grad(work, y, out=work))


def test_with_grad_numpy_reference(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy_with_grad {name}"
    benchmark(ref.cross_entropy_with_grad, x, y)


def test_with_grad_torch(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy_with_grad {name}"
    both, _ = torch_functions(x, y)
    benchmark(both)


def test_with_grad_numpy_copyto_bound(benchmark, case):
    """Reading the logits and writing the gradient: the bandwidth bound."""
    name, x, y = case
    benchmark.group = f"cross_entropy_with_grad {name}"
    dst = np.empty_like(x)
    benchmark(np.copyto, dst, x)


# ---- loss alone -------------------------------------------------------------

def test_loss_fastsm(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy {name}"
    benchmark(fastsm.cross_entropy, x, y)


def test_loss_numpy_reference(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy {name}"
    benchmark(ref.cross_entropy, x, y)


def test_loss_torch(benchmark, case):
    name, x, y = case
    benchmark.group = f"cross_entropy {name}"
    _, loss_only = torch_functions(x, y)
    benchmark(loss_only)
