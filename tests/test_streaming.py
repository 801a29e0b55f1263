"""Deliverables of a million files in bounded memory: tables kept in duckdb and
written a batch at a time, JSON tables read one row at a time, page data escaped
piece by piece. Each must give the very bytes of the one-shot form."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from archive_twins.deliver import aggregate
from archive_twins.deliver.html import _write_data_js
from archive_twins.deliver.schema import TABLES, columns
from archive_twins.records import FileRecord
from archive_twins.util import iter_json_array, write_jsonl


def _values(rng: random.Random) -> list:
    return [
        rng.choice(
            [
                {"a": rng.random(), "s": "x" * rng.randrange(30), "u": 'é\u2028"\\'},
                12345678,
                "str,]",
                [1, [2, {"k": None}]],
                None,
                True,
                -1.5e-7,
                "",
            ]
        )
        for _ in range(rng.randrange(0, 40))
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_a_json_array_read_piecewise_equals_json_loads(tmp_path, chunk):
    """Any chunk boundary: inside strings, escapes, numbers (1.5 of 1.5e-7),
    literals, nested arrays; compact or spaced text."""
    rng = random.Random(chunk)
    path = tmp_path / "t.json"
    for _ in range(60):
        data = _values(rng)
        seps = rng.choice([(",", ":"), (", ", ": ")])
        text = json.dumps(data, ensure_ascii=False, separators=seps)
        if rng.random() < 0.5:
            text = " \n" + text + "\n "
        path.write_text(text, encoding="utf-8")
        assert list(iter_json_array(path, chunk)) == data


@pytest.mark.parametrize("text", ["", "[1, 2", '{"a": 1}', "[1,, 2]"])
def test_a_broken_json_array_is_an_error(tmp_path, text):
    path = tmp_path / "t.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError):
        list(iter_json_array(path, 2))


def test_tables_written_in_batches_equal_the_one_shot_form(tmp_path):
    """Many files through the duckdb-backed tables and a tiny JSON batch: the JSON
    files are byte for byte `json.dump` of the whole table, and SQLite holds the
    same rows."""
    recs = []
    for i in range(50):
        r = FileRecord(path=f"d/f{i:03d}.jpg", filename=f"d/f{i:03d}.jpg", size_bytes=10 + i)
        r.filename_bytes = r.path.encode().hex()
        r.set_facts({"status": "ok", "width": 4, "height": 3})
        r.sha256 = f"{i // 2:064x}"  # byte copies in pairs
        recs.append(r.shard_dict())
    write_jsonl(tmp_path / "shard.jsonl", recs)
    (tmp_path / "skipped.jsonl").write_text("")
    tables, _ = aggregate.build_tables(
        [str(tmp_path / "shard.jsonl")], tmp_path / "skipped.jsonl", tmp_path / "ids.json", {}
    )
    assert isinstance(tables["files"], aggregate.Rows) and len(tables["files"]) == 50
    aggregate.write_json(tables, tmp_path / "json", batch=3)
    aggregate.write_sqlite(tables, tmp_path / "a.sqlite")
    con = sqlite3.connect(tmp_path / "a.sqlite")
    for name in TABLES:
        rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
        want = [dict(zip(columns(name), r, strict=True)) for r in list(tables[name])]
        text = json.dumps(want, ensure_ascii=False, separators=(",", ":"))
        assert (tmp_path / "json" / f"{name}.json").read_text(encoding="utf-8") == text, name
        assert len(rows) == len(want), name
    assert len(con.execute("SELECT * FROM identical_list").fetchall()) == 50


def test_page_data_written_in_pieces_equals_the_escaped_whole(tmp_path):
    """The page's JSON.parse string, escaped piece by piece, is the escaped JSON of
    the whole object (quotes, backslashes, U+2028, non-ASCII names)."""
    rng = random.Random(5)
    data = {
        "title": 'Copies "quoted" \\ é',
        "mode": "pairs",
        "fields": {"file": ["filename"], "item": ["a", "b"]},
        "files": [[f'evil "{i}" \\ \u2028 é.jpg', i] for i in range(11)],
        "items": [[rng.random(), "x\n", None] for _ in range(23)],
    }
    _write_data_js(tmp_path / "d.js", data, batch=4)
    whole = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    want = "window.ATW_DATA = JSON.parse(" + json.dumps(whole, ensure_ascii=False) + ");\n"
    assert (tmp_path / "d.js").read_text(encoding="utf-8") == want


def test_aggregate_leaves_only_its_outputs(tmp_path):
    """duckdb's spill directory next to the outputs is gone after the job."""
    r = FileRecord(path="a.jpg", filename="a.jpg", size_bytes=3)
    r.filename_bytes = b"a.jpg".hex()
    r.set_facts({"status": "ok", "width": 4, "height": 3})
    write_jsonl(tmp_path / "shard.jsonl", [r.shard_dict()])
    (tmp_path / "skipped.jsonl").write_text("")
    out = tmp_path / "staging"
    tables = aggregate.aggregate(
        [str(tmp_path / "shard.jsonl")],
        tmp_path / "skipped.jsonl",
        tmp_path / "ids.json",
        out / "archive.sqlite",
        out / "json",
        {},
        memory_mb=64,
    )
    assert len(tables["files"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["archive.sqlite", "json"]
