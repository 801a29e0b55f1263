"""Aggregate per-shard records into the contract's SQLite database and JSON files.

duckdb does the set logic (grouping by sha256 and by pixel hash); the results are
written to SQLite and JSON through temporary paths and renamed into place, so a
crash never leaves a half-written deliverable behind.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

import duckdb

from ..ingest.registry import load_or_rebuild
from ..ingest.registry import save as save_registry
from ..records import (
    COPY_PAIRS_COLUMNS,
    FILES_SELECT,
    RECORD_COLUMNS,
    RELATED_METRICS,
    TRANSFORM_PARAMETER,
    CopyRecord,
    copy_pair_row,
    duck_type,
    related_pair_row,
    thumb_relpath,
)
from ..util import atomic_dir, display_name, file_mode, iter_jsonl, read_jsonl
from ..verify.direction import RasterFacts, resolve_ties
from .chains import keep_one_capture
from .csvexport import write_csv_exports
from .decisions import (
    Decision,
    apply_pair_decisions,
    decision_rows,
    file_decisions_table,
    read_decisions,
)
from .families import FAMILY_ORDER, build_families, rank_files
from .redundant import redundant_query, write_redundant_rows
from .schema import COPY_KINDS, INDEXES, REJECTED_PAIRS_COLUMNS, TABLES, columns


def assign_file_ids(
    paths: Sequence[str], previous: dict[str, int], next_id: int
) -> tuple[dict[str, int], int]:
    """Keep the id of every path seen before; number new paths in sorted order.

    Ids are never handed out again, so an id always means the same path; the
    registry keeps the ids of removed paths too (see `registry`).
    """
    ids = {p: previous[p] for p in paths if p in previous}
    for p in sorted(set(paths) - ids.keys()):
        ids[p] = next_id
        next_id += 1
    return ids, next_id


def _read_records(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> None:
    nonempty = [f for f in files if os.path.getsize(f) > 0]
    cols = ", ".join(f"{c} {t}" for c, t in RECORD_COLUMNS.items())
    con.execute(f"CREATE TABLE rec ({cols})")
    if nonempty:
        spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in RECORD_COLUMNS.items()) + "}"
        con.execute(
            f"INSERT INTO rec SELECT {', '.join(RECORD_COLUMNS)} FROM read_json(?, "
            f"format='newline_delimited', columns={spec})",
            [nonempty],
        )


def _disambiguate_escaped_names(con: duckdb.DuckDBPyConnection) -> None:
    r"""Keep apart a non-UTF-8 name and a real name that reads the same.

    A Latin-1 name caf<0xE9>.jpg is shown as the text `caf\xe9.jpg`, which can also
    be a real name of its own. Where display names collide, every name whose raw
    bytes differ from its display text gets ` [bytes <hex>]` appended, so both files
    are kept (ids, the UNIQUE filename) instead of the run failing on a name.
    """
    con.execute("UPDATE rec SET filename_bytes = lower(filename_bytes)")
    dup = "SELECT path FROM rec GROUP BY path HAVING count(*) > 1"
    if not _query(con, dup):
        return
    con.execute(
        f"""UPDATE rec SET path = path || ' [bytes ' || filename_bytes || ']',
                          filename = filename || ' [bytes ' || filename_bytes || ']'
            WHERE path IN ({dup}) AND filename_bytes IS NOT NULL
              AND filename_bytes <> lower(hex(encode(path)))"""
    )


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


class Rows:
    """A table kept in the aggregation's duckdb database and read in batches by each
    writer: a table with a row per file would otherwise be a Python tuple per file
    (1.5 GB at 262,000 files, all tables and their JSON objects at once)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, sql: str, batch: int = 8192):
        con.execute(f"CREATE TABLE {name} AS {sql}")
        self.con, self.name, self.batch = con, name, batch
        self.n = int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        cur = self.con.cursor()
        try:
            res = cur.execute(f"SELECT * FROM {self.name}")
            while rows := res.fetchmany(self.batch):
                yield from rows
        finally:
            cur.close()


