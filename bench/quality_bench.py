"""Copies, not look-alikes: recall and precision of the real workflow on real photos.

The archive: the 188 development photographs (47 objects x 4 viewpoints: within a
group, different photographs of one object, never copies of each other) and
derivatives of one photograph of every other group plus scikit-image's photographs
(crops of 30/60/90 % off-centre, rotations of 2/12/25 degrees, perspective, hue,
greyscale, gamma 1.6, contrast x1.4, resize 0.3, rotation by 90, mirror, JPEG q15).

Printed: recall per derivative kind over (original, derivative) pairs; precision of
`copy_pairs` (a reported pair is right when both files come from one capture);
wrong pairs by cause; kind and scale accuracy; and `related_pairs` (pairs within a
viewpoint group are the truth: precision, and how many groups show up).

    python bench/quality_bench.py [--workdir DIR] [--cores 2]
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
UKBENCH = REPO.parent / "shared" / "data" / "ukbench-dev"

COLOUR = {"hue", "grey", "gamma16", "contrast"}


def build(root: Path) -> dict:
    """The archive and its truth: family of each file, derivative kind."""
    import cv2
    from scale_bench import derivatives

    from archive_twins.demo import PHOTOS, photo, save

    fam: dict[str, str] = {}
    kind: dict[str, str] = {}
    group: dict[str, int] = {}
    sources = {}
    for path in sorted(glob.glob(str(UKBENCH / "*.jpg"))):
        n = int(Path(path).stem.removeprefix("ukbench"))
        rel = f"ukbench/{Path(path).name}"
        (root / "ukbench").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / rel)
        fam[rel], group[rel] = rel, n // 4
        if n % 4 == 0 and (n // 4) % 2 == 0:
            sources[rel] = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    for name in PHOTOS:
        rel = f"photos/{name}.png"
        img = photo(name)
        save(img, root / rel)
        fam[rel] = rel
        sources[rel] = img
    for src_rel, img in sources.items():
        stem = Path(src_rel).stem
        for k, d in derivatives(img).items():
            rel = f"derived/{stem}_{k}" + (".jpg" if k != "q15" else ".jpeg")
            save(d, root / rel, **({"Q": 90} if k != "q15" else {"Q": 15}))
            fam[rel], kind[rel] = src_rel, k
    return {"family": fam, "kind": kind, "group": group}


def tables(db: Path) -> dict[str, list[dict]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    out = {}
    for t in ("files", "copy_pairs", "related_pairs"):
        out[t] = [dict(r) for r in con.execute(f"SELECT * FROM {t}")]
    return out


def evaluate(truth: dict, t: dict) -> dict:
    fam, kind, group = truth["family"], truth["kind"], truth["group"]
    name = {f["file_id"]: f["filename"] for f in t["files"]}
    pairs = [(name[p["file_id1"]], name[p["file_id2"]], p) for p in t["copy_pairs"]]
    found = {frozenset(p[:2]) for p in pairs}
    by_kind: dict[str, list[int]] = {}
    for rel, k in kind.items():
        by_kind.setdefault(k, [0, 0])[1] += 1
        by_kind[k][0] += frozenset((fam[rel], rel)) in found
    right = [p for p in pairs if fam.get(p[0]) == fam.get(p[1])]
    wrong = [p for p in pairs if fam.get(p[0]) != fam.get(p[1])]
    causes = Counter(
        "same object, other viewpoint"
        if group.get(fam[a]) is not None and group.get(fam[a]) == group.get(fam[b])
        else "unrelated photographs"
        for a, b, _ in wrong
    )
    kind_ok = scale_ok = n_kind = 0
    for a, b, p in right:
        k = kind.get(b) or kind.get(a)
        if k is None or fam[a] not in (a, b):
            continue
        n_kind += 1
        want = (
            "rotate90i"
            if k == "rot90"
            else "other"
            if k in COLOUR or k == "mirror" or k.startswith(("crop", "rot", "persp"))
            else "resize"
        )
        kind_ok += p["kind"] == want
        if k == "resize30":
            scale_ok += abs(p["scale"] - 0.3) <= 0.003 * 1.0 + 0.01 * 0.3
    related = [(name[r["file_id1"]], name[r["file_id2"]]) for r in t["related_pairs"]]
    rel_right = [
        r
        for r in related
        if group.get(fam.get(r[0])) is not None and group.get(fam[r[0]]) == group.get(fam[r[1]])
    ]
    groups_seen = {group[fam[r[0]]] for r in rel_right}
    n_groups = len(set(group.values()))
    return {
        "files": len(t["files"]),
        "derivatives": len(kind),
        "recall": round(sum(v[0] for v in by_kind.values()) / max(1, len(kind)), 4),
        "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())},
        "copy_pairs": len(pairs),
        "precision": round(len(right) / max(1, len(pairs)), 4),
        "wrong_pairs": dict(causes),
        "wrong_examples": [f"{a} ~ {b} ({p['method']})" for a, b, p in wrong[:8]],
        "kind_accuracy": f"{kind_ok}/{n_kind}",
        "resize_scale_within_1pct": scale_ok,
        "related_pairs": len(related),
        "related_precision": round(len(rel_right) / max(1, len(related)), 4),
        "related_groups_seen": f"{len(groups_seen)}/{n_groups}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    from archive_twins.runner import snakemake_cmd

    base = args.workdir or Path(tempfile.mkdtemp(prefix="quality-bench-"))
    try:
        archive = base / "archive"
        shutil.rmtree(base / "work", ignore_errors=True)
        if not (base / "truth.json").exists():
            shutil.rmtree(archive, ignore_errors=True)
            truth = build(archive)
            (base / "truth.json").write_text(json.dumps(truth))
        truth = json.loads((base / "truth.json").read_text())
        t0 = time.perf_counter()
        cmd = snakemake_cmd(archive, base / "work", args.cores, ["shards=8", "match_chunks=4"])
        subprocess.run(cmd, check=True, capture_output=True)
        res = evaluate(truth, tables(base / "work" / "results" / "archive.sqlite"))
        res["workflow_seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(res, indent=1))
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
