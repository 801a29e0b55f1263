"""Archives with known answers, built from real photographs, for the end-to-end tests."""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from archive_twins.demo import copy_bytes, photo, save, save_museum_tiff, to16


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares any size (a decompression bomb, a zero width)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_foundation_archive(root: Path) -> dict:
    """Byte copies (set sizes 2, 3, 5), a two-page 16-bit TIFF and a metadata-only
    variant of it, a truncated JPEG, a zero-byte .tif and stray documents.

    Returns the expected facts per file and the expected sets (as filename lists).
    """
    facts: dict[str, dict] = {}

    def add(
        rel: str,
        fmt: str | None,
        w=None,
        h=None,
        pages=None,
        bits=None,
        bands=None,
        status: str = "ok",
    ):
        facts[rel] = dict(
            format=fmt,
            width=w,
            height=h,
            n_pages=pages,
            bits_per_sample=bits,
            bands=bands,
            status=status,
        )

    astro = save(photo("astronaut"), root / "a" / "astronaut.jpg", Q=90)
    copy_bytes(astro, root / "b" / "astronaut.jpg")
    for rel in ("a/astronaut.jpg", "b/astronaut.jpg"):
        add(rel, "jpeg", 512, 512, 1, 8, 3)

    coffee = save(photo("coffee"), root / "x" / "coffee.png")
    copy_bytes(coffee, root / "y" / "coffee copy.png")
    copy_bytes(coffee, root / "z" / "sub" / "COFFEE.PNG")
    for rel in ("x/coffee.png", "y/coffee copy.png", "z/sub/COFFEE.PNG"):
        add(rel, "png", 600, 400, 1, 8, 3)

    rocket = save(photo("rocket"), root / "f1" / "rocket.JPG", Q=80)
    for i in range(2, 6):
        copy_bytes(rocket, root / f"f{i}" / "rocket.JPG")
    for i in range(1, 6):
        add(f"f{i}/rocket.JPG", "jpeg", 640, 427, 1, 8, 3)

    cat16 = to16(photo("chelsea"))
    save_museum_tiff(cat16, root / "museum" / "scan_0001.tif", xmp_date="2019-03-01T10:00:00")
    save_museum_tiff(cat16, root / "museum" / "scan_0001_v2.tif", xmp_date="2024-06-30T17:45:00")
    save_museum_tiff(to16(photo("immunohistochemistry")), root / "museum" / "scan_0002.tif.tif")
    for rel, (w, h) in {
        "museum/scan_0001.tif": (451, 300),
        "museum/scan_0001_v2.tif": (451, 300),
        "museum/scan_0002.tif.tif": (512, 512),
    }.items():
        add(rel, "tiff", w, h, 2, 16, 3)

    full = astro.read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    add("bad/truncated.jpg", "jpeg", 512, 512, 1, 8, 3, status="error")
    (root / "bad" / "zero.tif").write_bytes(b"")
    add("bad/zero.tif", None, status="error")

    (root / "docs").mkdir()
    with zipfile.ZipFile(root / "docs" / "catalogue.docx", "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    (root / "docs" / "notes.txt").write_text("inventory notes\n")

    return {
        "facts": facts,
        "identical": [
            ["a/astronaut.jpg", "b/astronaut.jpg"],
            [f"f{i}/rocket.JPG" for i in range(1, 6)],
            ["x/coffee.png", "y/coffee copy.png", "z/sub/COFFEE.PNG"],
        ],
        "same_pixels": [["museum/scan_0001.tif", "museum/scan_0001_v2.tif"]],
        "skipped": ["docs/catalogue.docx", "docs/notes.txt"],
        "errors": {
            "bad/truncated.jpg": r"^decode failed: .*(premature end|truncated)",
            "bad/zero.tif": r"^empty file \(0 bytes\)$",
        },
    }


def studio_shot(obj: np.ndarray, frac: float, seed: int, size=(900, 700)) -> np.ndarray:
    """An object photograph on a plain studio sweep (light grey, vignetted, a little
    noise): what museum archives hold by the thousand."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = 215 - 40 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    bg = np.stack([bg, bg - 3, bg - 8], -1) + rng.normal(0, 2, (h, w, 3))
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    oh, ow = obj.shape[:2]
    s = np.sqrt(frac * w * h / (oh * ow))
    o = cv2.resize(obj, (int(ow * s), int(oh * s)), interpolation=cv2.INTER_AREA)
    y0, x0 = (h - o.shape[0]) // 2, (w - o.shape[1]) // 2
    bg[y0 : y0 + o.shape[0], x0 : x0 + o.shape[1]] = o
    return bg


def grey(arr: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    return np.stack([g] * 3, axis=-1)


# (name, orientation, scale, greyscale, extension, save options) relative to the original
FAMILIES = {
    "astronaut": (
        "tif16",
        [
            ("jpg_same", 0, 1.0, False, ".jpg", {"Q": 90}),
            ("half", 0, 0.5, False, ".jpg", {"Q": 85}),
            ("tenth", 0, 0.1, False, ".png", {}),
            ("rot90", 1, 0.7, False, ".jpg", {"Q": 85}),
            ("grey", 0, 0.9, True, ".jpg", {"Q": 85}),
        ],
    ),
    "rocket": (
        ".jpg",
        [
            ("q50", 0, 1.0, False, ".jpg", {"Q": 50}),
            ("rot180", 2, 1.0, False, ".png", {}),
            ("rot270_small", 3, 0.3, False, ".jpg", {"Q": 80}),
            ("mirror", 4, 0.8, False, ".jpg", {"Q": 85}),
        ],
    ),
    "chelsea": (
        ".png",
        [
            ("rot90_mirror", 5, 0.6, False, ".jpg", {"Q": 85}),
            ("fifth_q50", 0, 0.2, False, ".jpg", {"Q": 50}),
            ("grey_rot270", 3, 0.8, True, ".tif", {}),
        ],
    ),
    "coffee": (
        ".tif",
        [
            ("forty", 0, 0.4, False, ".tif", {}),
            ("flip_vertical", 6, 1.0, False, ".jpg", {"Q": 90}),
        ],
    ),
    "hubble_deep_field": (
        ".jpg",
        [
            ("quarter", 0, 0.25, False, ".jpg", {"Q": 80}),
            ("rot90_half", 1, 0.5, False, ".png", {}),
        ],
    ),
    "immunohistochemistry": (
        ".png",
        [
            ("q50_small", 0, 0.15, False, ".jpg", {"Q": 50}),
            ("transpose", 7, 0.9, False, ".jpg", {"Q": 90}),
        ],
    ),
}


def _expected(p: dict, q: dict) -> dict:
    """Copy relation between two members of a family, from their known transforms."""
    from archive_twins.dihedral import DIHEDRAL, compose, inverse

    src, dst = (p, q) if p["rank"] >= q["rank"] else (q, p)
    o = compose(inverse(src["o"]), dst["o"])
    k, m = DIHEDRAL[o]
    colour = src["grey"] != dst["grey"]
    kind = "other" if colour or (k == 0 and m) else ("rotate90i" if k else "resize")
    return {
        "file1": src["file"],
        "file2": dst["file"],
        "kind": kind,
        "scale": dst["scale"] / src["scale"],
        "angle": 90 * k,
        "mirrored": m,
    }


def build_copies_archive(root: Path) -> dict:
    """Families of copies of real photographs (resized 0.1-1.0, rotated 90/180/270,
    mirrored, re-encoded at q50, TIFF->JPEG, greyscale) and hard negatives: different
    objects on the same studio background, a stereo pair, similar textures.

    Returns the expected copy pairs (every pair within a family).
    """
    from archive_twins.dihedral import dihedral

    expected = []
    for name, (orig_fmt, members) in FAMILIES.items():
        arr = photo(name)
        h, w = arr.shape[:2]
        fam = []
        if orig_fmt == "tif16":
            path = save_museum_tiff(to16(arr), root / "masters" / f"{name}.tif")
            bits = 16
        else:
            path = save(
                arr,
                root / "masters" / f"{name}{orig_fmt}",
                **({"Q": 95} if orig_fmt == ".jpg" else {}),
            )
            bits = 8
        fam.append(
            {
                "file": path.relative_to(root).as_posix(),
                "o": 0,
                "scale": 1.0,
                "grey": False,
                "rank": (w * h, bits, 1),
            }
        )
        for label, o, scale, is_grey, ext, opts in members:
            img = arr
            if scale != 1.0:
                img = cv2.resize(
                    img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
                )
            if is_grey:
                img = grey(img)
            img = dihedral(img, o)
            rel = f"derivatives/{name}/{name}_{label}{ext}"
            save(img, root / rel, **opts)
            quality = opts.get("Q", 100)
            fam.append(
                {
                    "file": rel,
                    "o": o,
                    "scale": img.shape[1] / (h if o % 2 else w),
                    "grey": is_grey,
                    "rank": (img.shape[0] * img.shape[1], 8, quality / 100),
                }
            )
        fam[0]["scale"] = 1.0
        for i, p in enumerate(fam):
            for q in fam[i + 1 :]:
                expected.append(_expected(p, q))

    build_hard_negatives(root)
    return {"pairs": expected}


def build_hard_negatives(root: Path) -> None:
    """Images no copy detector may pair: different small objects on one studio
    background, a stereo pair (same scene, another viewpoint), similar textures."""
    # The studio shots are small objects on one background: most of their pHashes are within the
    # candidate threshold of each other, so only pixel verification rejects them.
    objects = {n: photo(n)[60:300, 60:300] for n in ("coins", "moon", "camera")}
    objects["clock"] = photo("clock")[40:260, 80:300]
    objects["cell"] = photo("cell")[150:450, 100:400]
    for i, (n, obj) in enumerate(sorted(objects.items())):
        save(studio_shot(obj, 0.02, seed=i), root / "studio" / f"object_{n}.jpg", Q=85)
    save(photo("motorcycle_left"), root / "stereo" / "motorcycle_left.jpg", Q=90)
    save(photo("motorcycle_right"), root / "stereo" / "motorcycle_right.jpg", Q=90)
    save(photo("brick"), root / "textures" / "brick.png")
    save(photo("gravel"), root / "textures" / "gravel.png")


def _scale_h(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def _warp(arr: np.ndarray, hmat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.warpPerspective(
        arr,
        hmat,
        size,
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )


def geometric_copy(arr: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Apply one known transform; return the copy and the true homography (orig->copy)."""
    h, w = arr.shape[:2]
    kind = spec["t"]
    s = spec.get("scale", 1.0)
    if kind == "crop":
        x, y, cw, ch = spec["box"]
        hmat = _scale_h(s) @ np.array([[1, 0, -x], [0, 1, -y], [0, 0, 1.0]])
        size = (round(cw * s), round(ch * s))
    elif kind == "rotate":
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), -spec["deg"], 1.0)  # cv2: ccw positive
        hmat = _scale_h(s) @ np.vstack([rot, [0, 0, 1]])
        size = (round(w * s), round(h * s))
    elif kind == "perspective":
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dx, dy = spec["shift"]
        dst = np.float32(
            [[dx * w, dy * h], [w - dx * w * 0.3, 0], [w, h - dy * h], [dx * w * 0.5, h]]
        )
        hmat = _scale_h(s) @ cv2.getPerspectiveTransform(src, dst).astype(float)
        size = (round(w * s), round(h * s))
    elif kind in ("colour", "contrast", "jpeg"):
        hmat = _scale_h(s)
        size = (round(w * s), round(h * s))
    elif kind == "border":
        pad = spec["pad"]
        hmat = np.array([[s, 0, pad], [0, s, pad], [0, 0, 1.0]])
        size = (round(w * s) + 2 * pad, round(h * s) + 2 * pad + 40)
    else:
        raise ValueError(kind)
    out = _warp(arr, hmat, size)
    if kind == "colour":
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + 25) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * 1.4, 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    if kind == "contrast":
        out = np.clip(out.astype(np.float32) * 1.5 - 50, 0, 255).astype(np.uint8)
    if kind == "border":
        cv2.putText(
            out,
            "Inv. 1987.221 (c) Museum",
            (pad, size[1] - 14),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (30, 30, 30),
            1,
            cv2.LINE_AA,
        )
    if spec.get("grey"):
        out = grey(out)
    return out, hmat


