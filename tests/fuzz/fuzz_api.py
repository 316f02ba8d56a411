"""Atheris fuzz target: fastsm against fastsm.reference on inputs decoded from
the fuzzer's bytes.

The bytes choose a public function (tests/public_api.py), a shape, dtype,
axis, layout, `out=` form and thread count; then the values (raw floats, so
NaN, +-inf, huge and subnormal ones come up) and, sometimes, one argument
replaced by something odd (a list, a scalar, a 0-d or complex array, a wrong
shape, a stray axis or option).  The check: both calls raise the same
exception type, or both return results that agree (per-dtype tolerances, NaN
in the same places) and no input other than `out` changed.

    python tests/fuzz/fuzz_api.py -atheris_runs=20000 -len_control=0 -max_len=2048  # CI
    python tests/fuzz/fuzz_api.py -max_total_time=3600 CORPUS  # long; see README.md
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

with atheris.instrument_imports(include=["fastsm", "public_api"]):
    import numpy as np

    import fastsm
    import fastsm.reference  # noqa: F401  (entry.ref imports it; instrument it here)
    from public_api import DTYPES, LAYOUTS, LIVE, assert_agree, clone, relayout

LONG_SIDES = [1, 7, 8, 9, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 257, 1000]
ODD_DTYPES = [np.complex64, object, np.int64, np.float16]


def decode_shape(fdp, entry):
    ndim = fdp.ConsumeIntInRange(0 if fdp.ConsumeProbability() < 0.05 else entry.min_ndim, 4)
    shape = [fdp.ConsumeIntInRange(entry.min_side, 6) for _ in range(ndim)]
    if ndim and fdp.ConsumeBool():
        shape[fdp.ConsumeIntInRange(0, ndim - 1)] = fdp.PickValueInList(LONG_SIDES)
    return tuple(shape)


def decode_axis(fdp, entry, ndim):
    if entry.axis_kind is None:
        return None
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice < 6 or ndim == 0:
        return fdp.ConsumeIntInRange(-ndim - 1, ndim) if ndim else fdp.ConsumeIntInRange(-1, 1)
    if choice < 8:
        return tuple(fdp.ConsumeIntInRange(-ndim - 1, ndim)
                     for _ in range(fdp.ConsumeIntInRange(0, ndim)))
    return None


def fill_values(fdp, a, specials):
    """Overwrite a float array's values with floats from the bytes (only
    moderate finite ones for an entry whose specials are a known gap)."""
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.size == 0:
        return a
    count = min(a.size, 4096)
    raw = (fdp.ConsumeFloatList(count) if specials
           else fdp.ConsumeFloatListInRange(count, -1e4, 1e4))
    if raw:
        with np.errstate(over="ignore", invalid="ignore"):
            flat = np.resize(np.array(raw, np.float64), a.size).astype(a.dtype)
        a[...] = flat.reshape(a.shape)
    return a


def odd_value(fdp, value):
    """Something a careless caller might pass instead of `value`."""
    kind = fdp.ConsumeIntInRange(0, 10)
    arr = value if isinstance(value, np.ndarray) else None
    if kind == 0:
        return fdp.ConsumeInt(2)
    if kind == 1:
        return fdp.ConsumeFloat()
    if kind == 2:
        return None
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(4)
    if kind == 4:
        return tuple(fdp.ConsumeIntInRange(-3, 3) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    if arr is None:
        return fdp.ConsumeBool()
    if kind == 5:
        return arr.tolist()
    if kind == 6:
        return arr.reshape(-1)[:1].reshape(()) if arr.size else np.float64(0.5)
    if kind == 7:
        return arr.astype(fdp.PickValueInList(ODD_DTYPES))
    if kind == 8:
        return arr[..., :-1] if arr.ndim and arr.shape[-1] else arr[None]
    if kind == 9:
        ro = arr.copy()
        ro.flags.writeable = False
        return ro
    return arr.T


def outcome(fn):
    try:
        return fn(), None
    except Exception as exc:  # compared by type
        return None, exc


def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    entry = LIVE[fdp.ConsumeIntInRange(0, len(LIVE) - 1)]
    shape = decode_shape(fdp, entry)
    dtype = np.dtype(fdp.PickValueInList(list(DTYPES)))
    axis = decode_axis(fdp, entry, len(shape))
    layout = fdp.PickValueInList(list(LAYOUTS))
    seed = fdp.ConsumeIntInRange(0, 2**31)
    try:  # valid arguments of this structure, as the tests build them
        with np.errstate(all="ignore"):
            kwargs = entry.make(np.random.default_rng(seed), shape, dtype,
                                axis if isinstance(axis, int) else -1, False)
    except Exception:  # a structure the generator cannot fill (a 0-d slice, say)
        return
    if entry.axis_kind:
        kwargs["axis"] = axis
    for k in entry.arrays:
        kwargs[k] = fill_values(fdp, kwargs[k], entry.specials)
    with np.errstate(all="ignore"):
        kwargs = entry.to_domain(kwargs, axis)
    for k in entry.arrays:
        kwargs[k] = relayout(kwargs[k], layout)

    if fdp.ConsumeProbability() < 0.15:  # one odd argument
        keys = sorted(kwargs)
        key = keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]
        kwargs[key] = odd_value(fdp, kwargs[key])

    ref_kwargs = clone(kwargs)
    want, ref_error = outcome(lambda: entry.call(entry.ref, ref_kwargs))

    out_form = fdp.ConsumeIntInRange(0, 3) if entry.has_out() and ref_error is None else 0
    if out_form:
        like = np.asarray(entry.out_of(want))
        if out_form == 1:
            kwargs["out"] = relayout(np.zeros_like(like), fdp.PickValueInList(list(LAYOUTS)))
        elif out_form == 2:
            kwargs["out"] = odd_value(fdp, np.zeros_like(like))
        else:
            same = [k for k in entry.inplace if isinstance(kwargs[k], np.ndarray)
                    and kwargs[k].dtype == like.dtype and kwargs[k].flags.writeable]
            if same:
                kwargs["out"] = kwargs[same[0]]
        ref_kwargs = clone(kwargs)
        want, ref_error = outcome(lambda: entry.call(entry.ref, ref_kwargs))

    out = kwargs.get("out")
    kept = {k: v.copy() for k, v in kwargs.items() if isinstance(v, np.ndarray)
            and v is not out and k not in entry.writes}
    with fastsm.threads(fdp.ConsumeIntInRange(1, 4)):
        got, error = outcome(lambda: entry.call(entry.fast, kwargs))

    if type(error) is not type(ref_error):
        raise AssertionError(f"{entry.name}: fastsm gave {error!r}, "
                             f"the reference {ref_error!r}") from (error or ref_error)
    if error is None:
        with np.errstate(all="ignore"):
            assert_agree(entry, got, want, kwargs, axis)
        if out is not None:
            assert entry.out_of(got) is out
    for k, before in kept.items():
        np.testing.assert_array_equal(kwargs[k], before, err_msg=f"{entry.name}: {k} changed")


def main():
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
