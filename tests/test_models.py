"""fastsm.models.SoftmaxRegression and the network and optimizers under it:
gradients against finite differences and against the reference twin,
optimizer steps by hand and against PyTorch, training facts, reproducibility,
labels of any type, partial_fit, the L-BFGS path (a Dask X through the
fastsm.dask contract), errors.  Parts that need scikit-learn are in
test_models_sklearn.py."""
import sys
import textwrap
import threading
import types

import numpy as np
import pytest

from fastsm import reference
from fastsm._estimator import ConvergenceWarning, NotFittedError
from fastsm._network import FAST_OPS, REFERENCE_OPS, Network, Workspace
from fastsm._optimizers import SGD, Adam
from fastsm.models import SoftmaxRegression

# Short fits on purpose: the warning that they stop at max_epochs is expected.
pytestmark = pytest.mark.filterwarnings("ignore:stopped at max_epochs")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny matrices: a BLAS thread pool only adds wake-up latency (and on a
    busy machine, much more)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def blobs(rng, n_per_class=40, n_features=4, centers=((0, 0), (6, 0), (0, 6)), spread=0.5):
    X, y = [], []
    for label, c in enumerate(centers):
        center = np.zeros(n_features)
        center[:len(c)] = c
        X.append(center + spread * rng.standard_normal((n_per_class, n_features)))
        y.append(np.full(n_per_class, label))
    order = rng.permutation(len(centers) * n_per_class)
    return np.concatenate(X)[order], np.concatenate(y)[order]


# ---- the network: gradients ------------------------------------------------

def small_network(seed, hidden, batch_norm, ops=FAST_OPS):
    return Network([5, *hidden, 3], batch_norm, np.float64, np.random.default_rng(seed), ops)


@pytest.mark.parametrize("hidden,batch_norm", [((), False), ((6,), False), ((6,), True),
                                                ((6, 4), True)])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gradient_matches_central_differences(rng, hidden, batch_norm, l2):
    net = small_network(1, hidden, batch_norm)
    x = rng.standard_normal((8, 5))
    y = rng.integers(0, 3, 8)
    for bn in net.norms:  # away from the defaults, so that their gradients show
        if bn is not None:
            bn.weight[...] = rng.uniform(0.5, 2, bn.weight.shape)
            bn.bias[...] = rng.standard_normal(bn.bias.shape)
    ws = Workspace()
    net.loss_and_grad(x, y, l2, ws)
    grads = [g.copy() for g in net.grads()]
    h = 1e-6
    for p, g in zip(net.params(), grads):
        numeric = np.empty_like(p)
        for i in np.ndindex(p.shape):
            saved = p[i]
            p[i] = saved + h
            up = net.loss_and_grad(x, y, l2, ws)
            p[i] = saved - h
            down = net.loss_and_grad(x, y, l2, ws)
            p[i] = saved
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_on_the_kernels_trains_like_the_reference_network(rng, dtype):
    fast, slow = (Network([5, 7, 3], True, dtype, np.random.default_rng(2), ops)
                  for ops in (FAST_OPS, REFERENCE_OPS))
    x = rng.standard_normal((16, 5)).astype(dtype)
    y = rng.integers(0, 3, 16)
    opts = [Adam(net.params(), 0.01) for net in (fast, slow)]
    for _ in range(5):
        losses = [net.loss_and_grad(x, y, 0.01, Workspace()) for net in (fast, slow)]
        for net, opt in zip((fast, slow), opts):
            opt.step(net.grads())
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4 if dtype == np.float32
                                   else 1e-10)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(fast.state(), slow.state()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_eval_mode_uses_running_statistics(rng):
    net = small_network(3, (6,), True)
    x = rng.standard_normal((32, 5)) * 3 + 1
    net.loss_and_grad(x, rng.integers(0, 3, 32), 0.0, Workspace())
    bn, linear = net.norms[0], net.linears[0]
    z = x @ linear.weight
    h = np.maximum(reference.batch_norm_forward(z, bn.weight, bn.bias, bn.running_mean,
                                                bn.running_var, training=False)[0], 0)
    want = h @ net.linears[1].weight + net.linears[1].bias
    np.testing.assert_allclose(net.predict_logits(x, chunk=5), want, rtol=1e-12)


# ---- optimizers ------------------------------------------------------------

def test_sgd_steps_by_hand():
    p = np.array([1.0, -2.0])
    g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 2.0])
    SGD([p], 0.1).step([g1])
    np.testing.assert_allclose(p, [0.95, -2.1])
    q = np.array([1.0, -2.0])
    opt = SGD([q], 0.1, momentum=0.9)
    opt.step([g1])
    opt.step([g2])  # velocity 0.9 * g1 + g2
    np.testing.assert_allclose(q, [1.0, -2.0] - 0.1 * g1 - 0.1 * (0.9 * g1 + g2))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_adam_step_moves_by_the_learning_rate(fused, dtype):
    # m_hat = g and v_hat = g^2 after one step: the update is lr * g / (|g| + eps)
    p = np.array([1.0, 1.0, 1.0], dtype)
    Adam([p], 0.01, fused=fused).step([np.array([3.0, -1e-3, 0.0], dtype)])
    np.testing.assert_allclose(p, [0.99, 1.01, 1.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adam_kernel_equals_the_numpy_update(rng, dtype):
    shapes = [(300, 70), (7,), (40_000, 5)]  # the last one long enough for threads
    params = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(2)]
    params[1] = [p.copy() for p in params[0]]
    fused, numpy_ = Adam(params[0], 0.01), Adam(params[1], 0.01, fused=False)
    for _ in range(4):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        fused.step(grads)
        numpy_.step(grads)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for a, b in zip(*params):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def test_fused_adam_rejects_arrays_it_cannot_read():
    p = np.zeros((4, 3))
    with pytest.raises(TypeError, match="C-contiguous"):
        Adam([np.zeros((3, 4)).T], 0.1)
    opt = Adam([p], 0.1)
    for bad in (np.zeros((4, 3), np.float32), np.zeros((3, 4)), np.zeros((3, 8))[:, ::2].T,
                [[0.0] * 3] * 4):
        with pytest.raises(TypeError, match="gradient"):
            opt.step([bad])
    assert not p.any()


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adam-numpy"])
def test_optimizers_match_torch(rng, name):
    torch = pytest.importorskip("torch")
    p0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(6)]
    p = p0.copy()
    tp = torch.tensor(p0, requires_grad=True)
    if name.startswith("adam"):
        ours = Adam([p], 0.05, fused=name == "adam")
        theirs = torch.optim.Adam([tp], lr=0.05)
    else:
        momentum = 0.9 if name == "momentum" else 0.0
        ours, theirs = SGD([p], 0.05, momentum), torch.optim.SGD([tp], lr=0.05, momentum=momentum)
    for g in grads:
        ours.step([g])
        tp.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12)


