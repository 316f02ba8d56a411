"""Median times of cross-entropy loss + gradient (float32), fastsm beside the
NumPy reference, PyTorch (F.cross_entropy forward + backward) and numpy.copyto
of the same bytes, measured side by side: `python bench/ratios_cross_entropy.py`."""
import time

import numpy as np

import fastsm
import fastsm.reference as ref

try:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(2)
except ImportError:
    torch = None

SHAPES = [(64, 10), (4096, 1000), (1_000_000, 10), (256, 32000)]


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def contenders(n, c, rng):
    x = rng.normal(size=(n, c)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    work = x.copy()
    dst = np.empty_like(x)
    fns = {
        "fastsm loss+grad": lambda: fastsm.cross_entropy_with_grad(x, y),
        "fastsm in place": lambda: fastsm.cross_entropy_with_grad(work, y, out=work),
        "fastsm loss": lambda: fastsm.cross_entropy(x, y),
        "numpy reference": lambda: ref.cross_entropy_with_grad(x, y),
        # what the bandwidth bound allows: read the logits, write the gradient
        "numpy.copyto": lambda: np.copyto(dst, x),
    }
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_both():
            leaf = xt.detach().requires_grad_()
            F.cross_entropy(leaf, yt).backward()
            return leaf.grad

        def torch_loss():
            with torch.no_grad():
                return F.cross_entropy(xt, yt)
        fns["torch fwd+bwd"] = torch_both
        fns["torch loss"] = torch_loss
    return fns


def main():
    rng = np.random.default_rng(0)
    for n, c in SHAPES:
        fns = contenders(n, c, rng)
        repeats = max(5, min(200, int(2e8 // (n * c))))
        # Interleave rounds so that load from other processes hits all alike.
        samples = {k: [] for k in fns}
        for _ in range(5):
            for k, fn in fns.items():
                if k == "numpy reference" and n * c > 5e6 and len(samples[k]) >= 1:
                    continue
                samples[k].append(median_time(fn, repeats if k != "numpy reference" else 3))
        t = {k: float(np.median(v)) for k, v in samples.items()}
        both = t["fastsm loss+grad"]
        print(f"\n{n}x{c} (median of medians, ms)")
        for k, v in t.items():
            print(f"  {k:18s} {v * 1e3:10.4f}")
        print(f"  loss+grad: vs numpy {t['numpy reference'] / both:6.1f}x", end="")
        if "torch fwd+bwd" in t:
            print(f"   vs torch {t['torch fwd+bwd'] / both:6.1f}x"
                  f"   in place vs torch {t['torch fwd+bwd'] / t['fastsm in place']:6.1f}x"
                  f"   loss alone vs torch loss {t['torch loss'] / t['fastsm loss']:6.1f}x", end="")
        print(f"\n  copyto time / in-place time: {t['numpy.copyto'] / t['fastsm in place']:.2f}"
              f"   copyto time / loss+grad time: {t['numpy.copyto'] / both:.2f}")


if __name__ == "__main__":
    main()
