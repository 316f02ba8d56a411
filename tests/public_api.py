"""The public functions of fastsm as data, for the table-driven tests
(test_error_contract, test_hypothesis_sweep, test_concurrency, test_memory)
and the fuzz target (tests/fuzz/fuzz_api.py).

Each `Entry` says how to build valid keyword arguments for a shape, dtype and
axis, which arguments a call may write, which output `out=` receives, how
loose the comparison with the `fastsm.reference` twin may be, and the
function's own bad-input cases (argument, bad value, exception, message).

The cross-entropy and batch-norm entries are written from API.md ahead of
their kernels: an entry is live only when ``hasattr(fastsm, name)``, so they
join every table-driven test by themselves once those functions are merged.
"""
import copy
import dataclasses
import re
from typing import Callable, Optional, Tuple

import numpy as np

import fastsm

try:
    from numpy.exceptions import AxisError
except ImportError:  # numpy < 1.25
    from numpy import AxisError

DTYPES = (np.float16, np.float32, np.float64, np.int32, np.uint8, np.bool_)
LAYOUTS = ("C", "F", "strided", "negative", "swapped", "unaligned")

# Relative tolerance of a comparison with the reference, by result dtype, and
# an absolute floor for values near underflow.
RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
FLOOR = {np.dtype(np.float16): 1e-7, np.dtype(np.float32): 1e-36, np.dtype(np.float64): 1e-300}


@dataclasses.dataclass(frozen=True)
class Bad:
    """A bad argument: `value` (or value(kwargs) for one that depends on the
    valid arguments) in place of `arg` raises `error` with a message matching
    `match` (by default the argument's name)."""
    arg: str
    value: object
    error: object
    match: Optional[str] = "<arg>"
    id: str = ""
    also: Tuple[Tuple[str, object], ...] = ()  # other arguments the case needs set

    def bad_value(self, kwargs):
        return self.value(kwargs) if callable(self.value) else self.value

    def pattern(self):
        """The regex the message must match: the argument's name as a word."""
        return rf"\b{re.escape(self.arg)}\b" if self.match == "<arg>" else self.match


@dataclasses.dataclass(frozen=True, repr=False)
class Entry:
    name: str
    # make(rng, shape, dtype, axis, special) -> valid keyword arguments.  `shape`
    # is the main array's; `special` asks for NaN, +-inf and huge values.
    make: Callable
    axis_kind: Optional[str]          # "axes" (int, tuple or None), "int", or None
    arrays: Tuple[str, ...]           # arguments of the main shape (relaid out by tests)
    out_index: Optional[int] = -1     # which output `out=` holds (-1: the only one; None: no out)
    writes: Tuple[str, ...] = ()      # arguments the function updates in place
    inplace: Tuple[str, ...] = ()     # inputs that may serve as `out`
    min_ndim: int = 1
    min_side: int = 0
    scale: Callable = lambda kwargs, axis: 1.0  # absolute error scale of the results
    bad: Tuple[Bad, ...] = ()
    positional: Tuple[str, ...] = ()  # arguments passed by position (names API.md leaves open)
    # to_domain(kwargs, axis): the arguments moved into the function's domain,
    # where IEEE results do not depend on the order of a sum (see below).
    to_domain: Callable = lambda kwargs, axis: kwargs
    specials: bool = True             # NaN/inf inputs compared (False: a known gap, see report)

    def __repr__(self):
        return f"Entry({self.name!r})"

    @property
    def live(self):
        return hasattr(fastsm, self.name)

    @property
    def fast(self):
        return getattr(fastsm, self.name)

    @property
    def ref(self):
        import fastsm.reference as reference
        return getattr(reference, self.name)

    def has_out(self):
        return self.out_index is not None

    def call(self, fn, kwargs):
        """fn (the function or its reference twin) called with `kwargs`."""
        args = [kwargs[k] for k in self.positional]
        return fn(*args, **{k: v for k, v in kwargs.items() if k not in self.positional})

    def out_of(self, result):
        """The part of a result that `out=` holds."""
        return result if self.out_index == -1 else result[self.out_index]


