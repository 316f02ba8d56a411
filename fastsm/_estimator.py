"""scikit-learn's estimator base classes and exceptions when scikit-learn is
installed, else small stand-ins with the same behaviour, so that
``fastsm.models`` imports without it.

The stand-ins cover what an estimator needs on its own: ``get_params`` and
``set_params`` read from ``__init__``'s signature (sklearn's rule: parameters
are stored verbatim under their own names), accuracy as ``score``, and
``NotFittedError`` deriving from ValueError and AttributeError as sklearn's.
"""
import inspect

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
except ImportError:
    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before ``fit``."""

    class ConvergenceWarning(UserWarning):
        """The optimizer stopped at its iteration limit."""

    class DataConversionWarning(UserWarning):
        """The input was reshaped to what the estimator expects."""

    class BaseEstimator:
        """get_params / set_params from the ``__init__`` signature."""

        @classmethod
        def _get_param_names(cls):
            signature = inspect.signature(cls.__init__)
            return sorted(p.name for p in signature.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            params = {}
            for name in self._get_param_names():
                value = getattr(self, name)
                params[name] = value
                if deep and hasattr(value, "get_params") and not isinstance(value, type):
                    params.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            return params

        def set_params(self, **params):
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(f"invalid parameter {name!r} for estimator "
                                     f"{type(self).__name__}; valid parameters: {valid}")
                setattr(self, name, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
            return f"{type(self).__name__}({args})"

    class ClassifierMixin:
        """Accuracy as the score."""
        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            return float(np.average(self.predict(X) == np.asarray(y), weights=sample_weight))

__all__ = ["BaseEstimator", "ClassifierMixin", "ConvergenceWarning", "DataConversionWarning",
           "NotFittedError"]
