"""How a shard's records are merged (archive_twins/ingest/shard.py): unchanged files keep
their records unread, new and changed files are hashed, contents decoded before are
taken from the content store, errors keep their reason, removed files drop out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import archive_twins.ingest.shard as shard_mod
from archive_twins.ingest.decode import DecodeParams
from archive_twins.ingest.scan import scan_archive, write_manifests
from archive_twins.ingest.shard import FILE_TOKEN, content_paths, process_shard
from archive_twins.records import DECODE_KEYS, SHARD_KEYS, thumb_path
from archive_twins.util import read_jsonl, write_jsonl

P = DecodeParams(thumb_size=64)


def picture(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A small PNG of smooth random content (each seed another image)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    arr = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(os.fspath(path), arr)
    return path


def touch_later(path: Path) -> None:
    """Give a rewritten file an mtime the previous scan cannot have seen."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


class Shard:
    """One archive in one shard, processed like rule decode_shard does."""

    def __init__(self, tmp: Path):
        self.root, self.results = tmp / "archive", tmp / "results"
        self.root.mkdir()
        self.store = self.results / "thumbs"
        self.output = self.results / "shards" / "shard-0000.jsonl"

    def run(self, params: DecodeParams = P, **kw: object) -> tuple[shard_mod.ShardStats, dict]:
        write_manifests(scan_archive(self.root), self.results / "manifest", 1)
        stats = process_shard(
            self.results / "manifest" / "shard-0000.jsonl",
            self.output,
            self.root,
            self.store,
            params,
            **kw,
        )
        return stats, {r["path"]: r for r in read_jsonl(self.output)}


def facts(rec: dict) -> dict:
    return {k: rec[k] for k in DECODE_KEYS}


@pytest.fixture
def shard(tmp_path):
    s = Shard(tmp_path)
    picture(s.root / "a.png", 1)
    picture(s.root / "b.png", 2, (64, 32))
    (s.root / "copy").mkdir()
    (s.root / "copy" / "a.png").write_bytes((s.root / "a.png").read_bytes())
    return s


def no_reading(monkeypatch):
    """Fail the test if a file is hashed or decoded."""

    def fail(*_a: object, **_k: object) -> None:
        raise AssertionError("a file was read")

    monkeypatch.setattr(shard_mod, "read_hashed", fail)
    monkeypatch.setattr(shard_mod, "analyse", fail)


def test_new_files_are_decoded_once_per_content(shard):
    stats, recs = shard.run()
    assert (stats.files, stats.hashed, stats.decoded, stats.content_reused) == (3, 3, 2, 1)
    assert sorted(recs) == ["a.png", "b.png", "copy/a.png"]
    for path, rec in recs.items():
        assert set(rec) == set(SHARD_KEYS), path
        assert rec["status"] == "ok" and rec["params"] == P.fingerprint()
        assert thumb_path(shard.store, rec["sha256"]).exists()
    a, copy = recs["a.png"], recs["copy/a.png"]
    assert copy["sha256"] == a["sha256"] and facts(copy) == facts(a)  # from the store
    assert (a["width"], a["height"], recs["b.png"]["width"]) == (48, 40, 64)
    cached = json.loads(content_paths(shard.store, a["sha256"])[1].read_text())
    assert {k: cached[k] for k in DECODE_KEYS} == facts(a)
    assert cached["params"] == P.fingerprint()


def test_unchanged_files_keep_their_records_unread(shard, monkeypatch):
    _, before = shard.run()
    no_reading(monkeypatch)
    stats, after = shard.run()
    assert (stats.unchanged, stats.hashed, stats.decoded) == (3, 0, 0)
    assert after == before


def test_a_changed_file_is_hashed_and_decoded_again(shard):
    _, before = shard.run()
    picture(shard.root / "b.png", 3, (30, 50))
    touch_later(shard.root / "b.png")
    stats, after = shard.run()
    assert (stats.unchanged, stats.hashed, stats.decoded, stats.content_reused) == (2, 1, 1, 0)
    assert after["b.png"]["sha256"] != before["b.png"]["sha256"]
    assert (after["b.png"]["width"], after["b.png"]["height"]) == (30, 50)
    assert after["a.png"] == before["a.png"]


def test_a_file_changed_to_known_bytes_takes_the_cached_facts(shard, monkeypatch):
    _, before = shard.run()
    (shard.root / "b.png").write_bytes((shard.root / "a.png").read_bytes())
    touch_later(shard.root / "b.png")
    monkeypatch.setattr(shard_mod, "analyse", None)  # decoding would fail
    stats, after = shard.run()
    assert (stats.hashed, stats.decoded, stats.content_reused) == (1, 0, 1)
    assert facts(after["b.png"]) == facts(before["a.png"])
    assert after["b.png"]["mtime_ns"] != before["b.png"]["mtime_ns"]  # its own stat facts


