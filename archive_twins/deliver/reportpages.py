"""Takes the review pages and the thumbnail store, gives a self-contained copy of the
pages for Snakemake's report (`snakemake --report report.zip`).

The pages link their thumbnails as `../thumbs/...` (the results' store, next to
html/); the report packs only the marked directory, so this copy holds the
thumbnails the pages show under `thumbs/` and links them there. Files are hard links
where the file system allows (no second copy on disk), else copies.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..records import THUMB_DIR, thumb_path
from ..util import atomic_dir

_SHA = re.compile(r"\b[0-9a-f]{64}\b")
# the pages' data (html.py `_write_data_js`) holds the template JSON-escaped
_TEMPLATE_FROM = f'\\"thumb_template\\":\\"../{THUMB_DIR}/'
_TEMPLATE_TO = f'\\"thumb_template\\":\\"{THUMB_DIR}/'


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_report_pages(
    html_dir: str | os.PathLike, thumbs: str | os.PathLike, out_dir: str | os.PathLike
) -> dict[str, int]:
    """Write the pages of `html_dir` with the thumbnails they show (from `thumbs`)
    into a fresh directory renamed over `out_dir`. Returns counts of pages, data
    files and thumbnails."""
    html_dir, thumbs = Path(html_dir), Path(thumbs)
    counts = {"files": 0, "data": 0, "thumbnails": 0}
    shas: set[str] = set()
    with atomic_dir(out_dir) as tmp:
        for src in sorted(p for p in html_dir.rglob("*") if p.is_file()):
            rel = src.relative_to(html_dir)
            if rel.name.startswith("."):
                # Snakemake's .snakemake_timestamp: it touches the copy's, which as a
                # hard link would date the pages it came from too (and rerun publish)
                continue
            dst = tmp / rel
            if rel.parts[0] == "data" and src.suffix == ".js":
                text = src.read_text(encoding="utf-8")
                shas.update(_SHA.findall(text))
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(text.replace(_TEMPLATE_FROM, _TEMPLATE_TO, 1), encoding="utf-8")
                counts["data"] += 1
            else:
                _link(src, dst)
            counts["files"] += 1
        for sha in sorted(shas):
            src = thumb_path(thumbs, sha)
            if src.is_file():
                _link(src, thumb_path(tmp / THUMB_DIR, sha))
                counts["thumbnails"] += 1
    return counts
