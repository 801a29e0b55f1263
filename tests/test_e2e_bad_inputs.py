"""A corpus of bad inputs: the run completes, every image file is in `files` with a
status and a reason, and nothing else is lost."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from archives import png_declaring
from conftest import read_json_tables, run_workflow

from archive_twins.demo import photo, save

pytestmark = pytest.mark.e2e


NAMES = [
    "names/with space.jpg",
    "names/ünïcödé 写真.png",
    "names/new\nline.jpg",
    "names/<script>alert(1)<.jpg",
    "names/quote\"s 'x'.tif",
    "names/box[2].jpg",
    "names/UPPER.JPEG",
]

EXPECTED_ERRORS = {
    "bad/truncated.jpg": r"^decode failed: .*(premature end|truncated|Corrupt)",
    "bad/truncated.tif": r"^decode failed",
    "bad/empty.tif": r"^empty file \(0 bytes\)$",
    "bad/report.pdf.tif": r"content looks like a PDF document",
    "bad/bomb.png": r"^image too large: 60000x60000 exceeds max_pixels=1000000000$",
    "bad/fifo.jpg": r"^not a regular file$",
    "bad/dangling.jpg": r"^cannot stat",
    "bad/loop_a.jpg": r"^cannot stat",
    "bad/loop_b.jpg": r"^cannot stat",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "archive"
    good = photo("coffee")
    for i, name in enumerate(NAMES):
        save(good[i * 10 :, i * 10 :], root / name)
    (root / "bad").mkdir()
    jpg = save(photo("rocket"), root / "ok" / "rocket.jpg")
    data = jpg.read_bytes()
    (root / "bad" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    tif = save(photo("rocket"), root / "ok" / "rocket.tif")
    data = tif.read_bytes()
    (root / "bad" / "truncated.tif").write_bytes(data[: len(data) // 2])
    (root / "bad" / "empty.tif").write_bytes(b"")
    (root / "bad" / "report.pdf.tif").write_bytes(
        b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\n%%EOF\n"
    )
    (root / "bad" / "bomb.png").write_bytes(png_declaring(60000, 60000))
    os.mkfifo(root / "bad" / "fifo.jpg")
    os.symlink("missing.jpg", root / "bad" / "dangling.jpg")
    os.symlink("loop_b.jpg", root / "bad" / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "bad" / "loop_b.jpg")
    os.symlink("..", root / "bad" / "up")  # a directory symlink loop
    locked = save(photo("chelsea"), root / "bad" / "locked.jpg")
    locked.chmod(0)
    (root / "docs").mkdir()
    (root / "docs" / "list.xlsx").write_bytes(b"PK\x03\x04")
    work = tmp_path_factory.mktemp("work")
    proc = run_workflow(root, work, shards=3)
    return root, read_json_tables(work / "results" / "json"), proc


def image_entries(root: Path) -> set[str]:
    """Every image-named entry, found independently of the workflow's scan."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if re.search(r"\.(tiff?|jpe?g|png)$", n, re.I):
                found.add(os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/"))
    return found


def test_every_image_file_is_recorded(run):
    root, t, _ = run
    names = {f["filename"] for f in t["files"]}
    assert names == image_entries(root)
    assert {r["filename"] for r in t["fileid_to_filename_map"]} == names


def test_errors_have_their_reasons(run):
    _, t, _ = run
    files = {f["filename"]: f for f in t["files"]}
    for name, pattern in EXPECTED_ERRORS.items():
        f = files[name]
        assert f["status"] == "error", name
        assert re.search(pattern, f["error"]), (name, f["error"])


def test_odd_names_are_analysed(run):
    _, t, _ = run
    files = {f["filename"]: f for f in t["files"]}
    for name in NAMES + ["ok/rocket.jpg", "ok/rocket.tif"]:
        assert files[name]["status"] == "ok", (name, files[name]["error"])
        assert files[name]["thumb"]


def test_unreadable_file(run):
    _, t, _ = run
    f = {f["filename"]: f for f in t["files"]}["bad/locked.jpg"]
    if os.geteuid() == 0:  # root reads a mode-000 file: it is simply analysed
        assert f["status"] == "ok"
    else:
        assert f["status"] == "error" and f["error"].startswith("cannot read")


def test_skipped_entries_have_reasons(run):
    _, t, _ = run
    skipped = {s["filename"]: s["reason"] for s in t["skipped_files"]}
    assert skipped["docs/list.xlsx"] == "not an image extension"
    assert skipped["bad/up"] == "symlink to a directory (not followed)"


def test_names_survive_sqlite_and_json(run):
    _, t, proc = run
    assert "names/new\nline.jpg" in {f["filename"] for f in t["files"]}
    assert proc.returncode == 0