# ---- values -------------------------------------------------------------------

def values(rng, shape, dtype, special=False):
    """Random values of `dtype`; with `special`, about one in six is NaN, +-inf
    or +-half the dtype's maximum."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        low = -4 if dtype.kind == "i" else 0
        return rng.integers(low, 5, shape).astype(dtype)
    x = rng.standard_normal(shape) * rng.choice([1.0, 4.0, 100.0])
    if special:
        big = float(np.finfo(dtype).max) / 2
        mask = rng.random(shape) < 1 / 6
        x[mask] = rng.choice([np.nan, np.inf, -np.inf, big, -big], int(mask.sum()))
    return x.astype(dtype)


def distribution(rng, shape, dtype, axis, special=False):
    """Rows that sum to one along `axis` (the softmax's output), or small
    integers for integer and bool dtypes (the formulas still apply)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "f":
        return values(rng, shape, dtype)
    with np.errstate(all="ignore"):
        x = values(rng, shape, np.float64, special)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True)) if x.size else x
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(dtype)


def finite_max(*arrays):
    """The largest finite magnitude among the arrays (0 if none)."""
    best = 0.0
    for a in arrays:
        a = np.abs(np.asarray(a, np.float64))
        a = a[np.isfinite(a)]
        if a.size:
            best = max(best, float(a.max()))
    return best


def axis_length(shape, axis):
    if axis is None or not shape:  # a scalar: one slice of one value along 0 or -1
        return int(np.prod(shape))
    if isinstance(axis, tuple):
        return int(np.prod([shape[a] for a in axis]))
    return shape[axis]


# ---- cases shared by many functions --------------------------------------------

def _out_of(kwargs, key):
    """The array `out` must match: `key` of the valid arguments."""
    return np.asarray(kwargs[key])


def array_cases(arg):
    """Bad values of an array argument."""
    return (
        Bad(arg, lambda kw: np.asarray(kw[arg]).astype(np.complex128), TypeError, id="complex"),
        Bad(arg, lambda kw: np.asarray(kw[arg]).astype(object), TypeError, id="object"),
        Bad(arg, lambda kw: np.full(np.shape(kw[arg]), "a"), TypeError, id="str"),
        Bad(arg, [[1.0, 2.0], [3.0]], (TypeError, ValueError), id="ragged"),
    )


def axis_cases(ndim_of, allow_tuple):
    cases = (
        Bad("axis", lambda kw: ndim_of(kw), AxisError, id="too-big"),
        Bad("axis", lambda kw: -ndim_of(kw) - 1, AxisError, id="too-negative"),
        Bad("axis", 1.0, TypeError, id="float"),
        Bad("axis", "1", TypeError, id="str"),
    )
    if allow_tuple:
        return cases + (
            Bad("axis", (0, 0), ValueError, "repeated axis", id="repeated"),
            Bad("axis", lambda kw: (0, ndim_of(kw)), AxisError, id="tuple-too-big"),
        )
    return cases + (
        Bad("axis", (0,), TypeError, id="tuple"),
        Bad("axis", None, TypeError, id="none"),
    )


def out_cases(like):
    """Bad `out` arrays, given like(kwargs) -> the array the result looks like."""
    def read_only(kw):
        a = np.zeros_like(like(kw))
        a.flags.writeable = False
        return a

    other = {np.dtype(np.float64): np.float32}
    return (
        Bad("out", lambda kw: np.zeros(like(kw).shape + (1,), like(kw).dtype), ValueError,
            id="shape"),
        Bad("out", lambda kw: np.zeros(like(kw).shape, other.get(like(kw).dtype, np.float64)),
            ValueError, id="dtype"),
        Bad("out", lambda kw: np.zeros(like(kw).shape, np.int64), ValueError, id="int"),
        Bad("out", read_only, ValueError, id="read-only"),
        Bad("out", lambda kw: like(kw).tolist(), TypeError, id="list"),
    )


def _ndim(key):
    return lambda kw: np.ndim(kw[key])


