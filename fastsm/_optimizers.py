"""Gradient-descent updates applied in place to a list of parameter arrays:
SGD (with optional momentum) and Adam, PyTorch's definitions.

Each optimizer owns its state and one scratch array per parameter, so a
step allocates nothing.
"""
import math

import numpy as np


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


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction, as ``torch.optim.Adam``:
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)``."""

    def __init__(self, params, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = params
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self._m = [np.zeros_like(p) for p in params]
        self._v = [np.zeros_like(p) for p in params]
        self._scratch = [np.empty_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        correction1 = 1 - b1 ** self.t
        root_correction2 = math.sqrt(1 - b2 ** self.t)
        step_size = self.learning_rate / correction1
        # sqrt(v_hat) + eps == (sqrt(v) + eps * root_correction2) / root_correction2
        eps = self.eps * root_correction2
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
            s *= step_size * root_correction2
            p -= s


def make_optimizer(name, params, learning_rate, momentum):
    """The optimizer called `name` ("sgd" or "adam") over `params`."""
    if name == "adam":
        return Adam(params, learning_rate)
    return SGD(params, learning_rate, momentum)