# original -> [(label, transform spec, extension, save options)]
GEOMETRIC = {
    "astronaut": [
        ("crop30", {"t": "crop", "box": (150, 100, 240, 336)}, ".jpg", {"Q": 85}),
        ("rot12", {"t": "rotate", "deg": 12, "scale": 0.8}, ".jpg", {"Q": 85}),
    ],
    "coffee": [
        ("crop50_small", {"t": "crop", "box": (100, 60, 360, 267), "scale": 0.7}, ".png", {}),
        ("colour", {"t": "colour", "scale": 0.85}, ".jpg", {"Q": 85}),
    ],
    "chelsea": [
        ("crop70", {"t": "crop", "box": (40, 20, 378, 251)}, ".jpg", {"Q": 90}),
        (
            "perspective",
            {"t": "perspective", "shift": (0.08, 0.06), "scale": 0.9},
            ".jpg",
            {"Q": 85},
        ),
    ],
    "rocket": [
        ("rot5", {"t": "rotate", "deg": -5, "scale": 0.9}, ".png", {}),
        ("border", {"t": "border", "pad": 30, "scale": 0.6}, ".jpg", {"Q": 85}),
    ],
    "hubble_deep_field": [
        ("crop90", {"t": "crop", "box": (30, 25, 950, 826)}, ".jpg", {"Q": 90}),
        ("rot20_grey", {"t": "rotate", "deg": 20, "scale": 0.7, "grey": True}, ".jpg", {"Q": 80}),
    ],
    "immunohistochemistry": [
        ("contrast", {"t": "contrast", "scale": 0.8}, ".jpg", {"Q": 85}),
        (
            "crop40_persp",
            {"t": "crop", "box": (200, 150, 280, 300), "scale": 0.9},
            ".jpg",
            {"Q": 40},
        ),
    ],
    "retina": [
        (
            "crop35_small",
            {"t": "crop", "box": (300, 400, 800, 625), "scale": 0.5},
            ".jpg",
            {"Q": 80},
        ),
        ("jpeg_q10", {"t": "jpeg", "scale": 0.6}, ".jpg", {"Q": 10}),
    ],
}