# ---- the softmax family ---------------------------------------------------------

def _make_unary(rng, shape, dtype, axis, special):
    return {"x": values(rng, shape, dtype, special), "axis": axis}


# The backward passes sum along the axis.  When a partial sum overflows, the
# result (inf or NaN) depends on the order of the additions, which differs
# between the kernels (vector lanes, FMA) and NumPy (pairwise): no order is
# right.  Their domain here: y in [0, 1] (logp <= 0), as softmax gives, and
# finite grads below max / (2 * size), so no partial sum can overflow; NaN
# and +-inf still come in as they are.

def _clip_finite(a, low, high):
    """The finite values of a float array clipped to [low, high]; NaN and
    +-inf, and arrays of other dtypes, as they are."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(a), np.clip(a, low, high), a).astype(a.dtype)


def _sum_safe(a):
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return a
    bound = float(np.finfo(a.dtype).max) / (2 * a.size)
    return _clip_finite(a, -bound, bound)


def _softmax_backward_domain(kw, axis):
    kw = dict(kw)
    kw["grad"] = _sum_safe(kw["grad"])
    y = np.asarray(kw["y"])
    if y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            kw["y"] = np.clip(np.abs(y), 0, 1).astype(y.dtype)
    return kw


def _log_softmax_backward_domain(kw, axis):
    kw = dict(kw)
    kw["grad"] = _sum_safe(kw["grad"])
    logp = np.asarray(kw["logp"])
    if logp.dtype.kind == "f":
        kw["logp"] = -np.abs(logp)
    return kw


def _product_safe(a, largest_factor, factors=2):
    """Finite values clipped so that products of `factors` of them and a
    factor up to `largest_factor` stay _sum_safe; NaN and +-inf as they are."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return a
    bound = (float(np.finfo(a.dtype).max) / (2 * a.size) / largest_factor) ** (1 / factors)
    return _clip_finite(a, -bound, bound)


def _bn_backward_domain(kw, axis):
    # dweight sums grad * (x - mean) * invstd, and the training dx takes
    # (x - mean) * invstd^2 * that sum / n: with invstd below 1e3 and every
    # factor bounded for a product of three, no intermediate can overflow,
    # however the kernel and the reference group the factors.
    kw = dict(kw)
    for key in ("grad", "x"):
        kw[key] = _product_safe(kw[key], 4e9, factors=3)
    kw["mean"] = _product_safe(kw["mean"], 4e9 * np.size(kw["x"]), factors=3)
    kw["invstd"] = _clip_finite(kw["invstd"], -1e3, 1e3)
    return kw


def _make_softmax_backward(rng, shape, dtype, axis, special):
    return _softmax_backward_domain({"grad": values(rng, shape, dtype, special),
                                     "y": distribution(rng, shape, dtype, axis, special),
                                     "axis": axis}, axis)


def _make_log_softmax_backward(rng, shape, dtype, axis, special):
    y = distribution(rng, shape, dtype, axis, special)
    if y.dtype.kind == "f":
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(y)
    return _log_softmax_backward_domain({"grad": values(rng, shape, dtype, special),
                                         "logp": y, "axis": axis}, axis)


def _log_softmax_scale(kw, axis):
    # x - max - log(sum): near 0 the error is absolute, in ulps of the terms.
    return 1.0 + 2 * finite_max(kw["x"])


def _softmax_backward_scale(kw, axis):
    # y * (grad - sum(grad * y)): the sum's error is n ulps of its largest term.
    n = axis_length(np.shape(kw["grad"]), kw["axis"])
    with np.errstate(all="ignore"):
        gy = np.asarray(kw["grad"], np.float64) * np.asarray(kw["y"], np.float64)
    return 1.0 + n * finite_max(kw["y"]) * finite_max(gy)


def _log_softmax_backward_scale(kw, axis):
    n = axis_length(np.shape(kw["grad"]), kw["axis"])
    with np.errstate(all="ignore"):
        p = np.exp(np.asarray(kw["logp"], np.float64))
    return 1.0 + n * finite_max(kw["grad"]) * max(1.0, finite_max(p))


