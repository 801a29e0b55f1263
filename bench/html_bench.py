"""Benchmark the review pages: time to the first page with 100,000 pairs, in Chromium.

Writes a synthetic JSON deliverable with N resize pairs (and N/2 identical sets)
over N files, builds the pages with archive_twins.html, and opens
transform_resize.html and identical.html from disk in Debian's Chromium
(tests/browser/check_pages.mjs --time). Target: first page in < 2 s.

    python bench/html_bench.py [--pairs 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synthetic_tables(n_pairs: int) -> dict[str, list[dict]]:
    files = [
        {
            "file_id": i + 1,
            "filename": f"box{i // 1000:04d}/object_{i:07d}.tif",
            "size_bytes": 120_000_000,
            "sha256": f"{i:064x}",
            "format": "tiff",
            "width": 4904,
            "height": 3680,
            "n_pages": 2,
            "bits_per_sample": 16,
            "bands": 3,
            "status": "ok",
            "error": None,
            "thumb": f"thumbs/00/{i:064x}.jpg",
            "thumb_w": 800,
            "thumb_h": 600,
        }
        for i in range(n_pairs)
    ]
    h = json.dumps([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]])
    pairs = [
        {
            "file_id1": i + 1,
            "file_id2": (i + 1) % n_pairs + 1,
            "kind": "resize",
            "scale": 0.5,
            "angle": 0,
            "mirrored": 0,
            "crop_x": 0,
            "crop_y": 0,
            "crop_w": 4904,
            "crop_h": 3680,
            "homography": h,
            "inliers": None,
            "score": 0.99,
            "method": "phash",
            "area_fraction": 1.0,
            "colour_change": 0,
        }
        for i in range(n_pairs)
    ]
    ident = [{"identical_set_id": i // 2 + 1, "file_id": i + 1} for i in range(n_pairs)]
    return {
        "files": files,
        "copy_pairs": pairs,
        "identical_list": ident,
        "identical_list_stat": [{"set_size": 2, "set_count": n_pairs // 2}],
        "same_pixels_list": [],
        "skipped_files": [],
        "transform_list_stat": [
            {"transform": "resize", "count": n_pairs},
            {"transform": "rotate90i", "count": 0},
            {"transform": "other", "count": 0},
        ],
    }


def main() -> None:
    from archive_twins.html import build_html

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="at-html-"))
    try:
        jdir = tmp / "json"
        jdir.mkdir()
        for name, rows in synthetic_tables(args.pairs).items():
            (jdir / f"{name}.json").write_text(json.dumps(rows))
        t0 = time.perf_counter()
        build_html(jdir, tmp / "html", tmp / "archive")
        size = (tmp / "html" / "data" / "transform_resize.js").stat().st_size / 2**20
        print(
            f"built pages for {args.pairs} pairs in {time.perf_counter() - t0:.1f} s "
            f"(transform_resize data {size:.1f} MB)"
        )
        for page in ("transform_resize.html", "identical.html"):
            out = subprocess.run(
                [
                    "node",
                    str(REPO / "tests" / "browser" / "check_pages.mjs"),
                    str(tmp / "html"),
                    str(tmp),
                    "--time",
                    page,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout)
            print(
                f"{page:24s} first page shown in {r['seconds']:.2f} s ({r['info']}); target < 2 s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
