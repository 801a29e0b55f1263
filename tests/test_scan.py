"""Scan: which files are images, what is skipped, and stable shard manifests."""

from __future__ import annotations

import os

import pytest

from archive_twins.ingest.scan import is_image_name, scan_archive, write_manifests
from archive_twins.util import read_jsonl, shard_assignment


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


def test_shards_follow_folders():
    """A folder's files share few shards; many folders spread over all of them; the
    assignment depends only on the paths, not on their order."""
    paths = [f"box{d:02d}/{i}.jpg" for d in range(40) for i in range(100)]
    a = shard_assignment(paths, 16, 128)
    assert a == shard_assignment(list(reversed(paths)), 16, 128)
    for d in range(40):
        assert len({a[f"box{d:02d}/{i}.jpg"] for i in range(100)}) == 1
    # with many folders (buckets) per shard, shards stay balanced
    many = shard_assignment([f"box{d:03d}/{i}.jpg" for d in range(400) for i in range(10)], 16)
    sizes = [list(many.values()).count(s) for s in range(16)]
    assert min(sizes) >= 0.5 * 250 and max(sizes) <= 1.6 * 250


def test_a_new_folder_touches_few_shards_and_a_big_folder_is_cut():
    old = [f"box{d:02d}/{i}.jpg" for d in range(40) for i in range(100)]
    new = [f"new/{i}.tif" for i in range(1000)]
    before, after = shard_assignment(old, 64, 128), shard_assignment(old + new, 64, 128)
    assert all(after[p] == before[p] for p in old)  # nothing else moves
    assert len({after[p] for p in new}) <= 8  # 1,000 files in 8 buckets
    assert len({after[p] for p in new}) >= 4  # ... not all in one job


def test_a_growing_folder_moves_at_most_half_its_files():
    folder = [f"f/{i}.jpg" for i in range(128)]
    before = shard_assignment(folder, 64, 128)
    after = shard_assignment(folder + ["f/new.jpg"], 64, 128)  # 129 files: 2 buckets
    moved = sum(after[p] != before[p] for p in folder)
    assert 0 < moved <= 0.7 * len(folder)
    again = shard_assignment(folder + ["f/new.jpg", "f/new2.jpg"], 64, 128)
    assert all(again[p] == after[p] for p in folder)  # within a power of two: none


def test_manifests_rewritten_only_when_their_shard_changes(tmp_path):
    arch = tmp_path / "arch"
    for d in range(6):
        (arch / f"d{d}").mkdir(parents=True)
        for i in range(4):
            (arch / f"d{d}" / f"{i}.jpg").write_bytes(b"x")
    out = tmp_path / "m"
    changed = write_manifests(scan_archive(arch), out, 4, 128)
    assert changed == [0, 1, 2, 3]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert write_manifests(scan_archive(arch), out, 4, 128) == []
    (arch / "d3" / "new.png").write_bytes(b"y")
    changed = write_manifests(scan_archive(arch), out, 4, 128)
    paths = [r["path"] for r in scan_archive(arch).images]
    assert changed == [shard_assignment(paths, 4, 128)["d3/new.png"]]
    for p in out.iterdir():
        if p.name != f"shard-{changed[0]:04d}.jsonl":
            assert p.stat().st_mtime_ns == mtimes[p.name]
    entries = read_jsonl(out / f"shard-{changed[0]:04d}.jsonl")
    assert "d3/new.png" in [e["path"] for e in entries]


def test_file_symlink_loop_is_recorded_not_fatal(tmp_path):
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    res = scan_archive(tmp_path)
    assert [r["path"] for r in res.images] == ["a.jpg", "b.jpg"]
    assert all(r["scan_error"].startswith("cannot stat") for r in res.images)