def _result_like(*keys):
    """The result of the softmax family: the inputs' shape, the result dtype."""
    def like(kw):
        arrays = [np.asarray(kw[k]) for k in keys]
        dtype = np.result_type(*arrays)
        dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
        return np.zeros(arrays[0].shape, dtype)
    return like


def _shape_mismatch(key):
    return Bad(key, lambda kw: np.zeros(np.shape(kw[key]) + (2,)), ValueError,
               id="shape-mismatch")


SOFTMAX_FAMILY = [
    Entry("softmax", _make_unary, "axes", ("x",), inplace=("x",),
          bad=array_cases("x") + axis_cases(_ndim("x"), True) + out_cases(_result_like("x"))),
    Entry("log_softmax", _make_unary, "axes", ("x",), inplace=("x",), scale=_log_softmax_scale,
          bad=array_cases("x") + axis_cases(_ndim("x"), True) + out_cases(_result_like("x"))),
    Entry("hardmax", _make_unary, "int", ("x",), inplace=("x",),
          bad=array_cases("x") + axis_cases(_ndim("x"), False) + out_cases(_result_like("x"))),
    Entry("softmax_backward", _make_softmax_backward, "int", ("grad", "y"),
          inplace=("grad", "y"), scale=_softmax_backward_scale,
          to_domain=_softmax_backward_domain,
          bad=array_cases("grad") + array_cases("y") + (_shape_mismatch("y"),)
          + axis_cases(_ndim("grad"), False) + out_cases(_result_like("grad", "y"))),
    Entry("log_softmax_backward", _make_log_softmax_backward, "int", ("grad", "logp"),
          inplace=("grad", "logp"), scale=_log_softmax_backward_scale,
          to_domain=_log_softmax_backward_domain,
          bad=array_cases("grad") + array_cases("logp") + (_shape_mismatch("logp"),)
          + axis_cases(_ndim("grad"), False) + out_cases(_result_like("grad", "logp"))),
]


# ---- cross-entropy (API.md; live after the merge) --------------------------------

def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _make_cross_entropy(rng, shape, dtype, axis, special):
    axis %= len(shape)
    logits = values(rng, shape, dtype, special)
    c = shape[axis]
    index_shape = shape[:axis] + shape[axis + 1:]
    kw = {"logits": logits, "axis": axis,
          "reduction": str(rng.choice(["mean", "sum", "none"])),
          "label_smoothing": float(rng.choice([0.0, 0.0, 0.1, 1.0]))}
    ignore_index = -100
    if rng.random() < 0.2:
        ignore_index = kw["ignore_index"] = int(rng.integers(0, c))
    if rng.random() < 0.5:
        target = rng.integers(0, c, index_shape)
        target[rng.random(index_shape) < 0.2] = ignore_index
        kw["target"] = target
    else:
        kw["target"] = distribution(rng, shape, _float_dtype(dtype), axis)
    if rng.random() < 0.4:
        kw["weight"] = rng.uniform(0.1, 2.0, c).astype(_float_dtype(dtype))
    return kw


def _cross_entropy_scale(kw, axis):
    n = max(1, int(np.prod(np.shape(kw["logits"]))))
    return n * (1.0 + finite_max(kw["logits"])) * (1.0 + finite_max(kw.get("weight", 1.0)))


def _grad_like(kw):
    return np.zeros(np.shape(kw["logits"]), _float_dtype(np.asarray(kw["logits"]).dtype))


