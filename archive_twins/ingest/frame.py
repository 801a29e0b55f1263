"""What of a frame is the picture, and what a plain border, caption or fill.

A copy framed for a catalogue (a border and a caption), turned by a few degrees or
warped (the corners filled with one colour) shows its source's picture inside
plain margins, which dominate a whole-frame hash of a smooth picture (a sky: 19-25
bits of 64 from its source). `content_hashes` hashes the picture alone.
"""

from __future__ import annotations

import cv2
import numpy as np

# where the margins are looked for, and the picture inside them hashed: the larger
# side, in pixels
FIND_SIDE = 256
CONTENT_SIDE = 128
# share of the picture's box left out at each side: a border's last pixels, blurred
# into the picture by resampling and JPEG, stay out of the hash
INSET = 0.08


def edge(arr: np.ndarray) -> np.ndarray:
    """The pixels of a frame's outer ring (top, bottom, left and right rows)."""
    return np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])


def reduced(arr: np.ndarray, side: int) -> np.ndarray:
    """An image at most `side` px (area-averaged), or itself when it already is."""
    h, w = arr.shape[:2]
    if max(h, w) <= side:
        return arr
    f = side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)


def content_box(thumb: np.ndarray, tol: float = 8.0) -> tuple[float, float, float, float]:
    """The picture inside a plain border, as a fraction box (x0, y0, x1, y1) of the
    frame: when the frame's outer ring is mostly one colour, the largest region not
    of that colour reached from nothing but itself (a caption's letters are small
    separate specks; an object on a plain studio background is the picture). The
    whole frame when there is no plain border."""
    h, w = thumb.shape[:2]
    px = thumb.reshape(h, w, -1).astype(np.float32)
    ring = edge(px)
    colour = np.median(ring, axis=0)
    if (np.abs(ring - colour).max(axis=1) <= tol).mean() < 0.8:
        return 0.0, 0.0, 1.0, 1.0
    other = (np.abs(px - colour).max(axis=2) > tol).astype(np.uint8)
    other = cv2.morphologyEx(other, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(other, connectivity=8)
    if n <= 1:
        return 0.0, 0.0, 1.0, 1.0
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[i, :4])
    return x / w, y / h, (x + bw) / w, (y + bh) / h


def fill_mask(px: np.ndarray, colour: np.ndarray, tol: float = 8.0) -> np.ndarray:
    """Pixels of `colour` (within tol) connected to the frame's edge: the plain fill
    around a turned or warped picture, not the same colour inside it."""
    near = (np.abs(px.astype(np.float32) - colour).max(axis=2) <= tol).astype(np.uint8)
    _, lab = cv2.connectedComponents(near, connectivity=4)
    touching = np.unique(edge(lab))
    touching = touching[touching > 0]
    return np.isin(lab, touching) if len(touching) else np.zeros(near.shape, bool)


def content_picture(thumb: np.ndarray) -> np.ndarray:
    """The picture of a frame without its plain margins (`content_box`), at most
    CONTENT_SIDE px, with the plain fill still inside that box (the corners of a
    small rotation or a perspective warp) painted over from the picture around it;
    the whole frame, reduced, when it has no plain margin."""
    h, w = thumb.shape[:2]
    px = thumb.reshape(h, w, -1)
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    px = reduced(px, FIND_SIDE)  # margins are found at this size (3 ms, not 50)
    h, w = px.shape[:2]
    x0, y0, x1, y1 = content_box(px)
    dx, dy = INSET * (x1 - x0), INSET * (y1 - y0)
    x0, y0, x1, y1 = x0 + dx, y0 + dy, x1 - dx, y1 - dy
    X0, Y0 = int(x0 * w), int(y0 * h)
    X1, Y1 = max(X0 + 1, int(np.ceil(x1 * w))), max(Y0 + 1, int(np.ceil(y1 * h)))
    crop = reduced(np.ascontiguousarray(px[Y0:Y1, X0:X1, :3]), CONTENT_SIDE)
    ring = edge(px).astype(np.float32)[:, :3]
    colour = np.median(ring, axis=0)
    if (np.abs(ring - colour).max(axis=1) <= 8.0).mean() < 0.25:
        return crop  # no plain colour along the frame: nothing to paint over
    mask = fill_mask(crop, colour)
    if mask.any() and not mask.all():
        crop = cv2.inpaint(crop, mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return crop
