"""End to end: the real workflow on a generated archive; every table's exact content."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from archives import build_foundation_archive, sha256
from conftest import read_json_tables, read_tables, row_key, run_workflow

from archive_twins.deliver.schema import TABLES, columns

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    truth = build_foundation_archive(root)
    work = tmp_path_factory.mktemp("work")
    proc = run_workflow(root, work, shards=3)
    results = work / "results"
    return root, truth, results, read_tables(results / "archive.sqlite"), proc


def sets_by_name(rows, ids_to_name):
    sets: dict[int, list[str]] = {}
    for set_id, file_id in rows:
        sets.setdefault(set_id, []).append(ids_to_name[file_id])
    return sets


def test_file_ids_are_sorted_paths(run):
    root, truth, _, t, _ = run
    names = sorted(truth["facts"])
    assert t["fileid_to_filename_map"] == [
        (i + 1, n, n.encode().hex()) for i, n in enumerate(names)
    ]


def test_files_table_every_column(run):
    root, truth, _, t, _ = run
    cols = columns("files")
    rows = {r[1]: dict(zip(cols, r, strict=True)) for r in t["files"]}
    assert set(rows) == set(truth["facts"])
    for name, facts in truth["facts"].items():
        row = rows[name]
        path = root / name
        assert row["size_bytes"] == path.stat().st_size, name
        assert row["sha256"] == sha256(path), name
        for key, value in facts.items():
            assert row[key] == value, (name, key, row[key], value)
        if facts["status"] == "ok":
            assert row["error"] is None
            assert row["pixel_hash"] and row["thumb"].endswith(".jpg")
        else:
            assert re.search(truth["errors"][name], row["error"]), (name, row["error"])
            assert row["pixel_hash"] is None and row["thumb"] is None


def test_identical_sets_and_stat(run):
    _, truth, _, t, _ = run
    names = {r[0]: r[1] for r in t["fileid_to_filename_map"]}
    sets = sets_by_name(t["identical_list"], names)
    # set ids follow the sets' first filenames
    assert [sorted(sets[k]) for k in sorted(sets)] == truth["identical"]
    assert t["identical_list_stat"] == [(2, 1), (3, 1), (5, 1)]


def test_same_pixels_sets(run):
    _, truth, _, t, _ = run
    names = {r[0]: r[1] for r in t["fileid_to_filename_map"]}
    sets = sets_by_name(t["same_pixels_list"], names)
    assert [sorted(sets[k]) for k in sorted(sets)] == truth["same_pixels"]


def test_copy_tables_present_and_empty(run):
    *_, t, _ = run
    for name in ("copy_pairs", "transform_resize", "transform_rotate90i", "transform_other"):
        assert t[name] == []
    assert t["transform_list_stat"] == [("other", 0), ("resize", 0), ("rotate90i", 0)]


def test_skipped_files(run):
    root, truth, _, t, _ = run
    assert [r[0] for r in t["skipped_files"]] == truth["skipped"]
    assert all(r[2] == "not an image extension" for r in t["skipped_files"])
    assert t["skipped_files"][0][1] == (root / "docs" / "catalogue.docx").stat().st_size


def test_sqlite_schema_matches_contract(run):
    _, _, results, _, _ = run
    con = sqlite3.connect(results / "archive.sqlite")
    for name in TABLES:
        have = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")')]
        assert have == columns(name), name


def test_json_equals_sqlite(run):
    _, _, results, t, _ = run
    js = read_json_tables(results / "json")
    assert set(js) == set(TABLES)
    for name in TABLES:
        if name == "run_info":
            continue
        rows = sorted((tuple(r[c] for c in columns(name)) for r in js[name]), key=row_key)
        assert rows == t[name], name


def test_thumbnails_are_small_srgb_jpegs(run):
    import pyvips

    _, _, results, t, _ = run
    cols = columns("files")
    for r in t["files"]:
        row = dict(zip(cols, r, strict=True))
        if row["status"] != "ok":
            continue
        img = pyvips.Image.new_from_file(str(results / row["thumb"]))
        assert img.get("vips-loader") == "jpegload"
        assert max(img.width, img.height) <= 800
        assert (img.width, img.height) == (row["thumb_w"], row["thumb_h"])
        assert img.bands == 3 and img.format == "uchar"


def test_rerun_does_nothing(run, tmp_path):
    root, _, results, t, _ = run
    work = results.parent
    proc = run_workflow(root, work, shards=3, extra=["--dry-run"])
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_logs_per_rule(run):
    _, _, results, _, _ = run
    assert sorted(p.name for p in (results / "logs").iterdir()) == [
        "aggregate",
        "decode_shard",
        "html",
        "index",
        "match_chunk",
        "publish",
        "report_pages",
        "summary",
    ]
    assert len(list((results / "logs" / "decode_shard").glob("*.log"))) == 3


def test_missing_archive_is_a_clear_error(tmp_path):
    proc = run_workflow(tmp_path / "nope", tmp_path / "w", check=False, extra=["-n"])
    assert proc.returncode != 0
    assert f"archive not found: {tmp_path / 'nope'} does not exist" in proc.stdout + proc.stderr


def test_archive_is_not_written(run):
    root, truth, *_ = run
    found = sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file())
    assert found == sorted(list(truth["facts"]) + truth["skipped"])