def test_a_removed_file_is_gone(shard):
    shard.run()
    (shard.root / "b.png").unlink()
    stats, after = shard.run()
    assert stats.files == 2 and sorted(after) == ["a.png", "copy/a.png"]


def test_a_missing_thumbnail_is_made_again(shard):
    _, before = shard.run()
    thumb_path(shard.store, before["b.png"]["sha256"]).unlink()
    stats, after = shard.run()
    assert (stats.unchanged, stats.decoded) == (2, 1)
    assert facts(after["b.png"]) == facts(before["b.png"])
    assert thumb_path(shard.store, after["b.png"]["sha256"]).exists()


def test_other_decode_settings_redo_every_file(shard):
    shard.run()
    stats, after = shard.run(DecodeParams(thumb_size=16))
    assert (stats.unchanged, stats.decoded, stats.content_reused) == (0, 2, 1)
    assert max(after["b.png"]["thumb_w"], after["b.png"]["thumb_h"]) == 16


def test_full_verification_rehashes_but_reuses_the_decoding(shard, monkeypatch):
    shard.run()
    monkeypatch.setattr(shard_mod, "analyse", None)
    stats, _ = shard.run(full=True)
    assert (stats.unchanged, stats.hashed, stats.decoded, stats.content_reused) == (0, 3, 0, 3)


def test_errors_keep_their_reason_and_are_not_thumbnailed(shard):
    (shard.root / "bad.png").write_bytes(b"this is not an image at all")
    (shard.root / "empty.jpg").write_bytes(b"")
    stats, recs = shard.run()
    assert stats.errors == 2
    bad, empty = recs["bad.png"], recs["empty.jpg"]
    assert bad["status"] == "error" and bad["error"] == "not a recognised image format"
    assert empty["error"] == "empty file (0 bytes)"
    assert bad["sha256"] and bad["pixel_hash"] is None and bad["thumb_w"] is None
    assert not thumb_path(shard.store, bad["sha256"]).exists()
    # an error is a result too: unchanged, it is not read again
    stats, again = shard.run()
    assert stats.unchanged == 5 and stats.errors == 2 and again == recs


def test_a_cached_error_names_each_byte_copy_by_its_own_path(shard, monkeypatch):
    seen = []

    def failing(path: str, thumb: str, params: DecodeParams, name=None, data=None):
        seen.append(path)
        rec = dict.fromkeys(DECODE_KEYS)
        rec.update(status="error", error=f"decode failed: {name} is broken", format="png")
        return rec, None

    monkeypatch.setattr(shard_mod, "analyse", failing)
    stats, recs = shard.run()
    assert len(seen) == 2  # a.png (or its copy) and b.png; the other copy from the store
    assert recs["a.png"]["error"] == "decode failed: a.png is broken"
    assert recs["copy/a.png"]["error"] == "decode failed: copy/a.png is broken"
    assert recs["a.png"]["format"] == "png" and stats.errors == 3
    cached = json.loads(content_paths(shard.store, recs["a.png"]["sha256"])[1].read_text())
    assert cached["error"] == f"decode failed: {FILE_TOKEN} is broken"  # no one file's name


def test_an_unreadable_file_is_an_error_with_the_scan_reason(shard):
    manifest = shard.results / "manifest" / "shard-0000.jsonl"
    manifest.parent.mkdir(parents=True)
    entry = {"path": "gone.png", "size": -1, "mtime_ns": 0, "scan_error": "cannot stat: denied"}
    write_jsonl(manifest, [entry])
    stats = process_shard(manifest, shard.output, shard.root, shard.store, P)
    (rec,) = read_jsonl(shard.output)
    assert (stats.hashed, stats.errors) == (0, 1)
    assert rec["status"] == "error" and rec["error"] == "cannot stat: denied"
    assert rec["sha256"] is None and rec["size_bytes"] is None and set(rec) == set(SHARD_KEYS)


def test_a_cache_from_before_exif_orientation_is_completed(shard, monkeypatch):
    _, before = shard.run()
    meta = content_paths(shard.store, before["b.png"]["sha256"])[1]
    old = json.loads(meta.read_text())
    del old["exif_orientation"]
    meta.write_text(json.dumps(old))
    shard.output.unlink()  # no previous records: every file is looked up by content
    monkeypatch.setattr(shard_mod, "exif_orientation", lambda path: 6)  # read from the header
    stats, after = shard.run()
    assert (stats.decoded, stats.content_reused) == (0, 3)
    assert after["b.png"]["exif_orientation"] == 6 and after["a.png"]["exif_orientation"] is None
