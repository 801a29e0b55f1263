"""The run summary for Snakemake's report (`snakemake --report report.html`)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .util import atomic_open


def summary_rows(json_dir: str | os.PathLike) -> list[tuple[str, str, int]]:
    """(section, item, count) rows: files by status, skipped entries, set sizes,
    copies by kind and method, related tables' sizes."""
    d = Path(json_dir)

    def table(name: str) -> list[dict]:
        p = d / f"{name}.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else []

    files = table("files")
    rows: list[tuple[str, str, int]] = [("files", "image files", len(files))]
    for status, n in sorted(Counter(f["status"] for f in files).items()):
        rows.append(("files", f"status {status}", n))
    rows.append(("files", "blank", sum(1 for f in files if f.get("blank"))))
    rows.append(("files", "skipped (not images)", len(table("skipped_files"))))
    for r in table("identical_list_stat"):
        rows.append(("identical sets", f"of {r['set_size']} files", r["set_count"]))
    sizes = Counter(r["same_pixels_set_id"] for r in table("same_pixels_list"))
    for size, n in sorted(Counter(sizes.values()).items()):
        rows.append(("same-pixel sets", f"of {size} files", n))
    pairs = table("copy_pairs")
    for kind, n in sorted(Counter(p["kind"] for p in pairs).items()):
        rows.append(("copies by kind", kind, n))
    for method, n in sorted(Counter(p.get("method") for p in pairs).items()):
        rows.append(("copies by method", str(method), n))
    rows.append(("related pairs", "same object, different photograph", len(table("related_pairs"))))
    for err, n in Counter(f["error"] for f in files if f["status"] == "error").most_common(20):
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
