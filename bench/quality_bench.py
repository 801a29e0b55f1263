"""Copies, not look-alikes: recall and precision of the real workflow on real photos.

The archive: the 188 development photographs (47 objects x 4 viewpoints: within a
group, different photographs of one object, never copies of each other), scikit-image's
photographs (the stereo pair of a motorcycle is another hard negative), smooth
low-texture photographs made from them (sky and wood regions, defocused versions),
blank images (white, black, grey card, 1x1 px), and 14 derivatives of one photograph
of every group and of every other photograph, with parameters drawn at random in the
ranges the product promises: resize 0.05-0.95, rotation by 90/180/270 (also with a
mirror), mirror, crops of 30-95 % of the area off-centre, rotations of 2-25 degrees,
perspective, border + caption, JPEG q10-20, greyscale, saturation x0.5-0.7 or
x1.3-1.5, hue shifts of 10-60 degrees, contrast x0.6-0.8 or x1.25-1.5, gamma 0.6-0.8
or 1.25-1.6.

Derivatives are JPEG files, q90 (q75 for the development photographs, which are
q75 JPEGs: a re-save rarely raises the quality; when neither size, depth, format nor
colours tell the source, the larger file is taken as it).

The sources are split in two halves: `fit` (thresholds may be tuned on it) and
`report` (only measured). Printed per half: recall per derivative kind (textured and
smooth sources apart), precision of `copy_pairs` (a pair is right when both files come
from one capture), wrong pairs by cause, kind, scale, angle and crop accuracy, the
`related_pairs` figures (pairs within a viewpoint group are the truth), and blanks.

    python bench/quality_bench.py [--workdir DIR] [--cores 2] [--seed 7]
        [--config key=value ...] [--configfile extra.yaml]

(`--configfile` for nested settings, e.g. `features: {max_side: 384, n_features: 400}`:
Snakemake's `--config` reads nested values as strings.)
"""

from __future__ import annotations

import argparse
import glob
import json
import math
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
UKBENCH = REPO.parent / "shared" / "data" / "ukbench-dev"

KINDS = (
    "resize",
    "rot90",
    "rot90mirror",
    "mirror",
    "crop",
    "rotsmall",
    "perspective",
    "border",
    "jpeg",
    "grey",
    "saturation",
    "hue",
    "contrast",
    "gamma",
)
COLOUR = {"grey", "saturation", "hue", "contrast", "gamma"}
TEXTURED = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "camera",
    "coins",
    "retina",
    "hubble_deep_field",
    "moon",
    "brick",
    "gravel",
    "motorcycle_left",
)


def expected_kind(kind: str) -> str:
    """The contract's kind for a derivative kind."""
    if kind in ("resize", "jpeg"):
        return "resize"
    if kind in ("rot90", "rot90mirror"):
        return "rotate90i"
    return "other"


def smooth_sources() -> dict[str, tuple[str, object]]:
    """Low-texture photographs made from real ones: name -> (parent photo, image).
    A sky and a wood region, and defocused versions (a blurred photograph is still
    derived from its capture, so it shares its parent's family)."""
    import cv2

    from archive_twins.demo import photo

    out = {}
    rocket = photo("rocket")
    out["sky"] = ("rocket", cv2.resize(rocket[0:240, 200:310], (220, 480), cv2.INTER_CUBIC))
    coffee = photo("coffee")
    out["wood"] = ("coffee", coffee[0:150, 400:600])
    for name, sigma in (("astronaut", 6), ("chelsea", 5), ("coffee", 8), ("camera", 6)):
        out[f"{name}_defocus"] = (name, cv2.GaussianBlur(photo(name), (0, 0), sigma))
    retina = cv2.resize(photo("retina"), (600, 600), interpolation=cv2.INTER_AREA)
    out["retina_defocus"] = ("retina", cv2.GaussianBlur(retina, (0, 0), 4))
    out["moon_defocus"] = ("moon", cv2.GaussianBlur(photo("moon"), (0, 0), 4))
    return out


