"""The run summary for Snakemake's report (`snakemake --report report.html`)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..util import atomic_open, json_table


def summary_rows(json_dir: str | os.PathLike) -> list[tuple[str, str, int]]:
    """(section, item, count) rows: files by status, skipped entries, set sizes,
    copies by kind and method, related tables' sizes, families and the curator's
    decisions."""
    # each table is parsed one row at a time (1M files)
    status: Counter = Counter()
    errors: Counter = Counter()
    blank = 0
    for f in json_table(json_dir, "files"):
        status[f["status"]] += 1
        blank += bool(f.get("blank"))
        if f["status"] == "error":
            errors[f["error"]] += 1
    rows: list[tuple[str, str, int]] = [("files", "image files", sum(status.values()))]
    for st, n in sorted(status.items()):
        rows.append(("files", f"status {st}", n))
    rows.append(("files", "blank", blank))
    skipped = sum(1 for _ in json_table(json_dir, "skipped_files"))
    rows.append(("files", "skipped (not images)", skipped))
    for r in json_table(json_dir, "identical_list_stat"):
        rows.append(("identical sets", f"of {r['set_size']} files", r["set_count"]))
    sizes = Counter(r["same_pixels_set_id"] for r in json_table(json_dir, "same_pixels_list"))
    for size, n in sorted(Counter(sizes.values()).items()):
        rows.append(("same-pixel sets", f"of {size} files", n))
    kinds: Counter = Counter()
    methods: Counter = Counter()
    for p in json_table(json_dir, "copy_pairs"):
        kinds[p["kind"]] += 1
        methods[p.get("method")] += 1
    for kind, n in sorted(kinds.items()):
        rows.append(("copies by kind", kind, n))
    for method, n in sorted(methods.items(), key=lambda kv: str(kv[0])):
        rows.append(("copies by method", str(method), n))
    related = sum(1 for _ in json_table(json_dir, "related_pairs"))
    rows.append(("related pairs", "same object, different photograph", related))
    info = {r["key"]: r["value"] for r in json_table(json_dir, "run_info")}
    for key, item in (("families", "copy families"), ("families_mixed", "mixed families")):
        rows.append(("families", item, int(info.get(key, 0))))
    rejected = sum(1 for _ in json_table(json_dir, "rejected_pairs"))
    rows.append(("review", "pairs rejected by a curator", rejected))
    for key in ("decisions", "decisions_applied", "decisions_gone"):
        rows.append(("review", key.replace("_", " "), int(info.get(key, 0))))
    for err, n in errors.most_common(20):
        rows.append(("errors", str(err)[:120], n))
    return rows


def write_summary(json_dir: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write the summary as a tab-separated table; returns its number of rows."""
    rows = summary_rows(json_dir)
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write("section\titem\tcount\n")
        for section, item, n in rows:
            fh.write(f"{section}\t{item.replace(chr(9), ' ')}\t{n}\n")
    return len(rows)


# the sections of the summary the end of a run prints (the report has them all)
_BLOCK_SECTIONS = ("files", "identical sets", "same-pixel sets", "copies by kind", "families")


def summary_block(results: str | os.PathLike, max_errors: int = 3) -> list[str]:
    """The lines a finished run ends with: files, errors, sets, copies by kind,
    families (when there are some) and the overview page, from report/summary.tsv."""
    results = Path(results).absolute()
    try:
        text = (results / "report" / "summary.tsv").read_text(encoding="utf-8")
    except OSError:
        return []
    sections: dict[str, list[tuple[str, int]]] = {}
    for line in text.splitlines()[1:]:
        section, item, n = line.rsplit("\t", 2) if line.count("\t") >= 2 else (line, "", "0")
        sections.setdefault(section, []).append((item, int(n)))
    lines = ["archive-twins results:"]
    for section in _BLOCK_SECTIONS:
        items = [(item, n) for item, n in sections.get(section, []) if n]
        if section == "families" and not items:
            continue
        total = "" if section == "files" else f"{sum(n for _, n in items)}"
        detail = ", ".join(f"{item} {n}" for item, n in items)
        lines.append(f"  {section}: {total}{' (' + detail + ')' if total and detail else detail}")
    errors = sections.get("errors", [])
    if errors:
        shown = "; ".join(f"{item} ({n})" for item, n in errors[:max_errors])
        more = (
            f"; ... ({len(errors) - max_errors} more reasons)" if len(errors) > max_errors else ""
        )
        lines.append(f"  errors: {sum(n for _, n in errors)}: {shown}{more}")
    lines.append(f"  overview page: {results / 'html' / 'index.html'}")
    return lines
