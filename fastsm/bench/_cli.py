"""``python -m fastsm.bench`` and ``fastsm-bench``: the command line."""
import argparse
import json
import os
import sys

from . import report
from .cases import CASES, FAMILIES, SIZES, parse_shape, select, shape_label
from .libraries import LIBRARIES
from .run import SCHEMA, run_benchmark

DEFAULT_REPEATS = 20
DEFAULT_ROUNDS = 3
SEED = 20261125


def _names(text):
    return [n.strip() for n in text.split(",") if n.strip()]


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _shape(text):
    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser():
    from .._threads import get_num_threads
    parser = argparse.ArgumentParser(
        prog="python -m fastsm.bench",
        description="Time fastsm's operations against the NumPy reference and, where "
                    "installed, SciPy, PyTorch, ONNX Runtime and JAX, each library in its "
                    "own process, and compare them with the copy bandwidth of this machine.")
    parser.add_argument("--ops", type=_names, default=list(CASES), metavar="LIST",
                        help="comma-separated operations or families "
                             f"({', '.join(FAMILIES)}); default: all (see --list)")
    parser.add_argument("--libs", type=_names, default=list(LIBRARIES), metavar="LIST",
                        help=f"comma-separated libraries; default: {','.join(LIBRARIES)}")
    parser.add_argument("--sizes", type=_names, default=None, metavar="LIST",
                        help="comma-separated presets: " + "; ".join(
                            f"{k} = {', '.join(shape_label(s) for s in v)}"
                            for k, v in SIZES.items()) + " (default: all, unless --shape)")
    parser.add_argument("--shape", type=_shape, action="append", default=[],
                        metavar="RxC", help="a custom shape such as 8192x512 (repeatable); "
                        "batch norm reads it as (N, C, ...)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=_positive, default=get_num_threads(),
                        help="threads for every library (default: the usable cores, %(default)s)")
    parser.add_argument("--repeats", type=_positive, default=DEFAULT_REPEATS,
                        help="timed samples per case (default %(default)s)")
    parser.add_argument("--rounds", type=_positive, default=DEFAULT_ROUNDS,
                        help="times the libraries take turns, the samples split among "
                             "them, so that a slow spell of a shared machine weighs on "
                             "every library alike (default %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="write every result and the machine's "
                        "description as JSON")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown (for a README)")
    parser.add_argument("--plot", metavar="FILE.png", help="save a figure (needs matplotlib)")
    parser.add_argument("--plot-metric", choices=("gbps", "time"), default="gbps",
                        help="what the figure shows (default GB/s)")
    parser.add_argument("--check", action="store_true",
                        help="exit with 1 when fastsm is slower than the NumPy reference on "
                             "any measured case (or disagrees with it)")
    parser.add_argument("--from-json", metavar="FILE",
                        help="report a run saved with --json instead of measuring")
    parser.add_argument("--list", action="store_true",
                        help="list operations, families and libraries, then exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def parse_args(argv=None):
    """The parsed options, with `ops`, `libs` and the shapes checked and resolved.

    Returns
    -------
    argparse.Namespace
        With ``cases`` (names) and ``shapes`` (tuples) added.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.cases = select(args.ops)
    except ValueError as exc:
        parser.error(str(exc))
    unknown = [lib for lib in args.libs if lib not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries {', '.join(unknown)}; choose from "
                     f"{', '.join(LIBRARIES)}")
    sizes = args.sizes if args.sizes is not None else ([] if args.shape else list(SIZES))
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    args.shapes = list(dict.fromkeys([s for name in sizes for s in SIZES[name]] + args.shape))
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            # checked now: a run of many minutes must not end in a traceback
            parser.error(f"{option} {path}: {folder} is not a writable directory")
    return args


class ProgressBar:
    """A one-line progress bar on a terminal (stderr); silent elsewhere."""

    def __init__(self, total, stream=sys.stderr, width=30):
        self.total, self.stream, self.width, self.done = total, stream, width, 0
        self.enabled = total > 0 and stream.isatty()

    def __call__(self, record):
        self.done += 1
        if not self.enabled:
            return
        filled = self.width * self.done // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{self.done}/{self.total} {record['library']} {record['op']} "
                          f"{shape_label(record['shape'])}\033[K")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")


def _listing():
    lines = ["operations (family: names):"]
    lines += [f"  {family}: {', '.join(names)}" for family, names in FAMILIES.items()]
    lines.append("libraries and the operations they have:")
    lines += [f"  {lib}: {', '.join(n for n, c in CASES.items() if lib in c.impls)}"
              for lib in LIBRARIES]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run the command line; returns the exit code."""
    if argv is None:
        argv = sys.argv[1:]
    args = parse_args(argv)
    if args.worker:
        from .worker import serve
        return serve()
    if args.list:
        sys.stdout.write(_listing())
        return 0
    if args.from_json:
        try:
            with open(args.from_json) as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
            sys.stderr.write(f"cannot read {args.from_json}: {exc}\n")
            return 2
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            sys.stderr.write(f"{args.from_json} is not a {SCHEMA} file\n")
            return 2
    else:
        config = {"cases": args.cases, "libraries": args.libs, "shapes": args.shapes,
                  "dtype": args.dtype, "threads": args.threads, "repeats": args.repeats,
                  "rounds": args.rounds, "seed": SEED, "argv": list(argv)}
        bar = ProgressBar(len(args.cases) * len(args.shapes) * len(args.libs) * args.rounds)
        try:
            doc = run_benchmark(config, progress=bar)
        finally:
            bar.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    sys.stdout.write(report.markdown_table(doc) if args.markdown else report.text_table(doc))
    if args.plot:
        from .plot import plot
        try:
            plot(doc, args.plot, args.plot_metric)
        except ImportError:
            sys.stderr.write("--plot needs matplotlib (pip install matplotlib)\n")
            return 2
    if args.check:
        return _check(doc)
    return 0


def _check(doc):
    failures, compared = report.check(doc)
    for failure in failures:
        sys.stderr.write(f"check failed: {failure}\n")
    if compared == 0:
        sys.stderr.write("check failed: no case had both fastsm and the NumPy reference "
                         "measured\n")
        return 1
    if not failures:
        sys.stderr.write(f"check passed: fastsm is at least as fast as the NumPy reference "
                         f"in all {compared} cases\n")
    return 1 if failures else 0