def build_geometric_archive(root: Path) -> dict:
    """Originals of real photographs and copies under crops (30-90% of the area),
    rotations by 5-20 degrees, perspective, colour/contrast changes, borders with a
    caption and strong JPEG; plus the hard negatives of `build_copies_archive`.

    Returns the expected (original, copy) pairs with the true homography and crop box.
    """
    from archive_twins.verify.geometry import crop_box

    expected = []
    for name, copies in GEOMETRIC.items():
        arr = photo(name)
        h, w = arr.shape[:2]
        orig = save(arr, root / "masters" / f"{name}.png")
        for label, spec, ext, opts in copies:
            out, hmat = geometric_copy(arr, spec)
            rel = f"derivatives/{name}_{label}{ext}"
            save(out, root / rel, **opts)
            if spec["t"] == "crop":
                box = tuple(float(v) for v in spec["box"])
            else:
                box = crop_box(hmat, w, h, out.shape[1], out.shape[0])
            kind = "resize" if spec["t"] == "jpeg" else "other"
            expected.append(
                {
                    "file1": orig.relative_to(root).as_posix(),
                    "file2": rel,
                    "kind": kind,
                    "box": box,
                    "size1": (w, h),
                    "hmat": hmat.tolist(),
                    "area": box[2] * box[3] / (w * h),
                }
            )
    build_hard_negatives(root / "negatives")
    return {"pairs": expected}