def build_tables(
    shard_records: Sequence[str],
    skipped: str | os.PathLike,
    registry: str | os.PathLike,
    info: dict[str, str],
    pair_files: Sequence[str] = (),
    memory_mb: int = 512,
    spill_dir: str | os.PathLike | None = None,
    decisions: Sequence[Decision] = (),
    master_paths: Sequence[str] = (),
) -> tuple[dict[str, Sequence[tuple]], dict]:
    """Compute every contract table as rows (the tables with a row per file kept in
    duckdb, see `Rows`); also return the updated id registry. `decisions`: a
    curator's (decisions.csv); `master_paths`: the master rule's path prefixes."""
    con = duckdb.connect()
    # tables beyond this spill to disk (duckdb's temporary directory)
    con.execute(f"SET memory_limit = '{memory_mb}MB'")
    if spill_dir is not None:
        con.execute("SET temp_directory = ?", [str(spill_dir)])
    # the thumbnail's path is spelled once, in records.thumb_path
    con.create_function("thumb_relpath", thumb_relpath, ["VARCHAR"], "VARCHAR")
    _read_records(con, shard_records)
    _disambiguate_escaped_names(con)
    paths = [r[0] for r in _query(con, "SELECT path FROM rec")]
    if len(paths) != len(set(paths)):
        raise ValueError("a path appears in more than one shard record")
    # the published archive.sqlite, from which a lost registry is rebuilt
    published = Path(registry).parent.parent / "archive.sqlite"
    prev, next_id = load_or_rebuild(registry, published)
    ids, next_id = assign_file_ids(paths, prev, next_id)
    # Two list parameters unnested in one statement: row-by-row inserts would take
    # seconds for a 262,000-file archive.
    con.execute(
        "CREATE TABLE fid AS SELECT unnest(?::VARCHAR[]) AS path, unnest(?::BIGINT[]) AS file_id",
        [list(ids.keys()), list(ids.values())],
    )
    con.execute("CREATE TABLE f AS SELECT fid.file_id, rec.* FROM rec JOIN fid USING (path)")
    con.execute("DROP TABLE rec")  # f holds it all: half the memory at 1M files

    t: dict[str, Sequence[tuple]] = {}
    # Records from before filename_bytes existed only ever held valid UTF-8 names.
    con.execute("UPDATE f SET filename_bytes = hex(encode(path)) WHERE filename_bytes IS NULL")
    con.execute("UPDATE f SET filename_bytes = lower(filename_bytes)")
    t["fileid_to_filename_map"] = Rows(
        con, "t_map", "SELECT file_id, filename, filename_bytes FROM f ORDER BY file_id"
    )
    t["files"] = Rows(con, "t_files", f"SELECT {', '.join(FILES_SELECT)} FROM f ORDER BY file_id")
    # Byte-identical sets. Empty files are not "copies" of each other: skip size 0.
    con.execute(
        """CREATE TABLE ident AS
           WITH g AS (SELECT sha256, min(filename) AS first FROM f
                      WHERE sha256 IS NOT NULL AND size_bytes > 0
                      GROUP BY sha256 HAVING count(*) >= 2)
           SELECT dense_rank() OVER (ORDER BY g.first) AS set_id, f.file_id
           FROM g JOIN f USING (sha256)"""
    )
    t["identical_list"] = Rows(con, "t_ident", "SELECT set_id, file_id FROM ident ORDER BY 1, 2")
    t["identical_list_stat"] = _query(
        con,
        """SELECT n, count(*) FROM (SELECT set_id, count(*) AS n FROM ident GROUP BY set_id)
           GROUP BY n ORDER BY n""",
    )
    # Same decoded page-0 pixels, at least two different byte contents. Every file with
    # those pixels is listed, byte copies included, so no file of the group is hidden.
    t["same_pixels_list"] = Rows(
        con,
        "t_same",
        """WITH g AS (SELECT pixel_hash, min(filename) AS first FROM f
                      WHERE status = 'ok' AND pixel_hash IS NOT NULL
                      GROUP BY pixel_hash HAVING count(DISTINCT sha256) >= 2)
           SELECT dense_rank() OVER (ORDER BY g.first) AS set_id, f.file_id
           FROM g JOIN f USING (pixel_hash) ORDER BY 1, 2""",
    )
    # The files in the order of the master rules (families.MASTER_RULES), the
    # curator's master and redundant decisions first.
    file_decisions_table(con, decisions)
    rank_files(con, master_paths)
    # Copies are found between distinct rasters (pixel hashes); each is reported once,
    # between the files holding those rasters that the master rules put first (not
    # the lowest file_ids, which depend on the order files arrived in, so a rerun
    # equals a fresh run).
    rep = dict(
        _query(
            con,
            """SELECT pixel_hash, arg_min(file_id, rank) FROM f JOIN frank USING (file_id)
               WHERE status = 'ok' AND pixel_hash IS NOT NULL GROUP BY pixel_hash""",
        )
    )
    fit: dict[frozenset, float] = {}
    copies, related = load_copies(pair_files, fit)
    # rasters alike in content: which is the source follows from their files' facts
    ties = {k for c in copies if c.direction_by == "tie" for k in (c.key1, c.key2)}
    copies = resolve_ties(copies, raster_facts(con, ties))
    present = decided_contents(con, decisions)
    done = apply_pair_decisions(
        copies, related, decisions, {s: p for s, (_, p) in present.items() if p}
    )
    # copies chained across captures of one scene are cut where the related verdicts
    # say the captures differ (chains.py); a copy a curator confirmed stays
    kept = keep_one_capture(
        [c for c in done.copies if c.key1 in rep and c.key2 in rep],
        fit,
        [r for r in done.related if r.key1 in rep and r.key2 in rep],
    )
    stay = {(c.key1, c.key2) for c in kept}
    done.copies = kept + [c for c in done.copies if c.reviewed and (c.key1, c.key2) not in stay]
    del fit, kept, stay
    t["related_pairs"] = related_table(
        different_captures(done.related, done.copies, rep, keep=done.curator_related), rep
    )
    t["rejected_pairs"] = rejected_table(done.rejected, rep)
    t.update(copy_tables(con, done.copies, rep))
    # the copies are in duckdb now (the families read them there): ~0.65 KB a copy
    del copies, related, done.copies, done.related
    counts = dict(_query(con, "SELECT kind, count(*) FROM t_copy GROUP BY kind"))
    t["transform_list_stat"] = [(kind, counts.get(kind, 0)) for kind in COPY_KINDS]
    build_families(con)
    t["families"] = Rows(
        con,
        "t_families",
        f"SELECT {', '.join(columns('families'))} FROM t_fam ORDER BY {FAMILY_ORDER}",
    )
    n_families, n_mixed = con.execute(
        "SELECT count(DISTINCT family_id), count(DISTINCT family_id) FILTER (mixed = 1) FROM t_fam"
    ).fetchone()
    t["redundant"] = Rows(con, "t_redundant", redundant_query(con))
    t["decisions"] = decision_rows(
        decisions, {s: fid for s, (fid, _) in present.items()}, done.applied
    )
    t["skipped_files"] = [
        (display_name(r["filename"]), r["size_bytes"], r["reason"])
        for r in read_jsonl(skipped, missing_ok=False)
    ]
    status = [r[7] for r in t["decisions"]]
    info = {
        **info,
        "decisions": str(len(status)),
        "decisions_applied": str(status.count("applied")),
        "decisions_gone": str(status.count("gone")),
        "decisions_not_applied": str(status.count("not applied")),
        "families": str(n_families),
        "families_mixed": str(n_mixed),
    }
    t["run_info"] = sorted({**info, "next_file_id": str(next_id)}.items())
    # every path keeps its id while the registry lives, present or not
    return t, {"next_id": next_id, "ids": {**prev, **ids}}


