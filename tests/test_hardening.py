"""Issue #13, unit level: names that are not UTF-8, symlinks leaving the archive,
permissions, decode messages, content changes hidden behind a restored mtime."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvips

from archive_twins.aggregate import build_tables, write_json, write_sqlite
from archive_twins.decode import ALLOWED_FORMATS, DecodeParams, analyse
from archive_twins.html import build_html
from archive_twins.scan import scan_archive, write_manifests
from archive_twins.schema import TABLES
from archive_twins.shard import process_shard
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

