"""fastsm: fast, numerically stable softmax, cross-entropy and batch
normalization for NumPy, with PyTorch's semantics.

``fastsm.reference`` holds the same functions in plain NumPy.
"""
from ._batchnorm import batch_norm_backward, batch_norm_forward, batch_norm_stats, merge_stats
from ._binary import (binary_cross_entropy_with_logits,
                      binary_cross_entropy_with_logits_grad, sigmoid)
from ._memory import release_memory
from ._softmax import hardmax, log_softmax, log_softmax_backward, softmax, softmax_backward
from ._xent import cross_entropy, cross_entropy_grad, cross_entropy_with_grad
from ._threads import get_num_threads, set_num_threads, threads
from .nn import BatchNorm

__version__ = "0.1.0"

__all__ = [
    "softmax", "log_softmax", "hardmax", "softmax_backward", "log_softmax_backward",
    "cross_entropy", "cross_entropy_grad", "cross_entropy_with_grad",
    "sigmoid", "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_grad",
    "batch_norm_forward", "batch_norm_backward", "batch_norm_stats", "merge_stats", "BatchNorm",
    "set_num_threads", "get_num_threads", "threads", "release_memory",
]