# ---- the estimator: training facts -----------------------------------------

@pytest.mark.parametrize("params", [
    {}, {"optimizer": "sgd", "learning_rate": 0.05}, {"optimizer": "sgd", "momentum": 0.0,
                                                     "learning_rate": 0.2},
    {"hidden_layer_sizes": (16,)}, {"hidden_layer_sizes": (16, 8), "batch_norm": True},
    {"solver": "lbfgs"}, {"dtype": "float32", "hidden_layer_sizes": (8,), "batch_norm": True},
    {"early_stopping": True, "validation_fraction": 0.2, "learning_rate": 0.1},
])
def test_separable_blobs_are_learned(rng, params):
    X, y = blobs(rng)
    X_test, y_test = blobs(rng, n_per_class=20)
    model = SoftmaxRegression(random_state=0, max_epochs=60, **params).fit(X, y)
    assert model.score(X_test, y_test) == 1.0
    proba = model.predict_proba(X_test)
    assert proba.dtype == np.dtype(params.get("dtype", "float64"))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X_test))


def test_two_classes_give_a_two_column_softmax(rng):
    X, y = blobs(rng, centers=((0, 0), (5, 5)))
    model = SoftmaxRegression(random_state=0).fit(X, y)
    assert model.predict_proba(X).shape == (X.shape[0], 2)
    assert model.coefs_[0].shape == (X.shape[1], 2)
    assert model.score(X, y) == 1.0


def test_training_loss_decreases_and_is_recorded(rng):
    X, y = blobs(rng, spread=2.0)
    model = SoftmaxRegression(random_state=0, max_epochs=20, tol=0.0, n_iter_no_change=100,
                              learning_rate=0.05)
    with pytest.warns(ConvergenceWarning, match="max_epochs"):
        model.fit(X, y)
    assert model.n_iter_ == 20 == len(model.loss_curve_)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]


def test_l2_shrinks_the_weights(rng):
    X, y = blobs(rng)
    norms = [np.linalg.norm(SoftmaxRegression(l2=l2, solver="lbfgs").fit(X, y).coefs_[0])
             for l2 in (1e-4, 1e-2, 1.0)]
    assert norms[0] > norms[1] > norms[2]