def smooth_picture(name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """A smooth picture cut from a photograph and enlarged (a sky, a wall): few
    keypoints, and pHash bits that flip under any colour change."""
    y0, y1, x0, x1 = box
    return cv2.resize(photo(name)[y0:y1, x0:x1], (220, 480), interpolation=cv2.INTER_CUBIC)


def colour_change(arr: np.ndarray, sat: float, hue: int) -> np.ndarray:
    """Saturation times `sat` and hue turned by `hue` (OpenCV's 0-180 units)."""
    hsv = cv2.cvtColor(arr, cv2.COLOR_RGB2HSV).astype(np.float64)
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def bordered(arr: np.ndarray, colour: int) -> np.ndarray:
    """A catalogue frame: a plain border and a caption below the picture."""
    h = arr.shape[0]
    out = cv2.copyMakeBorder(arr, 20, 70, 20, 20, cv2.BORDER_CONSTANT, value=[colour] * 3)
    ink = (0,) * 3 if colour > 128 else (255,) * 3
    cv2.putText(out, "Inv. 28403 - photo archive", (20, h + 55), 0, 0.9, ink, 1, cv2.LINE_AA)
    return out


def warped(arr: np.ndarray) -> np.ndarray:
    """A perspective warp with its corners filled black."""
    h, w = arr.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = np.float32([[0.08, 0.05], [-0.1, 0.06], [-0.05, -0.08], [0.06, -0.1]])
    dst = (src + jitter * np.float32([w, h])).astype(np.float32)
    return cv2.warpPerspective(arr, cv2.getPerspectiveTransform(src, dst), (w, h))


def turned(arr: np.ndarray, deg: float, fill: int) -> np.ndarray:
    """Turned by `deg` degrees (counter-clockwise) about the centre, same frame,
    the corners filled with one grey level."""
    h, w = arr.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(arr, m, (w, h), borderValue=(fill, fill, fill))


def build_review_archive(root: Path) -> dict:
    """What a curator reviews: a master TIFF under `Masters/` with an older byte copy
    under `Backup/old share/` (a name with two spaces), its half-size, portrait and
    cropped derivatives; a second master with a half-size copy, a same-size JPEG and a
    same-pixel PNG; and a photograph alone. Returns the roles by name."""
    import os

    astro = photo("astronaut")
    master = save(to16(astro), root / "Masters" / "astronaut  master.tif")
    backup = copy_bytes(master, root / "Backup" / "old share" / "astronaut  master.tif")
    st = master.stat()
    os.utime(backup, ns=(st.st_atime_ns, st.st_mtime_ns - 10**10))  # the older copy
    h, w = astro.shape[:2]
    half = cv2.resize(astro, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    save(half, root / "web" / "astronaut half.jpg", Q=85)
    portrait = cv2.resize(np.rot90(astro, -1), (300, 300), interpolation=cv2.INTER_AREA)
    save(portrait, root / "web" / "astronaut portrait.jpg", Q=85)
    save(astro[40:400, 60:420], root / "press" / "astronaut crop.jpg", Q=90)
    coffee = photo("coffee")
    save(coffee, root / "Masters" / "coffee.tif")
    ch, cw = coffee.shape[:2]
    small = cv2.resize(coffee, (cw // 2, ch // 2), interpolation=cv2.INTER_AREA)
    save(small, root / "web" / "coffee half.jpg", Q=85)
    save(coffee, root / "web" / "coffee same size.png")
    save(coffee, root / "web" / "coffee same size.jpg", Q=90)
    save(photo("chelsea"), root / "alone" / "chelsea.jpg", Q=90)
    return {
        "astronaut": {
            "master": "Masters/astronaut  master.tif",
            "duplicate": "Backup/old share/astronaut  master.tif",
            "derivatives": [
                "web/astronaut half.jpg",
                "web/astronaut portrait.jpg",
                "press/astronaut crop.jpg",
            ],  # fmt: skip
        },
        "coffee": {
            "master": "Masters/coffee.tif",
            "duplicate": "web/coffee same size.png",
            "derivatives": ["web/coffee half.jpg", "web/coffee same size.jpg"],
        },
    }
