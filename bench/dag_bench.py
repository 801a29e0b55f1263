"""Benchmark the DAG at archive scale: `snakemake -n` over 262,000 (tiny) files.

Creates N tiny image-named files in 1,000-file folders (plus a few documents), then
times a dry run (scan + manifests + DAG of shards, index and chunks) and reports its peak
memory. Targets: <= 60 s and <= 4 GiB. A second dry run shows the steady state,
when no manifest changes.

    python bench/dag_bench.py [--files 262000] [--shards 256] [--chunks 64]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_files(root: Path, n: int) -> None:
    exts = ("tif", "TIF", "jpg", "png", "tif.tif")
    for i in range(n):
        d = root / f"box{i // 1000:04d}"
        if i % 1000 == 0:
            d.mkdir(parents=True)
            (d / "inventory.xlsx").write_bytes(b"x")
        with open(d / f"obj_{i:06d}.{exts[i % len(exts)]}", "wb") as fh:
            fh.write(b"\0")


def dry_run(archive: Path, work: Path, shards: int, chunks: int) -> tuple[float, float, str]:
    sys.path.insert(0, str(REPO))
    from archive_twins.runner import snakemake_cmd

    cmd = snakemake_cmd(
        archive, work, 2, [f"shards={shards}", f"match_chunks={chunks}"], ["-n", "--quiet", "rules"]
    )
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return secs, peak, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=262_000)
    ap.add_argument("--shards", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="at-dag-"))
    try:
        t0 = time.perf_counter()
        make_files(tmp / "archive", args.files)
        print(f"created {args.files} files in {time.perf_counter() - t0:.1f} s")
        jobs = args.shards + 1 + args.chunks + 2
        secs, peak, out = dry_run(tmp / "archive", tmp / "work", args.shards, args.chunks)
        print(f"snakemake -n, first run: {secs:6.1f} s, peak RSS {peak:7.1f} MB, ~{jobs} jobs")
        secs2, peak2, _ = dry_run(tmp / "archive", tmp / "work", args.shards, args.chunks)
        print(f"snakemake -n, unchanged: {secs2:6.1f} s, peak RSS {peak2:7.1f} MB")
        print("targets: <= 60 s, <= 4096 MB")
        line = next((ln for ln in out.splitlines() if ln.startswith("scanned")), "")
        print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
