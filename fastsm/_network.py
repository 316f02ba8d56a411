"""The network of `fastsm.models.SoftmaxRegression`: hidden blocks of
Linear [-> BatchNorm] -> ReLU, then a Linear layer giving the logits, trained
on the mean cross-entropy plus ``l2 / 2 * sum(W ** 2)`` over the weight
matrices (not the biases or the batch-norm parameters).

The loss and gradient of the last layer come from ``cross_entropy_with_grad``
(``dz = (softmax - onehot) / N``), batch norm from the functional kernels;
matrix products are NumPy's (BLAS).  Every intermediate array lives in a
`Workspace`, so training steps after the first allocate (almost) nothing.

The kernels are looked up on an `ops` namespace: the fast ones by default,
``fastsm.reference`` to run the very same network in plain NumPy.
"""
import types

import numpy as np

from . import reference
from ._batchnorm import batch_norm_backward, batch_norm_forward
from ._softmax import softmax
from ._xent import cross_entropy_with_grad

FAST_OPS = types.SimpleNamespace(cross_entropy_with_grad=cross_entropy_with_grad,
                                 batch_norm_forward=batch_norm_forward,
                                 batch_norm_backward=batch_norm_backward, softmax=softmax)
REFERENCE_OPS = types.SimpleNamespace(cross_entropy_with_grad=reference.cross_entropy_with_grad,
                                      batch_norm_forward=reference.batch_norm_forward,
                                      batch_norm_backward=reference.batch_norm_backward,
                                      softmax=reference.softmax)

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


class Workspace:
    """Reusable arrays by name, grown on demand; ``ws(name, shape, dtype)``
    returns a view of the first ``shape[0]`` rows.  One per training loop (or
    per predict call): the network itself holds no per-call state, so one
    fitted model may predict from several threads at once."""

    def __init__(self):
        self._arrays = {}

    def __call__(self, name, shape, dtype):
        a = self._arrays.get(name)
        if a is None or a.shape[0] < shape[0] or a.shape[1:] != shape[1:] or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype)
        return a[:shape[0]]


class Linear:
    """``y = x @ weight (+ bias)``; weight is (n_in, n_out), initialised
    uniformly in +-sqrt(6 / (n_in + n_out)) (Glorot, as scikit-learn's MLP)."""

    def __init__(self, n_in, n_out, bias, dtype, rng):
        bound = np.sqrt(6.0 / (n_in + n_out))
        self.weight = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype)
        self.bias = np.zeros(n_out, dtype) if bias else None
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias) if bias else None

    def params(self):
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def grads(self):
        return [self.grad_weight] + ([self.grad_bias] if self.bias is not None else [])

    def forward(self, x, out):
        np.matmul(x, self.weight, out=out)
        if self.bias is not None:
            out += self.bias
        return out

    def backward(self, x, dy, dx):
        """Sets the parameter gradients; writes the input's gradient to `dx`
        unless it is None (the first layer needs none)."""
        np.matmul(x.T, dy, out=self.grad_weight)
        if self.bias is not None:
            np.sum(dy, axis=0, out=self.grad_bias)
        if dx is not None:
            np.matmul(dy, self.weight.T, out=dx)
        return dx


class BatchNorm:
    """Batch normalization over the rows (features on axis 1), PyTorch's
    ``BatchNorm1d`` defaults: momentum 0.1, eps 1e-5, affine."""

    def __init__(self, n, dtype, ops):
        self.ops = ops
        self.weight = np.ones(n, dtype)
        self.bias = np.zeros(n, dtype)
        self.running_mean = np.zeros(n, dtype)
        self.running_var = np.ones(n, dtype)
        self.grad_weight = np.zeros(n, dtype)
        self.grad_bias = np.zeros(n, dtype)

    def __setstate__(self, state):
        # Unpickled with memory mapping (joblib's mmap_mode), the arrays are
        # read-only memmaps; the kernels want plain writable running statistics.
        self.__dict__.update((k, np.array(v) if isinstance(v, np.ndarray) else v)
                             for k, v in state.items())

    def params(self):
        return [self.weight, self.bias]

    def grads(self):
        return [self.grad_weight, self.grad_bias]

    def buffers(self):
        return [self.running_mean, self.running_var]

    def forward(self, z, out, training):
        """(y, saved) where `saved` is what `backward` needs."""
        y, mean, invstd = self.ops.batch_norm_forward(
            z, self.weight, self.bias, self.running_mean, self.running_var,
            training=training, momentum=BN_MOMENTUM, eps=BN_EPS, axis=1, out=out)
        return y, (z, mean, invstd)

    def backward(self, dy, saved, dz):
        z, mean, invstd = saved
        dz, self.grad_weight[...], self.grad_bias[...] = self.ops.batch_norm_backward(
            dy, z, self.weight, mean, invstd, training=True, axis=1, out=dz)
        return dz


