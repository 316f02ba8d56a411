"""Results as people and CI read them: a terminal table, a Markdown table,
and the check that fastsm is never slower than the NumPy reference."""
from .cases import CASES, shape_label
from .libraries import LIBRARIES
from .timing import samples_per_round

COLUMNS = ("operation", "shape", "library", "median", "min", "max", "GB/s",
           "% of copy", "vs numpy")


def _time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _ratio(value, fmt):
    return "" if value is None else fmt.format(value)


def _ordered(results):
    """Measured records by operation, shape, then library, in registry order."""
    rank_op = {name: i for i, name in enumerate(CASES)}
    rank_lib = {name: i for i, name in enumerate(LIBRARIES)}
    shapes = []
    for r in results:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    return sorted((r for r in results if r["status"] in ("ok", "error")),
                  key=lambda r: (rank_op.get(r["op"], len(rank_op)), shapes.index(r["shape"]),
                                 rank_lib.get(r["library"], len(rank_lib))))


def rows(doc):
    """Table rows (tuples of strings, one per COLUMNS entry); each (operation,
    shape) group ends with the copy of the same bytes, the limit."""
    copies = {b["bytes"]: b for b in doc["bandwidth"]}
    out = []
    records = _ordered(doc["results"])
    for i, r in enumerate(records):
        label = (r["op"], shape_label(r["shape"]))
        if r["status"] == "error":
            out.append(label + (r["library"], "error", "", "", "", "", ""))
        else:
            flag = "" if r.get("matches_reference", True) else " (wrong result)"
            out.append(label + (r["library"] + flag, _time(r["median_s"]), _time(r["min_s"]),
                                _time(r["max_s"]), f"{r['gbps']:.3g}",
                                _ratio(r["fraction_of_copy"], "{:.0%}"),
                                _ratio(r["speedup_vs_numpy"], "{:.2f}x")))
        group = [q for q in records if (q["op"], q["shape"]) == (r["op"], r["shape"])]
        copy = copies.get(next((q["bytes"] for q in group if "bytes" in q), None))
        if r is group[-1] and copy is not None:
            out.append(label + ("copy (limit)", _time(copy["median_s"]), "", "",
                                f"{copy['gbps']:.3g}", "100%", ""))
    return out


def notes(doc):
    """Lines saying which libraries and cases the table leaves out, and why."""
    lines = [f"{name}: {info['note']}" for name, info in doc["libraries"].items()
             if info["status"] != "ok"]
    missing = {}
    for r in doc["results"]:
        if r["status"] == "unavailable":
            # "X has no f" says no more than the operation's name; anything
            # longer ("... kernel for float64") is kept.
            detail = r["note"].split(" has no ", 1)[-1]
            entry = r["op"] if " " not in detail else f"{r['op']} ({detail})"
            ops = missing.setdefault(r["library"], [])
            if entry not in ops:
                ops.append(entry)
        elif r["status"] == "error":
            lines.append(f"{r['library']} {r['op']} {shape_label(r['shape'])}: {r['note']}")
    lines += [f"{library} has no {', '.join(ops)}" for library, ops in missing.items()]
    return lines


def header(doc):
    meta = doc["metadata"]
    versions = ", ".join(f"{name} {info['version']}" for name, info in doc["libraries"].items()
                         if info["status"] == "ok")
    return [f"{meta['processor']}, {meta['usable_cores']} usable cores; "
            f"{meta['threads']} thread(s), {meta['dtype']}, "
            f"median of {_samples(meta)} samples{_in_rounds(meta)}; {meta['created']}",
            versions,
            "GB/s: the least bytes the operation must move / median time; "
            "% of copy: of the GB/s of a copy of the same bytes; "
            "vs numpy: the NumPy reference's time / this time."]


def _samples(meta):
    """The samples behind each median: the repeats, rounded up to whole rounds."""
    rounds = meta.get("rounds", 1)
    return samples_per_round(meta["repeats"], rounds) * rounds


def _in_rounds(meta):
    rounds = meta.get("rounds", 1)
    return f" in {rounds} rounds" if rounds > 1 else ""


def text_table(doc):
    table = [COLUMNS] + rows(doc)
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    right = {i for i, c in enumerate(COLUMNS) if c not in ("operation", "shape", "library")}

    def line(row):
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

    out = header(doc) + [""] + [line(table[0]), line(tuple("-" * w for w in widths))]
    previous = None
    for row in table[1:]:
        if previous is not None and row[:2] != previous:
            out.append("")
        out.append(line(row))
        previous = row[:2]
    return "\n".join(out + [""] + [f"not measured: {n}" for n in notes(doc)]) + "\n"


def markdown_table(doc):
    out = [f"_{line}_  " for line in header(doc)] + [""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join("---:" if c not in ("operation", "shape", "library") else "---"
                              for c in COLUMNS) + "|")
    for row in rows(doc):
        out.append("| " + " | ".join(row) + " |")
    listed = notes(doc)
    if listed:
        out += ["", "Not measured:", ""] + [f"- {n}" for n in listed]
    return "\n".join(out) + "\n"


def check(doc):
    """Where fastsm is slower than (or disagrees with) the NumPy reference.

    Returns
    -------
    failures : list of str
    compared : int
        How many (operation, shape) pairs had both measured.
    """
    by_key = {(r["op"], tuple(r["shape"]), r["library"]): r for r in doc["results"]}
    failures, compared = [], 0
    for (op, shape, library), r in by_key.items():
        baseline = by_key.get((op, shape, "numpy"))
        if library != "fastsm" or r["status"] != "ok" or not baseline \
                or baseline["status"] != "ok":
            continue
        compared += 1
        where = f"{op} {shape_label(shape)}"
        if r["median_s"] > baseline["median_s"]:
            failures.append(f"{where}: fastsm {_time(r['median_s'])} is slower than "
                            f"the NumPy reference {_time(baseline['median_s'])}")
        if r.get("matches_reference") is False:
            failures.append(f"{where}: fastsm's result differs from the NumPy reference")
    return failures, compared
