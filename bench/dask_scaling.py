"""fastsm.dask on a local cluster of two worker processes (one thread each),
side by side with the same expressions written in plain dask.array and with
single-machine fastsm (one process, two threads) on the same data:

    python bench/dask_scaling.py [--rows 20000000] [--repeats 5] [--back-to-back]

The data, float32 (rows, 16) logits (1.28 GB at the default size) and int64
targets, is made on the workers with dask.array.random in chunks of 64 MB
(one million rows), persisted and spread evenly over the workers before any
timing, each block's targets beside it.  Each contender runs once per
round, in turn, and the table gives median times; with --back-to-back each
contender's runs come in a row instead, so that each meets memory as it
left it (in turn, each finds what the others freed: new pages to fault in).

What is timed: computing the full result and keeping it in memory.  For the
dask contenders that is ``client.persist`` of the result arrays (the
softmax, or the loss and the gradient) until they are held on the workers,
nothing gathered; for single-machine fastsm it is the call that returns the
new NumPy arrays.  Throughput is the bytes of the logits divided by that
time.  The linear model row times one loss-and-gradient evaluation of an
L-BFGS iteration (10 classes, 16 features) and its single-machine twin, the
same per-block computation in one process.
"""
import argparse
import gc
import os
import time

import numpy as np

import dask
import dask.array as da
import distributed

import fastsm
import fastsm.dask as fd
from fastsm._dask_blocks import linear_block

FEATURES = 16
CHUNK_ROWS = 1_000_000            # 64 MB of float32 logits
LINEAR_CLASSES = 10
SEED = 20261125


# ---- the contenders -------------------------------------------------------------

def softmax_expression(x):
    """softmax in plain dask.array operations."""
    e = da.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_expression(x, t):
    """Mean cross-entropy and its gradient in plain dask.array operations."""
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - da.log(da.exp(shifted).sum(axis=1, keepdims=True))
    onehot = da.arange(x.shape[1]) == t[:, None]
    loss = -da.where(onehot, logp, 0).sum(axis=1).mean()
    grad = (da.exp(logp) - onehot) / x.shape[0]
    return loss, grad


def linear_single_machine(X, y, coef, intercept):
    """The linear model's loss and gradient in one process: the same function
    on the same blocks of rows as fastsm.dask's workers, with two threads."""
    total = sum(linear_block(X[start:start + CHUNK_ROWS], y[start:start + CHUNK_ROWS], coef,
                             intercept, kernel_threads=2)
                for start in range(0, len(X), CHUNK_ROWS)) / len(X)
    d, C = coef.shape
    return float(total[0, 0]), total[0, 1:1 + d * C].reshape(d, C), total[0, 1 + d * C:]


def make_data(rows):
    """Lazy (logits float32 (rows, 16), targets in [0, 16), codes in [0, 10)).
    The targets and codes of a block of rows are made from that block of
    logits (from seeds of their own), so that on a cluster they are made and
    kept where the block is, as data loaded together would be: a task of
    cross_entropy_with_grad then finds all its inputs on its worker."""
    x = da.random.default_rng(SEED).standard_normal((rows, FEATURES), chunks=(CHUNK_ROWS, FEATURES),
                                                    dtype=np.float32)
    return (x,) + labels_of(x)


def labels_of(x):
    """The targets and codes made from the blocks of x (see make_data)."""
    def integers(block, high, stream, block_info=None):
        index = block_info[0]["chunk-location"][0]
        return np.random.default_rng([SEED, stream, index]).integers(0, high, len(block))

    return tuple(x.map_blocks(integers, high, stream, drop_axis=1, dtype=np.int64)
                 for stream, high in ((1, FEATURES), (2, LINEAR_CLASSES)))