def _xent_cases(with_out):
    def index_target(kw):
        return np.zeros(np.delete(np.shape(kw["logits"]), kw["axis"]), np.int64)

    cases = array_cases("logits") + (
        Bad("target", lambda kw: np.zeros(np.shape(kw["logits"]), np.int64), ValueError,
            id="int-one-hot"),
        Bad("target", lambda kw: index_target(kw) + np.shape(kw["logits"])[kw["axis"]],
            ValueError, id="index-too-big"),
        Bad("target", lambda kw: index_target(kw) - 1, ValueError, id="negative-index"),
        Bad("target", lambda kw: index_target(kw).astype(np.complex128), TypeError,
            id="complex"),
        Bad("target", lambda kw: np.zeros(np.shape(kw["logits"]) + (2,)), ValueError,
            id="prob-shape"),
        Bad("weight", lambda kw: np.ones(np.shape(kw["logits"])[kw["axis"]] + 1), ValueError,
            id="shape"),
        Bad("reduction", "avg", ValueError, id="unknown"),
        Bad("label_smoothing", 1.5, ValueError, id="above-one"),
        Bad("label_smoothing", -0.1, ValueError, id="negative"),
    ) + axis_cases(_ndim("logits"), False)
    return cases + (out_cases(_grad_like) if with_out else ())


def _xent_entry(name, out_index):
    return Entry(name, _make_cross_entropy, "int", ("logits",), out_index=out_index,
                 inplace=("logits",) if out_index is not None else (), min_side=1,
                 scale=_cross_entropy_scale, bad=_xent_cases(out_index is not None))


def _make_sigmoid(rng, shape, dtype, axis, special):
    return {"x": values(rng, shape, dtype, special)}


def _make_bce(rng, shape, dtype, axis, special):
    kw = {"logits": values(rng, shape, dtype, special),
          "target": rng.random(shape).astype(_float_dtype(dtype)),
          "reduction": str(rng.choice(["mean", "sum", "none"]))}
    if rng.random() < 0.3:
        kw["weight"] = rng.uniform(0.1, 2.0, shape).astype(_float_dtype(dtype))
    if rng.random() < 0.3 and shape:
        kw["pos_weight"] = rng.uniform(0.1, 3.0, shape[-1]).astype(_float_dtype(dtype))
    return kw


def _bce_scale(kw, axis):
    n = max(1, int(np.prod(np.shape(kw["logits"]))))
    return n * (1.0 + finite_max(kw["logits"])) * (1.0 + finite_max(kw.get("weight", 1.0))) \
        * (1.0 + finite_max(kw.get("pos_weight", 1.0)))


def _bce_domain(kw, axis):
    """Finite targets clipped to [0, 1] (probabilities) and finite logits to
    +-1e300 (float64) or +-1e30: beyond, the intermediate products of the
    loss ((1 - t) * x, pos_weight * softplus) overflow where the loss does
    not, and the order of the operations, which the C kernel and the
    reference choose differently, decides between NaN, inf and the finite
    exact value.  Infinities and NaN stay."""
    big = 1e300 if np.asarray(kw["logits"]).dtype == np.float64 else 1e30
    return dict(kw, target=_clip_finite(kw["target"], 0, 1),
                logits=_clip_finite(kw["logits"], -big, big))


def _bce_cases(with_out):
    cases = array_cases("logits") + array_cases("target") + (
        Bad("target", lambda kw: np.zeros(np.shape(kw["logits"]) + (2,)), ValueError,
            id="shape"),
        Bad("reduction", "avg", ValueError, id="unknown"),
    )
    return cases + (out_cases(_grad_like) if with_out else ())


CROSS_ENTROPY = [
    _xent_entry("cross_entropy", None),
    _xent_entry("cross_entropy_grad", -1),
    _xent_entry("cross_entropy_with_grad", 1),
    Entry("sigmoid", _make_sigmoid, None, ("x",), inplace=("x",),
          bad=array_cases("x") + out_cases(lambda kw: np.zeros(np.shape(kw["x"]),
                                                               _float_dtype(kw["x"].dtype)))),
    Entry("binary_cross_entropy_with_logits", _make_bce, None, ("logits", "target"),
          out_index=None, scale=_bce_scale, to_domain=_bce_domain, bad=_bce_cases(False)),
    Entry("binary_cross_entropy_with_logits_grad", _make_bce, None, ("logits", "target"),
          inplace=("logits",), scale=_bce_scale, to_domain=_bce_domain, bad=_bce_cases(True)),
]


# ---- batch norm (API.md; live after the merge) -----------------------------------

