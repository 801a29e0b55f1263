"""Another capture of one scene, or a copy: what is left to move after alignment.

Takes two thumbnails and the homography a verified copy was reported with; gives
the residual motion (`residual_motion`, in pixels at the coarser of the two
resolutions). Two frames of a video a moment apart, a burst or a re-shoot on a copy
stand pass the pixel check at 256 px, but something in them moved: after the
pair's own alignment, the shift that best explains each block's residual varies
from block to block in a way no global map (an affine map of the shifts) follows.
A copy's residual (resampling, JPEG, a colour change fitted block by block) is no
shift at all, or one the global map explains (a sub-pixel misalignment).

Measured on bench/quality_bench.py's fit half (docs/captures.md): in copies of
textured photographs, the largest such shift <= 0.41 px and the second largest
<= 0.29; in pairs of other captures (video frames 1-5 apart) mostly above. Smooth
pictures (a defocused photograph) are left alone: their shifts are too uncertain.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..ingest.frame import edge, fill_mask
from .geometry import _thumb_homography
from .pixels import _block_sums, block_grid, colour_fit


def _scaled(img: np.ndarray, f: float) -> np.ndarray:
    if f >= 1:
        return img
    h, w = img.shape[:2]
    size = (max(8, round(w * f)), max(8, round(h * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _picture(img: np.ndarray, tol: float = 8.0) -> np.ndarray:
    """Where a frame shows picture, not the plain fill of a border or a turn's
    corners (dilated: the fill's edge is blurred into the picture)."""
    ring = edge(img).astype(np.float32)
    colour = np.median(ring, axis=0)
    if (np.abs(ring - colour).max(axis=1) <= tol).mean() < 0.25:
        return np.ones(img.shape[:2], bool)
    fill = fill_mask(img, colour, tol).astype(np.uint8)
    return cv2.dilate(fill, np.ones((5, 5), np.uint8)) == 0


def align(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    side: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A warped onto B's frame, B, where both show picture), at the resolution of
    the coarser of the two and at most `side` px: what one of them never held (a
    small copy's lost detail) is not asked of the other."""
    ht = _thumb_homography(thumb_a, thumb_b, hmat, size_a, size_b)
    s = float(np.sqrt(abs(np.linalg.det(ht[:2, :2] / ht[2, 2]))))  # B px per A px
    fb = min(1.0, 1.0 / s if s > 1 else 1.0, side / max(thumb_b.shape[:2]))
    b = _scaled(thumb_b, fb)
    a = _scaled(thumb_a, min(1.0, s * fb))
    ht = _thumb_homography(a, b, hmat, size_a, size_b)
    hb, wb = b.shape[:2]
    warped = cv2.warpPerspective(a, ht, (wb, hb), flags=cv2.INTER_LINEAR)
    pic = _picture(a).astype(np.uint8) * 255
    inside = cv2.warpPerspective(pic, ht, (wb, hb), flags=cv2.INTER_NEAREST)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0  # and A's frame edge
    return warped, b, inside & _picture(b)


def _tensor(
    gx: np.ndarray, gy: np.ndarray, m: np.ndarray, r0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block, the sums of the gradients' products over the masked pixels."""
    return (
        _block_sums(gx * gx * m, r0, c0),
        _block_sums(gy * gy * m, r0, c0),
        _block_sums(gx * gy * m, r0, c0),
    )


def _min_eigen(sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """The smaller eigenvalue of a block's structure tensor (per pixel): how well a
    shift of the block is determined in every direction."""
    tr, det = sxx + syy, sxx * syy - sxy * sxy
    return (tr - np.sqrt(np.maximum(tr * tr - 4 * det, 0))) / 2 / np.maximum(cnt, 1)


def _gradients(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8


def block_motion(
    warped: np.ndarray, target: np.ndarray, inside: np.ndarray, block: int = 16
) -> dict | None:
    """Per block of about `block` px: the shift (Lucas-Kanade, one step) that best
    explains what is left of the target's grey levels after each block is fitted
    from the warped source's colours (1, R, G, B, squared luminance), how much of
    that residual it explains, and how textured both images are there."""
    h, w = target.shape[:2]
    if inside.sum() < 64:
        return None
    n = max(2, min(h, w) // block)
    r0, c0, rsz, csz, full = block_grid(h, w, n)
    m = inside.astype(np.float32)
    cnt = _block_sums(m, r0, c0)

    def grey(img: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.GaussianBlur(g, (0, 0), 0.7)

    gb, ga = grey(target), grey(warped)
    pred = colour_fit(warped, gb, inside, n).astype(np.float32)
    ix, iy = _gradients((pred + gb) / 2)
    it = gb - pred
    sxx, syy, sxy = _tensor(ix, iy, m, r0, c0)
    sxt, syt = _block_sums(ix * it * m, r0, c0), _block_sums(iy * it * m, r0, c0)
    stt = _block_sums(it * it * m, r0, c0)
    det = sxx * syy - sxy * sxy
    safe = np.where(det > 1e-9, det, 1.0)
    dx, dy = -(syy * sxt - sxy * syt) / safe, -(sxx * syt - sxy * sxt) / safe
    # block centres, as fractions of the frame
    xc = np.bincount(csz, np.arange(w)) / np.bincount(csz) / w
    yc = np.bincount(rsz, np.arange(h)) / np.bincount(rsz) / h
    x, y = np.meshgrid(xc, yc)
    return {
        "usable": cnt >= 0.95 * full,
        "x": x,
        "y": y,
        "dx": dx,
        "dy": dy,
        "explained": -(dx * sxt + dy * syt) / np.maximum(stt, 1e-9),
        "texture": _min_eigen(sxx, syy, sxy, cnt),
        "texture_a": _min_eigen(*_tensor(*_gradients(ga), m, r0, c0), cnt),
        "texture_b": _min_eigen(*_tensor(*_gradients(gb), m, r0, c0), cnt),
    }


def residual_motion(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    min_texture: float = 10.0,
    min_explained: float = 0.3,
) -> tuple[float, float]:
    """The two largest shifts (pixels at the compared resolution) of blocks that no
    affine map of all blocks' shifts follows, over blocks textured in both images
    (`min_texture`) whose residual the shift explains in good part
    (`min_explained`); zeros when fewer than 6 blocks are textured."""
    b = block_motion(*align(thumb_a, thumb_b, hmat, size_a, size_b))
    if b is None:
        return 0.0, 0.0
    ok = b["usable"] & (b["texture"] > 1e-6)
    ok &= np.minimum(b["texture_a"], b["texture_b"]) >= min_texture
    if ok.sum() < 6:
        return 0.0, 0.0
    # the global part of the motion: an affine map of the block centres, each
    # block weighted by how well its shift is determined
    design = np.column_stack([np.ones(ok.sum()), b["x"][ok], b["y"][ok]])
    sw = np.sqrt(b["texture"][ok])[:, None]
    left = []
    for d in (b["dx"][ok], b["dy"][ok]):
        coef = np.linalg.lstsq(design * sw, d * sw[:, 0], rcond=None)[0]
        left.append(d - design @ coef)
    shifts = np.sort(np.hypot(*left)[b["explained"][ok] >= min_explained])[::-1]
    shifts = np.concatenate([shifts[:2], np.zeros(2)])
    return float(shifts[0]), float(shifts[1])


def moved(motion: tuple[float, float], one: float, two: float) -> bool:
    """Whether a pair is another capture: one part of the picture moved by more
    than `one` px after the alignment, or two parts by more than `two`."""
    return motion[0] > one or motion[1] > two