def start_cluster():
    """Two worker processes of one thread each, importing this fastsm."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastsm.__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       memory_limit="4GiB", env={"PYTHONPATH": path})
    return cluster, distributed.Client(cluster)


def persisted(client, rows):
    """The data, made on the workers: the blocks of logits split evenly
    among them, each worker a run of consecutive blocks (a worker holding
    more blocks than the other would do more of every task; runs keep most
    steps of a tree reduction on one worker), then the targets and codes
    beside each block."""
    workers = sorted(client.scheduler_info()["workers"])
    lazy = make_data(rows)[0]
    count = lazy.numblocks[0]
    blocks = [client.persist(lazy.blocks[i], workers=workers[i * len(workers) // count])
              for i in range(count)]
    x = client.persist(da.concatenate(blocks))  # the same arrays, under new keys
    t, y = client.persist(list(labels_of(x)))
    distributed.wait([x, t, y])
    return x, t, y


def persisting(client, make):
    """A contender that computes make()'s arrays and keeps them on the workers."""
    def run():
        held = client.persist(list(make()))
        distributed.wait(held)
        del held
    return run


def contenders(client, x, t, y, local):
    """{(operation, contender): callable}; `local` holds the NumPy copies."""
    coef = np.random.default_rng(1).standard_normal((FEATURES, LINEAR_CLASSES)) * 0.1
    intercept = np.zeros(LINEAR_CLASSES)
    return {
        ("softmax", "fastsm.dask"): persisting(client, lambda: [fd.softmax(x)]),
        ("softmax", "dask.array expression"): persisting(client,
                                                         lambda: [softmax_expression(x)]),
        ("softmax", "fastsm, one process"): lambda: fastsm.softmax(local["x"]),
        ("cross_entropy_with_grad", "fastsm.dask"): persisting(
            client, lambda: fd.cross_entropy_with_grad(x, t)),
        ("cross_entropy_with_grad", "dask.array expression"): persisting(
            client, lambda: cross_entropy_expression(x, t)),
        ("cross_entropy_with_grad", "fastsm, one process"):
            lambda: fastsm.cross_entropy_with_grad(local["x"], local["t"]),
        ("linear_loss_and_grad", "fastsm.dask"):
            lambda: fd.linear_loss_and_grad(x, y, coef, intercept),
        ("linear_loss_and_grad", "fastsm, one process"):
            lambda: linear_single_machine(local["x"], local["y"], coef, intercept),
    }


def measure(runs, repeats, back_to_back=False):
    """{key: median seconds}: every contender once per round, in turn; or,
    back to back, each contender's runs in a row (after a pause that lets
    the scheduler forget the previous result, which a persist of the same
    graph would otherwise find still held)."""
    times = {key: [] for key in runs}
    for key, run in runs.items():
        run()  # warm-up: imports, first page faults
        for _ in range(repeats if back_to_back else 0):
            times[key].append(timed(run, pause=0.5))
    for _ in range(0 if back_to_back else repeats):
        for key, run in runs.items():
            times[key].append(timed(run))
    return {key: float(np.median(ts)) for key, ts in times.items()}


def timed(run, pause=0.0):
    """Seconds that run() takes, after a pause and a garbage collection."""
    time.sleep(pause)
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def table(medians, nbytes):
    """Rows of text: time, throughput, and ratios against fastsm.dask."""
    lines = [f"{'operation':<25} {'contender':<24} {'median s':>9} {'GB/s':>6} "
             f"{'fastsm.dask faster by':>22}"]
    for (op, name), seconds in medians.items():
        ratio = seconds / medians[(op, "fastsm.dask")]
        lines.append(f"{op:<25} {name:<24} {seconds:9.3f} {nbytes / seconds / 1e9:6.2f} "
                     f"{ratio:21.2f}x")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--back-to-back", action="store_true",
                        help="run each contender's repeats in a row instead of in turn")
    args = parser.parse_args()
    fastsm.set_num_threads(2)
    cluster, client = start_cluster()
    with cluster, client:
        x, t, y = persisted(client, args.rows)
        # The same numbers in this process, from the same generator.
        local = dict(zip("xty", dask.compute(*make_data(args.rows), scheduler="threads")))
        medians = measure(contenders(client, x, t, y, local), args.repeats, args.back_to_back)
    print(f"{args.rows} x {FEATURES} float32 ({x.nbytes / 1e9:.2f} GB) in chunks of "
          f"{CHUNK_ROWS * FEATURES * 4 / 2**20:.0f} MiB; two workers of one thread; "
          f"medians of {args.repeats}, {'back to back' if args.back_to_back else 'in turn'}")
    print("\n".join(table(medians, x.nbytes)))


if __name__ == "__main__":
    main()
