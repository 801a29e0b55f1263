"""The deliverables at archive scale: `aggregate` (SQLite + JSON + families +
csv/redundant.csv), `html` (review pages) and `summary` on 10k, 262k and 1M files.

Builds what the decode and matching stages leave behind (one shard record per file,
realistic field for field, 2 % byte copies and 2 % same-pixel copies, and verified
copies with the pixel check's metrics, as `match_chunk` writes them: families of 2 to
40 members, each member paired with an earlier one and half of them with a second,
so 262,000 files give ~110,000 copy pairs, as the reference archive), and runs the
real job functions, each in its own process, printing CPU seconds and peak RSS per
job. Target: every job within `mem_mb: 2048` at 1M.

    python bench/deliverables_bench.py [--sizes 10000 262000 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = (
    "blocks chroma chroma_diff chroma_first chroma_second colour_backward colour_block_ratio "
    "colour_forward corr gain hue_turn max_block_ratio mean_residual saturation_ratio "
    "tone_diff lightness_first lightness_second spread_first spread_second"
).split()


def build(work: Path, n: int) -> None:
    """Shard records and one matching output for n files."""
    from archive_twins.records import CopyRecord, FileRecord
    from archive_twins.util import write_jsonl

    rng = random.Random(n)
    shards = max(16, n // 1000)
    parts: list[list[dict]] = [[] for _ in range(shards)]
    keys = []
    for i in range(n):
        path = f"collection/{i // 500:05d}/image_{i:07d}.tif"
        r = FileRecord(path=path, filename=path, size_bytes=120_000_000 + i)
        r.filename_bytes = path.encode().hex()
        twin = i - 1 if i % 50 in (1, 2) else i  # 1: byte copy, 2: same pixels
        r.set_facts(
            {
                "status": "ok" if i % 997 else "error",
                "error": None if i % 997 else "not a TIFF or BigTIFF file",
                "format": "tiff",
                "width": 4904,
                "height": 3680,
                "n_pages": 2,
                "bits_per_sample": 16,
                "bands": 3,
                "interpretation": "rgb16",
                "pixel_hash": hashlib.sha1(str(twin).encode()).hexdigest(),
                "thumb_w": 800,
                "thumb_h": 600,
                "phash": [f"{rng.getrandbits(64):016x}" for _ in range(8)],
                "tone_hash": [f"{rng.getrandbits(64):016x}" for _ in range(8)],
                "blank": i % 5000 == 7,
                "exif_orientation": 1,
            }
        )
        r.sha256 = hashlib.sha256(str(twin if i % 50 == 1 else i).encode()).hexdigest()
        r.mtime_ns = r.ctime_ns = 1_700_000_000_000_000_000 + i
        r.inode = i
        keys.append(r.pixel_hash)
        parts[i % shards].append(r.shard_dict())
    (work / "shards").mkdir(parents=True, exist_ok=True)
    for s, part in enumerate(parts):
        write_jsonl(work / "shards" / f"shard-{s:04d}.jsonl", part)
    rows = []
    for a, b in family_pairs(rng, n, round(n * 118_000 / 262_000)):
        if keys[a] == keys[b]:
            continue
        crop = rng.random() < 0.05  # a crop of the middle: kind 'other', half the area
        c = CopyRecord(
            key1=keys[a],
            key2=keys[b],
            kind="other" if crop else rng.choice(["resize", "resize", "rotate90i"]),
            scale=1.0,
            angle=0.0,
            mirrored=0,
            crop_x=1226.0 if crop else 0.0,
            crop_y=920.0 if crop else 0.0,
            crop_w=2452.0 if crop else 4904.0,
            crop_h=1840.0 if crop else 3680.0,
            homography=(
                "[[2.0, 0.0, -2452.0], [0.0, 2.0, -1840.0], [0.0, 0.0, 1.0]]"
                if crop
                else "[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]"
            ),
            inliers=None,
            score=0.9,
            method="phash",
            area_fraction=0.25 if crop else 1.0,
            colour_change=False,
            hamming=3,
            metrics={m: rng.random() for m in METRICS},
        )
        rows.append({"pair": [keys[a], keys[b]], "stage": "hash", "copy": c.to_dict()})
    (work / "pairs").mkdir(exist_ok=True)
    write_jsonl(work / "pairs" / "chunk-0000.jsonl", rows)
    (work / "skipped.jsonl").write_text("")


def family_pairs(rng: random.Random, n: int, target: int) -> list[tuple[int, int]]:
    """Copy pairs in families of 2 to 40 files (most small), over files spread across
    the archive, until `target` pairs: each member is paired with an earlier member,
    half of them with a second one too (derivatives are copies of each other)."""
    order = list(range(n))
    rng.shuffle(order)
    pairs: list[tuple[int, int]] = []
    pos = 0
    while len(pairs) < target and pos < n - 2:
        size = min(2 + int(rng.expovariate(1 / 6)), 40, n - pos)
        members = order[pos : pos + size]
        pos += size
        for j in range(1, size):
            pairs.append((members[rng.randrange(j)], members[j]))
            if j > 1 and rng.random() < 0.5:
                pairs.append((members[rng.randrange(j)], members[j]))
    return pairs[:target]


def _rusage() -> dict:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": round(r.ru_utime + r.ru_stime, 1), "peak_rss_mb": r.ru_maxrss // 1024}


def job(kind: str, work: Path, n: int = 0) -> dict:
    out = work / "out"
    if kind == "build":
        build(work, n)
        return _rusage()
    if kind == "aggregate":
        from archive_twins.deliver.aggregate import aggregate

        tables = aggregate(
            sorted(str(p) for p in (work / "shards").glob("*.jsonl")),
            work / "skipped.jsonl",
            out / "file_ids.json",
            out / "archive.sqlite",
            out / "json",
            {"archive": "bench"},
            [str(work / "pairs" / "chunk-0000.jsonl")],
            csv_out=out / "csv",
        )
        info = dict(tables["run_info"])
        return {
            "files": len(tables["files"]),
            "copy_pairs": len(tables["copy_pairs"]),
            "families": int(info["families"]),
            "family_members": len(tables["families"]),
            "mixed": int(info["families_mixed"]),
            "redundant_rows": len(tables["redundant"]),
            **_rusage(),
        }
    if kind == "html":
        from archive_twins.deliver.html import build_html

        return {"pages": build_html(out / "json", out / "html", work / "archive"), **_rusage()}
    from archive_twins.deliver.report import write_summary

    return {"rows": write_summary(out / "json", out / "summary.tsv"), **_rusage()}


def run_job(kind: str, work: Path, n: int = 0) -> dict:
    """One job in a child of this small driver (a child's peak RSS starts from its
    parent's: the driver must not hold the archive)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--job", kind, str(work), str(n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return {
        **json.loads(proc.stdout.strip().splitlines()[-1]),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 262_000, 1_000_000])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--job", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        print(json.dumps(job(args.job[0], Path(args.job[1]), int(args.job[2]))))
        return
    base = args.workdir or Path(tempfile.mkdtemp(prefix="deliverables-bench-"))
    try:
        for n in args.sizes:
            work = base / f"n{n}"
            shutil.rmtree(work, ignore_errors=True)
            row = {"files": n, "setup_s": run_job("build", work, n)["wall_s"]}
            for kind in ("aggregate", "html", "summary"):
                row[kind] = run_job(kind, work)
            print(json.dumps(row), flush=True)
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
