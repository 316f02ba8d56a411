"""The libraries the benchmark compares, behind one small interface.

A `Library` imports its package lazily and sets its thread count (`load`),
turns NumPy inputs into its own arrays (`convert`), forces a result to exist
(`finish`: JAX dispatches asynchronously) and turns results back into NumPy
arrays (`to_numpy`).  The helpers at the end (`api`, `torch_op`, `jax_op`,
`onnx_op`) are how a case in `cases.py` says how a library runs it.
"""
import functools
import os

import numpy as np


class Unavailable(Exception):
    """A library or one of its operations cannot be run here."""


class Library:
    """The adapter of one library; subclasses say how to import and call it."""

    name = None

    def load(self, threads):
        """Import the library, set its thread count; the handle cases get.

        Raises ImportError when it is not installed.
        """
        raise NotImplementedError

    def version(self, handle):
        return getattr(handle, "__version__", "?")

    def convert(self, handle, array):
        return array

    finish = None  # called on each result when the library computes lazily

    def to_numpy(self, result):
        """A result (an array, a scalar or a tuple of them) as a tuple of arrays."""
        if not isinstance(result, (tuple, list)):
            result = (result,)
        return tuple(np.asarray(r) for r in result)


class Fastsm(Library):
    name = "fastsm"

    def load(self, threads):
        import fastsm
        fastsm.set_num_threads(threads)
        return fastsm


class NumpyReference(Library):
    name = "numpy"

    def load(self, threads):
        _limit_blas(threads)
        import fastsm.reference
        return fastsm.reference

    def version(self, handle):
        return np.__version__


class Scipy(Library):
    name = "scipy"

    def load(self, threads):
        _limit_blas(threads)
        import scipy.special
        return scipy.special

    def version(self, handle):
        import scipy
        return scipy.__version__


class Torch(Library):
    name = "torch"

    def load(self, threads):
        import torch
        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)  # cases that need autograd enable it themselves
        return torch

    def convert(self, handle, array):
        return handle.from_numpy(array)

    def to_numpy(self, result):
        if not isinstance(result, (tuple, list)):
            result = (result,)
        return tuple(r.detach().numpy() for r in result)


class OnnxRuntime(Library):
    name = "onnxruntime"

    def load(self, threads):
        import onnx  # noqa: F401  (the graphs are built with onnx.helper)
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return _OrtHandle(onnxruntime, options)

    def version(self, handle):
        return handle.ort.__version__


class _OrtHandle:
    def __init__(self, ort, options):
        self.ort, self.options = ort, options


class Jax(Library):
    name = "jax"

    def load(self, threads):
        # XLA reads its flags when the backend starts, so they go in first;
        # its CPU backend has a single-thread switch but no thread count.
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if threads == 1:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       " --xla_cpu_multi_thread_eigen=false"
                                       " intra_op_parallelism_threads=1").strip()
        import jax
        # Without it JAX silently computes float64 inputs in float32.
        jax.config.update("jax_enable_x64", True)
        return jax

    def convert(self, handle, array):
        return handle.device_put(array)

    def finish(self, result):
        import jax
        return jax.block_until_ready(result)


LIBRARIES = {lib.name: lib for lib in
             (Fastsm(), NumpyReference(), Scipy(), Torch(), OnnxRuntime(), Jax())}


def _limit_blas(threads):
    """Cap NumPy's BLAS pool when threadpoolctl is there (an optional extra)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    # Kept for the life of the worker process, which does nothing else.
    _BLAS_LIMITS.append(threadpool_limits(threads))


_BLAS_LIMITS = []


# How a case runs in each library.  Each helper returns impl(handle, inputs),
# which prepares everything (graphs, compilation) and returns a callable of
# no arguments: the thing that is timed.

def _pick(inputs, names):
    return [inputs[n] for n in names]


def api(function, *names, **kwargs):
    """Call fastsm's or fastsm.reference's `function` (same API) on the inputs."""
    def impl(module, inputs):
        try:
            f = getattr(module, function)
        except AttributeError:
            raise Unavailable(f"{module.__name__} has no {function}") from None
        return functools.partial(f, *_pick(inputs, names), **kwargs)
    return impl


def torch_op(build, *names):
    """`build(torch, *arrays)` returns the callable to time."""
    def impl(torch, inputs):
        return build(torch, *_pick(inputs, names))
    return impl


def jax_op(function, *names):
    """Jit `function(jax, *arrays)` and call it on the inputs."""
    def impl(jax, inputs):
        compiled = jax.jit(functools.partial(function, jax))
        return functools.partial(compiled, *_pick(inputs, names))
    return impl


def onnx_op(op_type, names, node_outputs=1, opset=15, **attributes):
    """A one-node ONNX graph of `op_type` on the inputs, run by ONNX Runtime.

    The node may have more outputs than the first (`node_outputs`); only the
    first is the graph's result.
    """
    def impl(handle, inputs):
        from onnx import helper
        from onnx.helper import np_dtype_to_tensor_dtype as onnx_type
        graph_inputs = [helper.make_tensor_value_info(
            n, onnx_type(inputs[n].dtype), inputs[n].shape) for n in names]
        # The first output of the ops used here has the first input's dtype.
        out_type = onnx_type(inputs[names[0]].dtype)
        outputs = [f"out{i}" for i in range(node_outputs)]
        graph_outputs = [helper.make_tensor_value_info(outputs[0], out_type, None)]
        node = helper.make_node(op_type, list(names), outputs, **attributes)
        model = helper.make_model(
            helper.make_graph([node], op_type, graph_inputs, graph_outputs),
            opset_imports=[helper.make_opsetid("", opset)])
        try:
            session = handle.ort.InferenceSession(model.SerializeToString(), handle.options,
                                                  providers=["CPUExecutionProvider"])
        except Exception as exc:
            if "NOT_IMPLEMENTED" in str(exc):  # e.g. Hardmax has no float64 kernel
                raise Unavailable(f"onnxruntime has no {op_type} kernel for "
                                  f"{inputs[names[0]].dtype}") from None
            raise
        feeds = {n: inputs[n] for n in names}
        return functools.partial(session.run, None, feeds)
    return impl