def test_early_stopping_keeps_the_best_validation_model(rng):
    X, y = blobs(rng, spread=3.0)
    model = SoftmaxRegression(random_state=0, early_stopping=True, n_iter_no_change=3,
                              max_epochs=200, learning_rate=0.05).fit(X, y)
    assert model.n_iter_ < 200
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)


# ---- reproducibility and threads -------------------------------------------

@pytest.mark.parametrize("params", [{}, {"hidden_layer_sizes": (8,), "batch_norm": True,
                                         "early_stopping": True}])
def test_same_random_state_gives_identical_models(rng, params):
    X, y = blobs(rng, spread=2.0)
    a, b = (SoftmaxRegression(random_state=7, max_epochs=15, **params).fit(X, y)
            for _ in range(2))
    for pa, pb in zip(a.network_.state(), b.network_.state()):
        np.testing.assert_array_equal(pa, pb)
    c = SoftmaxRegression(random_state=8, max_epochs=15, **params).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_models_trained_on_threads_equal_models_trained_one_by_one(rng):
    X, y = blobs(rng, spread=2.0)
    params = dict(hidden_layer_sizes=(16,), batch_norm=True, max_epochs=10)
    alone = [SoftmaxRegression(random_state=s, **params).fit(X, y).coefs_[0] for s in range(4)]
    models = [SoftmaxRegression(random_state=s, **params) for s in range(4)]
    threads = [threading.Thread(target=m.fit, args=(X, y)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m, coef in zip(models, alone):
        np.testing.assert_array_equal(m.coefs_[0], coef)


# ---- labels ----------------------------------------------------------------

@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([-5, 3, 100]),
                                    np.array([2.0, 1.0, 0.0]), np.array([True, False, True])[:2]])
def test_labels_of_any_type(rng, labels):
    centers = ((0, 0), (6, 0), (0, 6))[:len(labels)]
    X, codes = blobs(rng, centers=centers)
    y = labels[codes]
    model = SoftmaxRegression(random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.classes_, np.sort(labels))
    predicted = model.predict(X)
    assert predicted.dtype == y.dtype
    np.testing.assert_array_equal(predicted, y)


def test_labels_as_a_list_and_x_as_nested_lists():
    X = [[0.0, 0.0], [0.0, 1.0], [4.0, 4.0], [4.0, 5.0]]
    model = SoftmaxRegression(random_state=0, learning_rate=0.1).fit(X, ["a", "a", "b", "b"])
    assert model.predict([[0.0, 0.5]]).tolist() == ["a"]


# ---- partial_fit -----------------------------------------------------------

def test_partial_fit_learns_from_a_stream_of_blocks(rng):
    X, y = blobs(rng, n_per_class=100)
    model = SoftmaxRegression(random_state=0, hidden_layer_sizes=(8,), batch_norm=True,
                              batch_size=16)
    for epoch in range(5):
        for block in range(0, len(y), 50):
            # the first blocks need not hold every class: `classes` says which exist
            model.partial_fit(X[block:block + 50], y[block:block + 50], classes=[0, 1, 2])
    assert model.n_iter_ == len(model.loss_curve_) == 5 * 6
    X_test, y_test = blobs(rng, n_per_class=20)
    assert model.score(X_test, y_test) == 1.0


def test_partial_fit_equals_fit_for_one_epoch(rng):
    X, y = blobs(rng)
    a = SoftmaxRegression(random_state=3, max_epochs=1).fit(X, y)
    b = SoftmaxRegression(random_state=3).partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_partial_fit_continues_a_fit(rng):
    X, y = blobs(rng)
    model = SoftmaxRegression(random_state=0, max_epochs=3).fit(X, y)
    before = model.coefs_[0].copy()
    model.partial_fit(X, y)
    assert model.n_iter_ == len(model.loss_curve_) == 4
    assert not np.array_equal(before, model.coefs_[0])


def test_partial_fit_errors(rng):
    X, y = blobs(rng)
    with pytest.raises(ValueError, match="classes"):
        SoftmaxRegression().partial_fit(X, y)
    untouched = SoftmaxRegression()
    with pytest.raises(ValueError, match="inconsistent"):
        untouched.partial_fit(X, y[:-1], classes=[0, 1, 2])
    assert not hasattr(untouched, "classes_") and not hasattr(untouched, "network_")
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="classes"):
        model.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="not in classes_"):
        model.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :2], y)
    with pytest.raises(ValueError, match="lbfgs"):
        SoftmaxRegression(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])


