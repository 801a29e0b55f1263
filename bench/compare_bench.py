"""Compare with the usual route on one generated archive.

1. Per-image stage: archive-twins' decode (sha256 + page-0 decode + pixel hash +
   800 px JPEG thumbnail + 8 pHashes) against ImageMagick
   `convert FILE[0] -colorspace sRGB -type truecolor -quality 80 -resize 800x800>`
   (thumbnail only), one process, file after file.
2. Whole run: `snakemake --cores 2` against `findimagedupes -R` (Debian) and
   imagededup's PHash.find_duplicates; time, pairs reported, and recall on the
   archive's known copy pairs (resize/rotate/mirror/greyscale families and
   crop/rotation/perspective/colour copies).

Needs: apt install imagemagick findimagedupes; pip install --no-deps imagededup and
pip install PyWavelets tqdm scikit-learn matplotlib (imagededup's CNN module, which
needs torch, is not imported). Missing tools are reported and skipped.

    python bench/compare_bench.py
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def build(root: Path) -> set[frozenset]:
    from archives import build_copies_archive, build_geometric_archive

    truth = build_copies_archive(root / "families")
    geo = build_geometric_archive(root / "geometric")
    pairs = {
        frozenset(("families/" + p["file1"], "families/" + p["file2"])) for p in truth["pairs"]
    }
    pairs |= {
        frozenset(("geometric/" + p["file1"], "geometric/" + p["file2"])) for p in geo["pairs"]
    }
    return pairs


def images(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in {".tif", ".tiff", ".jpg", ".jpeg", ".png"}
    )


def report(name: str, secs: float, found: set[frozenset], truth: set[frozenset], base: float):
    hit = len(found & truth)
    print(
        f"{name:34s} {secs:8.2f} s  x{secs / base:5.2f}   pairs {len(found):5d}   "
        f"recall {hit}/{len(truth)} = {hit / len(truth):.2f}"
    )


IM_THUMB = ["-colorspace", "sRGB", "-type", "truecolor", "-quality", "80", "-resize", "800x800>"]


def imagemagick_thumb(src: Path, dst: Path) -> None:
    """The seed's route: ImageMagick's page-0 sRGB 800 px JPEG q80 thumbnail."""
    subprocess.run(["convert", f"{src}[0]", *IM_THUMB, str(dst)], capture_output=True)


def stage(files: list[Path], tmp: Path) -> None:
    from archive_twins.ingest.decode import DecodeParams, analyse, sha256_file

    t0 = time.perf_counter()
    for i, f in enumerate(files):
        sha256_file(str(f))
        analyse(str(f), str(tmp / f"at_{i}.jpg"), DecodeParams())
    ours = time.perf_counter() - t0
    print(f"per-image stage, {len(files)} files: archive-twins {ours:.2f} s")
    if (
        not shutil.which("convert")
        or "ImageMagick"
        not in subprocess.run(["convert", "-version"], capture_output=True, text=True).stdout
    ):
        print("  ImageMagick not installed: apt install imagemagick")
        return
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        imagemagick_thumb(f, tmp / f"im_{i}.jpg")
    im = time.perf_counter() - t0
    print(
        f"  ImageMagick convert {im:.2f} s; ratio ImageMagick / archive-twins = {im / ours:.2f}"
        " (archive-twins also hashes bytes and pixels and computes 8 pHashes)"
    )


def ours(root: Path, tmp: Path) -> tuple[float, set[frozenset]]:
    from archive_twins.runner import snakemake_cmd

    work = tmp / "work"
    t0 = time.perf_counter()
    subprocess.run(
        snakemake_cmd(root, work, 2, ["shards=8"], ["--quiet", "all"]),
        check=True,
        capture_output=True,
    )
    secs = time.perf_counter() - t0
    t = {p.stem: json.loads(p.read_text()) for p in (work / "results" / "json").glob("*.json")}
    name = {r["file_id"]: r["filename"] for r in t["fileid_to_filename_map"]}
    groups: dict[tuple, set] = {}
    for table, key in (
        ("identical_list", "identical_set_id"),
        ("same_pixels_list", "same_pixels_set_id"),
    ):
        for r in t[table]:
            groups.setdefault((table, r[key]), set()).add(name[r["file_id"]])
    found = {frozenset((name[p["file_id1"]], name[p["file_id2"]])) for p in t["copy_pairs"]}
    # a pair of sets stands for every pair of their members
    member = {}
    for g in groups.values():
        for f in g:
            member.setdefault(f, set()).update(g)
    expanded = set()
    for pair in found:
        a, b = tuple(pair)
        for x in member.get(a, {a}):
            for y in member.get(b, {b}):
                expanded.add(frozenset((x, y)))
    return secs, expanded


def findimagedupes(root: Path) -> tuple[float, set[frozenset]] | None:
    if not shutil.which("findimagedupes"):
        print("findimagedupes not installed: apt install findimagedupes")
        return None
    t0 = time.perf_counter()
    out = subprocess.run(
        ["findimagedupes", "-R", "-q", str(root)], capture_output=True, text=True
    ).stdout
    secs = time.perf_counter() - t0
    found = set()
    for line in out.splitlines():
        files = [str(Path(f).relative_to(root)) for f in line.split()]
        found |= {frozenset(c) for c in itertools.combinations(files, 2)}
    return secs, found


def imagededup(root: Path) -> tuple[float, set[frozenset]] | None:
    try:
        import imagededup as idd
    except ImportError:
        print(
            "imagededup not installed: pip install --no-deps imagededup; "
            "pip install PyWavelets tqdm scikit-learn matplotlib"
        )
        return None
    for sub in ("methods", "utils"):  # skip the package inits that import torch
        mod = types.ModuleType(f"imagededup.{sub}")
        mod.__path__ = [f"{idd.__path__[0]}/{sub}"]
        sys.modules[f"imagededup.{sub}"] = mod
    from imagededup.methods.hashing import PHash

    t0 = time.perf_counter()
    dups = PHash(verbose=False).find_duplicates(
        image_dir=str(root), recursive=True, max_distance_threshold=10
    )
    secs = time.perf_counter() - t0
    found = {frozenset((k, v)) for k, vs in dups.items() for v in vs}
    return secs, found


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="at-cmp-"))
    try:
        root = tmp / "archive"
        truth = build(root)
        files = images(root)
        print(f"archive: {len(files)} image files, {len(truth)} known copy pairs")
        stage(files, tmp)
        secs, found = ours(root, tmp)
        print("whole run:")
        report("archive-twins (snakemake --cores 2)", secs, found, truth, secs)
        for name, fn in (("findimagedupes -R", findimagedupes), ("imagededup PHash", imagededup)):
            r = fn(root)
            if r:
                report(name, r[0], r[1], truth, secs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
