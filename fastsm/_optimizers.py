"""Gradient-descent updates applied in place to a list of parameter arrays:
SGD (with optional momentum) and Adam, PyTorch's definitions.

Each optimizer owns its state (and scratch arrays), so a step allocates
nothing.  Adam runs as one fused C kernel per parameter array; with
``fused=False`` it runs the same update as a chain of NumPy calls (the
reference the kernel is tested and benchmarked against).
"""
import math

import numpy as np

from . import _optimizer_kernels as _k
from ._threads import get_num_threads


class SGD:
    """``v = momentum * v + g;  p -= learning_rate * v`` (plain SGD when
    momentum is 0), as ``torch.optim.SGD``."""

    def __init__(self, params, learning_rate, momentum=0.0):
        self.params = params
        self.learning_rate = learning_rate
        self.momentum = momentum
        self._velocity = [np.zeros_like(p) for p in params] if momentum else None
        self._scratch = [np.empty_like(p) for p in params]

    def step(self, grads):
        for i, (p, g, s) in enumerate(zip(self.params, grads, self._scratch)):
            if self._velocity is not None:
                v = self._velocity[i]
                v *= self.momentum
                v += g
                g = v
            np.multiply(g, self.learning_rate, out=s)
            p -= s


def _check_kernel_array(a, like, what):
    """The fused kernel reads raw memory: `a` must be C-contiguous, of `like`'s
    shape and dtype (float32 or float64), and writable if a parameter."""
    if (type(a) is not np.ndarray or a.dtype != like.dtype or a.shape != like.shape
            or a.dtype.type not in (np.float32, np.float64) or not a.flags.c_contiguous
            or (what == "parameter" and not a.flags.writeable)):
        raise TypeError(f"fused Adam needs each {what} as a C-contiguous, writable float32 or "
                        f"float64 ndarray of its parameter's shape and dtype")


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction, as ``torch.optim.Adam``:
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.  The parameters and gradients
    must be C-contiguous float32 or float64 arrays (the network's are)."""

    def __init__(self, params, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8, fused=True):
        self.params = params
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        if fused:
            for p in params:
                _check_kernel_array(p, p, "parameter")
        self.fused = fused
        self.t = 0
        self._m = [np.zeros_like(p) for p in params]
        self._v = [np.zeros_like(p) for p in params]
        self._scratch = None if fused else [np.empty_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        root_correction2 = math.sqrt(1 - b2 ** self.t)
        # With the bias corrections folded in, p -= step * m / (sqrt(v) + eps'):
        # sqrt(v_hat) + eps == (sqrt(v) + eps * root_correction2) / root_correction2
        step = self.learning_rate / (1 - b1 ** self.t) * root_correction2
        eps = self.eps * root_correction2
        if self.fused:
            threads = get_num_threads()
            for p, g, m, v in zip(self.params, grads, self._m, self._v):
                _check_kernel_array(g, p, "gradient")
                _k.adam(p, g, m, v, b1, b2, step, eps, threads)
            return
        for p, g, m, v, s in zip(self.params, grads, self._m, self._v, self._scratch):
            m *= b1
            np.multiply(g, 1 - b1, out=s)
            m += s
            v *= b2
            np.multiply(g, g, out=s)
            s *= 1 - b2
            v += s
            np.sqrt(v, out=s)
            s += eps
            np.divide(m, s, out=s)
            s *= step
            p -= s


def make_optimizer(name, params, learning_rate, momentum):
    """The optimizer called `name` ("sgd" or "adam") over `params`."""
    if name == "adam":
        return Adam(params, learning_rate)
    return SGD(params, learning_rate, momentum)
