"""Benchmarks of fastsm against NumPy, SciPy, PyTorch, ONNX Runtime and JAX.

Run ``python -m fastsm.bench --help`` (or ``fastsm-bench``).  The modules:

- `cases`: the registry of operations, their inputs and each library's way to run them;
- `libraries`: importing, configuring and calling each library;
- `timing`: timing a callable, and the copy bandwidth;
- `worker`: measuring one library, in its own process;
- `run`: a whole run and its JSON document;
- `report`: tables and the ``--check`` rule;
- `plot`: the ``--plot`` figure.
"""
from ._cli import main

__all__ = ["main"]
