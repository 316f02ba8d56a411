"""SoftmaxRegression with scikit-learn: its estimator checks, GridSearchCV and
clone, and the facts on the bundled digits data (8x8 images, 10 classes):
the linear model matches LogisticRegression, one hidden layer with batch
norm beats both, and L-BFGS reaches LogisticRegression's optimum."""
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastsm import reference  # noqa: E402
from fastsm.models import SoftmaxRegression  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:stopped at max_epochs")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices: a BLAS thread pool only adds latency."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    with threadpool_limits(1, user_api="blas"):
        yield


@parametrize_with_checks([SoftmaxRegression(), SoftmaxRegression(hidden_layer_sizes=(8,),
                                                                  batch_norm=True)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    """The fixed split: 25 % test, stratified, scaled on the training part."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def test_digits_linear_matches_logistic_regression_and_batch_norm_beats_both(digits):
    X_train, X_test, y_train, y_test = digits
    baseline = LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    linear = SoftmaxRegression(random_state=0).fit(X_train, y_train).score(X_test, y_test)
    hidden = SoftmaxRegression(hidden_layer_sizes=(128,), batch_norm=True, random_state=0) \
        .fit(X_train, y_train).score(X_test, y_test)
    assert abs(linear - baseline) <= 0.01
    assert hidden > max(linear, baseline)


def test_digits_lbfgs_reaches_logistic_regression(digits):
    X_train, X_test, y_train, y_test = digits
    C = 1.0
    l2 = 1 / (C * len(y_train))  # LogisticRegression's objective divided by n
    theirs = LogisticRegression(C=C, tol=1e-8, max_iter=2000).fit(X_train, y_train)
    ours = SoftmaxRegression(solver="lbfgs", l2=l2, tol=1e-8, max_epochs=2000) \
        .fit(X_train, y_train)

    def objective(coef, intercept):
        loss = reference.cross_entropy(X_train @ coef + intercept, y_train)
        return float(loss) + l2 / 2 * np.sum(coef ** 2)
    ours_value = objective(ours.coefs_[0], ours.intercepts_[0])
    theirs_value = objective(theirs.coef_.T, theirs.intercept_)
    assert ours_value == pytest.approx(theirs_value, rel=1e-4)
    assert ours_value <= theirs_value * (1 + 1e-6)
    assert ours.score(X_test, y_test) == pytest.approx(theirs.score(X_test, y_test), abs=0.005)
    np.testing.assert_allclose(ours.predict_proba(X_test), theirs.predict_proba(X_test),
                               atol=1e-2)


def test_grid_search_clones_and_sets_parameters(digits):
    X_train, X_test, y_train, y_test = digits
    search = GridSearchCV(SoftmaxRegression(max_epochs=5, random_state=0),
                          {"learning_rate": [1e-3, 1e-2], "l2": [0.0, 1e-2]}, cv=2)
    search.fit(X_train[:400], y_train[:400])
    assert search.best_params_["learning_rate"] in (1e-3, 1e-2)
    assert search.best_estimator_.max_epochs == 5
    assert len(search.cv_results_["mean_test_score"]) == 4
    twin = clone(search.best_estimator_)
    assert twin.get_params() == search.best_estimator_.get_params()
    assert not hasattr(twin, "coefs_")


def test_two_classes_match_logistic_regression_at_twice_c(digits):
    # Both columns are penalised, so for two classes C = 2 / (n * l2) (docstring).
    X_train, X_test, y_train, _ = digits
    X, y = X_train[y_train < 2], y_train[y_train < 2]
    l2 = 0.01
    ours = SoftmaxRegression(solver="lbfgs", l2=l2, tol=1e-10, max_epochs=10000).fit(X, y)
    theirs = LogisticRegression(C=2 / (len(y) * l2), tol=1e-10, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X_test), theirs.predict_proba(X_test),
                               atol=1e-5)
    coef = ours.coefs_[0]
    np.testing.assert_allclose(coef[:, 1] - coef[:, 0], theirs.coef_[0], rtol=1e-3, atol=1e-5)
