"""What museum photographs share: colour charts, rulers, captions, logos, versos.

Takes a random generator (and photographs), gives RGB uint8 arrays: distinct
procedural photographs, the same printed colour target and ruler pasted into each
(re-lit and re-noised per photograph, as a chart photographed again would be), a
caption strip with the museum's name and logo, empty versos (paper tone, vignetting,
grain, specks) and mosaics cut from shared photographs. Used by the end-to-end tests
and by `bench/furniture_bench.py`.
"""

from __future__ import annotations

import cv2
import numpy as np

# sRGB values of the 24 patches of a classic colour checker
PATCHES = (
    (115, 82, 68),
    (194, 150, 130),
    (98, 122, 157),
    (87, 108, 67),
    (133, 128, 177),
    (103, 189, 170),
    (214, 126, 44),
    (80, 91, 166),
    (193, 90, 99),
    (94, 60, 108),
    (157, 188, 64),
    (224, 163, 46),
    (56, 61, 150),
    (70, 148, 73),
    (175, 54, 60),
    (231, 199, 31),
    (187, 86, 149),
    (8, 133, 161),
    (243, 243, 242),
    (200, 200, 200),
    (160, 160, 160),
    (122, 122, 121),
    (85, 85, 85),
    (52, 52, 52),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def chart() -> np.ndarray:
    """The printed target: 6 x 4 colour patches on black, a centimetre ruler with
    numbers and a label; the same design in every photograph (480 x 360 px)."""
    w, h = 480, 360
    img = np.full((h, w, 3), 20, np.uint8)
    s, gap = 64, 10
    for k, colour in enumerate(PATCHES):
        r, c = divmod(k, 6)
        x, y = 20 + c * (s + gap), 14 + r * (s + gap)
        img[y : y + s, x : x + s] = colour
    ruler_y = 14 + 4 * (s + gap)
    img[ruler_y : ruler_y + 40, 10 : w - 10] = 235
    for t in range(0, w - 30, 9):
        tall = 18 if t % 45 == 0 else 8
        cv2.line(img, (15 + t, ruler_y), (15 + t, ruler_y + tall), (0, 0, 0), 1)
        if t % 45 == 0:
            cv2.putText(img, str(t // 45), (12 + t, ruler_y + 34), FONT, 0.45, (0, 0, 0), 1)
    cv2.putText(img, "COLOR TARGET 24", (w - 170, h - 2), FONT, 0.35, (220, 220, 220), 1)
    return img


def _relit(part: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A printed object photographed again: another exposure and white balance,
    fresh sensor noise."""
    gain = rng.uniform(0.85, 1.1) * rng.uniform(0.95, 1.05, 3)
    out = part.astype(np.float32) * gain + rng.uniform(-8, 8)
    out += rng.normal(0, 2.5, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def paste_chart(img: np.ndarray, rng: np.random.Generator, width_frac: float = 0.3) -> np.ndarray:
    """The target beside the object, in a lower corner: about `width_frac` of the
    width (scale +-7 %), its position varied."""
    out = img.copy()
    h, w = out.shape[:2]
    c = chart()
    cw = w * width_frac * rng.uniform(0.93, 1.07)
    cw = int(round(min(cw, 0.45 * h * c.shape[1] / c.shape[0])))  # a wide, low frame
    ch = int(round(c.shape[0] * cw / c.shape[1]))
    c = _relit(cv2.resize(c, (cw, ch), interpolation=cv2.INTER_AREA), rng)
    margin = max(2, int(0.03 * w))
    left = rng.random() < 0.5
    x0 = margin + int(rng.integers(0, margin + 1))
    x = x0 if left else w - cw - x0
    y = h - ch - margin - int(rng.integers(0, margin + 1))
    out[y : y + ch, x : x + cw] = c
    return out


def logo(size: int = 64) -> np.ndarray:
    """The museum's mark: a ring, a bar and two letters."""
    img = np.full((size, size, 3), 250, np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 2 - 3, (120, 20, 30), 3, cv2.LINE_AA)
    cv2.rectangle(
        img, (size // 4, size // 2 - 3), (3 * size // 4, size // 2 + 3), (120, 20, 30), -1
    )
    cv2.putText(img, "MA", (size // 4, size // 2 - 8), FONT, size / 160, (120, 20, 30), 1)
    return img


def add_caption(img: np.ndarray, number: int, rng: np.random.Generator) -> np.ndarray:
    """A caption strip under the picture: the logo, the museum's name and credit
    line (the same everywhere) and an inventory number (each its own)."""
    h, w = img.shape[:2]
    sh = max(40, h // 9)
    strip = np.full((sh, w, 3), 250, np.uint8)
    lg = cv2.resize(logo(), (sh - 8, sh - 8), interpolation=cv2.INTER_AREA)
    strip[4 : 4 + lg.shape[0], 6 : 6 + lg.shape[1]] = lg
    scale = sh / 90
    x = sh + 8
    cv2.putText(strip, "MUSEUM OF APPLIED ARTS", (x, sh // 2 - 2), FONT, scale, (30, 30, 30), 1)
    cv2.putText(
        strip, f"Photo: Studio  Inv. {number:06d}", (x, sh - 8), FONT, scale * 0.8, (60, 60, 60), 1
    )
    out = np.vstack([img, _relit(strip, rng)])
    return out


def verso(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The back of a print: paper tone, vignetting, fine grain, a few fibres and
    specks; nothing else."""
    w, h = size
    tone = np.array([226, 214, 190], np.float32) + rng.uniform(-12, 12, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    vign = 1 - rng.uniform(0.04, 0.12) * (((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2) * 2
    img = tone * vign[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, 4, (h, w)).astype(np.float32), (0, 0), 0.8)
    img += grain[..., None]
    for _ in range(int(rng.integers(2, 7))):  # fibres
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        a = rng.uniform(0, np.pi)
        ln = rng.uniform(6, 25)
        p1 = (int(x0), int(y0))
        p2 = (int(x0 + ln * np.cos(a)), int(y0 + ln * np.sin(a)))
        cv2.line(img, p1, p2, tuple(float(v) for v in tone * 0.9), 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(3, 12))):  # specks
        r = float(rng.uniform(0.7, 2.2))
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.circle(
            img, centre, max(1, int(r)), tuple(float(v) for v in tone * 0.55), -1, cv2.LINE_AA
        )
    return np.clip(img, 0, 255).astype(np.uint8)


def _field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1]: noise on a coarse grid, upsampled."""
    g = rng.random((cells, max(2, cells * w // h))).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def procedural_photo(seed: int, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A distinct picture with the structure a photograph gives SIFT: shaded
    background, textured regions, objects with edges and corners, a little text,
    optical blur and sensor noise. Two seeds share no content."""
    rng = np.random.default_rng([20231, seed])
    w, h = size
    base = rng.uniform(40, 220, 3).astype(np.float32)
    img = base * (0.6 + 0.8 * _field(rng, h, w, 3))[..., None]
    tex = sum(_field(rng, h, w, c) / (i + 1) for i, c in enumerate((8, 24, 72, 200)))
    img += (tex[..., None] - 0.9) * rng.uniform(20, 60, 3)
    for _ in range(int(rng.integers(12, 30))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(0, 4)
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        r = int(rng.uniform(8, 0.22 * w))
        mask = np.zeros((h, w), np.uint8)
        if kind == 0:
            axes = (r, int(r * rng.uniform(0.3, 1)))
            cv2.ellipse(mask, (cx, cy), axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
        elif kind == 1:
            n = int(rng.integers(3, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = r * rng.uniform(0.4, 1, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
        elif kind == 2:
            p2 = (int(cx + rng.uniform(-w / 3, w / 3)), int(cy + rng.uniform(-h / 3, h / 3)))
            cv2.line(mask, (cx, cy), p2, 255, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            cv2.rectangle(mask, (cx, cy), (cx + r, cy + int(r * rng.uniform(0.3, 1.2))), 255, -1)
        m = (mask.astype(np.float32) / 255)[..., None]
        shade = 0.7 + 0.6 * _field(rng, h, w, int(rng.integers(2, 40)))
        if rng.random() < 0.4:  # a patterned surface: stripes, a weave, grain
            f = rng.uniform(0.05, 0.5)
            a = rng.uniform(0, np.pi)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            shade *= 0.8 + 0.2 * np.sign(np.sin(f * (xx * np.cos(a) + yy * np.sin(a))))
        elif rng.random() < 0.5:
            shade *= 0.75 + 0.5 * _field(rng, h, w, int(rng.integers(60, 160)))
        fill = np.array(colour, np.float32) * shade[..., None]
        img = img * (1 - m) + fill * m
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 3))):
        text = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 9))))
        org = (int(rng.uniform(0, w * 0.7)), int(rng.uniform(20, h)))
        cv2.putText(img, text, org, FONT, rng.uniform(0.5, 1.5), tuple(rng.uniform(0, 255, 3)), 2)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.8) + rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def mosaic(
    rng: np.random.Generator, photos: list[np.ndarray], size: tuple[int, int] = (640, 480)
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """Four patches, each cut from one of `photos` (a quarter of the frame each):
    a collage, a genuine partial copy of every photograph it takes from. Returns the
    collage and its parts: (photograph, x, y, w, h of the region cut from it)."""
    w, h = size
    out = np.zeros((h, w, 3), np.uint8)
    parts = []
    for k in range(4):
        i = int(rng.integers(0, len(photos)))
        src = photos[i]
        sh, sw = src.shape[:2]
        pw, ph = w // 2, h // 2
        cw = int(min(sw, sh * pw / ph) * rng.uniform(0.4, 0.8))
        chh = int(cw * ph / pw)
        x, y = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - chh + 1))
        patch = cv2.resize(src[y : y + chh, x : x + cw], (pw, ph), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, 2)
        out[r * ph : (r + 1) * ph, c * pw : (c + 1) * pw] = patch
        parts.append((i, x, y, cw, chh))
    return out, parts
