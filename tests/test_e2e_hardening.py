"""Issue #13, end to end: real archives and real operators never lose results and
never crash the workflow on a name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import read_json_tables, run_workflow

from archive_twins.demo import photo, save

pytestmark = pytest.mark.e2e


def save_raw(arr, raw_path: bytes, tmp: Path) -> None:
    """Save an image under a name libvips cannot spell (not UTF-8)."""
    p = save(arr, tmp / "x.jpg")
    os.makedirs(os.path.dirname(raw_path), exist_ok=True)
    os.rename(p, raw_path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard") / "archive"
    tmp = tmp_path_factory.mktemp("tmp")
    raw = os.fsencode(root)
    save_raw(photo("coffee"), raw + b"/caf\xe9/M\xfcller.jpg", tmp)
    save_raw(photo("rocket"), raw + b"/M\xfcller.jpg", tmp)
    # a byte copy, so the Latin-1 file is in a set the pages show
    (root / "copy.jpg").write_bytes(open(raw + b"/caf\xe9/M\xfcller.jpg", "rb").read())
    save(photo("chelsea"), root / "names" / "evil\u202egpj.exe.jpg")
    work = tmp_path_factory.mktemp("work")
    old = os.umask(0o022)
    try:
        proc = run_workflow(root, work, shards=2)
    finally:
        os.umask(old)
    return root, work, proc


def test_latin1_names_do_not_crash(run):
    root, work, proc = run
    t = read_json_tables(work / "results" / "json")
    files = {f["filename"]: f for f in t["files"]}
    assert files["caf\\xe9/M\\xfcller.jpg"]["status"] == "ok"
    assert files["M\\xfcller.jpg"]["status"] == "ok"
    assert bytes.fromhex(files["caf\\xe9/M\\xfcller.jpg"]["filename_bytes"]) == (
        b"caf\xe9/M\xfcller.jpg"
    )
    pages = "".join(p.read_text() for p in (work / "results" / "html" / "data").glob("*.js"))
    index = (work / "results" / "html" / "index.html").read_text()
    assert "caf%E9/M%FCller.jpg" in pages or "caf%E9/M%FCller.jpg" in index


def test_outputs_follow_the_umask(run):
    _, work, _ = run
    res = work / "results"

    def mode(p: Path) -> int:
        return stat.S_IMODE(os.stat(p).st_mode)

    assert mode(res / "archive.sqlite") == 0o644
    assert mode(res / "json") == 0o755
    assert mode(res / "html") == 0o755
    assert mode(res / "json" / "files.json") == 0o644
    thumbs = list((res / "thumbs").rglob("*.jpg"))
    assert thumbs and all(mode(p) == 0o644 for p in thumbs)


def small_archive(root: Path) -> Path:
    save(photo("coffee")[::4, ::4], root / "a.jpg")
    save(photo("rocket")[::4, ::4], root / "b" / "b.png")
    return root


def test_failed_rerun_keeps_previous_results(tmp_path):
    archive = small_archive(tmp_path / "archive")
    work = tmp_path / "work"
    run_workflow(archive, work, shards=2)
    res = work / "results"
    before = {
        p.relative_to(res): p.read_bytes()
        for d in ("json", "html")
        for p in (res / d).rglob("*")
        if p.is_file()
    }
    sqlite_before = (res / "archive.sqlite").read_bytes()
    # inject a failure into aggregate: a corrupt id registry, and a change to process
    (res / "state" / "file_ids.json").write_text("{not json")
    save(photo("chelsea")[::4, ::4], archive / "c.jpg")
    proc = run_workflow(archive, work, shards=2, check=False)
    assert proc.returncode != 0
    assert (res / "archive.sqlite").read_bytes() == sqlite_before
    after = {
        p.relative_to(res): p.read_bytes()
        for d in ("json", "html")
        for p in (res / d).rglob("*")
        if p.is_file()
    }
    assert after == before
