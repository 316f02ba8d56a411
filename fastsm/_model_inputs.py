"""Checks of the data and hyperparameters given to `SoftmaxRegression`,
with scikit-learn's conventions: X is a 2-D array of real numbers without
NaN or infinity; y is a 1-D array of class labels of any sortable type (a
column vector is raveled with a DataConversionWarning); continuous targets
are rejected as "Unknown label type".
"""
import math
import numbers
import types
import warnings

import numpy as np

from ._estimator import DataConversionWarning

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_dask(a):
    """Whether `a` is a Dask collection (found without importing dask)."""
    return type(a).__module__.split(".")[0] == "dask"


def _check_form(X, name):
    """sklearn's checks of X's dtype kind and shape, which read no values."""
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead: {name} must be "
                         f"(n_samples, n_features). Reshape your data with reshape(-1, 1) for "
                         f"a single feature or reshape(1, -1) for a single sample")
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum "
                         f"of 1 is required: {name} is empty")
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum "
                         f"of 1 is required: {name} has no features")


def check_X(X, dtype, name="X"):
    """X as a C-contiguous 2-D array of `dtype`, after sklearn's checks."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix: sparse input is not supported, "
                        f"convert it with {name}.toarray()")
    X = np.asarray(X)
    if X.dtype.kind not in "biufc":  # complex: refused by _check_form
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}: {e}") from None
    _check_form(X, name)
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        what = "NaN" if np.isnan(X).any() else "infinity or a value too large for " + str(dtype)
        raise ValueError(f"Input {name} contains {what}")
    return X


def check_dask_X(X, dtype, name="X"):
    """A Dask X, cast to `dtype`, after check_X's checks (the finiteness
    check computes one pass over the data)."""
    if X.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    _check_form(X, name)
    X = X.astype(dtype)
    if not bool(np.isfinite(X).all().compute()):  # a Dask reduction
        raise ValueError(f"Input {name} contains NaN or infinity (or a value too large "
                         f"for {dtype})")
    return X


def check_y(y, n_samples, name="y"):
    """y as a 1-D array of n_samples class labels."""
    if y is None:
        raise ValueError(f"requires {name} to be passed, but the target {name} is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(f"A column-vector {name} was passed when a 1d array was expected; "
                      f"it is raveled", DataConversionWarning, stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class label per sample), got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X and {name} have inconsistent numbers of samples: "
                         f"{n_samples} and {y.shape[0]}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError(f"Input {name} contains NaN or infinity")
        if np.any(y != np.round(y)):
            raise ValueError(f"Unknown label type: continuous ({name} holds non-integer "
                             f"floats; a classifier needs class labels)")
    if y.dtype.kind == "c":
        raise ValueError(f"Unknown label type: complex {name}")
    return y


def encode(y, classes, name="y"):
    """Integer codes (int64) of the labels y in the sorted `classes`."""
    codes = np.searchsorted(classes, y)
    np.clip(codes, 0, len(classes) - 1, out=codes)
    unknown = classes[codes] != y
    if np.any(unknown):
        raise ValueError(f"{name} holds labels not in classes_ {classes.tolist()}: "
                         f"{np.unique(y[unknown]).tolist()}")
    return codes.astype(np.int64, copy=False)


def check_classes(classes, name="classes"):
    classes = np.unique(np.asarray(classes))
    if classes.size < 2:
        raise ValueError(f"{name}: a classifier needs samples of at least 2 classes, got "
                         f"{classes.size} class{'es' if classes.size != 1 else ''}: "
                         f"{classes.tolist()}")
    return classes


def _number(value, name, kind, low, high=np.inf, low_open=False):
    types = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError(f"{name} must be {'an int' if kind is int else 'a real number'}, "
                        f"got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if not (low < value if low_open else low <= value) or not value <= high:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high < np.inf else "")
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return kind(value)


def _choice(value, name, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_params(est):
    """The hyperparameters of `est`, checked, as attributes of a namespace."""
    hidden = est.hidden_layer_sizes
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise TypeError(f"hidden_layer_sizes must be a tuple of ints, got {hidden!r}") from None
    hidden = tuple(_number(h, "hidden_layer_sizes", int, 1) for h in hidden)
    dtype = np.dtype(est.dtype) if not isinstance(est.dtype, np.dtype) else est.dtype
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {est.dtype!r}")
    solver = _choice(est.solver, "solver", ("minibatch", "lbfgs"))
    if solver == "lbfgs" and hidden:
        raise ValueError("solver='lbfgs' fits the linear model only: hidden_layer_sizes "
                         f"must be (), got {est.hidden_layer_sizes!r}")
    return types.SimpleNamespace(
        hidden=hidden, dtype=dtype, solver=solver,
        batch_norm=bool(est.batch_norm),
        learning_rate=_number(est.learning_rate, "learning_rate", float, 0, low_open=True),
        l2=_number(est.l2, "l2", float, 0),
        batch_size=_number(est.batch_size, "batch_size", int, 1),
        max_epochs=_number(est.max_epochs, "max_epochs", int, 1),
        optimizer=_choice(est.optimizer, "optimizer", ("sgd", "adam")),
        momentum=_number(est.momentum, "momentum", float, 0, 1),
        early_stopping=bool(est.early_stopping),
        validation_fraction=_number(est.validation_fraction, "validation_fraction", float,
                                    0, 1, low_open=True),
        n_iter_no_change=_number(est.n_iter_no_change, "n_iter_no_change", int, 1),
        tol=_number(est.tol, "tol", float, 0),
    )


def rng_from(random_state):
    """A NumPy Generator from None, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator,
                                                         np.random.SeedSequence)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int or a numpy random generator, "
                    f"got {random_state!r}")
