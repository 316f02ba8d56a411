"""The BatchNorm layer: PyTorch's nn.BatchNorm behaviour over many steps
(running statistics, momentum=None, eval mode, track_running_stats=False,
affine=False), gradients, dtypes, and state dicts."""
import numpy as np
import pytest

import fastsm
from fastsm import BatchNorm


def batches(rng, shape, steps, dtype=np.float32):
    for step in range(steps):
        yield (rng.standard_normal(shape) * (1 + step % 3) + step).astype(dtype)


@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
@pytest.mark.parametrize("shape,axis", [((32, 6), 1), ((4, 6, 5, 5), 1), ((4, 5, 6), -1)])
def test_running_statistics_follow_a_hand_written_loop(rng, momentum, shape, axis):
    bn = BatchNorm(6, momentum=momentum, axis=axis, dtype=np.float64)
    mean, var = np.zeros(6), np.ones(6)
    for step, x in enumerate(batches(rng, shape, 12, np.float64), start=1):
        bn(x)
        values = np.moveaxis(x, axis, -1).reshape(-1, 6)
        factor = 1 / step if momentum is None else momentum
        mean = (1 - factor) * mean + factor * values.mean(axis=0)
        var = (1 - factor) * var + factor * values.var(axis=0, ddof=1)
        np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var, var, rtol=1e-12)
        assert bn.num_batches_tracked == step


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("shape", [(16, 4), (3, 4, 5, 6)])
def test_matches_torch_over_training_and_eval_steps(rng, momentum, affine, track, shape):
    torch = pytest.importorskip("torch")
    make = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    tbn = make(4, momentum=momentum, affine=affine, track_running_stats=track)
    bn = BatchNorm(4, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            tbn.weight.copy_(torch.tensor(rng.uniform(0.5, 2, 4)))
            tbn.bias.copy_(torch.tensor(rng.standard_normal(4)))
        bn.weight[...] = tbn.weight.detach().numpy()
        bn.bias[...] = tbn.bias.detach().numpy()
    for step, x in enumerate(batches(rng, shape, 8)):
        training = step % 4 != 3
        bn.train(training)
        tbn.train(training)
        xt = torch.tensor(x, requires_grad=True)
        if affine:
            tbn.weight.grad = tbn.bias.grad = None
        yt = tbn(xt)
        dy = rng.standard_normal(shape).astype(np.float32)
        yt.backward(torch.tensor(dy))
        y = bn(x)
        dx = bn.backward(dy)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        if affine:
            for got, want in [(bn.grad_weight, tbn.weight.grad), (bn.grad_bias, tbn.bias.grad)]:
                np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
        if track:
            for got, want in [(bn.running_mean, tbn.running_mean), (bn.running_var, tbn.running_var)]:
                np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
            assert bn.num_batches_tracked == int(tbn.num_batches_tracked)
    assert set(bn.state_dict()) == set(tbn.state_dict())


def test_loads_a_torch_state_dict(rng):
    torch = pytest.importorskip("torch")
    tbn = torch.nn.BatchNorm2d(3)
    tbn.train()
    for x in batches(rng, (4, 3, 5, 5), 3):
        tbn(torch.tensor(x))
    with torch.no_grad():
        tbn.weight.mul_(2.0)
    bn = BatchNorm(3)
    bn.load_state_dict({k: v.numpy() for k, v in tbn.state_dict().items()})
    assert bn.num_batches_tracked == 3
    x = next(batches(rng, (2, 3, 4, 4), 1))
    np.testing.assert_allclose(bn.eval()(x), tbn.eval()(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip_and_copies():
    bn = BatchNorm(3, dtype=np.float64)
    bn(np.arange(12.0).reshape(4, 3))
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert state["num_batches_tracked"].dtype == np.int64 and state["num_batches_tracked"] == 1
    state["running_mean"][:] = 99  # a copy: the layer is unchanged
    assert not (bn.running_mean == 99).any()
    other = BatchNorm(3, dtype=np.float64)
    other.load_state_dict(bn.state_dict())
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value)


def test_state_dict_keys_follow_the_options():
    assert list(BatchNorm(2, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    assert list(BatchNorm(2, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_bad_state_dict_loads_nothing():
    bn = BatchNorm(3)
    state = bn.state_dict()
    state["running_mean"] = np.full(3, 5.0)
    state["weight"] = np.ones(4)             # wrong length
    with pytest.raises(ValueError):
        bn.load_state_dict(state)
    np.testing.assert_array_equal(bn.running_mean, 0.0)
    del state["weight"]
    with pytest.raises(KeyError):
        bn.load_state_dict(state)


def test_affine_false_has_no_parameters(rng):
    bn = BatchNorm(3, affine=False)
    assert bn.weight is None and bn.bias is None
    bn(rng.standard_normal((8, 3)).astype(np.float32))
    bn.backward(np.ones((8, 3), np.float32))
    assert bn.grad_weight is None and bn.grad_bias is None


def test_without_running_statistics_eval_uses_the_batch(rng):
    bn = BatchNorm(3, track_running_stats=False)
    assert bn.running_mean is None and bn.num_batches_tracked is None
    x = rng.standard_normal((8, 3)).astype(np.float32) + 5
    np.testing.assert_array_equal(bn.eval()(x), bn.train()(x))


def test_input_dtypes(rng):
    bn = BatchNorm(3)
    with pytest.raises(TypeError, match="dtype"):
        bn(np.ones((4, 3)))                                  # float64 into float32
    y = bn(rng.standard_normal((4, 3)).astype(np.float16))   # mixed precision
    assert y.dtype == np.float16 and bn.running_mean.dtype == np.float32
    assert bn.backward(np.ones((4, 3), np.float16)).dtype == np.float16
    assert bn.grad_weight.dtype == np.float32


def test_a_failed_forward_changes_nothing():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(np.ones((1, 3), np.float32))
    assert bn.num_batches_tracked == 0
    np.testing.assert_array_equal(bn.running_var, 1.0)


def test_backward_needs_a_forward():
    with pytest.raises(RuntimeError):
        BatchNorm(2).backward(np.ones((3, 2), np.float32))


def test_gradients_match_the_functional_form(rng):
    bn = BatchNorm(4, dtype=np.float64)
    bn.weight[...] = rng.uniform(0.5, 2, 4)
    x, dy = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
    bn(x)
    dx = bn.backward(dy)
    _, mean, invstd = fastsm.batch_norm_forward(x, bn.weight, bn.bias)
    want = fastsm.batch_norm_backward(dy, x, bn.weight, mean, invstd)
    np.testing.assert_array_equal(dx, want[0])
    np.testing.assert_array_equal(bn.grad_weight, want[1])
    np.testing.assert_array_equal(bn.grad_bias, want[2])


@pytest.mark.parametrize("kwargs,error", [
    (dict(num_features=0), ValueError), (dict(num_features=2.0), TypeError),
    (dict(num_features=2, momentum=2.0), ValueError), (dict(num_features=2, eps=0.0), ValueError),
    (dict(num_features=2, dtype=np.int32), TypeError),
])
def test_bad_constructor_arguments(kwargs, error):
    with pytest.raises(error):
        BatchNorm(**kwargs)
