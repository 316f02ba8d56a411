"""Batch normalization benchmarks: fastsm beside the NumPy reference, PyTorch
(F.batch_norm) and ONNX Runtime (inference), float32, on the two shapes of the
issue.  Each group holds one operation on one shape, so pytest-benchmark's
table reads as ratios.  Run: python -m pytest bench/test_bench_batchnorm.py

PyTorch and ONNX Runtime get two threads, like fastsm on this machine's cores;
optional libraries are skipped when missing.
"""
import numpy as np
import pytest

import fastsm
import fastsm.reference as ref

SHAPES = [(256, 1024), (32, 64, 56, 56)]
THREADS = 2


class Case:
    """One shape's data: x, grad, affine parameters, running statistics."""

    def __init__(self, shape):
        rng = np.random.default_rng(0)
        self.shape = shape
        self.C = shape[1]
        self.x = rng.standard_normal(shape, dtype=np.float32)
        self.grad = rng.standard_normal(shape, dtype=np.float32)
        self.weight = rng.uniform(0.5, 2.0, self.C).astype(np.float32)
        self.bias = rng.standard_normal(self.C).astype(np.float32)
        self.running_mean = np.zeros(self.C, np.float32)
        self.running_var = np.ones(self.C, np.float32)


@pytest.fixture(scope="module", params=SHAPES, ids=str)
def case(request):
    return Case(request.param)


def numpy_impls():
    return [("fastsm", fastsm), ("numpy-reference", ref)]


def test_training_into_out(benchmark, case):
    """fastsm writing into a preallocated y: no page faults of a fresh array."""
    out = np.empty_like(case.x)
    benchmark.group = f"batch_norm training {case.shape}"
    benchmark.name = "fastsm (out=)"
    with fastsm.threads(THREADS):
        benchmark(fastsm.batch_norm_forward, case.x, case.weight, case.bias, case.running_mean,
                  case.running_var, out=out)


def test_inference_into_out(benchmark, case):
    out = np.empty_like(case.x)
    benchmark.group = f"batch_norm inference {case.shape}"
    benchmark.name = "fastsm (out=)"
    with fastsm.threads(THREADS):
        benchmark(fastsm.batch_norm_forward, case.x, case.weight, case.bias, case.running_mean,
                  case.running_var, training=False, out=out)


# ---- training forward ------------------------------------------------------

@pytest.mark.parametrize("name,mod", numpy_impls(), ids=lambda v: v if isinstance(v, str) else "")
def test_training(benchmark, case, name, mod):
    benchmark.group = f"batch_norm training {case.shape}"
    benchmark.name = name
    with fastsm.threads(THREADS):
        benchmark(mod.batch_norm_forward, case.x, case.weight, case.bias, case.running_mean,
                  case.running_var)


def test_training_torch(benchmark, case):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    F = torch.nn.functional
    x, w, b = (torch.from_numpy(a) for a in (case.x, case.weight, case.bias))
    rm, rv = torch.from_numpy(case.running_mean.copy()), torch.from_numpy(case.running_var.copy())
    benchmark.group = f"batch_norm training {case.shape}"
    benchmark.name = "torch"
    benchmark(F.batch_norm, x, rm, rv, w, b, True, 0.1, 1e-5)


# ---- inference -------------------------------------------------------------

@pytest.mark.parametrize("name,mod", numpy_impls(), ids=lambda v: v if isinstance(v, str) else "")
def test_inference(benchmark, case, name, mod):
    benchmark.group = f"batch_norm inference {case.shape}"
    benchmark.name = name
    with fastsm.threads(THREADS):
        benchmark(mod.batch_norm_forward, case.x, case.weight, case.bias, case.running_mean,
                  case.running_var, training=False)


def test_inference_torch(benchmark, case):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    F = torch.nn.functional
    x, w, b, rm, rv = (torch.from_numpy(a) for a in (case.x, case.weight, case.bias,
                                                     case.running_mean, case.running_var))
    benchmark.group = f"batch_norm inference {case.shape}"
    benchmark.name = "torch"
    with torch.inference_mode():
        benchmark(F.batch_norm, x, rm, rv, w, b, False, 0.1, 1e-5)


def onnx_batch_norm_session(case):
    """An ONNX Runtime session running one BatchNormalization node."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    dims = ["N", case.C] + [d for d in case.shape[2:]]
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"],
                          epsilon=1e-5)],
        "batch_norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        initializer=[numpy_helper.from_array(a, name) for a, name in [
            (case.weight, "scale"), (case.bias, "bias"), (case.running_mean, "mean"),
            (case.running_var, "var")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    # Idle pool threads would otherwise spin and slow whatever runs next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def test_inference_onnxruntime(benchmark, case):
    session = onnx_batch_norm_session(case)
    expected = fastsm.batch_norm_forward(case.x, case.weight, case.bias, case.running_mean,
                                         case.running_var, training=False)[0]
    np.testing.assert_allclose(session.run(None, {"x": case.x})[0], expected, rtol=1e-4, atol=1e-4)
    benchmark.group = f"batch_norm inference {case.shape}"
    benchmark.name = "onnxruntime"
    benchmark(session.run, None, {"x": case.x})


# ---- training forward + backward -------------------------------------------

def forward_backward(mod, case):
    y, mean, invstd = mod.batch_norm_forward(case.x, case.weight, case.bias, case.running_mean,
                                             case.running_var)
    return mod.batch_norm_backward(case.grad, case.x, case.weight, mean, invstd)


@pytest.mark.parametrize("name,mod", numpy_impls(), ids=lambda v: v if isinstance(v, str) else "")
def test_forward_backward(benchmark, case, name, mod):
    benchmark.group = f"batch_norm forward+backward {case.shape}"
    benchmark.name = name
    with fastsm.threads(THREADS):
        benchmark(forward_backward, mod, case)


def test_forward_backward_torch(benchmark, case):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    F = torch.nn.functional
    x = torch.from_numpy(case.x).requires_grad_()
    w = torch.from_numpy(case.weight.copy()).requires_grad_()
    b = torch.from_numpy(case.bias.copy()).requires_grad_()
    rm, rv = torch.from_numpy(case.running_mean.copy()), torch.from_numpy(case.running_var.copy())
    grad = torch.from_numpy(case.grad)

    def step():
        x.grad = w.grad = b.grad = None
        F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5).backward(grad)

    benchmark.group = f"batch_norm forward+backward {case.shape}"
    benchmark.name = "torch"
    benchmark(step)
