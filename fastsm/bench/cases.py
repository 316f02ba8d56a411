"""The registry of benchmark cases: one per public operation.

A `Case` builds its inputs for a shape and dtype, knows how many bytes the
operation must at least move (each input read once, each full-size output
written once), and says how each library runs it.  A library missing from
`impls` does not have the operation.  `python -m fastsm.bench` and the
pytest-benchmark suites in ``bench/`` both read this registry.

Shapes are (rows, classes) for the softmax and cross-entropy families (the
class axis last) and (N, C, ...) with the feature axis 1 for batch norm.
"""
import dataclasses
import functools
from typing import Callable, Dict, Tuple

import numpy as np

from .libraries import api, jax_op, onnx_op, torch_op

SIZES = {
    "small": [(64, 10)],
    "medium": [(4096, 1000)],
    "large": [(1_000_000, 10), (256, 32_000)],
}

EPS = 1e-5
MOMENTUM = 0.1


@dataclasses.dataclass(frozen=True)
class Case:
    """One operation, its inputs and its implementation in each library.

    Attributes
    ----------
    name : str
        The operation's name on the command line and in the results.
    family : str
        "softmax-family", "cross-entropy" or "batch-norm".
    make_inputs : callable
        ``make_inputs(shape, dtype, rng)`` -> dict of NumPy arrays by name.
    writes : tuple of str
        The inputs whose size each full-size output has (scalar and
        per-feature outputs are too small to count).
    impls : dict
        Library name -> ``impl(handle, inputs)`` returning the callable to time.
    """

    name: str
    family: str
    make_inputs: Callable
    writes: Tuple[str, ...]
    impls: Dict[str, Callable]

    def bytes_moved(self, inputs):
        """The least memory traffic of one call, in bytes."""
        return (sum(a.nbytes for a in inputs.values())
                + sum(inputs[name].nbytes for name in self.writes))


def shape_label(shape):
    return "x".join(str(n) for n in shape)


