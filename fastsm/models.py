"""Estimators trained on fastsm's kernels, with scikit-learn's interface.

scikit-learn is optional: without it the estimators keep the same methods
(``get_params``, ``set_params``, ``score``), but meta-estimators such as
``GridSearchCV`` need it.
"""
import math
import warnings

import numpy as np

from ._estimator import BaseEstimator, ClassifierMixin, ConvergenceWarning, NotFittedError
from ._lbfgs import fit_linear
from ._model_inputs import (check_classes, check_dask_X, check_params, check_X, check_y, encode,
                            is_dask, rng_from)
from ._network import Network, Workspace
from ._optimizers import make_optimizer
from ._training import run_epoch

__all__ = ["SoftmaxRegression"]


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Softmax regression, optionally with hidden layers, trained on
    fastsm's cross-entropy and batch-norm kernels.

    The model maps the features through ``len(hidden_layer_sizes)`` blocks of
    Linear -> [BatchNorm ->] ReLU (the Linear has no bias when BatchNorm
    follows) and a last Linear layer to one logit per class; the class
    probabilities are their softmax.  With no hidden layers it is
    multinomial logistic regression (and logistic regression, as a
    two-column softmax, for two classes).  Training minimises the mean
    cross-entropy plus ``l2 / 2 * sum(W ** 2)`` over the weight matrices.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default ()
        Width of each hidden layer; () is the linear model.
    batch_norm : bool, default False
        Batch normalization after each hidden Linear (PyTorch's BatchNorm1d:
        momentum 0.1, eps 1e-5); running statistics are used to predict.
        Needs ``batch_size >= 2``.
    learning_rate : float > 0, default 0.01
        Step size of the mini-batch optimizer.
    l2 : float >= 0, default 0
        L2 penalty on the weights.  scikit-learn's LogisticRegression's
        ``C`` is ``1 / (n_samples * l2)``; for two classes ``2 / (n_samples
        * l2)`` (both columns are penalised: at the optimum they are w / 2
        and -w / 2 for LogisticRegression's w).
    batch_size : int, default 64
        Rows per mini-batch (the whole data when larger).  With batch_norm a
        last batch of a single row is skipped (rows are reshuffled each epoch).
    max_epochs : int, default 100
        Passes over the data (iterations for solver="lbfgs").
    optimizer : {"adam", "sgd"}, default "adam"
        "sgd" uses `momentum` (0 for plain SGD).
    random_state : None, int or numpy Generator, default None
        Seeds the initial weights, the shuffling and the validation split:
        two fits with the same int give identical models.
    momentum : float in [0, 1], default 0.9
        Momentum of optimizer="sgd".
    solver : {"minibatch", "lbfgs"}, default "minibatch"
        "lbfgs": full-batch L-BFGS-B (SciPy) on the linear model only; X
        may then be a Dask array (with y given), trained through
        ``fastsm.dask``.
    early_stopping : bool, default False
        Hold out `validation_fraction` of the training data and stop when
        its accuracy has not improved by `tol` for `n_iter_no_change`
        epochs; the best model seen is kept.  Without it training stops when
        the training loss has not decreased by `tol` for as long.
    validation_fraction : float in (0, 1), default 0.1
    n_iter_no_change : int, default 10
    tol : float >= 0, default 1e-4
        Also the gradient tolerance of L-BFGS-B.
    dtype : "float32" or "float64", default "float64"
        Precision of the parameters and of the computation.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    n_features_in_ : int
    coefs_, intercepts_ : lists of ndarray
        Weight matrix (n_in, n_out) and bias of each Linear layer; the bias
        is None where batch norm follows.
    network_ : object
        The layers (batch-norm parameters and running statistics included).
    loss_curve_ : list of float
        Training loss per epoch (per iteration for lbfgs).
    validation_scores_ : list of float or None
        Validation accuracy per epoch, with early stopping.
    n_iter_ : int
        Epochs run (iterations for lbfgs).

    Examples
    --------
    >>> import numpy as np
    >>> from fastsm.models import SoftmaxRegression
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 3.0], [3.0, 4.0]])
    >>> model = SoftmaxRegression(learning_rate=0.1, tol=1e-3, random_state=0)
    >>> model = model.fit(X, ["a", "a", "b", "b"])
    >>> model.predict([[0.0, 0.5], [3.0, 3.5]]).tolist()
    ['a', 'b']
    """

    def __init__(self, hidden_layer_sizes=(), batch_norm=False, learning_rate=0.01, l2=0.0,
                 batch_size=64, max_epochs=100, optimizer="adam", random_state=None, *,
                 momentum=0.9, solver="minibatch", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.batch_norm = batch_norm
        self.learning_rate = learning_rate
        self.l2 = l2
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.optimizer = optimizer
        self.random_state = random_state
        self.momentum = momentum
        self.solver = solver
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.dtype = dtype

    # ---- training ----------------------------------------------------------

    def fit(self, X, y):
        """Trains from scratch on X (n_samples, n_features) and labels y."""
        p = self._checked_params()
        if is_dask(X):
            return self._fit_dask(X, y, p)
        X = check_X(X, p.dtype)
        y = check_y(y, X.shape[0])
        _check_batch_rows(X, p)
        self.classes_ = check_classes(y, "y")
        codes = encode(y, self.classes_)
        self.n_features_in_ = X.shape[1]
        if p.solver == "lbfgs":
            return self._fit_lbfgs(X, codes, p)
        self._start(p)
        self._train(X, codes, p)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over the block (X, y), continuing from the previous
        calls (or from `fit`); `classes` (every label of the stream) is
        required on the first call.  Only for solver="minibatch"; early
        stopping does not apply."""
        p = self._checked_params()
        if p.solver == "lbfgs":
            raise ValueError("partial_fit needs solver='minibatch'; lbfgs is full-batch")
        first = getattr(self, "_optimizer", None) is None
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit "
                                 "(every label the stream will contain)")
            X = check_X(X, p.dtype)
            all_classes = check_classes(classes)
        else:
            X = self._check_features(X)
            all_classes = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), all_classes):
                raise ValueError(f"classes {np.unique(classes).tolist()} differ from those of "
                                 f"the first partial_fit call {all_classes.tolist()}")
        codes = encode(check_y(y, X.shape[0]), all_classes)
        _check_batch_rows(X, p)
        if first:  # every check passed: now the state may change
            self.classes_, self.n_features_in_ = all_classes, X.shape[1]
            self._start(p)
        self._epoch(X, codes, p, Workspace())
        return self

    def _checked_params(self):
        p = check_params(self)
        if p.batch_norm and p.batch_size < 2 and p.solver == "minibatch":
            raise ValueError(f"batch_norm needs batch_size >= 2, got {p.batch_size}")
        return p

    def _start(self, p):
        """A fresh network and optimizer (and random stream) for `p`."""
        self._rng = rng_from(self.random_state)
        sizes = [self.n_features_in_, *p.hidden, len(self.classes_)]
        self._set_network(Network(sizes, p.batch_norm, p.dtype, self._rng))
        self._optimizer = make_optimizer(p.optimizer, self.network_.params(), p.learning_rate,
                                         p.momentum)
        self.loss_curve_ = []
        self.validation_scores_ = None
        self.n_iter_ = 0

    def _set_network(self, network):
        self.network_ = network
        self.coefs_ = [linear.weight for linear in network.linears]
        self.intercepts_ = [linear.bias for linear in network.linears]

    def _epoch(self, X, codes, p, ws):
        loss = run_epoch(self.network_, self._optimizer, X, codes, p.batch_size, p.l2,
                         self._rng, ws)
        self.loss_curve_.append(loss)
        self.n_iter_ += 1
        return loss

    def _train(self, X, codes, p):
        """Epochs until the stopping rule (or max_epochs)."""
        X_val = None
        if p.early_stopping:
            X, codes, X_val, codes_val = self._split(X, codes, p.validation_fraction)
            self.validation_scores_ = []
        network, ws = self.network_, Workspace()
        best, stalled, best_state = math.inf, 0, None
        for _ in range(p.max_epochs):
            loss = self._epoch(X, codes, p, ws)
            if X_val is not None:
                score = -float(np.mean(self._codes_of(X_val) == codes_val))
                self.validation_scores_.append(-score)
            else:
                score = loss
            stalled = stalled + 1 if score > best - p.tol else 0
            if score < best:
                best = score
                if X_val is not None:
                    best_state = [a.copy() for a in network.state()]
            if stalled > p.n_iter_no_change:
                break
        else:
            warnings.warn(f"stopped at max_epochs={p.max_epochs} before the "
                          f"{'validation accuracy' if X_val is not None else 'training loss'} "
                          f"stopped improving", ConvergenceWarning, stacklevel=3)
        if best_state is not None:
            for a, b in zip(network.state(), best_state):
                a[...] = b
            self.best_validation_score_ = -best

    def _split(self, X, codes, fraction):
        n = X.shape[0]
        n_val = math.ceil(fraction * n)
        if not 1 <= n_val <= n - 2:
            raise ValueError(f"validation_fraction={fraction} of {n} samples leaves no "
                             f"validation or training data")
        order = self._rng.permutation(n)
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        return X[train], codes[train], X[val], codes[val]

    def _fit_lbfgs(self, X, codes, p):
        coef, intercept, n_iter, losses = fit_linear(X, codes, len(self.classes_), p.l2,
                                                     p.dtype, p.max_epochs, p.tol)
        network = Network([coef.shape[0], coef.shape[1]], False, p.dtype,
                          np.random.default_rng(0))
        network.linears[0].weight[...] = coef
        network.linears[0].bias[...] = intercept
        self._set_network(network)
        self._optimizer = None
        self.loss_curve_, self.n_iter_, self.validation_scores_ = losses, n_iter, None
        return self

    def _fit_dask(self, X, y, p):
        if p.solver != "lbfgs":
            raise ValueError("a Dask array X needs solver='lbfgs' (full-batch)")
        if y is None:
            raise ValueError("requires y to be passed with a Dask array X")
        X = check_dask_X(X, p.dtype)
        labels = check_y(y.compute() if is_dask(y) else y, X.shape[0])
        self.classes_ = check_classes(labels, "y")
        classes = self.classes_
        if is_dask(y):
            codes = y.map_blocks(lambda block: encode(block, classes), dtype=np.int64)
            codes = codes.rechunk((X.chunks[0],))
        else:
            import dask.array as da
            codes = da.from_array(encode(labels, classes), chunks=(X.chunks[0],))
        self.n_features_in_ = X.shape[1]
        return self._fit_lbfgs(X, codes, p)

    # ---- prediction --------------------------------------------------------

    def _check_features(self, X):
        if not hasattr(self, "network_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: "
                                 f"call fit (or partial_fit) before using it")
        X = check_X(X, self.network_.dtype)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        return X

    def _codes_of(self, X):
        return np.argmax(self.network_.predict_logits(X), axis=1)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in classes_ order."""
        X = self._check_features(X)
        logits = self.network_.predict_logits(X)
        return self.network_.ops.softmax(logits, out=logits)

    def predict(self, X):
        """The most probable class of each row (labels from classes_)."""
        X = self._check_features(X)
        return self.classes_[self._codes_of(X)]


def _check_batch_rows(X, p):
    """Batch statistics need two rows or more (PyTorch's BatchNorm1d raises too)."""
    if p.batch_norm and X.shape[0] < 2:
        raise ValueError("batch_norm needs at least 2 samples to train on, got 1 sample")