def test_batch_norm_needs_two_rows_and_leaves_the_model_untouched(rng):
    X, y = blobs(rng)
    fresh = SoftmaxRegression(hidden_layer_sizes=(4,), batch_norm=True)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fresh.partial_fit(X[:1], y[:1], classes=[0, 1, 2])
    assert not hasattr(fresh, "network_")
    with pytest.raises(ValueError, match="at least 2 samples"):
        SoftmaxRegression(hidden_layer_sizes=(4,), batch_norm=True).fit(X[:1], y[:1])
    model = SoftmaxRegression(hidden_layer_sizes=(4,), batch_norm=True, max_epochs=2,
                              random_state=0).fit(X, y)
    before = [a.copy() for a in model.network_.state()]
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.partial_fit(X[:1], y[:1])
    for a, b in zip(model.network_.state(), before):
        np.testing.assert_array_equal(a, b)


# ---- the L-BFGS path -------------------------------------------------------

def test_lbfgs_reaches_the_minimum_of_the_objective(rng):
    X, y = blobs(rng, spread=3.0)
    l2 = 0.05
    model = SoftmaxRegression(solver="lbfgs", l2=l2, tol=1e-10, max_epochs=1000).fit(X, y)
    coef, intercept = model.coefs_[0], model.intercepts_[0]
    logits = X @ coef + intercept
    _, g = reference.cross_entropy_with_grad(logits, y)
    # the gradient of the objective vanishes at its minimum
    np.testing.assert_allclose(X.T @ g + l2 * coef, 0, atol=1e-6)
    np.testing.assert_allclose(g.sum(axis=0), 0, atol=1e-6)
    assert model.loss_curve_[-1] == pytest.approx(
        float(reference.cross_entropy(logits, y)) + l2 / 2 * np.sum(coef ** 2), rel=1e-9)


def test_dask_x_goes_through_the_fastsm_dask_contract(rng, monkeypatch):
    da = pytest.importorskip("dask.array")
    calls = []

    def linear_loss_and_grad(X, y_codes, coef, intercept):
        # The contract: dask X (n, d), dask int64 codes with X's row chunks,
        # NumPy coef (d, C) and intercept (C,); the mean loss without L2.
        assert y_codes.dtype == np.int64 and y_codes.chunks[0] == X.chunks[0]
        assert type(coef) is np.ndarray and coef.shape == (X.shape[1], 3)
        calls.append(1)
        Xc, yc = X.compute(), y_codes.compute()
        loss, g = reference.cross_entropy_with_grad(Xc @ coef + intercept, yc)
        return float(loss), Xc.T @ g, g.sum(axis=0)

    monkeypatch.setitem(sys.modules, "fastsm.dask",
                        types.SimpleNamespace(linear_loss_and_grad=linear_loss_and_grad))
    X, codes = blobs(rng, spread=3.0)
    labels = np.array(["a", "b", "c"])[codes]
    local = SoftmaxRegression(solver="lbfgs", l2=0.01).fit(X, labels)
    for y in (labels, da.from_array(labels, chunks=25)):
        model = SoftmaxRegression(solver="lbfgs", l2=0.01).fit(da.from_array(X, chunks=(40, 4)),
                                                               y)
        np.testing.assert_array_equal(model.classes_, ["a", "b", "c"])
        np.testing.assert_allclose(model.coefs_[0], local.coefs_[0], rtol=1e-6, atol=1e-8)
    assert calls
    with pytest.raises(ValueError, match="lbfgs"):
        SoftmaxRegression().fit(da.from_array(X), labels)


def test_dask_x_gets_the_checks_of_numpy_x(rng):
    da = pytest.importorskip("dask.array")
    X, y = blobs(rng)
    with_nan = X.copy()
    with_nan[5, 1] = np.nan
    cases = [(with_nan, y, ValueError, "NaN"), (X * 1e300, y, ValueError, "too large"),
             (X.astype(complex), y, ValueError, "Complex"), (X[:, 0], y, ValueError, "2D"),
             (X, rng.random(len(y)), ValueError, "Unknown label type"),
             (X, y[:-1], ValueError, "inconsistent")]
    for bad_X, bad_y, error, match in cases:
        for labels in (bad_y, da.from_array(bad_y, chunks=25)):
            with pytest.raises(error, match=match):
                SoftmaxRegression(solver="lbfgs", dtype="float32").fit(
                    da.from_array(bad_X, chunks=40), labels)


# ---- errors ----------------------------------------------------------------

