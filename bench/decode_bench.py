"""Where a file's CPU time goes in `decode_shard`, per step and per file type, against
the floor of reading, hashing and decoding it.

File types (built once from scikit-image's photographs, resized, with a little
grain so they compress like photographs):
- small: 640x480 JPEGs (q85)
- mid: JPEGs of 1,024-1,600 px (q90)
- png: 1,024x768 8-bit RGB PNGs
- tiff: 3,680x4,904 16-bit RGB two-page TIFFs (108 MB, the reference archive's
  masters: the image in page 0, a thumbnail in page 1)

For each type, two fresh processes:
- the job: `archive_twins.cli.run_decode_shard` (the rule's own code: records, then
  features) on one shard of those files, after a warm-up shard of one file (imports,
  the vocabulary), with every step's function wrapped to charge it its own CPU time
  and minor page faults (libvips evaluates lazily: its work is charged to the step
  that asks for the pixels);
- the floor: read the file's bytes once, sha256 them, decode page 0 from those bytes
  through libvips (a full pass, `max`), buffers reused across files, libvips on one
  thread: the least any per-file stage that hashes the bytes and looks at every
  pixel can do (the least of three passes over the files).

CPU is user + system time from rusage (the cores may be shared: `--repeat N` runs
each job N times and keeps the least). Printed: ms of CPU
per file and step, the job's total, its system share and page faults per file, the
floor, and the ratios. `--repo DIR` measures another checkout's code (e.g. main's,
for a before/after table) on the same files, with that checkout's config.yaml
(thumbnail and feature settings).

    python bench/decode_bench.py [--workdir DIR] [--repo DIR] [--json FILE] [--repeat N]
        [--counts small=40,mid=20,png=12,tiff=3] [--kinds small,mid,png,tiff]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("small", "mid", "png", "tiff")
COUNTS = {"small": 40, "mid": 20, "png": 12, "tiff": 3}

# (label, functions charged to it as "module.function"); a function a checkout does
# not have is skipped. Labels of the features part start with "features".
STEPS = (
    ("read + sha256", ("decode.sha256_file", "decode.read_hashed")),
    ("format, header, open", ("decode.loader_format", "decode.open_page0", "decode._png_zero_size")),  # noqa: E501
    ("JPEG quality", ("decode.jpeg_quality",)),
    ("pixel hash", ("decode.pixel_hash",)),
    ("decode page 0 (into memory)", ("decode.decode_raster",)),
    ("thumbnail (+ICC, JPEG save)", ("decode.analyse", "decode._analyse", "decode.make_thumbnail", "decode.to_srgb8")),  # noqa: E501
    ("pHash + tone hash x8", ("hashing.dihedral_hashes",)),
    ("quarter pHashes x8", ("hashing.quarter_hashes",)),
    ("content hash (frame, inpaint)", ("hashing.content_hashes",)),
    ("blank", ("decode.is_blank",)),
    ("records, content store", ("shard.process_shard", "shard._process_file")),
    ("features: SIFT", ("features.extract",)),
    ("features: quantise, signature", ("features.signature",)),
    ("features: texture (plain, specks)", ("texture.is_plain", "texture.speck_cells")),
    ("features: read thumb, write store", ("features.run_features_shard",)),
)  # fmt: skip


# ------------------------------------------------------------------ the files


def build_files(data: Path, counts: dict[str, int]) -> None:
    """Deterministic files of each type (kept in `data`, rebuilt when counts change)."""
    stamp = data / "counts.json"
    if stamp.exists() and json.loads(stamp.read_text()) == counts:
        return
    import cv2
    import numpy as np

    sys.path.insert(0, str(REPO))
    from archive_twins.demo import PHOTOS, photo, save, save_museum_tiff, to16

    shutil.rmtree(data, ignore_errors=True)
    rng = np.random.default_rng(29)
    names = [*PHOTOS, "motorcycle_left"]

    def picture(i: int, w: int, h: int) -> np.ndarray:
        a = photo(names[i % len(names)])
        hh, ww = a.shape[:2]
        cw, ch = int(ww * rng.uniform(0.6, 1)), int(hh * rng.uniform(0.6, 1))
        x, y = int(rng.integers(0, ww - cw + 1)), int(rng.integers(0, hh - ch + 1))
        a = cv2.resize(a[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_CUBIC)
        return np.clip(a + rng.normal(0, 3, a.shape), 0, 255).astype(np.uint8)

    for kind in KINDS:
        # one more than counted: the first file is the warm-up shard's
        for i in range(counts[kind] + 1):
            where = data / (f"warm-{kind}" if i == 0 else kind)
            if kind == "small":
                save(picture(i, 640, 480), where / f"s{i:03d}.jpg", Q=85)
            elif kind == "mid":
                w = int(rng.integers(1024, 1601))
                save(picture(i, w, int(w * rng.uniform(0.66, 0.8))), where / f"m{i:03d}.jpg", Q=90)
            elif kind == "png":
                save(picture(i, 1024, 768), where / f"p{i:03d}.png")
            else:
                save_museum_tiff(
                    to16(picture(i, 3680, 4904)), where / f"t{i:03d}.tif", thumb_px=256
                )
    stamp.write_text(json.dumps(counts))


def write_manifest(folder: Path, manifest: Path) -> int:
    rows = []
    for p in sorted(folder.iterdir()):
        st = p.stat()
        rows.append(
            {
                "path": p.name,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "ctime_ns": st.st_ctime_ns,
                "inode": st.st_ino,
            }
        )
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


# ------------------------------------------------------------------ the children


def _usage() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_minflt


def _wrap_steps() -> dict[str, list[float]]:
    """Wrap the STEPS' functions (of archive_twins.ingest modules, in every
    archive_twins module that holds them) so each charges its own CPU time and faults
    (without its wrapped callees')."""
    import functools
    import importlib

    totals = {label: [0.0, 0] for label, _ in STEPS}
    stack: list[list[float]] = []
    wrapped = {}
    for label, names in STEPS:
        for qual in names:
            mod_name, fn_name = qual.split(".")
            try:
                mod = importlib.import_module(f"archive_twins.ingest.{mod_name}")
            except ImportError:
                continue
            fn = getattr(mod, fn_name, None)
            if fn is None:
                continue

            def make(fn, label):
                @functools.wraps(fn)
                def timed(*a, **kw):
                    t0, f0 = _usage()
                    stack.append([0.0, 0])
                    try:
                        return fn(*a, **kw)
                    finally:
                        t1, f1 = _usage()
                        inner = stack.pop()
                        totals[label][0] += (t1 - t0) - inner[0]
                        totals[label][1] += (f1 - f0) - inner[1]
                        if stack:
                            stack[-1][0] += t1 - t0
                            stack[-1][1] += f1 - f0

                return timed

            wrapped[fn] = make(fn, label)
    for name, mod in list(sys.modules.items()):
        if name.startswith("archive_twins") and mod is not None:
            for attr, value in list(vars(mod).items()):
                if callable(value) and value in wrapped:
                    setattr(mod, attr, wrapped[value])
    return totals


def child_job(repo: Path, work: Path, kind: str) -> dict:
    sys.path.insert(0, str(repo))
    import archive_twins.cli as cli
    import archive_twins.ingest.features  # noqa: F401  (wrapped below)
    import archive_twins.ingest.shard  # noqa: F401

    totals = _wrap_steps()
    out = work / "out" / kind
    shutil.rmtree(out, ignore_errors=True)
    (out / "features").mkdir(parents=True)

    # the measured checkout's own settings (a before/after pair may differ in them)
    import yaml

    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    feats = cfg["features"]

    def run(folder: Path, name: str) -> int:
        n = write_manifest(folder, out / f"{name}.jsonl")
        cli.run_decode_shard(
            log=str(out / f"{name}.log"),
            manifest=str(out / f"{name}.jsonl"),
            records=str(out / f"{name}-records.jsonl"),
            features=str(out / "features" / f"{name}.npz"),
            archive=str(folder),
            store=str(out / "thumbs"),
            thumb_size=int(cfg["thumb_size"]),
            thumb_quality=int(cfg["thumb_quality"]),
            max_pixels=1_000_000_000,
            geometric=True,
            feature_max_side=int(feats["max_side"]),
            n_features=int(feats["n_features"]),
            full=False,
        )
        return n

    run(work / "data" / f"warm-{kind}", "warm")
    for v in totals.values():
        v[:] = [0.0, 0]
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    n = run(work / "data" / kind, "shard")
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    statuses = [json.loads(line)["status"] for line in open(out / "shard-records.jsonl")]
    return {
        "files": n,
        "ok": statuses.count("ok"),
        "user": r1.ru_utime - r0.ru_utime,
        "sys": r1.ru_stime - r0.ru_stime,
        "faults": r1.ru_minflt - r0.ru_minflt,
        "steps": totals,
    }


def child_floor(repo: Path, work: Path, kind: str) -> dict:
    import hashlib

    os.environ["VIPS_CONCURRENCY"] = "1"
    import pyvips

    pyvips.cache_set_max(0)
    files = sorted((work / "data" / kind).iterdir())
    buf = bytearray()

    def one(path: Path) -> None:
        nonlocal buf
        size = path.stat().st_size
        if len(buf) < size:
            buf = bytearray(size)
        view = memoryview(buf)[:size]
        with open(path, "rb", buffering=0) as fh:
            got = 0
            while got < size:
                got += fh.readinto(view[got:])
        hashlib.sha256(view).hexdigest()
        page = {"page": 0} if kind == "tiff" else {}
        source = pyvips.Source.new_from_memory(view)
        img = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="error", **page)
        img.max()

    one(sorted((work / "data" / f"warm-{kind}").iterdir())[0])
    passes = []
    for _ in range(3):  # the least of three passes: the cores may be shared
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for path in files:
            one(path)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        passes.append(
            {
                "files": len(files),
                "user": r1.ru_utime - r0.ru_utime,
                "sys": r1.ru_stime - r0.ru_stime,
                "faults": r1.ru_minflt - r0.ru_minflt,
            }
        )
    return min(passes, key=lambda p: p["user"] + p["sys"])


