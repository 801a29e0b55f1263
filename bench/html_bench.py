"""Benchmark the review pages: time to the first page with 100,000 pairs and 30,000
families, in Chromium.

Writes a synthetic JSON deliverable with N resize pairs (and N/2 identical sets)
over N files and F copy families of 3 files (a master, two derivatives; one in a
hundred mixed), builds the pages with archive_twins.deliver.html, and opens
transform_resize.html, identical.html and families.html from disk in Debian's
Chromium (tests/browser/check_pages.mjs --time). Target: first page in < 2 s.

    python bench/html_bench.py [--pairs 100000] [--families 30000]
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


def synthetic_families(n_families: int) -> list[dict]:
    """Families of three files each (files 3k, 3k+1, 3k+2): a master, two halves."""
    rows = []
    for k in range(n_families):
        for j, role in enumerate(("master", "derivative", "derivative")):
            rel = role != "master"
            rows.append(
                {
                    "family_id": f"{k:016x}",
                    "file_id": 3 * k + j + 1,
                    "role": role,
                    "via_file_id": 3 * k + 2 if j == 2 else None,
                    "kind": "resize" if rel else None,
                    "scale": 0.5 if rel else None,
                    "angle": 0.0 if rel else None,
                    "mirrored": 0 if rel else None,
                    "crop_x": 0.0 if rel else None,
                    "crop_y": 0.0 if rel else None,
                    "crop_w": 4904.0 if rel else None,
                    "crop_h": 3680.0 if rel else None,
                    "colour_change": 0 if rel else None,
                    "mixed": int(k % 100 == 0),
                    "family_size": 3,
                    "duplicate_of": None,
                    "hops": 1 + (j == 2) if rel else 0,
                    "explained": 1,
                    "homography": json.dumps([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]])
                    if rel
                    else None,
                }
            )
    return rows


def synthetic_tables(n_pairs: int, n_families: int = 0) -> dict[str, list[dict]]:
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
            "direction_by": "resolution",
            "reviewed": 0,
        }
        for i in range(n_pairs)
    ]
    ident = [{"identical_set_id": i // 2 + 1, "file_id": i + 1} for i in range(n_pairs)]
    return {
        "files": files,
        "families": synthetic_families(min(n_families, n_pairs // 3)),
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
    from archive_twins.deliver.html import build_html

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--families", type=int, default=30_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="at-html-"))
    try:
        jdir = tmp / "json"
        jdir.mkdir()
        for name, rows in synthetic_tables(args.pairs, args.families).items():
            (jdir / f"{name}.json").write_text(json.dumps(rows))
        t0 = time.perf_counter()
        build_html(jdir, tmp / "html", tmp / "archive")
        size = (tmp / "html" / "data" / "transform_resize.js").stat().st_size / 2**20
        print(
            f"built pages for {args.pairs} pairs in {time.perf_counter() - t0:.1f} s "
            f"(transform_resize data {size:.1f} MB)"
        )
        for page in ("transform_resize.html", "identical.html", "families.html"):
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
