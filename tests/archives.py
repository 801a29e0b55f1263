"""Archives with known answers, built from real photographs, for the end-to-end tests."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from archive_twins.demo import copy_bytes, photo, save, save_museum_tiff, to16


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_foundation_archive(root: Path) -> dict:
    """Byte copies (set sizes 2, 3, 5), a two-page 16-bit TIFF and a metadata-only
    variant of it, a truncated JPEG, a zero-byte .tif and stray documents.

    Returns the expected facts per file and the expected sets (as filename lists).
    """
    facts: dict[str, dict] = {}

    def add(
        rel: str,
        fmt: str | None,
        w=None,
        h=None,
        pages=None,
        bits=None,
        bands=None,
        status: str = "ok",
    ):
        facts[rel] = dict(
            format=fmt,
            width=w,
            height=h,
            n_pages=pages,
            bits_per_sample=bits,
            bands=bands,
            status=status,
        )

    astro = save(photo("astronaut"), root / "a" / "astronaut.jpg", Q=90)
    copy_bytes(astro, root / "b" / "astronaut.jpg")
    for rel in ("a/astronaut.jpg", "b/astronaut.jpg"):
        add(rel, "jpeg", 512, 512, 1, 8, 3)

    coffee = save(photo("coffee"), root / "x" / "coffee.png")
    copy_bytes(coffee, root / "y" / "coffee copy.png")
    copy_bytes(coffee, root / "z" / "sub" / "COFFEE.PNG")
    for rel in ("x/coffee.png", "y/coffee copy.png", "z/sub/COFFEE.PNG"):
        add(rel, "png", 600, 400, 1, 8, 3)

    rocket = save(photo("rocket"), root / "f1" / "rocket.JPG", Q=80)
    for i in range(2, 6):
        copy_bytes(rocket, root / f"f{i}" / "rocket.JPG")
    for i in range(1, 6):
        add(f"f{i}/rocket.JPG", "jpeg", 640, 427, 1, 8, 3)

    cat16 = to16(photo("chelsea"))
    save_museum_tiff(cat16, root / "museum" / "scan_0001.tif", xmp_date="2019-03-01T10:00:00")
    save_museum_tiff(cat16, root / "museum" / "scan_0001_v2.tif", xmp_date="2024-06-30T17:45:00")
    save_museum_tiff(to16(photo("immunohistochemistry")), root / "museum" / "scan_0002.tif.tif")
    for rel, (w, h) in {
        "museum/scan_0001.tif": (451, 300),
        "museum/scan_0001_v2.tif": (451, 300),
        "museum/scan_0002.tif.tif": (512, 512),
    }.items():
        add(rel, "tiff", w, h, 2, 16, 3)

    full = astro.read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    add("bad/truncated.jpg", "jpeg", 512, 512, 1, 8, 3, status="error")
    (root / "bad" / "zero.tif").write_bytes(b"")
    add("bad/zero.tif", None, status="error")

    (root / "docs").mkdir()
    with zipfile.ZipFile(root / "docs" / "catalogue.docx", "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    (root / "docs" / "notes.txt").write_text("inventory notes\n")

    return {
        "facts": facts,
        "identical": [
            ["a/astronaut.jpg", "b/astronaut.jpg"],
            [f"f{i}/rocket.JPG" for i in range(1, 6)],
            ["x/coffee.png", "y/coffee copy.png", "z/sub/COFFEE.PNG"],
        ],
        "same_pixels": [["museum/scan_0001.tif", "museum/scan_0001_v2.tif"]],
        "skipped": ["docs/catalogue.docx", "docs/notes.txt"],
        "errors": {
            "bad/truncated.jpg": r"^decode failed: .*(premature end|truncated)",
            "bad/zero.tif": r"^empty file \(0 bytes\)$",
        },
    }