# ------------------------------------------------------------------ the table


def spawn(what: str, repo: Path, work: Path, kind: str) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--kind", kind]
    cmd += ["--repo", str(repo), "--workdir", str(work)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    if out.returncode:
        sys.exit(f"{what} {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict]) -> str:
    """The markdown table: a column per file type, ms of CPU per file unless said."""
    kinds = list(results)
    job = {k: results[k]["job"] for k in kinds}
    n = {k: job[k]["files"] for k in kinds}
    total = {k: (job[k]["user"] + job[k]["sys"]) / n[k] for k in kinds}  # s a file
    steps = {k: {lab: v[0] / n[k] for lab, v in job[k]["steps"].items()} for k in kinds}
    feats = {k: sum(v for lab, v in steps[k].items() if lab.startswith("features")) for k in kinds}
    floor = {k: (lambda f: (f["user"] + f["sys"]) / f["files"])(results[k]["floor"]) for k in kinds}
    rows = [(label, lambda k, lab=label: f"{1000 * steps[k][lab]:.1f}") for label, _ in STEPS]
    rows += [
        ("other (job, logging)", lambda k: f"{1000 * (total[k] - sum(steps[k].values())):.1f}"),
        ("**job total** (user + sys)", lambda k: f"**{1000 * total[k]:.1f}**"),
        ("job without features", lambda k: f"{1000 * (total[k] - feats[k]):.1f}"),
        (
            "system time, share of the job",
            lambda k: (
                f"{1000 * job[k]['sys'] / n[k]:.1f} ({100 * job[k]['sys'] / n[k] / total[k]:.0f} %)"
            ),
        ),
        ("minor page faults per file", lambda k: f"{job[k]['faults'] / n[k]:,.0f}"),
        ("**floor** (read + sha256 + decode)", lambda k: f"**{1000 * floor[k]:.1f}**"),
        ("job / floor", lambda k: f"{total[k] / floor[k]:.1f}x"),
        ("job without features / floor", lambda k: f"{(total[k] - feats[k]) / floor[k]:.1f}x"),
        ("files (ok)", lambda k: f"{n[k]} ({job[k]['ok']})"),
    ]
    lines = ["| ms of CPU per file | " + " | ".join(kinds) + " |"]
    lines.append("|" + " --- |" * (len(kinds) + 1))
    lines += [f"| {label} | " + " | ".join(fn(k) for k in kinds) + " |" for label, fn in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose code is measured")
    ap.add_argument("--counts", default=",".join(f"{k}={v}" for k, v in COUNTS.items()))
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--repeat", type=int, default=1, help="jobs per type, the least CPU kept")
    ap.add_argument("--child", choices=("job", "floor"))
    ap.add_argument("--kind")
    args = ap.parse_args()
    if args.child:
        fn = child_job if args.child == "job" else child_floor
        print(json.dumps(fn(args.repo.resolve(), args.workdir, args.kind)))
        return
    counts = dict(COUNTS)
    for item in args.counts.split(","):
        k, v = item.split("=")
        counts[k] = int(v)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="at-decode-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        build_files(work / "data", counts)
        results = {}
        for kind in args.kinds.split(","):
            jobs = [spawn("job", args.repo.resolve(), work, kind) for _ in range(args.repeat)]
            results[kind] = {
                "floor": spawn("floor", args.repo.resolve(), work, kind),
                "job": min(jobs, key=lambda j: j["user"] + j["sys"]),
            }
            print(f"{kind}: done", file=sys.stderr, flush=True)
        print(f"code measured: {args.repo.resolve()}")
        print(table(results))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
