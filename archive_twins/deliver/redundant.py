"""What to keep: for every identical set, same-pixel set and family, the file kept
(the first by the master rules) and the others, with the reason and the decision
behind it. The archive itself is never written; this is a list to act on.

Takes the aggregation's duckdb tables (`f`, `frank`, `dec_file`, `ident`,
`t_same`, `t_fam`); gives the `redundant` table's query and `{results}/csv/
redundant.csv` (the same rows with names, for a spreadsheet or a script).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ..util import atomic_dir
from .families import MASTER_RULES

if TYPE_CHECKING:
    from .aggregate import Rows

REDUNDANT_COLUMNS = [
    ("group_kind", "TEXT NOT NULL"),  # 'identical', 'same_pixels' or 'family'
    ("group_id", "TEXT NOT NULL"),  # identical_set_id, same_pixels_set_id or family_id
    ("file_id", "INTEGER NOT NULL"),
    # 'keep' (the master), 'redundant' (same bytes or pixels as a kept file, or
    # marked redundant by a curator), 'derivative' (derived from the master: listed,
    # not redundant unless a curator says so)
    ("action", "TEXT NOT NULL"),
    ("kept_file_id", "INTEGER NOT NULL"),
    ("reason", "TEXT NOT NULL"),
    # what decided: 'curator: master', 'curator: redundant' or the first master rule
    # that tells the kept file from this one (from the next-best one for the kept)
    ("decision", "TEXT NOT NULL"),
    ("decided_at", "TEXT"),  # of a curator's decision
]
CSV_COLUMNS = (
    "group_kind",
    "group_id",
    "action",
    "filename",
    "size_bytes",
    "sha256",
    "kept_filename",
    "reason",
    "decision",
    "decided_at",
    "file_id",
    "kept_file_id",
    "filename_bytes",
)


def _why(a: str, b: str) -> str:
    """SQL: the first master rule that tells file `a` from file `b` (frank rows)."""
    cases = " ".join(
        f"WHEN {a}.{col} IS DISTINCT FROM {b}.{col} THEN '{text}'" for col, text in MASTER_RULES
    )
    return f"CASE {cases} ELSE 'name' END"


def redundant_query(con: duckdb.DuckDBPyConnection) -> str:
    """The `redundant` rows (REDUNDANT_COLUMNS) in group order: identical sets,
    same-pixel sets (by id), then families in the order of the families table; in a
    group, by the master rules. Builds two narrow tables first (the groups' members,
    and each group's first two files), so the query joins no wide table."""
    con.execute(
        """CREATE TABLE red_g AS
           SELECT 0 AS gk, set_id AS gpos, CAST(set_id AS VARCHAR) AS group_id, file_id,
                  NULL AS role, NULL AS kind, NULL AS dup FROM ident
           UNION ALL
           SELECT 1, set_id, CAST(set_id AS VARCHAR), file_id, NULL, NULL, NULL FROM t_same
           UNION ALL
           SELECT 2, fam_pos, family_id, file_id, role, kind, duplicate_of FROM t_fam"""
    )
    con.execute(
        """CREATE TABLE red_k AS
           SELECT gk, group_id, list_extract(firsts, 1) AS kept, list_extract(firsts, 2) AS second
           FROM (SELECT gk, group_id, arg_min(file_id, rank, 2) AS firsts
                 FROM red_g JOIN frank USING (file_id) GROUP BY gk, group_id)"""
    )
    kinds = "CASE r.gk WHEN 0 THEN 'identical' WHEN 1 THEN 'same_pixels' ELSE 'family' END"
    return f"""
    SELECT {kinds} AS group_kind, r.group_id, r.file_id,
           CASE WHEN r.file_id = k.kept THEN 'keep'
                WHEN r.role = 'derivative' AND NOT coalesce(d.redundant, false)
                THEN 'derivative' ELSE 'redundant' END AS action,
           k.kept AS kept_file_id,
           CASE WHEN r.file_id = k.kept THEN (CASE r.gk WHEN 2 THEN 'the master' ELSE 'kept' END)
                WHEN r.role = 'derivative' THEN 'derived from the master (' || r.kind || ')'
                WHEN rx.sha256 = rd.sha256 THEN 'same bytes as ' || rd.filename
                ELSE 'same pixels as ' || rd.filename || ' (different bytes)' END AS reason,
           CASE WHEN r.file_id = k.kept AND d.decision = 'master' THEN 'curator: master'
                WHEN r.file_id <> k.kept AND d.decision = 'redundant' THEN 'curator: redundant'
                WHEN r.file_id = k.kept THEN 'rule: ' || {_why("rk", "rs")}
                ELSE 'rule: ' || {_why("rk", "rx")} END AS decision,
           CASE WHEN (r.file_id = k.kept AND d.decision = 'master')
                  OR (r.file_id <> k.kept AND d.decision = 'redundant') THEN d.decided_at END
           AS decided_at
    FROM red_g r JOIN red_k k USING (gk, group_id)
         JOIN frank rx ON rx.file_id = r.file_id
         JOIN frank rk ON rk.file_id = k.kept
         LEFT JOIN frank rs ON rs.file_id = k.second
         JOIN frank rd ON rd.file_id = coalesce(r.dup, k.kept)
         LEFT JOIN dec_file d ON d.file_id = r.file_id
    ORDER BY r.gk, r.gpos, rx.rank"""


def write_redundant_csv(table: Rows, out_dir: str | os.PathLike) -> int:
    """`out_dir/redundant.csv` from the `redundant` table kept in the aggregation's
    duckdb (UTF-8, a header, one row per file of each group; `filename_bytes` is the
    name's raw bytes in hex, for a script that must find a name that is not valid
    UTF-8). Returns its rows."""
    with atomic_dir(out_dir) as tmp:
        return write_redundant_rows(table, Path(tmp) / "redundant.csv")


def write_redundant_rows(table: Rows, path: str | os.PathLike) -> int:
    """Write redundant.csv at `path` (see write_redundant_csv); returns its rows."""
    con, table, n = table.con, table.name, 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        cur = con.cursor()
        res = cur.execute(
            f"""SELECT t.group_kind, t.group_id, t.action, fx.filename, fx.size_bytes,
                       fx.sha256, fk.filename, t.reason, t.decision, t.decided_at,
                       t.file_id, t.kept_file_id, fx.filename_bytes
                FROM (SELECT *, row_number() OVER () AS row FROM {table}) t
                JOIN f fx ON fx.file_id = t.file_id
                JOIN frank fk ON fk.file_id = t.kept_file_id ORDER BY t.row"""
        )
        while rows := res.fetchmany(8192):
            w.writerows(rows)
            n += len(rows)
        cur.close()
    return n
