"""Benchmark incremental reruns: full run vs rerun after adding 1% new files.

Generates an archive of N distinct synthetic pictures (shapes and text on
gradients, so no two share content), runs the whole
workflow, adds 1% new images (half of them copies of existing ones), reruns, and
prints both wall times and their ratio (target: rerun <= 5% of the full run).

    python bench/incremental_bench.py [--images 3000] [--cores 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def drawing(rng, size=(640, 480)):
    """A unique synthetic picture: gradient background, random shapes and text.

    Photographs would share content (there are only a dozen bundled ones) and make
    every image a partial copy of many others; the benchmark wants unrelated images.
    """
    import cv2
    import numpy as np

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = (xx / w * rng.uniform(0.2, 1) + yy / h * rng.uniform(0.2, 1))[..., None] / 2
    img = (c0 * (1 - t) + c1 * t).astype(np.uint8)
    for _ in range(rng.integers(15, 40)):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if kind == 0:
            cv2.circle(img, p, int(rng.integers(5, 80)), colour, int(rng.choice([-1, 2, 4])))
        elif kind == 1:
            q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.rectangle(img, p, q, colour, int(rng.choice([-1, 3])))
        elif kind == 2:
            pts = rng.integers(0, [w, h], size=(int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.polylines(img, [pts], bool(rng.integers(2)), colour, int(rng.integers(1, 5)))
        else:
            text = "".join(rng.choice(list("ABCDEFGHKMNPRSTWXYZ0123456789"), 6))
            cv2.putText(
                img,
                text,
                p,
                cv2.FONT_HERSHEY_SIMPLEX,
                float(rng.uniform(0.6, 2.0)),
                colour,
                int(rng.integers(1, 4)),
                cv2.LINE_AA,
            )
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_archive(root: Path, n: int, seed: int, prefix: str, rng=None) -> list[Path]:
    import numpy as np

    from archive_twins.demo import save

    rng = rng or np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = root / f"{prefix}{i // 500:03d}" / f"img_{seed}_{i:05d}.jpg"
        save(drawing(rng), p, Q=85)
        paths.append(p)
    return paths


def run(archive: Path, work: Path, cores: int, shards: int, chunks: int) -> float:
    from archive_twins.runner import snakemake_cmd

    cmd = snakemake_cmd(
        archive, work, cores, [f"shards={shards}", f"match_chunks={chunks}"], ["--quiet", "all"]
    )
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"workflow failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0


def main() -> None:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="at-incr-"))
    try:
        archive, work = tmp / "archive", tmp / "work"
        t0 = time.perf_counter()
        old = make_archive(archive, args.images, 1, "batch")
        print(f"generated {args.images} images in {time.perf_counter() - t0:.1f} s")
        full = run(archive, work, args.cores, args.shards, args.chunks)
        print(f"full run:            {full:8.1f} s")
        n_new = max(1, args.images // 100)
        new = make_archive(archive, n_new - n_new // 2, 2, "incoming")
        copies = archive / "incoming_copies"
        copies.mkdir()
        for i, p in enumerate(old[: n_new // 2]):  # half of the new files are copies
            img = cv2.imread(str(p))
            cv2.imwrite(str(copies / f"copy_{i}.jpg"), cv2.resize(img, None, fx=0.5, fy=0.5))
        rerun = run(archive, work, args.cores, args.shards, args.chunks)
        print(f"rerun (+{len(new) + n_new // 2} files, 1%): {rerun:8.1f} s")
        print(f"rerun / full:        {100 * rerun / full:8.1f} %   (target <= 5 %)")
        nothing = run(archive, work, args.cores, args.shards, args.chunks)
        print(f"rerun, no change:    {nothing:8.1f} s")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
