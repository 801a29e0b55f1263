"""The records are declared once (archive_twins/records.py): the schema, the duckdb
read, the shard record keys and the pages are derived from them, the contract's
columns stay as they are, and a new field shows up everywhere by itself."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from archive_twins.deliver import aggregate, html
from archive_twins.deliver.schema import COPY_KINDS, TABLES, columns
from archive_twins.records import (
    DECODE,
    DECODE_KEYS,
    MATCH,
    RECORD_COLUMNS,
    SHARD_KEYS,
    TRANSFORM_PARAMETER,
    CopyRecord,
    FileRecord,
    _col,
    copy_pair_row,
    duckdb_types,
    related_pair_row,
    select_list,
    table_columns,
    thumb_path,
    thumb_relpath,
)
from archive_twins.util import write_jsonl

REPO = Path(__file__).resolve().parents[1]


def contract_columns() -> dict[str, list[str]]:
    """Table -> its columns as docs/CONTRACT.md lists them (the names only; "the
    copy_pairs columns" stands for those of copy_pairs after the two file ids)."""
    out = {}
    text = (REPO / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        m = re.match(r"\| (\w+) \| ([^|]+) \|", line)
        if m and m.group(1) != "table":
            cols = []
            for c in m.group(2).split(", "):
                if c.strip() == "the copy_pairs columns":
                    cols += out["copy_pairs"][2:]
                else:
                    cols.append(c.split()[0])
            out[m.group(1)] = cols
    return out


def test_the_contract_columns_lead_every_table_in_order():
    contract = contract_columns()
    assert {
        "files",
        "copy_pairs",
        "related_pairs",
        "transform_other",
        "families",
    } <= contract.keys()
    assert {"rejected_pairs"} <= contract.keys()
    for table, cols in contract.items():
        assert columns(table)[: len(cols)] == cols, table
    assert "blank" in columns("files")  # the contract's note below the table


def test_derived_tables_are_exactly_the_published_ones():
    # the columns and SQLite types of the tables before they were derived: reordering a
    # field or changing a type changes the deliverable, so it must be deliberate
    files = [
        ("file_id", "INTEGER PRIMARY KEY"),
        ("filename", "TEXT NOT NULL"),
        ("size_bytes", "INTEGER"),
        ("sha256", "TEXT"),
        ("format", "TEXT"),
        ("width", "INTEGER"),
        ("height", "INTEGER"),
        ("n_pages", "INTEGER"),
        ("bits_per_sample", "INTEGER"),
        ("bands", "INTEGER"),
        ("status", "TEXT NOT NULL"),
        ("error", "TEXT"),
        ("interpretation", "TEXT"),
        ("pixel_hash", "TEXT"),
        ("mtime_ns", "INTEGER"),
        ("thumb", "TEXT"),
        ("thumb_w", "INTEGER"),
        ("thumb_h", "INTEGER"),
        ("filename_bytes", "TEXT NOT NULL"),
        ("exif_orientation", "INTEGER"),
        ("ctime_ns", "INTEGER"),
        ("inode", "INTEGER"),
        ("blank", "INTEGER"),
    ]
    ids = [("file_id1", "INTEGER NOT NULL"), ("file_id2", "INTEGER NOT NULL")]
    copy_pairs = ids + [
        ("kind", "TEXT NOT NULL"),
        *((c, "REAL") for c in ("scale", "angle")),
        ("mirrored", "INTEGER"),
        *((c, "REAL") for c in ("crop_x", "crop_y", "crop_w", "crop_h")),
        ("homography", "TEXT"),
        ("inliers", "INTEGER"),
        ("score", "REAL"),
        ("method", "TEXT"),
        ("area_fraction", "REAL"),
        ("colour_change", "INTEGER"),
    ]
    related = ids + [
        ("inliers", "INTEGER"),
        ("score", "REAL"),
        ("reason", "TEXT"),
        ("homography", "TEXT"),
        ("scale", "REAL"),
        ("angle", "REAL"),
        ("mirrored", "INTEGER"),
        *((c, "REAL") for c in ("overlap", "max_block_ratio", "colour_block_ratio")),
    ]
    assert TABLES["files"][: len(files)] == files
    assert TABLES["copy_pairs"][: len(copy_pairs)] == copy_pairs
    assert TABLES["related_pairs"][: len(related)] == related


def test_shard_keys_and_duckdb_types_come_from_the_file_record():
    assert set(DECODE_KEYS) < set(SHARD_KEYS)
    assert {"path", "params", "sha256", "mtime_ns", "inode"} <= set(SHARD_KEYS) - set(DECODE_KEYS)
    assert {"file_id", "thumb"}.isdisjoint(SHARD_KEYS)  # the aggregation's columns
    assert aggregate.RECORD_COLUMNS is RECORD_COLUMNS
    assert RECORD_COLUMNS["inode"] == "UBIGINT" and RECORD_COLUMNS["blank"] == "BOOLEAN"
    assert "phash" not in RECORD_COLUMNS and "params" not in RECORD_COLUMNS
    # everything the files table selects (but its own columns) is read from the records
    assert set(columns("files")) - {"file_id", "thumb"} <= set(RECORD_COLUMNS)


def test_the_slotted_file_record_rejects_a_misspelt_field():
    rec = FileRecord(status="ok")
    with pytest.raises(AttributeError):
        rec.widht = 3  # type: ignore[attr-defined]


@dataclass(slots=True)
class _FileRecordWithDpi(FileRecord):
    dpi: int | None = _col(DECODE, "INTEGER", "REAL")


def test_a_new_file_field_shows_up_in_schema_duckdb_read_and_shard_keys():
    assert table_columns(_FileRecordWithDpi)[-1] == ("dpi", "REAL")
    assert duckdb_types(_FileRecordWithDpi)["dpi"] == "INTEGER"
    assert select_list(_FileRecordWithDpi)[-1] == "dpi AS dpi"
    rec = _FileRecordWithDpi(path="a.tif")
    rec.set_facts({"status": "ok", "dpi": 300})
    assert rec.facts()["dpi"] == 300 and rec.shard_dict()["dpi"] == 300


def test_a_new_file_field_reaches_the_database(tmp_path, monkeypatch):
    """The aggregation, given the derived lists of an extended record, publishes the
    field as a column of `files` without any other change."""
    cls = _FileRecordWithDpi
    monkeypatch.setattr(aggregate, "RECORD_COLUMNS", duckdb_types(cls))
    monkeypatch.setattr(aggregate, "FILES_SELECT", select_list(cls))
    monkeypatch.setitem(TABLES, "files", table_columns(cls))
    rec = cls(path="a.tif", filename="a.tif", filename_bytes=b"a.tif".hex(), size_bytes=9)
    rec.set_facts({"status": "ok", "width": 4, "height": 3, "dpi": 300})
    rec.sha256 = "ab" * 32
    write_jsonl(tmp_path / "shard.jsonl", [rec.shard_dict()])
    (tmp_path / "skipped.jsonl").write_text("")
    tables, _ = aggregate.build_tables(
        [str(tmp_path / "shard.jsonl")], tmp_path / "skipped.jsonl", tmp_path / "ids.json", {}
    )
    (row,) = tables["files"]
    got = dict(zip(columns("files"), row, strict=True))
    assert got["dpi"] == 300 and got["width"] == 4 and got["file_id"] == 1
    assert got["thumb"] == thumb_relpath("ab" * 32) == f"thumbs/ab/{'ab' * 32}.jpg"
    aggregate.write_sqlite(tables, tmp_path / "a.sqlite")
    con = sqlite3.connect(tmp_path / "a.sqlite")
    info = con.execute("PRAGMA table_info(files)").fetchall()
    assert (info[-1][1], info[-1][2]) == ("dpi", "REAL")
    assert con.execute("SELECT dpi FROM files").fetchall() == [(300.0,)]


def _copy_dict(**kw: object) -> dict:
    c = {
        "key1": "a",
        "key2": "b",
        "kind": "other",
        "scale": 0.5,
        "angle": 12.0,
        "mirrored": True,
        "crop_x": 1.0,
        "crop_y": 2.0,
        "crop_w": 30.0,
        "crop_h": 40.0,
        "homography": "[[1,0,0],[0,1,0],[0,0,1]]",
        "inliers": 40,
        "score": 0.8,
        "method": "sift",
        "hamming": None,
        "colour_change": True,
        "direction_by": "resolution",
        "area_fraction": 0.3,
        "metrics": {"max_block_ratio": 0.1, "colour_block_ratio": 0.2},
        "reason": None,
    }
    c.update(kw)
    return c


def test_copy_record_round_trips_and_reads_older_verdicts():
    c = CopyRecord.from_dict(_copy_dict())
    assert c.to_dict() == _copy_dict()
    old = {k: v for k, v in _copy_dict().items() if k not in ("method", "colour_change")}
    old["unknown"] = 1  # a key of another version is ignored
    o = CopyRecord.from_dict(old)
    assert o.method is None and o.colour_change is None and o.metrics["max_block_ratio"] == 0.1
    with pytest.raises(TypeError):
        CopyRecord.from_dict({k: v for k, v in _copy_dict().items() if k != "kind"})


def test_copy_and_related_rows_are_the_table_columns_by_name():
    c = CopyRecord.from_dict(_copy_dict())
    row = copy_pair_row(c, {"a": 7, "b": 9})
    assert row._fields == tuple(columns("copy_pairs"))
    assert (row.file_id1, row.file_id2, row.mirrored, row.colour_change) == (7, 9, 1, 1)
    assert row.homography == c.homography and row.area_fraction == 0.3
    rel = dict(zip(columns("related_pairs"), related_pair_row(c, {"a": 7, "b": 9}), strict=True))
    assert rel["overlap"] == 0.3 and rel["mirrored"] == 1 and rel["colour_block_ratio"] == 0.2
    # every kind's transform parameter is a copy_pairs column
    assert set(TRANSFORM_PARAMETER) == set(COPY_KINDS)
    assert set(TRANSFORM_PARAMETER.values()) <= set(columns("copy_pairs"))


@dataclass(kw_only=True)
class _CopyRecordWithNote(CopyRecord):
    note: str | None = _col(MATCH, sql="TEXT")


def test_a_new_copy_field_shows_up_in_the_table_and_its_rows():
    assert table_columns(_CopyRecordWithNote)[-1] == ("note", "TEXT")
    c = _CopyRecordWithNote.from_dict({**_copy_dict(), "note": "hi"})
    row = copy_pair_row(c, {"a": 1, "b": 2})
    assert row.note == "hi" and row.file_id1 == 1 and row.kind == "other"


def test_pages_get_named_fields_derived_from_the_tables():
    assert html.PAIR_FIELDS[2:] == tuple(columns("copy_pairs")[2:])
    assert set(html.FILE_FIELDS) - {"href"} <= set(columns("files"))
    # the page script reads rows by these names, never by position
    js = (REPO / "archive_twins" / "web" / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"\b(f|f1|f2|p|s|it|item|pair|a|b)\[\d+\]", js)
    assert "D.fields" in js


def test_thumbnail_paths_are_spelled_only_in_records():
    assert thumb_path("store", "c0ffee") == Path("store/c0/c0ffee.jpg")
    assert thumb_relpath("c0ffee") == "thumbs/c0/c0ffee.jpg"
    # `sha[:2] / f"{sha}.jpg"` (Python) or `sha256[1:2] || ... '.jpg'` (SQL) elsewhere
    spelled = re.compile(r"\[(1)?:2\].*\.jpg")
    found = []
    for d in ("archive_twins", "bench", "scripts", "rules"):
        for path in sorted((REPO / d).rglob("*")):
            if path.suffix not in {".py", ".smk", ".js"} or path.name == "records.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if spelled.search(line):
                    found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert found == []


def test_copy_kind_names_each_dihedral_copy():
    from archive_twins.records import copy_kind

    assert copy_kind(0, False, False) == "resize"
    assert [copy_kind(k, False, False) for k in (1, 2, 3)] == ["rotate90i"] * 3
    assert [copy_kind(k, True, False) for k in (1, 2, 3)] == ["rotate90i"] * 3
    assert copy_kind(0, True, False) == "other"  # a mirror alone
    assert {copy_kind(k, m, True) for k in range(4) for m in (False, True)} == {"other"}
