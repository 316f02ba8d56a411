"""The loss and gradient of a linear softmax model on dask arrays, for an
L-BFGS solver: one tree reduction over blocks of rows per call, as dask-glm
does for logistic regression."""
import numbers

import dask.array as da
import numpy as np

from . import _dask_blocks as _b
from ._dask_common import to_dask


def _check(X, y, coef, intercept):
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y_codes has shape {y.shape}, expected ({X.shape[0]},)")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y_codes must hold integer class codes, got dtype {y.dtype}")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"X must have a real floating, integer or bool dtype, got {X.dtype}")
    coef = np.asarray(coef)
    intercept = np.asarray(intercept)
    if coef.ndim != 2 or coef.shape[0] != X.shape[1]:
        raise ValueError(f"coef has shape {coef.shape}, expected ({X.shape[1]}, C)")
    if intercept.shape != coef.shape[1:]:
        raise ValueError(f"intercept has shape {intercept.shape}, expected ({coef.shape[1]},)")
    for name, a in (("coef", coef), ("intercept", intercept)):
        if not issubclass(a.dtype.type, numbers.Real) and a.dtype.kind != "f":
            raise TypeError(f"{name} must be a real floating array, got dtype {a.dtype}")
    return coef, intercept


def linear_loss_and_grad(X, y_codes, coef, intercept):
    """Mean cross-entropy of ``X @ coef + intercept`` against `y_codes`, and
    its gradients, from one dask reduction over the row blocks of `X`.

    Each block computes ``fastsm.cross_entropy_with_grad(X_blk @ coef +
    intercept, y_blk, reduction="sum")`` and then ``X_blk.T @ G`` and
    ``G.sum(0)`` on its worker; the parts are added in a tree and divided by
    n.  `coef` and `intercept` travel with the graph, once per call.  No L2
    term.

    Parameters
    ----------
    X : dask.array.Array of shape (n, d)
        Rechunked to one chunk of columns when it has several; rows as they are.
    y_codes : dask.array.Array of shape (n,)
        Integer class codes in [0, C); rechunked to X's row chunks if needed.
    coef : ndarray of shape (d, C)
    intercept : ndarray of shape (C,)

    Returns
    -------
    loss : float
    grad_coef : ndarray of shape (d, C)
    grad_intercept : ndarray of shape (C,)

    Raises
    ------
    TypeError, ValueError
        Arrays of the wrong dimensions, shapes or dtypes, at call time; a code
        outside [0, C) raises ValueError from the computation.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsm.dask
    >>> X = da.from_array(np.eye(2), chunks=1)
    >>> y = da.from_array(np.array([0, 1]), chunks=1)
    >>> loss, g, g0 = fastsm.dask.linear_loss_and_grad(X, y, np.zeros((2, 2)), np.zeros(2))
    >>> round(loss, 4), g.tolist(), g0.tolist()
    (0.6931, [[-0.25, 0.25], [0.25, -0.25]], [0.0, 0.0])
    """
    X, y = to_dask(X, "X"), to_dask(y_codes, "y_codes")
    coef, intercept = _check(X, y, coef, intercept)
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    if y.chunks[0] != X.chunks[0]:
        y = y.rechunk((X.chunks[0],))
    d, C = coef.shape
    rows = da.map_blocks(_b.linear_block, X, y[:, None], coef=coef, intercept=intercept,
                         chunks=((1,) * X.numblocks[0], (1 + d * C + C,)), dtype=np.float64,
                         meta=np.empty((0, 0)), token="fastsm-linear-loss-grad")
    total = rows.sum(axis=0).compute() / X.shape[0]
    return float(total[0]), total[1:1 + d * C].reshape(d, C), total[1 + d * C:]
