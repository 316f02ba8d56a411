"""Training throughput of one network three ways: time per epoch of
Linear(256, no bias) -> BatchNorm -> ReLU -> Linear(10) with softmax
cross-entropy, Adam, batch size 256, float32, on 200,000 x 256 synthetic data:

- fastsm: fastsm.models' network on the kernels, fused Adam kernel,
- numpy reference: the very same network with the fastsm.reference
  functions in place of the kernels and Adam as NumPy calls (the matrix
  products are the same BLAS calls),
- torch: the same architecture, optimizer and batch size in PyTorch (CPU).

Every side gets the same number of threads (BLAS, fastsm, PyTorch).  Epochs
are interleaved, so that load from other processes hits all sides alike;
medians of the epochs and ratios are printed.

    python bench/ratios_models.py [--rows 200000] [--epochs 3] [--threads 2]
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastsm
from fastsm._network import FAST_OPS, REFERENCE_OPS, Network, Workspace
from fastsm._optimizers import Adam
from fastsm._training import run_epoch

FEATURES, HIDDEN, CLASSES = 256, 256, 10
BATCH, LEARNING_RATE = 256, 1e-3


def synthetic(rows, seed=0):
    """Gaussian features; labels from a random linear map (learnable)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    y = np.argmax(X @ rng.standard_normal((FEATURES, CLASSES), dtype=np.float32), axis=1)
    return X, y.astype(np.int64)


def numpy_trainer(ops, X, y, seed=0):
    """An epoch function for the network on `ops`: the kernels (and the fused
    Adam kernel) or the reference functions (and Adam in NumPy calls)."""
    rng = np.random.default_rng(seed)
    network = Network([FEATURES, HIDDEN, CLASSES], True, np.float32, rng, ops)
    optimizer = Adam(network.params(), LEARNING_RATE, fused=ops is FAST_OPS)
    ws = Workspace()
    return lambda: run_epoch(network, optimizer, X, y, BATCH, 0.0, rng, ws)


def torch_trainer(X, y, seed=0):
    import torch
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN, bias=False),
                                torch.nn.BatchNorm1d(HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    loss_fn = torch.nn.functional.cross_entropy

    def epoch():
        model.train()
        order = torch.randperm(Xt.shape[0])
        total = 0.0
        for start in range(0, Xt.shape[0], BATCH):
            rows = order[start:start + BATCH]
            loss = loss_fn(model(Xt[rows]), yt[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * rows.numel()
        return total / Xt.shape[0]
    return epoch


def trainers(X, y, threads):
    sides = {"fastsm": numpy_trainer(FAST_OPS, X, y),
             "numpy reference": numpy_trainer(REFERENCE_OPS, X, y)}
    try:
        import torch
    except ImportError:
        return sides
    torch.set_num_threads(threads)
    sides["torch"] = torch_trainer(X, y)
    return sides


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    X, y = synthetic(args.rows)
    with threadpool_limits(args.threads, user_api="blas"), fastsm.threads(args.threads):
        sides = trainers(X, y, args.threads)
        times = {name: [] for name in sides}
        losses = {name: [] for name in sides}
        for _ in range(args.epochs):
            for name, epoch in sides.items():
                t0 = time.perf_counter()
                losses[name].append(epoch())
                times[name].append(time.perf_counter() - t0)
    fast = float(np.median(times["fastsm"]))
    print(f"{args.rows} x {FEATURES} float32 -> {HIDDEN} (BatchNorm, ReLU) -> {CLASSES}, "
          f"Adam, batch {BATCH}, {args.threads} threads; median of {args.epochs} epochs")
    print(f"{'':16s} {'s/epoch':>8s} {'rows/s':>10s} {'time / fastsm':>14s} {'last loss':>10s}")
    for name, t in times.items():
        median = float(np.median(t))
        print(f"{name:16s} {median:8.3f} {args.rows / median:10.0f} {median / fast:14.2f} "
              f"{losses[name][-1]:10.4f}")
    return times, losses


if __name__ == "__main__":
    main()
