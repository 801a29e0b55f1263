"""Peak memory of decoding one museum master: a 3680x4904 16-bit RGB two-page TIFF
(~108 MB, full image in page 0, thumbnail in page 1). Target: peak RSS < 1 GiB.

The file is decoded in a fresh process by archive_twins.ingest.decode.analyse (sha256,
page-0 pixel hash streamed through libvips, thumbnail); its peak RSS is read from
getrusage. ImageMagick's `convert FILE[0] ... -resize 800x800>` is timed on the same
file when installed, for reference.

    python bench/memory_bench.py
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from archive_twins.ingest.decode import DecodeParams, analyse, sha256_file
t0 = time.perf_counter()
sha = sha256_file({path!r})
rec, _ = analyse({path!r}, {thumb!r}, DecodeParams())
print(json.dumps({{"seconds": time.perf_counter() - t0, "status": rec["status"],
                   "pages": rec["n_pages"], "bits": rec["bits_per_sample"],
                   "size": [rec["width"], rec["height"]],
                   "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def make_master(path: Path) -> None:
    import cv2

    from archive_twins.demo import photo, save_museum_tiff, to16

    big = cv2.resize(photo("retina"), (3680, 4904), interpolation=cv2.INTER_CUBIC)
    save_museum_tiff(to16(big), path, thumb_px=256)


def main() -> None:
    from compare_bench import imagemagick_thumb

    tmp = Path(tempfile.mkdtemp(prefix="at-mem-"))
    try:
        master = tmp / "master.tif"
        make_master(master)
        print(f"master: {master.stat().st_size / 2**20:.0f} MB, 3680x4904, 16-bit RGB, 2 pages")
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD.format(repo=str(REPO), path=str(master), thumb=str(tmp / "t.jpg")),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        print(
            f"archive-twins decode: {r['seconds']:.2f} s, peak RSS {r['peak_mb']:.0f} MB "
            f"(target < 1024 MB), status {r['status']}, page 0 {r['size']}, "
            f"{r['bits']}-bit, {r['pages']} pages"
        )
        if (
            shutil.which("convert")
            and "ImageMagick"
            in subprocess.run(["convert", "-version"], capture_output=True, text=True).stdout
        ):
            t0 = time.perf_counter()
            imagemagick_thumb(master, tmp / "im.jpg")
            secs = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"ImageMagick convert (thumbnail only): {secs:.2f} s, "
                f"peak RSS {peak:.0f} MB (max of the children so far)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
