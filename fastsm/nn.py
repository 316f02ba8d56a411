"""Layers with state, PyTorch's ``nn`` behaviour on NumPy arrays."""
import numbers

import numpy as np

from ._batchnorm import batch_norm_backward, batch_norm_forward
from ._batchnorm_args import check_eps, check_momentum

_LAYER_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class BatchNorm:
    """Batch normalization with learnable affine parameters and running
    statistics, as PyTorch's ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``.

    In training mode (the default) the layer normalises with the batch's
    statistics and updates the running ones: an exponential average with
    `momentum`, or with ``momentum=None`` the cumulative average over the
    ``num_batches_tracked`` batches seen.  In eval mode it normalises with the
    running statistics, unless ``track_running_stats=False`` (then it always
    uses the batch's).  ``backward(dy)`` differentiates the last forward call
    and sets `grad_weight` and `grad_bias`.

    Parameters
    ----------
    num_features : int
        C, the length of the feature axis.
    eps : float > 0, default 1e-5
    momentum : float in [0, 1] or None, default 0.1
    affine : bool, default True
        Whether to have `weight` (ones) and `bias` (zeros); else they are None.
    track_running_stats : bool, default True
        Whether to keep `running_mean` (zeros), `running_var` (ones) and
        `num_batches_tracked`; else they are None.
    axis : int, default 1
        The feature axis of the inputs.
    dtype : float16, float32 or float64, default float32
        dtype of the parameters and buffers, and of the inputs (a float32
        layer also takes float16 input: mixed precision).

    Examples
    --------
    >>> import numpy as np, fastsm
    >>> bn = fastsm.BatchNorm(2, dtype=np.float64)
    >>> y = bn(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> bn.running_mean, bn.num_batches_tracked
    (array([0.2, 2. ]), 1)
    >>> dx = bn.backward(np.ones((2, 2)))
    >>> bn.grad_bias
    array([2., 2.])
    >>> y_eval = bn.eval()(np.array([[0.2, 2.0]]))
    >>> y_eval.round(4)
    array([[0., 0.]])
    """

    def __init__(self, num_features, *, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, axis=1, dtype=np.float32):
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral):
            raise TypeError(f"num_features must be an int, got {type(num_features).__name__}")
        if num_features < 1:
            raise ValueError(f"num_features must be at least 1, got {num_features}")
        dtype = np.dtype(dtype)
        if dtype not in _LAYER_DTYPES:
            raise TypeError(f"dtype must be float16, float32 or float64, got {dtype}")
        if momentum is not None:
            momentum = check_momentum(momentum)
        self.num_features = int(num_features)
        self.eps = check_eps(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.axis = axis
        self.dtype = dtype
        C = self.num_features
        self.weight = np.ones(C, dtype) if affine else None
        self.bias = np.zeros(C, dtype) if affine else None
        self.running_mean = np.zeros(C, dtype) if track_running_stats else None
        self.running_var = np.ones(C, dtype) if track_running_stats else None
        self.num_batches_tracked = 0 if track_running_stats else None
        self.grad_weight = None
        self.grad_bias = None
        self.training = True
        self._saved = None

    def train(self, mode=True):
        """Training mode (or eval mode with ``mode=False``); returns the layer."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Eval mode: normalise with the running statistics; returns the layer."""
        return self.train(False)

    def __call__(self, x):
        return self.forward(x)

    def _check_input(self, x):
        if type(x) is not np.ndarray:
            x = np.asarray(x)
        if x.dtype != self.dtype and not (x.dtype == np.float16 and self.dtype == np.float32):
            raise TypeError(f"input has dtype {x.dtype}, the layer has dtype {self.dtype}")
        return x

    def forward(self, x):
        """Normalises `x` (features on the layer's axis); returns y of x's dtype."""
        x = self._check_input(x)
        batch_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats
        momentum = self.momentum if self.momentum is not None else 0.0
        if update and self.momentum is None:
            momentum = 1.0 / (self.num_batches_tracked + 1)
        y, mean, invstd = batch_norm_forward(
            x, self.weight, self.bias, self.running_mean, self.running_var,
            training=batch_stats, momentum=momentum, eps=self.eps, axis=self.axis)
        if update:
            self.num_batches_tracked += 1
        self._saved = (x, mean, invstd, batch_stats)
        return y

    def backward(self, dy):
        """Gradient with respect to the last forward's input; sets
        `grad_weight` and `grad_bias` (when affine)."""
        if self._saved is None:
            raise RuntimeError("backward() needs a forward() call first")
        x, mean, invstd, batch_stats = self._saved
        dx, dweight, dbias = batch_norm_backward(dy, x, self.weight, mean, invstd,
                                                 training=batch_stats, axis=self.axis)
        if self.affine:
            self.grad_weight = dweight.astype(self.dtype)
            self.grad_bias = dbias.astype(self.dtype)
        return dx

    def _state_keys(self):
        keys = ["weight", "bias"] if self.affine else []
        if self.track_running_stats:
            keys += ["running_mean", "running_var", "num_batches_tracked"]
        return keys

    def state_dict(self):
        """Copies of the parameters and buffers under PyTorch's keys;
        num_batches_tracked as a 0-d int64 array (as ``tensor.numpy()``)."""
        state = {}
        for key in self._state_keys():
            value = getattr(self, key)
            state[key] = np.array(value, np.int64) if key == "num_batches_tracked" else value.copy()
        return state

    def load_state_dict(self, state):
        """Loads parameters and buffers (e.g. a PyTorch BatchNorm's state dict
        converted with ``.numpy()``), cast to the layer's dtype.  All keys
        must be present and no others; all are checked before any is loaded."""
        keys = self._state_keys()
        missing = [k for k in keys if k not in state]
        unexpected = [k for k in state if k not in keys]
        if missing or unexpected:
            raise KeyError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        values = {}
        for key in keys:
            value = np.asarray(state[key])
            if key == "num_batches_tracked":
                if value.shape != () or value.dtype.kind not in "iu":
                    raise ValueError(f"num_batches_tracked must be an integer scalar, "
                                     f"got {value!r}")
                values[key] = int(value)
            else:
                if value.shape != (self.num_features,):
                    raise ValueError(f"{key} has shape {value.shape}, expected "
                                     f"({self.num_features},)")
                if value.dtype.kind not in "fiu":
                    raise TypeError(f"{key} must be real numbers, got dtype {value.dtype}")
                values[key] = value.astype(self.dtype)
        for key, value in values.items():
            setattr(self, key, value)
