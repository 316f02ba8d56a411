"""``--plot FILE.png``: one panel per operation, a bar per library and shape,
and the copy of the same bytes drawn as the limit (needs matplotlib)."""
import math

from .cases import CASES, shape_label
from .libraries import LIBRARIES


def plot(doc, path, metric="gbps"):
    """Save the figure of a run to `path`.

    Parameters
    ----------
    doc : dict
        A run, as `run_benchmark` returns it.
    path : str
        Where to save (the format follows the extension).
    metric : {"gbps", "time"}
        GB/s (higher is better) or the median time of a call (lower is better).
    """
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    measured = [r for r in doc["results"] if r["status"] == "ok"]
    ops = [op for op in CASES if any(r["op"] == op for r in measured)]
    libraries = [lib for lib in LIBRARIES if any(r["library"] == lib for r in measured)]
    shapes = list(dict.fromkeys(tuple(r["shape"]) for r in measured))
    limit = {b["bytes"]: b for b in doc["bandwidth"]}
    if not ops:
        raise ValueError("nothing was measured: no plot to draw")

    columns = min(3, len(ops))
    rows = math.ceil(len(ops) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.8 * rows), squeeze=False)
    width = 0.8 / len(libraries)
    colors = {lib: f"C{i}" for i, lib in enumerate(libraries)}
    for ax, op in zip(axes.flat, ops):
        records = {(tuple(r["shape"]), r["library"]): r for r in measured if r["op"] == op}
        present = [s for s in shapes if any((s, lib) in records for lib in libraries)]
        for i, shape in enumerate(present):
            copy = None  # every library moves the same bytes at one shape
            for j, lib in enumerate(libraries):
                r = records.get((shape, lib))
                if r is None:
                    continue
                value = r["gbps"] if metric == "gbps" else r["median_s"]
                ax.bar(i - 0.4 + (j + 0.5) * width, value, width, color=colors[lib])
                copy = limit.get(r["bytes"])
            if copy is not None:
                bound = copy["gbps"] if metric == "gbps" else copy["median_s"]
                ax.hlines(bound, i - 0.45, i + 0.45, colors="black", linestyles="--")
        ax.set_xticks(range(len(present)), [shape_label(s) for s in present])
        ax.set_yscale("log")
        ax.set_title(op)
        ax.set_ylabel("GB/s (higher is better)" if metric == "gbps"
                      else "seconds per call (lower is better)")
    for ax in list(axes.flat)[len(ops):]:
        ax.set_visible(False)
    handles = [Patch(color=colors[lib], label=lib) for lib in libraries]
    handles.append(Line2D([], [], color="black", linestyle="--", label="copy of the same bytes"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    meta = doc["metadata"]
    fig.suptitle(f"fastsm benchmark: {meta['processor']}, {meta['threads']} thread(s), "
                 f"{meta['dtype']}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
