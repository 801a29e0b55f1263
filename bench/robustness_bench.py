"""What the robustness checks of issue #24 cost (target: under 2 % of a normal run).

Part 1, unit costs at the reference scale (262,000 files, 256 shards, 64 chunks),
CPU seconds from rusage: the CRC-32 that records every output a job writes
(per GB), the parse-time check of every job's record (a stat per output file), the
id registry's check, a thumbnail checked before it is read, the sweep of
temporaries after a finished run. Part 2, end to end: the real workflow on an
archive of N synthetic pictures (a full run, a rerun after adding 1 %, a run with
nothing to do), CPU time of the whole process tree, for this checkout and, with
`--baseline DIR` (an export of the code before, e.g. `git archive main | tar -x -C
DIR`), for that one, each run `--repeat` times (the median is printed).

    python bench/robustness_bench.py [--images 400] [--baseline DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn, *a, **k) -> tuple[float, object]:
    t = cpu()
    out = fn(*a, **k)
    return cpu() - t, out


def unit_costs(tmp: Path) -> None:
    import cv2

    from archive_twins import ledger
    from archive_twins.ingest import registry
    from archive_twins.ingest.leftovers import mark_run, remove_leftovers
    from archive_twins.ingest.store import load_thumbnail

    print("## unit costs (CPU seconds)")
    tmp.mkdir(parents=True)
    # CRC of outputs: per GB written
    big = tmp / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(256):
            fh.write(os.urandom(1 << 20))
    t, _ = timed(ledger.file_crc, big)
    print(f"CRC-32 of outputs when recorded: {t / 0.25:.2f} s per GB ({256 / t:.0f} MB/s)")
    big.unlink()

    # the parse-time check of 256 + 64 + 3 jobs' records (index: 45 files)
    res = tmp / "results"
    jobs = {}
    for s in range(256):
        outs = [f"shards/shard-{s:04d}.jsonl", f"features/shard-{s:04d}.npz"]
        jobs[f"decode_shard-{s:04d}"] = ("w", outs)
    for c in range(64):
        jobs[f"match_chunk-{c:04d}"] = ("w", [f"pairs/chunk-{c:04d}.jsonl"])
    jobs["index"] = ("w", ["index"])
    jobs["aggregate"] = ("w", ["staging/archive.sqlite", "staging/json"])
    jobs["html"] = ("w", ["staging/html"])
    ledger.check(res, jobs)
    for job, (_, outs) in jobs.items():
        paths = []
        for o in outs:
            p = res / o
            if o in ("index", "staging/json", "staging/html"):
                for k in range(45 if o == "index" else 15):
                    (p / f"f{k}").parent.mkdir(parents=True, exist_ok=True)
                    (p / f"f{k}").write_bytes(b"x" * 64)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"x" * 64)
            paths.append(p)
        ledger.record(res / ledger.STAMPS / f"{job}.json", paths)
    t, forced = timed(ledger.check, res, jobs)
    assert not forced
    print(f"parse-time check of {len(jobs)} jobs' records (all unchanged): {t:.3f} s")

    # the id registry of 262,000 paths: written by aggregate, checked by every parse
    ids = {f"folder-{i // 500:04d}/sub/IMG_{i:07d}_scan.tif": i + 1 for i in range(262_000)}
    reg = res / "state" / "file_ids.json"
    t_save, _ = timed(registry.save, reg, ids, 262_001)
    t_load, _ = timed(registry.load, reg)
    t_check, _ = timed(registry.ensure, reg, res / "archive.sqlite")
    raw = reg.read_bytes().partition(b"\n")[2]
    t_json, _ = timed(json.loads, raw)
    print(
        f"id registry, 262,000 paths ({len(raw) / 1e6:.1f} MB): check at parse {t_check:.3f} s; "
        f"load {t_load:.3f} s (of which JSON {t_json:.3f} s, as before); save {t_save:.3f} s"
    )

    # a thumbnail checked before a matching job reads it
    from archive_twins.demo import photo
    from archive_twins.ingest.store import content_paths
    from archive_twins.ledger import file_crc

    sha = "ab" * 32
    thumb, meta = content_paths(res / "thumbs", sha)
    thumb.parent.mkdir(parents=True, exist_ok=True)
    arr = cv2.resize(photo("astronaut"), (800, 800))
    cv2.imwrite(os.fspath(thumb), arr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    meta.write_text(json.dumps({"thumb_crc": file_crc(thumb), "status": "ok"}))
    n = 200
    t_plain, _ = timed(
        lambda: [cv2.cvtColor(cv2.imread(os.fspath(thumb)), cv2.COLOR_BGR2RGB) for _ in range(n)]
    )
    t_checked, _ = timed(lambda: [load_thumbnail(res / "thumbs", sha) for _ in range(n)])
    print(
        f"an 800 px thumbnail read by a matching job: {t_plain / n * 1e3:.2f} ms, checked "
        f"{t_checked / n * 1e3:.2f} ms (+{(t_checked - t_plain) / n * 1e3:.2f} ms; a pair's "
        "verification takes tens of ms)"
    )

    # the sweep of temporaries after a finished run, and after one that did not finish
    for i in range(256):
        d = res / "thumbs" / f"{i:02x}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(1000):
            (d / f"{i:02x}{k:062x}.jpg").touch()
    mark_run(res, "finished")
    t_shallow, _ = timed(remove_leftovers, res)
    mark_run(res, "running")
    t_deep, _ = timed(remove_leftovers, res)
    print(
        f"sweep of temporaries: {t_shallow:.3f} s after a finished run; {t_deep:.2f} s after "
        "one that did not finish (256,000 thumbnails listed)"
    )


def workflow_cpu(snakefile: Path, archive: Path, work: Path, extra: list[str]) -> float:
    """CPU seconds of one run of the workflow, its jobs included."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(work),
        "--configfile",
        str(snakefile.parent / "config.yaml"),
        "--cores",
        "2",
        "--config",
        f"archive={archive}",
        f"results={work / 'results'}",
        "shards=8",
        "match_chunks=4",
        *extra,
    ]
    before = children_cpu()
    subprocess.run(cmd, check=True, capture_output=True)
    return children_cpu() - before