def test_predict_before_fit_is_not_fitted_error(rng):
    X, _ = blobs(rng)
    for method in ("predict", "predict_proba", "score"):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(SoftmaxRegression(), method)(*((X, np.zeros(len(X))) if method == "score"
                                                   else (X,)))
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_wrong_feature_count_is_rejected(rng):
    X, y = blobs(rng)
    model = SoftmaxRegression(max_epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but SoftmaxRegression is "
                                         "expecting 4 features"):
        model.predict(X[:, :3])


@pytest.mark.parametrize("param,value,error,match", [
    ("learning_rate", 0.0, ValueError, "learning_rate"),
    ("learning_rate", "fast", TypeError, "learning_rate"),
    ("l2", -1.0, ValueError, "l2"),
    ("l2", float("inf"), ValueError, "l2 must be finite"),
    ("l2", float("nan"), ValueError, "l2 must be finite"),
    ("learning_rate", float("inf"), ValueError, "learning_rate must be finite"),
    ("tol", float("inf"), ValueError, "tol must be finite"),
    ("batch_size", 0, ValueError, "batch_size"),
    ("batch_size", 2.5, TypeError, "batch_size"),
    ("max_epochs", 0, ValueError, "max_epochs"),
    ("optimizer", "rmsprop", ValueError, "optimizer"),
    ("solver", "newton", ValueError, "solver"),
    ("momentum", 1.5, ValueError, "momentum"),
    ("hidden_layer_sizes", (8, 0), ValueError, "hidden_layer_sizes"),
    ("hidden_layer_sizes", "wide", TypeError, "hidden_layer_sizes"),
    ("dtype", "float16", ValueError, "dtype"),
    ("validation_fraction", 1.5, ValueError, "validation_fraction"),
    ("random_state", "seed", TypeError, "random_state"),
])
def test_bad_hyperparameters_are_named(rng, param, value, error, match):
    X, y = blobs(rng)
    with pytest.raises(error, match=match):
        SoftmaxRegression(**{param: value}).fit(X, y)


def test_inconsistent_settings_are_rejected(rng):
    X, y = blobs(rng)
    with pytest.raises(ValueError, match="lbfgs"):
        SoftmaxRegression(solver="lbfgs", hidden_layer_sizes=(4,)).fit(X, y)
    with pytest.raises(ValueError, match="batch_size"):
        SoftmaxRegression(batch_norm=True, hidden_layer_sizes=(4,), batch_size=1).fit(X, y)


@pytest.mark.parametrize("X,y,error,match", [
    (np.ones(6), np.arange(6) % 2, ValueError, "2D"),
    (np.full((4, 2), np.nan), [0, 1, 0, 1], ValueError, "NaN"),
    (np.full((4, 2), np.inf), [0, 1, 0, 1], ValueError, "infinity"),
    (np.ones((4, 2), complex), [0, 1, 0, 1], ValueError, "Complex"),
    (np.ones((0, 2)), [], ValueError, "0 sample"),
    (np.ones((4, 2)), [0, 1, 0], ValueError, "inconsistent"),
    (np.ones((4, 2)), [0.5, 1.0, 0.0, 2.0], ValueError, "Unknown label type"),
    (np.ones((4, 2)), [1, 1, 1, 1], ValueError, "2 classes"),
    (np.ones((4, 2)), np.ones((4, 2)), ValueError, "1-D"),
    (np.array([["a", "b"]] * 4, dtype=object), [0, 1, 0, 1], TypeError, "real numbers"),
])
def test_bad_data_is_rejected(X, y, error, match):
    with pytest.raises(error, match=match):
        SoftmaxRegression().fit(X, y)


# ---- without scikit-learn --------------------------------------------------

def test_works_without_scikit_learn(run_python):
    code = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None  # import sklearn raises ImportError
        import numpy as np
        from fastsm.models import SoftmaxRegression
        from fastsm._estimator import ConvergenceWarning, NotFittedError
        model = SoftmaxRegression(learning_rate=0.1, random_state=0)
        assert model.get_params()["learning_rate"] == 0.1
        assert model.set_params(l2=0.5) is model and model.l2 == 0.5
        try:
            model.set_params(speed=1)
        except ValueError as e:
            assert "speed" in str(e)
        else:
            raise AssertionError("unknown parameter accepted")
        try:
            model.predict(np.ones((1, 2)))
        except NotFittedError as e:
            assert isinstance(e, ValueError) and isinstance(e, AttributeError)
        X = np.array([[0.0, 0.0], [0.0, 1.0], [4.0, 4.0], [4.0, 5.0]])
        assert model.fit(X, ["a", "a", "b", "b"]).score(X, ["a", "a", "b", "b"]) == 1.0
        assert repr(model).startswith("SoftmaxRegression(")
        print("ok")
    """)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