def _stat_dtype(dtype):
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _reduced(shape, axis):
    return tuple(a for a in range(len(shape)) if a != axis)


def _bn_values(rng, shape, dtype, special):
    """`values` with the huge finite specials made infinities of their sign.
    The forward and backward can write over their input (out=x, out=grad),
    and then `_bn_scale` no longer sees the magnitude of the data: huge values
    that cancel in a mean would have no tolerance.  batch_norm_stats and
    merge_stats keep them."""
    x = values(rng, shape, dtype, special)
    if special and x.dtype.kind == "f":
        huge = np.abs(x) > np.finfo(x.dtype).max / 4
        x[huge] = np.copysign(np.inf, x[huge])
    return x


def _bn_forward_domain(kw, axis):
    # float64 data sums in float64: where the statistics' partial sums
    # overflow, what comes out depends on the order of the additions (the
    # kernel's against NumPy's pairwise ones), as in the backward passes.
    # float32 data sums in float64 and keeps its whole range.
    x = np.asarray(kw["x"])
    return dict(kw, x=_sum_safe(x)) if x.dtype == np.float64 else kw


def _make_bn_forward(rng, shape, dtype, axis, special):
    axis %= len(shape)
    c = shape[axis]
    count = int(np.prod(shape)) // max(c, 1)
    kw = {"x": _bn_values(rng, shape, dtype, special), "axis": axis,
          "training": bool(count > 1 and rng.random() < 0.7),
          "momentum": float(rng.choice([0.1, 0.0, 1.0, 0.5])),
          "eps": float(rng.choice([1e-5, 1e-3]))}
    sd = _stat_dtype(dtype)
    # Special values in the per-feature arrays too, in one draw of four.
    special_c = special and rng.random() < 0.25
    if rng.random() < 0.6:
        kw["weight"] = _bn_values(rng, c, sd, special_c)
        kw["bias"] = _bn_values(rng, c, sd, special_c)
    if rng.random() < 0.7 or not kw["training"]:
        kw["running_mean"] = _bn_values(rng, c, sd, special_c)
        var = rng.uniform(0.5, 2.0, c)
        if special_c:
            var = np.where(rng.random(c) < 0.25, rng.choice([np.nan, np.inf, -np.inf, 0.0], c),
                           var)
        kw["running_var"] = var.astype(sd)
    return kw


def _make_bn_backward(rng, shape, dtype, axis, special):
    axis %= len(shape)
    x = _bn_values(rng, shape, dtype, special)
    xs = x.astype(np.float64)
    red = _reduced(shape, axis)
    with np.errstate(all="ignore"):
        mean = xs.mean(axis=red)
        invstd = 1 / np.sqrt(xs.var(axis=red) + 1e-5)
    sd = _stat_dtype(dtype)
    return {"grad": _bn_values(rng, shape, dtype, special), "x": x,
            "weight": rng.standard_normal(shape[axis]).astype(sd) if rng.random() < 0.6 else None,
            "mean": mean.astype(sd), "invstd": invstd.astype(sd), "axis": axis,
            "training": bool(rng.random() < 0.7)}


def _bn_scale(kw, axis):
    n = max(1, int(np.prod(np.shape(kw["x"]))))
    return n * (1.0 + finite_max(*[v for v in kw.values() if isinstance(v, np.ndarray)]))