def end_to_end(tmp: Path, images: int, baseline: Path | None, repeat: int) -> None:
    import numpy as np
    from incremental_bench import drawing

    from archive_twins.demo import save

    print(f"## end to end: {images} synthetic pictures, +1 % rerun, no-op run (CPU s)")
    rng = np.random.default_rng(0)
    base = tmp / "archive"
    for i in range(images):
        save(drawing(rng), base / f"f{i % 20:02d}" / f"img{i:05d}.jpg", Q=85)
    extra_files = [drawing(rng) for _ in range(max(1, images // 100))]
    variants = {"this checkout": REPO / "Snakefile"}
    if baseline is not None:
        variants = {"baseline": baseline / "Snakefile", **variants}
    rows: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    for r in range(repeat):
        # alternate which checkout runs first (caches warm for the second)
        order = list(variants.items())[:: -1 if r % 2 else 1]
        for name, snakefile in order:
            archive = tmp / f"a-{r}-{name.replace(' ', '_')}"
            shutil.copytree(base, archive)
            work = tmp / f"w-{r}-{name.replace(' ', '_')}"
            got = rows[name]
            got.setdefault("full", []).append(workflow_cpu(snakefile, archive, work, []))
            for i, arr in enumerate(extra_files):
                save(arr, archive / "new" / f"new{i:03d}.jpg", Q=85)
            time.sleep(1.1)
            got.setdefault("rerun +1 %", []).append(workflow_cpu(snakefile, archive, work, []))
            got.setdefault("nothing to do", []).append(workflow_cpu(snakefile, archive, work, []))
            shutil.rmtree(archive)
            shutil.rmtree(work)
    for name, got in rows.items():
        cells = ", ".join(
            f"{k} {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for k, v in got.items()
        )
        print(f"{name}: median (range) {cells}")
    if baseline is not None:
        for k in rows["baseline"]:
            a = statistics.median(rows["baseline"][k])
            b = statistics.median(rows["this checkout"][k])
            print(f"{k}: {100 * (b - a) / a:+.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-end-to-end", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="robustness-bench-") as d:
        unit_costs(Path(d) / "units")
        if not args.skip_end_to_end:
            end_to_end(Path(d) / "e2e", args.images, args.baseline, args.repeat)


if __name__ == "__main__":
    main()