def decided_contents(
    con: duckdb.DuckDBPyConnection, decisions: Sequence[Decision]
) -> dict[str, tuple[int, str | None]]:
    """sha256 -> (its first file by the master rules, its raster) of every content a
    decision names that is still in the archive."""
    shas = sorted({s for d in decisions for s in (d.sha1, d.sha2) if s})
    if not shas:
        return {}
    rows = con.execute(
        """SELECT f.sha256, arg_min(file_id, rank), any_value(pixel_hash)
           FROM f JOIN frank USING (file_id)
           WHERE f.sha256 IN (SELECT unnest(?::VARCHAR[])) GROUP BY f.sha256""",
        [shas],
    ).fetchall()
    return {sha: (fid, ph) for sha, fid, ph in rows}


def rejected_table(rejected: list[tuple[CopyRecord, str, str]], rep: dict[str, int]) -> list[tuple]:
    """rejected_pairs rows: the pair's copy columns, the decision's note and time."""
    cols = [c for c, _ in REJECTED_PAIRS_COLUMNS]
    rows = []
    for c, note, when in rejected:
        if c.key1 in rep and c.key2 in rep:
            row = {**copy_pair_row(c, rep)._asdict(), "note": note, "decided_at": when or None}
            rows.append(tuple(row[k] for k in cols))
    return sorted(rows, key=lambda r: (r[0], r[1]))