# Other captures of one scene (Debian's opencv-doc sample data): frames 1, 2 and 5
# apart of three videos (a static camera on a plaza, an animated film, a tree in the
# wind), one run of frames in each half, and a chessboard photographed in other poses
# by the two cameras of a stereo rig (greyscale q50 JPEGs). Each frame or photograph
# is its own capture: a hard negative for every other one of its series.
VIDEO_FRAMES = {
    "vtest.avi": ((100, 101, 102, 105), (500, 501, 502, 505)),
    "Megamind.avi": ((40, 41, 42, 45), (170, 171, 172, 175)),
    "tree.avi": ((10, 11, 12, 15), (35, 36, 37, 40)),
}
BOARDS = (
    ("fit", ("left06", "left08", "right03", "right05", "right07", "right09")),
    ("report", ("left07", "left09", "right04", "right06", "right08")),
)


def capture_sources() -> list[tuple[str, str, str, object, object]]:
    """(path in the archive, series, part, image, original file or None) of every
    other-capture photograph: the video frames (saved as PNG) and the chessboards
    (their own JPEG files)."""
    from archive_twins.demo import opencv_photo, opencv_sample, video_frames

    out = []
    for video, runs in VIDEO_FRAMES.items():
        stem = video.removesuffix(".avi")
        for part, frames in zip(("fit", "report"), runs, strict=True):
            for n, img in sorted(video_frames(video, frames).items()):
                out.append((f"frames/{stem}_{n:03d}.png", f"{stem} {part}", part, img, None))
    for part, names in BOARDS:
        for name in names:
            img = opencv_photo(f"{name}.jpg")
            out.append(
                (f"boards/{name}.jpg", "chessboard", part, img, opencv_sample(f"{name}.jpg"))
            )
    return out


def derive(img, kind: str, rng):  # noqa: ANN001, ANN201, C901
    """One derivative of `img` with random parameters: (image, truth, jpeg quality)."""
    import cv2
    import numpy as np

    from archive_twins.dihedral import dihedral

    h, w = img.shape[:2]
    truth: dict = {}
    q = 90

    def pick(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    def either(a: tuple[float, float], b: tuple[float, float]) -> float:
        return pick(*a) if rng.random() < 0.5 else pick(*b)

    if kind == "resize":
        lo = max(0.05, 64 / max(h, w))
        s = math.exp(pick(math.log(lo), math.log(0.95)))
        size = (max(1, round(w * s)), max(1, round(h * s)))
        out = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        truth["scale"] = size[0] / w
    elif kind in ("rot90", "rot90mirror", "mirror"):
        k = 0 if kind == "mirror" else int(rng.integers(1, 4))
        m = kind != "rot90"
        out = dihedral(img, 4 * m + k)
        truth.update(angle=90 * k, mirrored=int(m))
    elif kind == "crop":
        area = pick(0.3, 0.95)
        aspect = pick(0.85, 1.15)
        cw = min(w, round(w * math.sqrt(area) * aspect))
        ch = min(h, round(h * area / (cw / w)))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        out = img[y0 : y0 + ch, x0 : x0 + cw]
        truth["crop"] = [x0, y0, cw, ch]
    elif kind == "rotsmall":
        deg = pick(2, 25) * (1 if rng.random() < 0.5 else -1)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        fill = int(rng.choice([0, 255, 128]))
        out = cv2.warpAffine(img, m, (w, h), borderValue=(fill, fill, fill))
        truth["angle"] = -deg % 360  # OpenCV's positive angle is counter-clockwise
    elif kind == "perspective":
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        jit = rng.uniform(0.03, 0.12, size=(4, 2)) * [w, h]
        sign = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
        dst = (src + sign * jit).astype(np.float32)
        out = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h))
    elif kind == "border":
        b = max(2, round(pick(0.03, 0.12) * max(h, w)))
        cap = max(16, round(pick(0.08, 0.15) * h))
        colour = int(rng.choice([255, 0, 230]))
        out = cv2.copyMakeBorder(img, b, b + cap, b, b, cv2.BORDER_CONSTANT, value=[colour] * 3)
        ink = 0 if colour > 128 else 255
        text = f"Inv. {int(rng.integers(1000, 99999))} - photo archive"
        scale = cap / 40
        cv2.putText(out, text, (b, h + b + int(cap * 0.75)), 0, scale, (ink,) * 3, 1, cv2.LINE_AA)
        truth["crop"] = [0, 0, w, h]
    elif kind == "jpeg":
        out, q = img.copy(), int(rng.integers(10, 21))
        truth["scale"] = 1.0
    elif kind == "grey":
        out = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    elif kind == "saturation":
        f = either((0.5, 0.7), (1.3, 1.5))
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * f, 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    elif kind == "hue":
        shift = round(either((5, 30), (-30, -5)))  # OpenCV hue units: 2 degrees
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + shift) % 180
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    elif kind == "contrast":
        f = either((0.6, 0.8), (1.25, 1.5))
        out = np.clip((img.astype(np.float32) - 128) * f + 128, 0, 255).astype(np.uint8)
    elif kind == "gamma":
        g = either((0.6, 0.8), (1.25, 1.6))
        out = (255 * (img / 255.0) ** g).round().astype(np.uint8)
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(out), truth, q