def parse_shape(text):
    """'4096x1000' -> (4096, 1000)."""
    try:
        shape = tuple(int(n) for n in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a shape is sizes joined by 'x' (like 4096x1000), got {text!r}") \
            from None
    if not shape or min(shape) < 1:
        raise ValueError(f"every size of a shape must be at least 1, got {text!r}")
    return shape


# Inputs.  Logits are spread like a trained network's (std 2).

def _logits(shape, dtype, rng):
    return (2 * rng.standard_normal(shape)).astype(dtype)


def _softmax64(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _x(shape, dtype, rng):
    return {"x": _logits(shape, dtype, rng)}


def _grad_and_softmax(shape, dtype, rng):
    y = _softmax64(_logits(shape, np.float64, rng))
    return {"grad": rng.standard_normal(shape).astype(dtype), "y": y.astype(dtype)}


def _grad_and_log_softmax(shape, dtype, rng):
    logp = np.log(_softmax64(_logits(shape, np.float64, rng)))
    return {"grad": rng.standard_normal(shape).astype(dtype), "logp": logp.astype(dtype)}


def _logits_and_classes(shape, dtype, rng):
    return {"logits": _logits(shape, dtype, rng),
            "target": rng.integers(0, shape[-1], shape[:-1], dtype=np.int64)}


def _logits_and_probabilities(shape, dtype, rng):
    return {"logits": _logits(shape, dtype, rng),
            "target": rng.random(shape).astype(dtype)}


def _features(shape):
    if len(shape) < 2:
        raise ValueError(f"batch norm needs (N, C, ...) inputs, got shape {shape}")
    return shape[1]


def _batch(shape, dtype, rng):
    c = _features(shape)
    return {"x": (1 + 2 * rng.standard_normal(shape)).astype(dtype),
            "weight": (0.5 + rng.random(c)).astype(dtype),
            "bias": rng.standard_normal(c).astype(dtype),
            "running_mean": np.zeros(c, dtype),
            "running_var": np.ones(c, dtype)}


def _batch_backward(shape, dtype, rng):
    inputs = _batch(shape, dtype, rng)
    x = inputs["x"]
    reduced = tuple(a for a in range(x.ndim) if a != 1)
    return {"grad": rng.standard_normal(shape).astype(dtype), "x": x,
            "weight": inputs["weight"],
            "mean": x.mean(axis=reduced, dtype=np.float64).astype(dtype),
            "invstd": (1 / np.sqrt(x.var(axis=reduced, dtype=np.float64) + EPS)).astype(dtype)}


# torch: what a PyTorch user calls (the autograd kernels for backward passes).

def _torch_hardmax(torch, x):
    return lambda: torch.zeros_like(x).scatter_(-1, x.argmax(-1, keepdim=True), 1)


def _torch_gradient(loss, with_loss):
    """The gradient of `loss(torch, logits, target)` by autograd (and the loss)."""
    def build(torch, logits, target):
        def run():
            with torch.enable_grad():
                x = logits.detach().requires_grad_()
                value = loss(torch, x, target)
                grad, = torch.autograd.grad(value, x)
            return (value.detach(), grad) if with_loss else grad
        return run
    return build


def _torch_xent(torch, logits, target):
    return torch.nn.functional.cross_entropy(logits, target)


def _torch_bce(torch, logits, target):
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)


def _torch_batch_norm(training):
    def build(torch, x, weight, bias, running_mean, running_var):
        return functools.partial(torch.nn.functional.batch_norm, x, running_mean, running_var,
                                 weight, bias, training, MOMENTUM, EPS)
    return build


def _torch_batch_norm_backward(torch, grad, x, weight, mean, invstd):
    return functools.partial(torch.ops.aten.native_batch_norm_backward, grad, x, weight,
                             None, None, mean, invstd, True, EPS, [True, True, True])


# jax: jax.nn where it has the operation, jax.numpy otherwise; all jitted.

def _jax_hardmax(jax, x):
    return jax.nn.one_hot(jax.numpy.argmax(x, axis=-1), x.shape[-1], dtype=x.dtype)


def _jax_softmax_backward(jax, grad, y):
    return y * (grad - (grad * y).sum(axis=-1, keepdims=True))


def _jax_log_softmax_backward(jax, grad, logp):
    return grad - jax.numpy.exp(logp) * grad.sum(axis=-1, keepdims=True)


def _jax_xent(jax, logits, target):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jax.numpy.take_along_axis(logp, target[..., None], axis=-1).mean()


def _jax_bce(jax, logits, target):
    return (jax.nn.softplus(logits) - logits * target).mean()


def _jax_gradient(loss, with_loss):
    def gradient(jax, logits, target):
        if with_loss:
            return jax.value_and_grad(functools.partial(loss, jax))(logits, target)
        return jax.grad(functools.partial(loss, jax))(logits, target)
    return gradient


def _jax_broadcast(v, ndim):
    """A per-feature vector shaped to broadcast along axis 1."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _jax_batch_norm_train(jax, x, weight, bias, running_mean, running_var):
    reduced = tuple(a for a in range(x.ndim) if a != 1)
    mean, var = x.mean(axis=reduced), x.var(axis=reduced)
    invstd = jax.lax.rsqrt(var + EPS)
    y = ((x - _jax_broadcast(mean, x.ndim)) * _jax_broadcast(invstd * weight, x.ndim)
         + _jax_broadcast(bias, x.ndim))
    count = x.size // x.shape[1]
    unbiased = var * (count / max(count - 1, 1))
    return (y, mean, invstd, (1 - MOMENTUM) * running_mean + MOMENTUM * mean,
            (1 - MOMENTUM) * running_var + MOMENTUM * unbiased)


def _jax_batch_norm_eval(jax, x, weight, bias, running_mean, running_var):
    scale = jax.lax.rsqrt(running_var + EPS) * weight
    return (x - _jax_broadcast(running_mean, x.ndim)) * _jax_broadcast(scale, x.ndim) \
        + _jax_broadcast(bias, x.ndim)


def _jax_batch_norm_backward(jax, grad, x, weight, mean, invstd):
    reduced = tuple(a for a in range(x.ndim) if a != 1)
    xhat = (x - _jax_broadcast(mean, x.ndim)) * _jax_broadcast(invstd, x.ndim)
    dweight, dbias = (grad * xhat).sum(axis=reduced), grad.sum(axis=reduced)
    count = x.size // x.shape[1]
    dx = _jax_broadcast(weight * invstd, x.ndim) * (
        grad - _jax_broadcast(dbias / count, x.ndim)
        - xhat * _jax_broadcast(dweight / count, x.ndim))
    return dx, dweight, dbias


BATCH = ("x", "weight", "bias", "running_mean", "running_var")
BATCH_BACKWARD = ("grad", "x", "weight", "mean", "invstd")


def _case(name, family, make_inputs, writes, *, fastsm, torch=None, jax=None,
          onnxruntime=None, scipy=None):
    """A Case whose fastsm and NumPy-reference implementations are one call
    (fastsm.reference has fastsm's API)."""
    impls = {"fastsm": fastsm, "numpy": fastsm, "scipy": scipy, "torch": torch,
             "onnxruntime": onnxruntime, "jax": jax}
    return Case(name, family, make_inputs, writes,
                {lib: impl for lib, impl in impls.items() if impl is not None})


CASES = {case.name: case for case in [
    # softmax family
    _case("softmax", "softmax-family", _x, ("x",),
          fastsm=api("softmax", "x"),
          scipy=api("softmax", "x", axis=-1),
          torch=torch_op(lambda t, x: functools.partial(t.softmax, x, -1), "x"),
          onnxruntime=onnx_op("Softmax", ["x"], axis=-1),
          jax=jax_op(lambda jax, x: jax.nn.softmax(x, axis=-1), "x")),
    _case("log_softmax", "softmax-family", _x, ("x",),
          fastsm=api("log_softmax", "x"),
          scipy=api("log_softmax", "x", axis=-1),
          torch=torch_op(lambda t, x: functools.partial(t.log_softmax, x, -1), "x"),
          onnxruntime=onnx_op("LogSoftmax", ["x"], axis=-1),
          jax=jax_op(lambda jax, x: jax.nn.log_softmax(x, axis=-1), "x")),
    _case("hardmax", "softmax-family", _x, ("x",),
          fastsm=api("hardmax", "x"),
          torch=torch_op(_torch_hardmax, "x"),
          onnxruntime=onnx_op("Hardmax", ["x"], axis=-1),
          jax=jax_op(_jax_hardmax, "x")),
    _case("softmax_backward", "softmax-family", _grad_and_softmax, ("grad",),
          fastsm=api("softmax_backward", "grad", "y"),
          torch=torch_op(lambda t, g, y: functools.partial(
              t.ops.aten._softmax_backward_data, g, y, -1, y.dtype), "grad", "y"),
          jax=jax_op(_jax_softmax_backward, "grad", "y")),
    _case("log_softmax_backward", "softmax-family", _grad_and_log_softmax, ("grad",),
          fastsm=api("log_softmax_backward", "grad", "logp"),
          torch=torch_op(lambda t, g, logp: functools.partial(
              t.ops.aten._log_softmax_backward_data, g, logp, -1, logp.dtype), "grad", "logp"),
          jax=jax_op(_jax_log_softmax_backward, "grad", "logp")),
    # cross-entropy family
    _case("cross_entropy", "cross-entropy", _logits_and_classes, (),
          fastsm=api("cross_entropy", "logits", "target"),
          torch=torch_op(lambda t, x, y: functools.partial(_torch_xent, t, x, y),
                         "logits", "target"),
          onnxruntime=onnx_op("SoftmaxCrossEntropyLoss", ["logits", "target"],
                              reduction="mean"),
          jax=jax_op(_jax_xent, "logits", "target")),
    _case("cross_entropy_grad", "cross-entropy", _logits_and_classes, ("logits",),
          fastsm=api("cross_entropy_grad", "logits", "target"),
          torch=torch_op(_torch_gradient(_torch_xent, with_loss=False), "logits", "target"),
          jax=jax_op(_jax_gradient(_jax_xent, with_loss=False), "logits", "target")),
    _case("cross_entropy_with_grad", "cross-entropy", _logits_and_classes, ("logits",),
          fastsm=api("cross_entropy_with_grad", "logits", "target"),
          torch=torch_op(_torch_gradient(_torch_xent, with_loss=True), "logits", "target"),
          jax=jax_op(_jax_gradient(_jax_xent, with_loss=True), "logits", "target")),
    _case("sigmoid", "cross-entropy", _x, ("x",),
          fastsm=api("sigmoid", "x"),
          scipy=api("expit", "x"),
          torch=torch_op(lambda t, x: functools.partial(t.sigmoid, x), "x"),
          onnxruntime=onnx_op("Sigmoid", ["x"]),
          jax=jax_op(lambda jax, x: jax.nn.sigmoid(x), "x")),
    _case("binary_cross_entropy_with_logits", "cross-entropy", _logits_and_probabilities, (),
          fastsm=api("binary_cross_entropy_with_logits", "logits", "target"),
          torch=torch_op(lambda t, x, y: functools.partial(_torch_bce, t, x, y),
                         "logits", "target"),
          jax=jax_op(_jax_bce, "logits", "target")),
    _case("binary_cross_entropy_with_logits_grad", "cross-entropy", _logits_and_probabilities,
          ("logits",),
          fastsm=api("binary_cross_entropy_with_logits_grad", "logits", "target"),
          torch=torch_op(_torch_gradient(_torch_bce, with_loss=False), "logits", "target"),
          jax=jax_op(_jax_gradient(_jax_bce, with_loss=False), "logits", "target")),
    # batch norm
    _case("batch_norm_train", "batch-norm", _batch, ("x",),
          fastsm=api("batch_norm_forward", *BATCH, training=True, momentum=MOMENTUM, eps=EPS),
          torch=torch_op(_torch_batch_norm(training=True), *BATCH),
          onnxruntime=onnx_op("BatchNormalization", list(BATCH), node_outputs=3,
                              training_mode=1, momentum=1 - MOMENTUM, epsilon=EPS),
          jax=jax_op(_jax_batch_norm_train, *BATCH)),
    _case("batch_norm_eval", "batch-norm", _batch, ("x",),
          fastsm=api("batch_norm_forward", *BATCH, training=False, eps=EPS),
          torch=torch_op(_torch_batch_norm(training=False), *BATCH),
          onnxruntime=onnx_op("BatchNormalization", list(BATCH), epsilon=EPS),
          jax=jax_op(_jax_batch_norm_eval, *BATCH)),
    _case("batch_norm_backward", "batch-norm", _batch_backward, ("grad",),
          fastsm=api("batch_norm_backward", *BATCH_BACKWARD, training=True),
          torch=torch_op(_torch_batch_norm_backward, *BATCH_BACKWARD),
          jax=jax_op(_jax_batch_norm_backward, *BATCH_BACKWARD)),
]}

FAMILIES = {family: [name for name, case in CASES.items() if case.family == family]
            for family in dict.fromkeys(case.family for case in CASES.values())}


def select(names):
    """Case names from operation and family names, in registry order."""
    wanted = set()
    for name in names:
        if name in FAMILIES:
            wanted.update(FAMILIES[name])
        elif name in CASES:
            wanted.add(name)
        else:
            raise ValueError(f"unknown operation {name!r}; operations: {', '.join(CASES)}; "
                             f"families: {', '.join(FAMILIES)}")
    return [name for name in CASES if name in wanted]