def raster_facts(con: duckdb.DuckDBPyConnection, keys: set[str]) -> dict[str, RasterFacts]:
    """The files' facts that break a tie between two rasters (direction.tie_break),
    for the rasters `keys` (pixel hashes)."""
    if not keys:
        return {}
    rows = con.execute(
        """SELECT pixel_hash, any_value(width), any_value(height), max(jpeg_quality),
                  min(mtime_ns), max(size_bytes)
           FROM f WHERE status = 'ok' AND pixel_hash IN (SELECT unnest(?::VARCHAR[]))
           GROUP BY pixel_hash""",
        [sorted(keys)],
    ).fetchall()
    return {r[0]: RasterFacts(*r[1:]) for r in rows}


def load_copies(
    pair_files: Sequence[str], fit: dict[frozenset, float] | None = None
) -> tuple[list[CopyRecord], list[CopyRecord]]:
    """Verified copies and related pairs (same object or scene, other photograph)
    from the matching jobs, one per unordered pair of rasters; `fit`, if given,
    receives each copy's worst block after the colour fit (chains.keep_one_capture)."""
    seen: dict[frozenset, CopyRecord] = {}
    related: dict[frozenset, CopyRecord] = {}
    for path in sorted(pair_files):
        for verdict in iter_jsonl(path):
            c = verdict.get("copy")
            if c is not None and (key := frozenset((c["key1"], c["key2"]))) not in seen:
                # the pixel check's metrics are no column (2 KB a copy, 1 GB at 1M files)
                seen[key] = CopyRecord.from_dict({**c, "metrics": {}})
                if fit is not None and "colour_block_ratio" in c.get("metrics", {}):
                    fit[key] = float(c["metrics"]["colour_block_ratio"])
            r = verdict.get("related")
            if r is not None and (key := frozenset((r["key1"], r["key2"]))) not in related:
                m = r.get("metrics", {})
                related[key] = CopyRecord.from_dict(
                    {**r, "metrics": {k: m[k] for k in RELATED_METRICS if k in m}}
                )
    # a pair is never both (each pair has one verdict); keep copies first regardless
    return list(seen.values()), [r for k, r in related.items() if k not in seen]


