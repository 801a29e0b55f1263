"""Issue #13, unit level: names that are not UTF-8, symlinks leaving the archive,
permissions, decode messages, content changes hidden behind a restored mtime."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvips
from archives import png_declaring

from archive_twins.deliver.aggregate import build_tables, write_json, write_sqlite
from archive_twins.deliver.html import build_html
from archive_twins.deliver.schema import TABLES
from archive_twins.ingest.decode import ALLOWED_FORMATS, DecodeParams, analyse
from archive_twins.ingest.scan import scan_archive, write_manifests
from archive_twins.ingest.shard import process_shard
from archive_twins.records import DECODE_KEYS
from archive_twins.util import atomic_dir, atomic_open, read_jsonl


def grey_image(path: Path | bytes, value: int = 100, size=(64, 48), **kw) -> None:
    """A small real image (noise, so it has structure) written by libvips."""
    img = (pyvips.Image.gaussnoise(*size, sigma=40, mean=value)).cast("uchar")
    raw = os.fsencode(path)
    fd, tmp = tempfile.mkstemp(suffix=os.fsdecode(os.path.splitext(raw)[1]))
    os.close(fd)
    img.write_to_file(tmp, **kw)  # libvips takes UTF-8 names only
    shutil.move(tmp, raw)


def run_shards(archive: Path, results: Path, n: int = 2, full: bool = False) -> list[str]:
    """Scan and process every shard like the workflow does; return record files."""
    scan = scan_archive(archive)
    write_manifests(scan, results / "manifest", n)
    out = []
    for i in range(n):
        rec = results / "shards" / f"shard-{i:04d}.jsonl"
        kw = {"full": True} if full else {}
        process_shard(
            results / "manifest" / f"shard-{i:04d}.jsonl",
            rec,
            archive,
            results / "thumbs",
            DecodeParams(thumb_size=64),
            **kw,
        )
        out.append(os.fspath(rec))
    return out


# ---- 5. permissions follow the umask ---------------------------------------------------


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_respect_umask(tmp_path, umask022):
    with atomic_open(tmp_path / "f.txt", "w") as fh:
        fh.write("x")
    with atomic_dir(tmp_path / "d") as d:
        (d / "a").write_text("x")
    write_sqlite({name: [] for name in TABLES}, tmp_path / "a.sqlite")
    assert stat.S_IMODE(os.stat(tmp_path / "f.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "a.sqlite").st_mode) == 0o644


# ---- 8. decode: messages, GIF content, zero-width PNG --------------------------------


def test_decode_error_has_no_absolute_path(tmp_path):
    gone = tmp_path / "deep" / "gone.jpg"
    rec, _ = analyse(os.fspath(gone), os.fspath(tmp_path / "t.jpg"), DecodeParams())
    assert rec["status"] == "error"
    assert str(tmp_path) not in rec["error"], rec["error"]


def test_gif_content_named_jpg_is_an_image(tmp_path):
    grey_image(tmp_path / "g.gif")
    os.rename(tmp_path / "g.gif", tmp_path / "g.jpg")
    rec, _ = analyse(os.fspath(tmp_path / "g.jpg"), os.fspath(tmp_path / "t.jpg"), DecodeParams())
    assert rec["status"] == "ok", rec["error"]
    assert rec["format"] == "gif"
    assert rec["format"] in ALLOWED_FORMATS


def test_zero_width_png_has_a_clear_reason(tmp_path):
    (tmp_path / "z.png").write_bytes(png_declaring(0, 10))
    rec, _ = analyse(os.fspath(tmp_path / "z.png"), os.fspath(tmp_path / "t.jpg"), DecodeParams())
    assert rec["status"] == "error"
    assert rec["error"] == "invalid image header: PNG declares a width or height of 0 (0x10)"


# ---- EXIF orientation --------------------------------------------------------------


def test_exif_orientation_is_recorded(tmp_path):
    img = pyvips.Image.gaussnoise(80, 40, sigma=40, mean=100).cast("uchar").copy()
    img.set_type(pyvips.GValue.gint_type, "orientation", 6)
    img.write_to_file(os.fspath(tmp_path / "o.jpg"))
    # libvips always writes the tag; OpenCV writes a JPEG without EXIF
    cv2.imwrite(os.fspath(tmp_path / "plain.jpg"), np.full((40, 80, 3), 128, np.uint8))
    rec, _ = analyse(os.fspath(tmp_path / "o.jpg"), os.fspath(tmp_path / "t.jpg"), DecodeParams())
    assert rec["exif_orientation"] == 6
    # raw pixels are kept: the thumbnail is not rotated
    assert (rec["thumb_w"], rec["thumb_h"]) == (80, 40)
    rec, _ = analyse(
        os.fspath(tmp_path / "plain.jpg"), os.fspath(tmp_path / "t2.jpg"), DecodeParams()
    )
    assert rec["exif_orientation"] is None


# ---- 8. right-to-left override in a name ------------------------------------------------


def test_names_are_bidi_isolated(tmp_path):
    rlo = "names/evil\u202egpj.exe.jpg"
    files = [
        {
            "file_id": 1,
            "filename": rlo,
            "filename_bytes": rlo.encode().hex(),
            "status": "error",
            "error": "decode failed",
            "thumb": None,
            "width": None,
            "height": None,
            "format": None,
            "size_bytes": 1,
            "exif_orientation": None,
        }
    ]
    jdir = tmp_path / "json"
    jdir.mkdir()
    empty = ["identical_list", "same_pixels_list", "copy_pairs", "skipped_files"]
    for name in empty + ["identical_list_stat", "transform_list_stat"]:
        (jdir / f"{name}.json").write_text("[]")
    (jdir / "files.json").write_text(json.dumps(files))
    build_html(jdir, tmp_path / "html", tmp_path)
    index = (tmp_path / "html" / "index.html").read_text()
    assert f"<bdi>{rlo}</bdi>" in index
    css = (tmp_path / "html" / "assets" / "style.css").read_text()
    assert "unicode-bidi: isolate" in css
    app = (tmp_path / "html" / "assets" / "app.js").read_text()
    assert 'el("bdi"' in app


# ---- 1. filenames that are not valid UTF-8 -------------------------------------------


@pytest.fixture
def latin1_archive(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    raw_dir = os.fsencode(root) + b"/caf\xe9"
    os.mkdir(raw_dir)
    grey_image(raw_dir + b"/M\xfcller.jpg", 90)
    grey_image(os.fsencode(root) + b"/M\xfcller.tif", 150)
    grey_image(root / "plain.png", 200)
    return root


def test_latin1_names_are_analysed_and_stored_losslessly(latin1_archive, tmp_path):
    results = tmp_path / "results"
    records = run_shards(latin1_archive, results)
    (results / "manifest" / "skipped.jsonl").write_text("")
    tables, _ = build_tables(
        records, results / "manifest" / "skipped.jsonl", results / "reg.json", {}
    )
    write_sqlite(tables, results / "archive.sqlite")
    write_json(tables, results / "json")
    con = sqlite3.connect(results / "archive.sqlite")
    rows = con.execute(
        "SELECT filename, filename_bytes, status, error FROM files ORDER BY filename"
    ).fetchall()
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {"M\\xfcller.tif", "caf\\xe9/M\\xfcller.jpg", "plain.png"}
    for name, raw in (
        ("M\\xfcller.tif", b"M\xfcller.tif"),
        ("caf\\xe9/M\\xfcller.jpg", b"caf\xe9/M\xfcller.jpg"),
        ("plain.png", b"plain.png"),
    ):
        f = by_name[name]
        assert f[2] == "ok", f
        assert bytes.fromhex(f[1]) == raw
    mapped = con.execute("SELECT filename, filename_bytes FROM fileid_to_filename_map").fetchall()
    assert {bytes.fromhex(b) for _, b in mapped} == {
        b"M\xfcller.tif",
        b"caf\xe9/M\xfcller.jpg",
        b"plain.png",
    }
    js = json.loads((results / "json" / "files.json").read_text())
    assert {f["filename_bytes"] for f in js} == {f[1] for f in rows}
    # links in the pages open the file: raw bytes percent-encoded in the file:// URI
    build_html(results / "json", results / "html", latin1_archive)
    uri_files = build_html_uris(results, latin1_archive)
    assert uri_files["caf\\xe9/M\\xfcller.jpg"].endswith("/archive/caf%E9/M%FCller.jpg")


def build_html_uris(results: Path, archive: Path) -> dict[str, str]:
    """filename -> href of the file rows the pages would link to."""
    from archive_twins.deliver.html import file_uri

    files = json.loads((results / "json" / "files.json").read_text())
    return {f["filename"]: file_uri(archive, f) for f in files}


# ---- 8. file symlinks leaving the archive; errors name the relative file -------------


def test_file_symlink_leaving_archive_is_not_followed(tmp_path):
    outside = tmp_path / "outside.jpg"
    grey_image(outside)
    root = tmp_path / "archive"
    root.mkdir()
    grey_image(root / "inside.jpg")
    os.symlink(outside, root / "escape.jpg")
    os.symlink("inside.jpg", root / "alias.jpg")
    res = scan_archive(root)
    assert [r["path"] for r in res.images] == ["alias.jpg", "inside.jpg"]
    assert {
        "filename": "escape.jpg",
        "size_bytes": None,
        "reason": "symlink leaving the archive (not followed)",
    } in res.skipped


def test_shard_error_names_the_relative_file(tmp_path, monkeypatch):
    import archive_twins.ingest.shard as shard_mod

    root = tmp_path / "archive"
    (root / "d").mkdir(parents=True)
    grey_image(root / "d" / "x.jpg")

    def failing(path, thumb, params, name=None, data=None):
        rec = {k: None for k in DECODE_KEYS}
        shown = path if name is None else name
        rec.update(status="error", error=f'decode failed: "{shown}" is not a known file format')
        return rec, None

    monkeypatch.setattr(shard_mod, "analyse", failing)
    records = run_shards(root, tmp_path / "results", n=1)
    (rec,) = read_jsonl(records[0])
    assert rec["error"] == 'decode failed: "d/x.jpg" is not a known file format'


# ---- 9. changed content behind a restored size and mtime -------------------------------


def test_restored_mtime_does_not_hide_a_change(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    grey_image(root / "a.tif", 100)
    results = tmp_path / "results"
    (rec_file,) = run_shards(root, results, n=1)
    (old,) = read_jsonl(rec_file)
    st = os.stat(root / "a.tif")
    grey_image(tmp_path / "other.tif", 30)  # uncompressed, same size
    assert os.path.getsize(tmp_path / "other.tif") == st.st_size
    os.replace(tmp_path / "other.tif", root / "a.tif")
    os.utime(root / "a.tif", ns=(st.st_atime_ns, st.st_mtime_ns))
    (rec_file,) = run_shards(root, results, n=1)
    (new,) = read_jsonl(rec_file)
    assert new["sha256"] != old["sha256"]
    assert "ctime_ns" in new and "inode" in new


def test_verify_full_rehashes_every_file(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    grey_image(root / "a.tif", 100)
    results = tmp_path / "results"
    (rec_file,) = run_shards(root, results, n=1)
    st = os.stat(root / "a.tif")
    # rewrite in place: same inode, same size, mtime restored; only ctime moves,
    # and a filesystem with coarse ctime could miss even that
    with open(root / "a.tif", "r+b") as fh:
        fh.seek(st.st_size - 1)
        fh.write(b"\x01" if open(root / "a.tif", "rb").read()[-1:] != b"\x01" else b"\x02")
    os.utime(root / "a.tif", ns=(st.st_atime_ns, st.st_mtime_ns))
    scan = scan_archive(root)
    write_manifests(scan, results / "manifest", 1)
    entry = read_jsonl(results / "manifest" / "shard-0000.jsonl")[0]
    # forge the manifest to look unchanged, as on a filesystem without usable ctime
    (old,) = read_jsonl(rec_file)
    entry["ctime_ns"], entry["inode"] = old["ctime_ns"], old["inode"]
    (results / "manifest" / "shard-0000.jsonl").write_text(json.dumps(entry) + "\n")
    stats = process_shard(
        results / "manifest" / "shard-0000.jsonl",
        rec_file,
        root,
        results / "thumbs",
        DecodeParams(thumb_size=64),
        full=True,
    )
    assert stats.hashed == 1 and stats.unchanged == 0
    (new,) = read_jsonl(rec_file)
    assert new["sha256"] != old["sha256"]


def test_escaped_name_colliding_with_a_real_name(tmp_path):
    """A Latin-1 `caf\xe9.jpg` is shown as `caf\\xe9.jpg`, which is also a valid name
    on its own: both files are kept, under distinct filenames."""
    root = tmp_path / "archive"
    root.mkdir()
    grey_image(root / "caf\\xe9.jpg", 60)
    grey_image(os.fsencode(root) + b"/caf\xe9.jpg", 180)
    results = tmp_path / "results"
    records = run_shards(root, results, n=2)
    (results / "manifest" / "skipped.jsonl").write_text("")
    tables, _ = build_tables(
        records, results / "manifest" / "skipped.jsonl", results / "reg.json", {}
    )
    rows = {r[1]: r[2] for r in tables["fileid_to_filename_map"]}
    assert len(rows) == 2
    assert rows["caf\\xe9.jpg"] == b"caf\\xe9.jpg".hex()
    latin1 = b"caf\xe9.jpg".hex()
    assert rows[f"caf\\xe9.jpg [bytes {latin1}]"] == latin1
