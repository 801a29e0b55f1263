"""Takes the aggregation's tables, gives csv/ for spreadsheets: copy_pairs.csv,
identical_list.csv, same_pixels_list.csv and related_pairs.csv, each file_id beside
its filename (non-UTF-8 bytes escaped as in the `filename` column), so nobody has to
join the id map by hand."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .schema import columns

# (csv file, contract table, its file_id columns)
EXPORTS = (
    ("identical_list.csv", "identical_list", ("file_id",)),
    ("same_pixels_list.csv", "same_pixels_list", ("file_id",)),
    ("copy_pairs.csv", "copy_pairs", ("file_id1", "file_id2")),
    ("related_pairs.csv", "related_pairs", ("file_id1", "file_id2")),
)


def named_header(table: str, id_columns: tuple[str, ...]) -> list[str]:
    """The table's columns with `filename<N>` right after each `file_id<N>`."""
    out = []
    for c in columns(table):
        out.append(c)
        if c in id_columns:
            out.append(c.replace("file_id", "filename"))
    return out


def write_csv_exports(
    tables: Mapping[str, Iterable[tuple]], names: Mapping[int, str], out_dir: str | os.PathLike
) -> dict[str, int]:
    """Write the EXPORTS into `out_dir` (UTF-8, a header); `names` maps file_id to
    filename. Returns rows written per file."""
    written = {}
    for fname, table, ids in EXPORTS:
        cols = columns(table)
        at = [cols.index(c) for c in ids]
        with open(Path(out_dir) / fname, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(named_header(table, ids))
            n = 0
            for row in tables[table]:
                out = []
                for i, v in enumerate(row):
                    out.append(v)
                    if i in at:
                        out.append(names.get(v, ""))
                w.writerow(out)
                n += 1
        written[fname] = n
    return written