def blanks() -> dict[str, object]:
    """Plain images an archive holds: blank pages, cards, frames, a 1x1 px image."""
    import numpy as np

    rng = np.random.default_rng(3)
    white = np.full((700, 500, 3), 250, np.uint8)
    page = np.clip(white + rng.normal(0, 1.5, white.shape), 0, 255).astype(np.uint8)
    return {
        "white.png": white,
        "scan_page.jpg": page,
        "black.jpg": np.zeros((400, 600, 3), np.uint8),
        "grey_card.jpg": np.full((480, 640, 3), 118, np.uint8),
        "one_pixel.png": np.full((1, 1, 3), 200, np.uint8),
    }


def build(root: Path, seed: int) -> dict:
    """The archive and its truth: family and part of each file, derivative kind and
    parameters, viewpoint group of the development photographs."""
    import cv2
    import numpy as np

    from archive_twins.demo import photo, save

    fam: dict[str, str] = {}
    part: dict[str, str] = {}
    kind: dict[str, str] = {}
    params: dict[str, dict] = {}
    group: dict[str, int] = {}
    smooth: dict[str, bool] = {}
    sources: dict[str, object] = {}
    size: dict[str, list[int]] = {}
    chroma: dict[str, float] = {}
    groups = sorted({int(Path(p).stem[7:]) // 4 for p in glob.glob(str(UKBENCH / "*.jpg"))})
    gpart = {g: ("fit", "report")[i % 2] for i, g in enumerate(groups)}
    for path in sorted(glob.glob(str(UKBENCH / "*.jpg"))):
        n = int(Path(path).stem.removeprefix("ukbench"))
        rel = f"ukbench/{Path(path).name}"
        (root / "ukbench").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / rel)
        fam[rel], group[rel], part[rel] = rel, n // 4, gpart[n // 4]
        if n % 4 == 0:
            sources[rel] = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    for i, name in enumerate(TEXTURED):
        rel = f"photos/{name}.png"
        save(photo(name), root / rel)
        fam[rel], part[rel] = rel, ("fit", "report")[i % 2]
        sources[rel] = photo(name)
    # the other half of the stereo pair: the same scene, another photograph
    save(photo("motorcycle_right"), root / "photos/motorcycle_right.png")
    fam["photos/motorcycle_right.png"] = "photos/motorcycle_right.png"
    part["photos/motorcycle_right.png"] = part["photos/motorcycle_left.png"]
    group["photos/motorcycle_left.png"] = group["photos/motorcycle_right.png"] = -1
    for i, (name, (parent, img)) in enumerate(sorted(smooth_sources().items())):
        rel = f"smooth/{name}.png"
        save(img, root / rel)
        fam[rel], part[rel] = f"photos/{parent}.png", ("report", "fit")[i % 2]
        smooth[rel] = True
        sources[rel] = img
    # other captures of one scene: each its own family, a series one viewpoint group
    series: dict[str, str] = {}
    series_group: dict[str, int] = {}
    for rel, name, p, img, original in capture_sources():
        if original is None:
            save(img, root / rel)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original, root / rel)
        fam[rel], part[rel], series[rel] = rel, p, name
        group[rel] = series_group.setdefault(name, -2 - len(series_group))
        sources[rel] = img
    for name, img in blanks().items():
        rel = f"blank/{name}"
        save(img, root / rel)
        fam[rel], part[rel] = rel, "blank"
    for src_rel, img in sorted(sources.items()):
        rng = np.random.default_rng([seed, *Path(src_rel).stem.encode()])
        size[src_rel] = [img.shape[1], img.shape[0]]
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
        chroma[src_rel] = float(np.hypot(lab[..., 1] - 128, lab[..., 2] - 128).mean())
        for k in KINDS:
            d, t, q = derive(img, k, rng)
            if k != "jpeg":
                # a re-save keeps the original's quality (q75 and q50 JPEGs)
                q = {"ukbench": 75, "boards": 50}.get(Path(src_rel).parent.name, q)
            if k in ("grey", "saturation", "hue"):
                # how far the colours moved (mean a*b* distance, Lab units): on a
                # photograph with little colour, how much of a change there is to see
                dlab = cv2.cvtColor(d, cv2.COLOR_RGB2LAB).astype(np.float32)
                t["colour_shift"] = round(
                    float(np.hypot(*(dlab[..., c] - lab[..., c] for c in (1, 2))).mean()), 3
                )
            rel = f"derived/{Path(src_rel).parent.name}_{Path(src_rel).stem}_{k}.jpg"
            save(d, root / rel, Q=q)
            fam[rel], kind[rel], params[rel] = fam[src_rel], k, {"source": src_rel, **t}
            part[rel], smooth[rel] = part[src_rel], smooth.get(src_rel, False)
    return {
        "family": fam,
        "part": part,
        "kind": kind,
        "params": params,
        "group": group,
        "smooth": smooth,
        "size": size,
        "chroma": chroma,
        "series": series,
    }


