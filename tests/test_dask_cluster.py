"""fastsm.dask on a distributed cluster of two worker processes: the same
results as the NumPy API, and the same again when a worker dies mid-way."""
import os
import pathlib

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastsm  # noqa: E402
import fastsm.dask as fd  # noqa: E402

# Workers are separate processes: they import the fastsm this test imports.
SOURCE_ROOT = str(pathlib.Path(fastsm.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def client():
    path = os.pathsep.join(p for p in (SOURCE_ROOT, os.environ.get("PYTHONPATH")) if p)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  env={"PYTHONPATH": path}) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_workers_run_this_fastsm(client):
    files = client.run(lambda: __import__("fastsm").__file__)
    assert len(files) == 2
    assert set(files.values()) == {fastsm.__file__}


@pytest.mark.parametrize("chunks", [(250, 9), (100, 4), ((1, 499), (2, 7))])
def test_softmax_family(client, chunks, rng):
    x = rng.standard_normal((500, 9)).astype(np.float32)
    dx = client.persist(da.from_array(x, chunks=chunks))
    got = client.compute([fd.softmax(dx), fd.log_softmax(dx), fd.hardmax(dx)], sync=True)
    for a, name in zip(got, ["softmax", "log_softmax", "hardmax"]):
        np.testing.assert_allclose(a, getattr(fastsm, name)(x), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("chunks", [(100, 9), (60, 4)])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy(client, chunks, reduction, rng):
    logits = rng.standard_normal((500, 9))
    target = rng.integers(0, 9, 500)
    target[::7] = -100
    weight = rng.random(9) + 0.5
    options = dict(weight=weight, reduction=reduction, label_smoothing=0.05)
    got = client.compute(list(fd.cross_entropy_with_grad(
        da.from_array(logits, chunks=chunks), da.from_array(target, chunks=chunks[0]),
        **options)), sync=True)
    want = fastsm.cross_entropy_with_grad(logits, target, **options)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("chunks", [(250, 9), (100, 4)])
def test_backward_and_binary(client, chunks, rng):
    g, x = rng.standard_normal((500, 9)), rng.standard_normal((500, 9))
    t, pos_weight = rng.random((500, 9)), rng.random(9) + 0.5
    y, logp = fastsm.softmax(x), fastsm.log_softmax(x)
    d = [da.from_array(a, chunks=chunks) for a in (g, x, t, y, logp)]
    got = client.compute([fd.softmax_backward(d[0], d[3]), fd.log_softmax_backward(d[0], d[4]),
                          fd.sigmoid(d[1]),
                          fd.binary_cross_entropy_with_logits(d[1], d[2], pos_weight=pos_weight),
                          fd.binary_cross_entropy_with_logits_grad(d[1], d[2],
                                                                   pos_weight=pos_weight)],
                         sync=True)
    want = [fastsm.softmax_backward(g, y), fastsm.log_softmax_backward(g, logp),
            fastsm.sigmoid(x),
            fastsm.binary_cross_entropy_with_logits(x, t, pos_weight=pos_weight),
            fastsm.binary_cross_entropy_with_logits_grad(x, t, pos_weight=pos_weight)]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_batch_norm_running_statistics(client, rng):
    x = rng.standard_normal((400, 3, 5)) * 2 + 3
    rm, rv = np.zeros(3), np.ones(3)
    want_rm, want_rv = rm.copy(), rv.copy()
    y, mean, invstd = fd.batch_norm_forward(da.from_array(x, chunks=(70, 2, 5)),
                                            running_mean=rm, running_var=rv)
    want = fastsm.batch_norm_forward(x, running_mean=want_rm, running_var=want_rv)
    np.testing.assert_allclose(rm, want_rm, rtol=1e-13)
    np.testing.assert_allclose(rv, want_rv, rtol=1e-13)
    for a, b in zip(client.compute([y, mean, invstd], sync=True), want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_linear_loss_and_grad(client, rng):
    X, y = rng.standard_normal((600, 5)), rng.integers(0, 3, 600)
    coef, intercept = rng.standard_normal((5, 3)), rng.standard_normal(3)
    got = fd.linear_loss_and_grad(da.from_array(X, chunks=(100, 5)),
                                  da.from_array(y, chunks=150), coef, intercept)
    loss, G = fastsm.cross_entropy_with_grad(X @ coef + intercept, y)
    np.testing.assert_allclose(got[0], loss, rtol=1e-12)
    np.testing.assert_allclose(got[1], X.T @ G, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(got[2], G.sum(axis=0), rtol=1e-10, atol=1e-15)


def _die_once(block, marker):
    """Kills the worker process running it, the first time any task runs it
    (never called at graph construction: the caller gives the meta)."""
    try:
        fd_ = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return block
    os.close(fd_)
    os._exit(1)


def test_a_worker_killed_mid_computation_changes_nothing(client, tmp_path, rng):
    x = rng.standard_normal((400, 6))
    target = rng.integers(0, 6, 400)
    want = fastsm.cross_entropy_with_grad(x, target)
    dx = da.from_array(x, chunks=(50, 3)).map_blocks(_die_once, str(tmp_path / "died"),
                                                     meta=np.empty((0, 0)))
    got = client.compute(list(fd.cross_entropy_with_grad(dx, da.from_array(target, chunks=50))),
                         sync=True)
    assert (tmp_path / "died").exists()  # a worker did die
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    client.wait_for_workers(2, timeout=30)


def test_softmax_regression_lbfgs_on_the_cluster(client, rng):
    from fastsm.models import SoftmaxRegression

    centers = rng.normal(scale=3.0, size=(3, 4))
    codes = rng.integers(0, 3, 600)
    X = centers[codes] + rng.standard_normal((600, 4))
    labels = np.array(["cat", "dog", "eel"])[codes]
    # Converged tightly, so that the sums' order (per block on the workers) cannot
    # move the optimum by more than the tolerance.
    params = dict(solver="lbfgs", l2=0.01, tol=1e-10, max_epochs=1000)
    local = SoftmaxRegression(**params).fit(X, labels)
    for y in (labels, da.from_array(labels, chunks=150)):
        model = SoftmaxRegression(**params).fit(
            client.persist(da.from_array(X, chunks=(150, 4))), y)
        np.testing.assert_array_equal(model.classes_, local.classes_)
        np.testing.assert_allclose(model.coefs_[0], local.coefs_[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(model.intercepts_[0], local.intercepts_[0], rtol=1e-5,
                                   atol=1e-7)
        assert model.score(X, labels) == local.score(X, labels) > 0.9