def different_captures(
    related: list[CopyRecord],
    copies: list[CopyRecord],
    rep: dict[str, int],
    keep: set[frozenset] = frozenset(),
) -> list[CopyRecord]:
    """Related pairs less those whose two rasters are joined by a chain of verified
    copies (of present rasters): both are then derived from one capture (say a hue
    change and a heavily re-encoded version of one photograph, too far apart for the
    pixel check between them), so they are not different photographs. Pairs a
    curator called related (`keep`, pairs of raster keys) stay."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for c in copies:
        if c.key1 in rep and c.key2 in rep:
            parent[find(c.key1)] = find(c.key2)
    return [
        r for r in related if find(r.key1) != find(r.key2) or frozenset((r.key1, r.key2)) in keep
    ]


def related_table(related: list[CopyRecord], rep: dict[str, int]) -> list[tuple]:
    """related_pairs rows, keyed by representative file_ids."""
    return sorted(related_pair_row(r, rep) for r in related if r.key1 in rep and r.key2 in rep)


def copy_tables(
    con: duckdb.DuckDBPyConnection, copies: list[CopyRecord], rep: dict[str, int]
) -> dict[str, Rows]:
    """copy_pairs and the per-kind transform tables, keyed by representative file_ids,
    kept in duckdb (table `t_copy`: a Python row per copy took ~0.4 KB).

    A raster that disappeared since the matching job ran drops its pairs.
    """
    cols = COPY_PAIRS_COLUMNS
    con.execute(f"CREATE TABLE t_copy ({', '.join(f'{c} {duck_type(t)}' for c, t in cols)})")
    present = [c for c in copies if c.key1 in rep and c.key2 in rep]
    unnest = ", ".join(f"unnest(?::{duck_type(t)}[])" for _, t in cols)
    for i in range(0, len(present), 65536):
        rows = [copy_pair_row(c, rep) for c in present[i : i + 65536]]
        con.execute(
            f"INSERT INTO t_copy SELECT {unnest}", [list(v) for v in zip(*rows, strict=True)]
        )
    names = ", ".join(c for c, _ in cols)
    out: dict[str, Rows] = {
        "copy_pairs": Rows(
            con, "t_copy_pairs", f"SELECT {names} FROM t_copy ORDER BY file_id1, file_id2"
        )
    }
    for kind in COPY_KINDS:
        out[f"transform_{kind}"] = Rows(
            con,
            f"t_transform_{kind}",
            f"""SELECT file_id1, file_id2, {TRANSFORM_PARAMETER[kind]} FROM t_copy
                WHERE kind = '{kind}' ORDER BY file_id1, file_id2""",
        )
    return out


def write_sqlite(tables: dict[str, Iterable[tuple]], out: str | os.PathLike) -> None:
    """Write all tables to a new SQLite file and rename it over `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".archive.", suffix=".sqlite.tmp", dir=out.parent)
    os.fchmod(fd, file_mode())  # mkstemp makes 0600; give what `cp` would
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        for name, cols in TABLES.items():
            ddl = ", ".join(f'"{c}" {t}' for c, t in cols)
            con.execute(f'CREATE TABLE "{name}" ({ddl})')
            marks = ", ".join("?" * len(cols))
            con.executemany(f'INSERT INTO "{name}" VALUES ({marks})', tables[name])
        for ddl in INDEXES:
            con.execute(ddl)
        con.commit()
        con.close()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(
    tables: dict[str, Iterable[tuple]], outdir: str | os.PathLike, batch: int = 8192
) -> None:
    """One `<table>.json` (array of objects) per table, written into a fresh directory
    a batch of rows at a time (the same bytes as dumping the whole list)."""
    outdir = Path(outdir)
    with atomic_dir(outdir) as tmp:
        for name in TABLES:
            cols = columns(name)
            with open(tmp / f"{name}.json", "w", encoding="utf-8") as fh:
                fh.write("[")
                rows = iter(tables[name])
                sep = ""
                while part := list(islice(rows, batch)):
                    objs = [dict(zip(cols, r, strict=True)) for r in part]
                    text = json.dumps(objs, ensure_ascii=False, separators=(",", ":"))
                    fh.write(sep + text[1:-1])
                    sep = ","
                fh.write("]")


def aggregate(
    shard_records: Sequence[str],
    skipped: str | os.PathLike,
    registry: str | os.PathLike,
    sqlite_out: str | os.PathLike,
    json_out: str | os.PathLike,
    info: dict[str, str],
    pair_files: Sequence[str] = (),
    memory_mb: int = 512,
    csv_out: str | os.PathLike | None = None,
    decisions: str | os.PathLike | None = None,
    master_paths: Sequence[str] = (),
) -> dict[str, Sequence[tuple]]:
    """Build the deliverables (and csv/, csvexport.py, when `csv_out` is given) from
    the shard records, the matching jobs' pairs and a curator's decisions file; the
    id registry is updated last, after they are in place."""
    # a malformed decisions file stops here, before anything is written
    read = read_decisions(decisions) if decisions else []
    if decisions:
        info = {**info, "decisions_file": str(decisions)}
    Path(sqlite_out).parent.mkdir(parents=True, exist_ok=True)
    # duckdb spills what exceeds memory_mb next to the outputs, removed afterwards
    with tempfile.TemporaryDirectory(prefix=".aggregate-", dir=Path(sqlite_out).parent) as spill:
        tables, reg = build_tables(
            shard_records, skipped, registry, info, pair_files, memory_mb, spill, read, master_paths
        )
        write_sqlite(tables, sqlite_out)
        write_json(tables, json_out)
        if csv_out is not None:
            con = tables["redundant"].con
            names = dict(con.execute("SELECT file_id, filename FROM f").fetchall())
            with atomic_dir(csv_out) as tmp:
                write_redundant_rows(tables["redundant"], Path(tmp) / "redundant.csv")
                write_csv_exports(tables, names, tmp)
    save_registry(registry, reg["ids"], reg["next_id"])
    return tables