def matching_cpu(results: Path) -> dict[str, float]:
    """CPU seconds of the matching jobs (`index` and every `match_chunk`), from the
    STATS line each job logs (its process's user + system time)."""
    out = {"index": 0.0, "match_chunk": 0.0}
    for rule in out:
        for log in sorted((results / "logs" / rule).glob("*.log")):
            for line in log.read_text().splitlines():
                if " STATS " in line:
                    out[rule] += json.loads(line.split(" STATS ", 1)[1]).get("cpu_seconds", 0.0)
    out = {k: round(v, 1) for k, v in out.items()}
    return {"total": round(sum(out.values()), 1), **out}


def tables(db: Path) -> dict[str, list[dict]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    out = {}
    for t in ("files", "copy_pairs", "related_pairs"):
        out[t] = [dict(r) for r in con.execute(f"SELECT * FROM {t}")]
    return out


def _iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def evaluate(truth: dict, t: dict, which: str) -> dict:  # noqa: C901
    """Figures over the files of one part ('fit', 'report' or 'all')."""
    fam, part, kind, params = truth["family"], truth["part"], truth["kind"], truth["params"]
    group, smooth = truth["group"], truth["smooth"]

    def inside(rel: str) -> bool:
        return which == "all" or part.get(rel) in (which, "blank")

    name = {f["file_id"]: f["filename"] for f in t["files"]}
    # files with identical pixels are one raster: a pair is reported once per raster
    raster = {f["filename"]: f["pixel_hash"] or f["filename"] for f in t["files"]}
    pairs = [(name[p["file_id1"]], name[p["file_id2"]], p) for p in t["copy_pairs"]]
    pairs = [p for p in pairs if inside(p[0]) and inside(p[1])]
    by_pair = {frozenset((raster[p[0]], raster[p[1]])): p for p in pairs}
    recall: dict[str, list[int]] = {}
    kind_ok = Counter()
    direction_ok = Counter()
    direction_by: dict[str, Counter] = {}
    colour_ok = Counter()
    low_colour = Counter()  # colour changes of photographs with little colour
    kind_n = Counter()
    param_ok = Counter()
    param_n = Counter()
    missed = []
    for rel, k in kind.items():
        if not inside(rel):
            continue
        src = params[rel]["source"]
        tag = k + (" (smooth)" if smooth.get(rel) else "")
        r = recall.setdefault(tag, [0, 0])
        r[1] += 1
        if raster[src] == raster[rel]:  # no visible change (e.g. greyscale of a grey photo)
            r[0] += 1
            continue
        p = by_pair.get(frozenset((raster[src], raster[rel])))
        if p is None:
            missed.append(rel)
            continue
        r[0] += 1
        a, b, row = p
        forward = raster[a] == raster[src]
        kind_n[k] += 1
        # a colour change of a photograph without colour is none; of one with little
        # colour (mean chroma below 4, the product's min_chroma) it is not told from
        # re-encoding, which takes such colour as far (q10-20 JPEGs: chroma x0.05-0.75,
        # hue turned by up to 27 degrees; docs/captures.md): either answer is taken
        chroma = truth["chroma"][src]
        achromatic = k in ("grey", "saturation", "hue") and chroma < 1
        unsure = k in ("grey", "saturation", "hue") and 1 <= chroma < 4
        low_colour[k] += unsure
        want = "resize" if achromatic else expected_kind(k)
        kind_ok[k] += row["kind"] == want or (unsure and row["kind"] == "resize")
        direction_ok[k] += forward
        direction_by.setdefault(k, Counter())[row.get("direction_by")] += 1
        if k in COLOUR:
            colour_ok[k] += bool(row.get("colour_change")) != achromatic or unsure
        want = params[rel]
        if "scale" in want:
            param_n["scale"] += 1
            param_ok["scale"] += (
                forward and abs(row["scale"] - want["scale"]) <= 0.01 * want["scale"]
            )
        if k in ("rot90", "rot90mirror", "mirror"):
            param_n["rotate90i angle+mirror"] += 1
            # the inverse of a mirror-and-rotation is itself; of a rotation, the opposite
            angle = want["angle"] if forward or want["mirrored"] else -want["angle"] % 360
            param_ok["rotate90i angle+mirror"] += (
                round(row["angle"]) % 360 == angle and int(row["mirrored"]) == want["mirrored"]
            )
        if k == "rotsmall":
            param_n["small-rotation angle within 1 deg"] += 1
            target = want["angle"] if forward else -want["angle"]
            d = (row["angle"] - target + 180) % 360 - 180
            param_ok["small-rotation angle within 1 deg"] += abs(d) <= 1
        if k in ("crop", "border"):
            param_n["crop box IoU >= 0.9"] += 1
            box = [row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"]]
            want_box = want["crop"] if k == "crop" else None
            if k == "border":  # the copy holds all of the source
                w, h = truth["size"][src]
                want_box = [0, 0, w, h]
            param_ok["crop box IoU >= 0.9"] += forward and _iou(box, want_box) >= 0.9

    def capture(rel: str) -> str:
        """The capture a file shows: its family, but a defocused or cut-out smooth
        photograph and its derivatives count apart from their parent photograph."""
        if rel.startswith("smooth/"):
            return rel
        src = params.get(rel, {}).get("source", "")
        return src if src.startswith("smooth/") else fam.get(rel, rel)

    def ambiguous(a: str, b: str) -> bool:
        """A smooth photograph made from another (blurred, cut out) against it: derived
        from one capture, but no copy the product promises to find; not scored."""
        return fam.get(a) == fam.get(b) and capture(a) != capture(b)

    pairs = [p for p in pairs if not ambiguous(p[0], p[1])]
    right = [p for p in pairs if capture(p[0]) == capture(p[1])]
    wrong = [p for p in pairs if capture(p[0]) != capture(p[1])]

    def grp(rel: str) -> int | None:
        return group.get(fam.get(rel, rel))

    series = truth.get("series", {})

    def other_capture(a: str, b: str) -> str | None:
        """The series (video frames, chessboard poses) two captures share, if any."""
        sa, sb = series.get(fam.get(a, a)), series.get(fam.get(b, b))
        return sa if sa is not None and sa == sb else None

    causes = Counter(
        "blank image"
        if "blank/" in a + b
        else f"other capture of one scene: {other_capture(a, b)}"
        if other_capture(a, b)
        else "same object, other photograph"
        if grp(a) is not None and grp(a) == grp(b)
        else "unrelated photographs"
        for a, b, _ in wrong
    )
    related = [(name[r["file_id1"]], name[r["file_id2"]]) for r in t["related_pairs"]]
    related = [r for r in related if inside(r[0]) and inside(r[1]) and not ambiguous(*r)]
    rel_right = [r for r in related if grp(r[0]) is not None and grp(r[0]) == grp(r[1])]
    rel_causes = Counter(
        "copies (one capture)"
        if capture(a) == capture(b)
        else "shared caption on two bordered copies"
        if "_border" in a and "_border" in b
        else "other"
        for a, b in related
        if (a, b) not in set(rel_right)
    )
    groups = {grp(r) for r in fam if inside(r) and grp(r) is not None}
    seen = {grp(r[0]) for r in rel_right}
    n_all = sum(v[1] for v in recall.values())
    blank_rows = [f for f in t["files"] if f["filename"].startswith("blank/")]
    return {
        "derivatives": n_all,
        "recall": round(sum(v[0] for v in recall.values()) / max(1, n_all), 4),
        "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(recall.items())},
        # each kind over every source (smooth photographs and other captures included)
        "recall_per_kind": {
            k: "{}/{}".format(
                *(sum(v[i] for t, v in recall.items() if t.split(" ")[0] == k) for i in (0, 1))
            )
            for k in KINDS
        },
        "recall_other_captures": "{}/{}".format(
            *(
                sum(1 for rel in kind if inside(rel) and series.get(fam[rel]) and ok(rel))
                for ok in (lambda rel: rel not in missed, lambda rel: True)
            )
        ),
        # the issue asks for the recall on smooth low-texture photographs apart
        "recall_smooth": "{}/{}".format(
            *(sum(v[i] for k, v in recall.items() if k.endswith("(smooth)")) for i in (0, 1))
        ),
        "recall_textured": "{}/{}".format(
            *(sum(v[i] for k, v in recall.items() if not k.endswith("(smooth)")) for i in (0, 1))
        ),
        "copy_pairs": len(pairs),
        "precision": round(len(right) / max(1, len(pairs)), 4),
        "wrong_pairs": dict(causes),
        "wrong_examples": [f"{a} ~ {b} ({p['method']})" for a, b, p in wrong[:10]],
        "kind_accuracy": {k: f"{kind_ok[k]}/{kind_n[k]}" for k in KINDS if kind_n[k]},
        "direction": {k: f"{direction_ok[k]}/{kind_n[k]}" for k in KINDS if kind_n[k]},
        # what decided it: the pixels, or for rasters alike in size, depth and format,
        # the files' facts (JPEG quality, then date, then size; see direction.py)
        "direction_by": {
            k: dict(sorted(direction_by[k].items())) for k in KINDS if k in direction_by
        },
        "colour_change_flag": {k: f"{colour_ok[k]}/{kind_n[k]}" for k in KINDS if k in COLOUR},
        "colour_either_answer": {k: n for k, n in low_colour.items() if n},
        "parameters": {k: f"{param_ok[k]}/{param_n[k]}" for k in sorted(param_n)},
        "related_pairs": len(related),
        "related_precision": round(len(rel_right) / max(1, len(related)), 4),
        "related_wrong": dict(rel_causes),
        "related_wrong_examples": [
            f"{a} ~ {b}" for a, b in related if (a, b) not in set(rel_right) and "_border" not in a
        ][:8],
        "related_groups_seen": f"{len(seen)}/{len(groups)}",
        "blanks_flagged": f"{sum(bool(f.get('blank')) for f in blank_rows)}/{len(blank_rows)}",
        "missed": missed[:40],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--part", choices=("fit", "report", "all"), nargs="+", default=["fit", "report"]
    )
    ap.add_argument("--config", nargs="*", default=[], help="extra --config key=value")
    ap.add_argument(
        "--configfile", type=Path, help="a config file read after config.yaml (nested keys)"
    )
    args = ap.parse_args()
    from archive_twins.runner import snakemake_cmd

    base = args.workdir or Path(tempfile.mkdtemp(prefix="quality-bench-"))
    try:
        archive = base / "archive"
        shutil.rmtree(base / "work", ignore_errors=True)
        truth_file = base / f"truth-{args.seed}.json"
        if not truth_file.exists():
            shutil.rmtree(archive, ignore_errors=True)
            truth = build(archive, args.seed)
            truth_file.write_text(json.dumps(truth))
        truth = json.loads(truth_file.read_text())
        t0 = time.perf_counter()
        cmd = snakemake_cmd(
            archive, base / "work", args.cores, ["shards=8", "match_chunks=4", *args.config]
        )
        if args.configfile:
            at = cmd.index("--configfile") + 2
            cmd[at:at] = [str(args.configfile.resolve())]
        subprocess.run(cmd, check=True, capture_output=True)
        tab = tables(base / "work" / "results" / "archive.sqlite")
        res = {
            "files": len(tab["files"]),
            "workflow_seconds": round(time.perf_counter() - t0, 1),
            "matching_cpu_seconds": matching_cpu(base / "work" / "results"),
        }
        for which in args.part:
            res[which] = evaluate(truth, tab, which)
        print(json.dumps(res, indent=1))
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
