"""One epoch of mini-batch training: shuffle, gather each batch into
reusable buffers, loss and gradient, optimizer step."""
import numpy as np


def run_epoch(network, optimizer, X, codes, batch_size, l2, rng, ws):
    """One shuffled pass over (X, integer codes) in batches of `batch_size`
    rows; returns the mean training loss.  With batch norm, a last batch of a
    single row is skipped: it cannot be normalised (rows are reshuffled every
    epoch, so no row is always left out)."""
    n, d = X.shape
    size = min(batch_size, n)
    order = rng.permutation(n)
    grads = network.grads()
    batch_norm = any(bn is not None for bn in network.norms)
    total, seen = 0.0, 0
    for start in range(0, n, size):
        rows = order[start:start + size]
        m = rows.size
        if m == 1 and batch_norm:
            continue
        x = np.take(X, rows, axis=0, out=ws("x", (m, d), X.dtype))
        y = np.take(codes, rows, out=ws("y", (m,), codes.dtype))
        loss = network.loss_and_grad(x, y, l2, ws)
        optimizer.step(grads)
        total += loss * m
        seen += m
    return total / seen