class Network:
    """`sizes` = [n_features, hidden..., n_classes]; with `batch_norm` every
    hidden Linear has no bias (the batch norm that follows would cancel it)."""

    def __init__(self, sizes, batch_norm, dtype, rng, ops=FAST_OPS):
        self.dtype = np.dtype(dtype)
        self.ops = ops
        self.linears = [Linear(n_in, n_out, not (batch_norm and k < len(sizes) - 2),
                               self.dtype, rng)
                        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.norms = [BatchNorm(n, self.dtype, ops) if batch_norm else None
                      for n in sizes[1:-1]]

    def _layers(self):
        return self.linears + [bn for bn in self.norms if bn is not None]

    def params(self):
        return [p for layer in self._layers() for p in layer.params()]

    def grads(self):
        return [g for layer in self._layers() for g in layer.grads()]

    def state(self):
        """Every array that defines the model (parameters and running statistics)."""
        return self.params() + [b for bn in self.norms if bn is not None for b in bn.buffers()]

    def _forward(self, x, ws, training):
        """(logits, what backward needs)."""
        m = x.shape[0]
        inputs, saved = [x], []
        for k, (linear, bn) in enumerate(zip(self.linears, self.norms)):
            a = linear.forward(inputs[-1], ws(f"z{k}", (m, linear.weight.shape[1]), self.dtype))
            s = None
            if bn is not None:
                a, s = bn.forward(a, ws(f"a{k}", (m, a.shape[1]), self.dtype), training)
            np.maximum(a, 0, out=a)  # ReLU in place
            inputs.append(a)
            saved.append(s)
        out = self.linears[-1]
        logits = out.forward(inputs[-1], ws("logits", (m, out.weight.shape[1]), self.dtype))
        return logits, (inputs, saved)

    def loss_and_grad(self, x, y, l2, ws):
        """Mean cross-entropy of the batch (x, integer codes y) plus the L2
        term, in training mode (batch statistics, running ones updated); the
        gradients land in ``grads()``."""
        logits, (inputs, saved) = self._forward(x, ws, training=True)
        loss, delta = self.ops.cross_entropy_with_grad(logits, y, out=logits)
        m = x.shape[0]
        for k in range(len(self.linears) - 1, -1, -1):
            linear = self.linears[k]
            dx = ws(f"d{k}", (m, linear.weight.shape[0]), self.dtype) if k else None
            dx = linear.backward(inputs[k], delta, dx)
            if k == 0:
                break
            a = inputs[k]  # the ReLU output: its gradient passes where a > 0
            mask = ws(f"mask{k}", (m, a.shape[1]), np.bool_)
            np.greater(a, 0, out=mask)
            np.multiply(dx, mask, out=dx)
            bn = self.norms[k - 1]
            delta = bn.backward(dx, saved[k - 1], ws(f"dz{k}", (m, a.shape[1]), self.dtype)) \
                if bn is not None else dx
        return float(loss) + self.add_l2(l2, ws)

    def add_l2(self, l2, ws):
        """Adds ``l2 * W`` to every weight gradient; returns ``l2 / 2 * sum(W ** 2)``."""
        if not l2:
            return 0.0
        penalty = 0.0
        for k, linear in enumerate(self.linears):
            w = linear.weight
            penalty += float(np.vdot(w, w))
            scaled = ws(f"l2_{k}", w.shape, self.dtype)
            np.multiply(w, l2, out=scaled)
            linear.grad_weight += scaled
        return 0.5 * l2 * penalty

    def predict_logits(self, X, chunk=4096):
        """Logits of every row of X in eval mode (running statistics)."""
        ws = Workspace()
        out = np.empty((X.shape[0], self.linears[-1].weight.shape[1]), self.dtype)
        for start in range(0, X.shape[0], chunk):
            stop = min(start + chunk, X.shape[0])
            out[start:stop] = self._forward(X[start:stop], ws, training=False)[0]
        return out
