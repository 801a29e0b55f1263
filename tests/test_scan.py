"""Scan: which files are images, what is skipped, and stable shard manifests."""

from __future__ import annotations

import os

import pytest

from archive_twins.scan import is_image_name, scan_archive, write_manifests
from archive_twins.util import read_jsonl, shard_of


@pytest.mark.parametrize(
    "name",
    ["a.tif", "a.TIFF", "a.Jpg", "a.jpeg", "a.PNG", "a.tif.tif", "a.JPG.jpg", "x y.tiff"],
)
def test_image_extensions(name):
    assert is_image_name(name)


@pytest.mark.parametrize("name", ["a.docx", "a.tif.bak", "a.pdf", "tif", "a.gif", "a_tif", "a.jp"])
def test_not_image_extensions(name):
    assert not is_image_name(name)


def test_scan_lists_images_and_skips_others(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "b.TIF").write_bytes(b"xx")
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "d" / "sheet.xlsx").write_bytes(b"123")
    res = scan_archive(tmp_path)
    assert [r["path"] for r in res.images] == ["a.jpg", "d/e/b.TIF"]
    assert res.images[1]["size"] == 2
    assert res.skipped == [
        {"filename": "d/sheet.xlsx", "size_bytes": 3, "reason": "not an image extension"}
    ]


def test_symlink_loop_and_broken_link(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"x")
    os.symlink("..", tmp_path / "d" / "loop")
    os.symlink("missing.jpg", tmp_path / "broken.jpg")
    res = scan_archive(tmp_path)
    assert [r["path"] for r in res.images] == ["broken.jpg", "d/a.png"]
    assert res.images[0]["scan_error"].startswith("cannot stat")
    assert {
        "filename": "d/loop",
        "size_bytes": None,
        "reason": "symlink to a directory (not followed)",
    } in res.skipped


def test_symlink_loop_followed_terminates(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"x")
    os.symlink("..", tmp_path / "d" / "loop")
    res = scan_archive(tmp_path, follow_symlinks=True)
    assert [r["path"] for r in res.images] == ["d/a.png"]
    assert any(r["reason"] == "directory loop" for r in res.skipped)


def test_shard_depends_only_on_path():
    assert shard_of("a/b.jpg", 16) == shard_of("a/b.jpg", 16)
    shards = {shard_of(f"dir/{i}.jpg", 16) for i in range(200)}
    assert shards == set(range(16))


def test_manifests_rewritten_only_when_their_shard_changes(tmp_path):
    arch = tmp_path / "arch"
    arch.mkdir()
    for i in range(20):
        (arch / f"{i}.jpg").write_bytes(b"x")
    out = tmp_path / "m"
    changed = write_manifests(scan_archive(arch), out, 4)
    assert changed == [0, 1, 2, 3]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert write_manifests(scan_archive(arch), out, 4) == []
    (arch / "new.png").write_bytes(b"y")
    changed = write_manifests(scan_archive(arch), out, 4)
    assert changed == [shard_of("new.png", 4)]
    for p in out.iterdir():
        if p.name != f"shard-{changed[0]:04d}.jsonl":
            assert p.stat().st_mtime_ns == mtimes[p.name]
    entries = read_jsonl(out / f"shard-{changed[0]:04d}.jsonl")
    assert "new.png" in [e["path"] for e in entries]


def test_file_symlink_loop_is_recorded_not_fatal(tmp_path):
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    res = scan_archive(tmp_path)
    assert [r["path"] for r in res.images] == ["a.jpg", "b.jpg"]
    assert all(r["scan_error"].startswith("cannot stat") for r in res.images)