def _bn_backward_scale(kw, axis):
    """Per output (dx, dweight, dbias): the size of the terms its sums add,
    which can cancel to far less than their rounding (an FMA keeps what a
    product lost)."""
    def finite(a):
        a = np.abs(np.asarray(a, np.float64))
        return np.where(np.isfinite(a), a, 0.0)
    g, x = finite(kw["grad"]), finite(kw["x"])
    axis = kw["axis"] % g.ndim  # the call's (the harness's `axis` may be an odd one)
    shape = [1] * g.ndim
    shape[axis] = -1
    mean, invstd = finite(kw["mean"]).reshape(shape), finite(kw["invstd"]).reshape(shape)
    weight = 1.0 if kw["weight"] is None else finite(kw["weight"]).reshape(shape)
    n = max(1, g.size // max(1, g.shape[axis]))
    with np.errstate(over="ignore", invalid="ignore"):
        dweight = 1.0 + float(np.sum(g * (x + mean) * invstd))
        dbias = 1.0 + float(np.sum(g))
        dx = n * (1.0 + float(np.max(weight * invstd * (g + (x + mean) * invstd * dweight / n),
                                     initial=0.0)))
    return dx, dweight, dbias


def _make_bn_stats(rng, shape, dtype, axis, special):
    return {"x": values(rng, shape, dtype, special), "axis": axis}


def _make_merge_stats(rng, shape, dtype, axis, special):
    axis %= len(shape)
    shards = []
    for _ in range(int(rng.integers(1, 4))):
        part = values(rng, (int(rng.integers(0, 5)), shape[axis]), np.float64, special)
        mean = part.mean(axis=0) if len(part) else np.zeros(shape[axis])
        m2 = ((part - mean) ** 2).sum(axis=0)
        shards.append((len(part), mean, m2))
    return {"stats": shards}


def _feature_cases(key):
    def feature_count(kw):
        return np.shape(kw[key])[kw["axis"]]

    def read_only(kw):
        a = np.zeros(feature_count(kw), np.float32)
        a.flags.writeable = False
        return a

    return (
        Bad("weight", lambda kw: np.ones(feature_count(kw) + 1), ValueError, id="shape"),
        Bad("bias", lambda kw: np.ones(feature_count(kw) + 1), ValueError, id="shape"),
        # Training updates the running statistics in place: writable floating arrays
        # (API.md names no exception for an integer one); inference only reads them.
        Bad("running_mean", read_only, ValueError, id="read-only", also=(("training", True),)),
        Bad("running_mean", lambda kw: np.zeros(feature_count(kw) + 1), ValueError,
            id="shape"),
        Bad("running_var", lambda kw: np.ones(feature_count(kw), np.int64),
            (TypeError, ValueError), id="int", also=(("training", True),)),
        Bad("momentum", 1.5, ValueError, id="above-one"),
        Bad("momentum", -0.5, ValueError, id="negative"),
        # One value per feature in training mode (PyTorch's message names no argument).
        Bad("x", lambda kw: np.ones([feature_count(kw) if a == kw["axis"] % np.ndim(kw[key])
                                     else 1 for a in range(np.ndim(kw[key]))]),
            ValueError, None, id="one-per-feature", also=(("training", True),)),
    )


# Special values follow PyTorch: a feature holding +inf (or -inf) has that
# mean and NaN variance, one holding NaN or both infinities NaN for both.
BATCH_NORM = [
    Entry("batch_norm_forward", _make_bn_forward, "int", ("x",), out_index=0,
          writes=("running_mean", "running_var"), inplace=("x",), min_ndim=2, min_side=1,
          scale=_bn_scale, to_domain=_bn_forward_domain,
          bad=array_cases("x") + axis_cases(_ndim("x"), False) + _feature_cases("x")
          + out_cases(lambda kw: np.zeros(np.shape(kw["x"]), _float_dtype(kw["x"].dtype)))),
    Entry("batch_norm_backward", _make_bn_backward, "int", ("grad", "x"), out_index=0,
          inplace=("grad",), min_ndim=2, min_side=1, scale=_bn_backward_scale,
          to_domain=_bn_backward_domain,
          bad=array_cases("grad") + array_cases("x") + (_shape_mismatch("x"),)
          + axis_cases(_ndim("x"), False)
          + (Bad("mean", lambda kw: np.zeros(np.size(kw["mean"]) + 1), ValueError, id="shape"),
             Bad("invstd", lambda kw: np.zeros(np.size(kw["invstd"]) + 1), ValueError,
                 id="shape"))
          + out_cases(lambda kw: np.zeros(np.shape(kw["x"]), _float_dtype(kw["x"].dtype)))),
    Entry("batch_norm_stats", _make_bn_stats, "int", ("x",), out_index=None, min_ndim=2,
          min_side=1, scale=_bn_scale,
          bad=array_cases("x") + axis_cases(_ndim("x"), False)),
    Entry("merge_stats", _make_merge_stats, "int", (), out_index=None, min_ndim=2, min_side=1,
          positional=("stats",),
          scale=lambda kw, axis: 1.0 + sum(finite_max(m, m2) * max(c, 1)
                                           for c, m, m2 in kw["stats"]),
          bad=(Bad("stats", lambda kw: [(kw["stats"][0][0], kw["stats"][0][1],
                                         np.zeros(np.size(kw["stats"][0][2]) + 1))],
                   ValueError, None, id="m2-shape"),
               Bad("stats", lambda kw: [(-1,) + tuple(kw["stats"][0][1:])], ValueError, None,
                   id="negative-count"))),
]


# ---- threads --------------------------------------------------------------------

THREAD_SETTERS = ("set_num_threads", "threads")
THREAD_BAD = (
    Bad("n", 0, ValueError, id="zero"),
    Bad("n", -3, ValueError, id="negative"),
    Bad("n", 2.0, TypeError, id="float"),
    Bad("n", "2", TypeError, id="str"),
    Bad("n", None, TypeError, id="none"),
)


ENTRIES = SOFTMAX_FAMILY + CROSS_ENTROPY + BATCH_NORM
LIVE = [e for e in ENTRIES if e.live]
BY_NAME = {e.name: e for e in ENTRIES}


# ---- comparing with the reference -------------------------------------------------

def relayout(a, layout):
    """The values of `a` in another memory layout (one of LAYOUTS)."""
    if layout == "C" or not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "swapped":  # the other byte order, as data read from a file may be
        return a.astype(a.dtype.newbyteorder())
    if layout == "unaligned":  # one byte past an element boundary
        view = np.frombuffer(np.zeros(a.nbytes + 1, np.uint8), a.dtype, a.size, 1)
        view = view.reshape(a.shape)
        view.flags.writeable = True
    elif layout == "strided":
        padded = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        view = padded[tuple(slice(None, None, 2) for _ in a.shape)]
    else:  # "negative"
        view = np.empty_like(a)[tuple(slice(None, None, -1) for _ in a.shape)]
    view[...] = a
    return view


def assert_agree(entry, got, want, kwargs, axis, scale=None):
    """fastsm's result `got` equals the reference's `want`: same types, shapes
    and dtypes (byte order aside: an `out=` keeps its own), NaN and inf in the
    same places, the rest within the result dtype's tolerance (absolute part
    scaled by entry.scale, or by its part for this output when it gives one
    scale per output)."""
    if scale is None:
        scale = entry.scale(kwargs, axis)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), (type(got), type(want))
        parts = scale if isinstance(scale, tuple) else (scale,) * len(want)
        for g, w, s in zip(got, want, parts):
            assert_agree(entry, g, w, kwargs, axis, s)
        return
    if isinstance(scale, tuple):  # an array the function updates: the largest
        scale = max(scale)
    if isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        assert got == want
        return
    got_a, want_a = np.asarray(got), np.asarray(want)
    assert got_a.shape == want_a.shape, (got_a.shape, want_a.shape)
    dtype = want_a.dtype.newbyteorder("=")
    assert got_a.dtype.newbyteorder("=") == dtype, (got_a.dtype, want_a.dtype)
    rtol = RTOL.get(dtype, 0.0)
    atol = rtol * scale + FLOOR.get(dtype, 0.0)
    np.testing.assert_allclose(got_a.astype(np.float64), want_a.astype(np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


def clone(kwargs):
    """A deep copy of the arguments that keeps aliasing (out=x stays out is x)
    and read-only flags (which copy.deepcopy drops)."""
    memo = {}
    copied = copy.deepcopy(kwargs, memo)

    def fix(original, twin):
        if isinstance(original, np.ndarray):
            twin.flags.writeable = original.flags.writeable
        elif isinstance(original, (list, tuple)):
            for o, t in zip(original, twin):
                fix(o, t)

    for key, value in kwargs.items():
        fix(value, copied[key])
    return copied
