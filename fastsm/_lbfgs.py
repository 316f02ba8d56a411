"""Full-batch training of the linear softmax model with SciPy's L-BFGS-B:
one function gives the loss and its gradient, on NumPy data here and on a
Dask array through ``fastsm.dask.linear_loss_and_grad``.

The objective is scikit-learn's multinomial LogisticRegression's, divided by
the number of samples: ``mean cross-entropy + l2 / 2 * sum(W ** 2)`` (the
intercept is not penalised), so ``C = 1 / (n_samples * l2)`` there.
"""
import warnings

import numpy as np

from ._estimator import ConvergenceWarning
from ._model_inputs import is_dask
from ._xent import cross_entropy_with_grad


def _numpy_loss_and_grad(X, y_codes, n_classes):
    """(coef, intercept) -> (mean cross-entropy, grad_coef, grad_intercept)."""
    logits = np.empty((X.shape[0], n_classes), X.dtype)

    def loss_and_grad(coef, intercept):
        np.matmul(X, coef, out=logits)
        np.add(logits, intercept, out=logits)
        loss, g = cross_entropy_with_grad(logits, y_codes, out=logits)
        return float(loss), X.T @ g, g.sum(axis=0)
    return loss_and_grad


def _dask_loss_and_grad(X, y_codes):
    from .dask import linear_loss_and_grad  # the distributed twin, same contract

    def loss_and_grad(coef, intercept):
        return linear_loss_and_grad(X, y_codes, coef, intercept)
    return loss_and_grad


def fit_linear(X, y_codes, n_classes, l2, dtype, max_iter, tol):
    """(coef (d, C), intercept (C,), iterations, loss per iteration)."""
    from scipy.optimize import minimize

    d = X.shape[1]
    data_loss = (_dask_loss_and_grad(X, y_codes) if is_dask(X)
                 else _numpy_loss_and_grad(X, y_codes, n_classes))

    def objective(theta):
        coef = theta[:d * n_classes].reshape(d, n_classes).astype(dtype)
        intercept = theta[d * n_classes:].astype(dtype)
        loss, grad_coef, grad_intercept = data_loss(coef, intercept)
        loss += 0.5 * l2 * float(np.vdot(coef, coef))
        grad = np.concatenate([(grad_coef + l2 * coef).ravel(), grad_intercept])
        return loss, grad.astype(np.float64)

    losses = []
    # LogisticRegression's options for lbfgs, so that the two stop alike.
    result = minimize(objective, np.zeros(d * n_classes + n_classes), method="L-BFGS-B",
                      jac=True, callback=lambda intermediate_result: losses.append(
                          float(intermediate_result.fun)),
                      options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                               "ftol": 64 * np.finfo(float).eps})
    if result.status == 1:
        warnings.warn(f"L-BFGS-B stopped at max_epochs={max_iter} iterations before "
                      f"converging; increase max_epochs or scale the data",
                      ConvergenceWarning, stacklevel=3)
    theta = result.x
    coef = theta[:d * n_classes].reshape(d, n_classes).astype(dtype)
    return coef, theta[d * n_classes:].astype(dtype), int(result.nit), losses
