"""Verification of copies under crops, small rotations, perspective and colour changes.

Candidates come from the word index (`index.query`). Verification: ratio-test
descriptor matches, a RANSAC homography (rotations by any angle, including
90/180/270, come out of SIFT's rotation invariance; mirrors from
mirrored descriptors), then the pixel check of the hash stage on the overlap, so a
second photograph of the same object from another viewpoint, whose background plane
fits a homography, is still rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ..index.items import content_basis
from ..ingest.features import mirror_descriptors, root_sift
from ..ingest.frame import FIND_SIDE, content_box, edge, fill_mask, reduced
from ..util import fingerprint
from .homography import FULL_COVER, coverage, crop_box, decompose
from .pixels import (
    VerifyParams,
    accepted,
    compare,
    explains,
    photometric_change,
)

# Fewer compared blocks than this say nothing about the pixels (a sliver of overlap).
MIN_BLOCKS = 4
# A fitted scale within 5% of 1 is the same resolution: resampling and rounding move
# a same-size copy's scale a little, a resized copy's by more (`source_first`).
SAME_RESOLUTION = 0.95
# A part of a thumbnail with at least this share of its pixels within PLAIN_TOL grey
# levels of its median colour is plain, one colour: an added border or fill
# (`plain_margin`, `_flatter`; measured there).
FLAT_SHARE = 0.8
PLAIN_TOL = 8.0


@dataclass(frozen=True)
class GeoParams:
    """Verification thresholds (tuned on tests/ photographs, docs/design.md)."""

    ratio: float = 0.82
    min_inliers: int = 12
    reproj_frac: float = 0.012
    min_overlap: float = 0.08
    # Warping resamples once more than a dihedral alignment, so the pixel check of a
    # geometric fit allows a worst block ratio of 0.8 (a stereo pair warped with its
    # best homography scores 2.1).
    max_block_ratio: float = 0.8
    # Accepting a colour change on geometric evidence alone (a colour/tone change was
    # measured and the homography explains nearly all matches) is off by default: a
    # copy is decided by the pixels of the same capture (the colour fit now follows
    # hue, clipped contrast and gamma). Measured on the development photographs and
    # 525 derivatives: on, recall 0.971 and 5 wrong pairs of 3,529, 4 of them
    # accepted on geometry; off, recall 0.970 and 1 wrong pair.
    accept_on_geometry: bool = False
    strong_inliers: int = 40
    strong_inlier_ratio: float = 0.8
    # A fit this strong whose pixels disagree after alignment shows the same object or
    # scene in another photograph (another viewpoint, moment, frame): `related_pairs`.
    related_min_inliers: int = 20
    # ... and whose inliers span this share of the overlap in both frames (their
    # convex hull): a colour chart, a caption, a logo or a watermark two photographs
    # share spans a corner or a strip of both (measured: docs/furniture.md)
    related_min_hull: float = 0.3
    # ... and this share of each whole frame (two photographs with a chart in
    # opposite corners overlap little once the charts are aligned, and the chart
    # spans much of that overlap; it spans at most ~13 % of a frame)
    related_min_area: float = 0.15
    # A copy is derived from one capture, so one frame lies mostly within the other
    # (a crop in its source, a source in its bordered copy, a turned or warped copy
    # over its source: a 45-degree turn at the same size still covers 80 %). Two
    # photographs sharing a printed chart or a pasted element overlap only around it
    # once it is aligned (40 % and 23 % of their frames in tests/test_e2e_furniture),
    # and a colour fit over that overlap can pass the pixel check. Measured on the
    # quality benchmark's 4,722 keypoint-fitted copies: the larger cover >= 0.78.
    min_copy_cover: float = 0.6

    # A smooth pair that keypoints cannot place (a sky framed, turned or warped: a
    # few ratio-test matches) is aligned on its grey levels instead (`dense_fit`),
    # at this size, and is a copy only when the pixel check passes and the aligned
    # grey levels correlate this well (two patches of one sky aligned so: <= 0.79).
    dense_sides: tuple[int, ...] = (160, 480)
    dense_min_corr: float = 0.9
    # correlation a homography must add over the rigid motion to replace it
    dense_homography_gain: float = 0.005
    # an alignment this good is not tried the other way round (each costs ~70 ms)
    dense_good_corr: float = 0.98
    # how far the two pictures' proportions, and the fitted scale from their boxes',
    # may differ (log ratio), and the share of compared blocks a grey-level
    # alignment needs (a small patch of another sky matched 12 of 256 blocks)
    dense_max_aspect_change: float = 0.1
    dense_min_blocks: int = 64
    verify: VerifyParams = VerifyParams()

    def fingerprint(self) -> str:
        """Part of the verdict cache key."""
        return fingerprint("geometry-3", asdict(self))


def _rootsift(f: dict, mirrored: bool) -> np.ndarray:
    """RootSIFT of a raster's descriptors (or of its mirror image), computed once."""
    name = "_rs_mirror" if mirrored else "_rs"
    if name not in f:
        f[name] = root_sift(mirror_descriptors(f["desc"]) if mirrored else f["desc"])
    return f[name]


def _good_matches(da: np.ndarray, db: np.ndarray, ratio: float) -> list[tuple[int, int]]:
    """Lowe's ratio test on unit-norm (RootSIFT) descriptors, with one BLAS product
    and two arg-max passes (for unit vectors the nearest is the largest product)."""
    if len(da) < 2 or len(db) < 2:
        return []
    sim = da @ db.T
    rows = np.arange(len(da))
    best = sim.argmax(axis=1)
    s1 = sim[rows, best]
    sim[rows, best] = -np.inf
    s2 = sim.max(axis=1)
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * s1, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * s2, 0.0))
    keep = d1 < ratio * d2
    return list(zip(rows[keep].tolist(), best[keep].tolist(), strict=True))


def _well_conditioned(hmat: np.ndarray) -> bool:
    """A usable homography: invertible, not collapsing the image to a line, scale
    within 1/50..50 (a degenerate RANSAC fit on clustered points fails this)."""
    det = abs(float(np.linalg.det(hmat)))
    lin = abs(float(np.linalg.det(hmat[:2, :2] / hmat[2, 2]))) if hmat[2, 2] else 0.0
    return det > 1e-9 and 1 / 2500 < lin < 2500 and np.linalg.cond(hmat) < 1e9


def _similarity_screen(
    pa: np.ndarray, pb: np.ndarray, mirrored: bool, thresh: float, min_inliers: int
) -> bool:
    """Cheap first screen before the homography: do enough matches agree with one
    rotation + scale + shift (2-point samples, loose threshold)? Unrelated pictures
    rarely do, and RANSAC for a homography on their matches is the costliest step."""
    src = pa * np.array([-1.0, 1.0]) if mirrored else pa
    model, inl = cv2.estimateAffinePartial2D(
        src,
        pb,
        method=cv2.RANSAC,
        ransacReprojThreshold=thresh,
        maxIters=500,
        confidence=0.99,
    )
    if model is None:
        return False
    n = int(inl.sum())
    return n >= min_inliers and n >= 0.2 * len(pa)


def fit(
    fa: dict,
    fb: dict,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    mirror_first: bool,
    params: GeoParams,
) -> Fit | None:
    """RANSAC homography A->B (full-resolution coordinates) and its inliers."""
    best = None
    # The variant the retrieval preferred (mirrored words or plain) is matched first,
    # the other only when it fits nothing: the mirror image of a symmetric texture
    # (bricks, gravel) can outvote the image itself (a copy turned by 12 degrees:
    # 35 mirrored votes, 32 plain)
    for mirrored in (mirror_first, not mirror_first):
        if best is not None:
            break
        good = _good_matches(_rootsift(fa, mirrored), _rootsift(fb, False), params.ratio)
        if len(good) < params.min_inliers:
            continue
        pa = fa["xy"][[g[0] for g in good]].astype(np.float64)
        pb = fb["xy"][[g[1] for g in good]].astype(np.float64)
        cv2.setRNGSeed(12345)
        thresh = params.reproj_frac * max(size_b)
        if not _similarity_screen(pa, pb, mirrored, 1.5 * thresh, params.min_inliers):
            continue
        hmat, mask = cv2.findHomography(pa, pb, cv2.RANSAC, thresh, maxIters=2000, confidence=0.995)
        if hmat is None:
            continue
        inliers = int(mask.sum())
        det = np.linalg.det(hmat[:2, :2])
        if inliers < params.min_inliers or (det < 0) != mirrored or not _well_conditioned(hmat):
            continue
        if best is None or inliers > best[1]:
            keep = mask.ravel() > 0
            best = Fit(hmat, inliers, len(good), pa[keep], pb[keep])
    return best


class Fit(NamedTuple):
    """A RANSAC homography A->B and its inliers (full-resolution coordinates)."""

    hmat: np.ndarray
    inliers: int
    matches: int
    pa: np.ndarray
    pb: np.ndarray


def hull_share(pts: np.ndarray, overlap: float, size: tuple[int, int]) -> float:
    """Area of the points' convex hull over the overlap's area (`overlap`: the share
    of the frame the other frame covers): how much of what two frames show in common
    the fit's inliers span."""
    if len(pts) < 3 or overlap <= 0:
        return 0.0
    hull = cv2.convexHull(np.asarray(pts, np.float32).reshape(-1, 1, 2))
    return float(cv2.contourArea(hull)) / (overlap * size[0] * size[1])


def _in_content(
    found: Fit, thumb_a: np.ndarray, thumb_b: np.ndarray, size_a: tuple, size_b: tuple
) -> int:
    """Inliers inside the picture of both frames (not on a border or caption they
    share: two bordered photographs from one template match on their captions)."""

    def inside(pts: np.ndarray, thumb: np.ndarray, size: tuple) -> np.ndarray:
        x0, y0, x1, y1 = content_box(thumb)
        fx, fy = pts[:, 0] / size[0], pts[:, 1] / size[1]
        return (fx >= x0) & (fx <= x1) & (fy >= y0) & (fy <= y1)

    return int((inside(found.pa, thumb_a, size_a) & inside(found.pb, thumb_b, size_b)).sum())


def _thumb_frames(
    thumb_a: np.ndarray, thumb_b: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(left, right): `left @ hmat @ right` is a full-resolution map A->B (continuous
    coordinates, pixel centres at +0.5) as a map between the two thumbnails' pixel
    indices; `inv(left) @ m @ inv(right)` takes such a map back."""
    ha_t, wa_t = thumb_a.shape[:2]
    hb_t, wb_t = thumb_b.shape[:2]
    sa = np.diag([wa_t / size_a[0], ha_t / size_a[1], 1.0])
    sb = np.diag([wb_t / size_b[0], hb_t / size_b[1], 1.0])
    to_index = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5], [0, 0, 1.0]])
    from_index = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    return to_index @ sb, np.linalg.inv(sa) @ from_index


def _thumb_homography(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
) -> np.ndarray:
    """hmat (continuous full-resolution coordinates, pixel centres at +0.5) as a map
    between the two thumbnails' pixel indices, which is what OpenCV warps with. The
    half-pixel shifts matter: without them a mirrored or rotated copy is compared one
    thumbnail pixel off, and its worst block fails the pixel check."""
    left, right = _thumb_frames(thumb_a, thumb_b, size_a, size_b)
    return left @ hmat @ right


def _frame_mask(thumb_a: np.ndarray, thumb_b: np.ndarray, ht: np.ndarray) -> np.ndarray:
    """Where A's frame lands in B's thumbnail (uint8 0/255)."""
    ha_t, wa_t = thumb_a.shape[:2]
    hb_t, wb_t = thumb_b.shape[:2]
    return cv2.warpPerspective(
        np.full((ha_t, wa_t), 255, np.uint8), ht, (wb_t, hb_t), flags=cv2.INTER_NEAREST
    )


def warp_check(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    params: GeoParams,
) -> dict:
    """Warp A's thumbnail onto B's and compare pixels on the overlap."""
    hb_t, wb_t = thumb_b.shape[:2]
    ht = _thumb_homography(thumb_a, thumb_b, hmat, size_a, size_b)
    warped = cv2.warpPerspective(thumb_a, ht, (wb_t, hb_t), flags=cv2.INTER_AREA)
    mask = cv2.erode(_frame_mask(thumb_a, thumb_b, ht), np.ones((3, 3), np.uint8)) > 0
    return compare(warped, thumb_b, params.verify, mask)


def plain_margin(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    tol: float = PLAIN_TOL,
    ring: int = 4,
) -> bool:
    """Whether what B shows around all of A is an added border: then B is A with a
    border (and perhaps a caption), not A a crop of B.

    The test is the step at A's edge: just outside it B is flat (one colour), just
    inside A has content. Around a crop the picture goes on across the edge, flat or
    not (a crop of a starry sky, or of an object on a white studio background, is
    no border); a caption further out does not matter. Measured on thumbnails (the
    fit half of the quality benchmark): added borders 0.83-1.0 of the outer ring
    within the tolerance of its median colour, the inner ring mostly below 0.45; a
    photograph whose own edge is plain tells by a step in colour (median colours of
    the two rings more than 2 x tol apart), or not at all (a white border around
    white); crops of real photographs: both rings alike (within 0.3, a retina's
    black surround), in the same colour."""
    ht = _thumb_homography(thumb_a, thumb_b, hmat, size_a, size_b)
    frame = _frame_mask(thumb_a, thumb_b, ht)
    k = np.ones((3, 3), np.uint8)
    near = cv2.dilate(frame, k, iterations=2)
    outer = (cv2.dilate(near, k, iterations=ring) > 0) & ~(near > 0)
    inner = (cv2.erode(frame, k, iterations=2) > 0) & ~(
        cv2.erode(frame, k, iterations=2 + ring) > 0
    )
    if outer.sum() < 16 or inner.sum() < 16:
        return False
    out_flat = _flat(thumb_b, outer, tol)
    if out_flat < FLAT_SHARE:
        return False
    if _flatter(out_flat, _flat(thumb_b, inner, tol)):
        return True
    # both flat: a step in colour at A's edge is a border on a plain-edged picture
    # (a retina on black in a white frame); one colour across it, a plain background
    step = np.abs(np.median(thumb_b[outer], axis=0) - np.median(thumb_b[inner], axis=0))
    return float(step.max()) > 2 * tol


def _flat(thumb: np.ndarray, sel: np.ndarray, tol: float) -> float:
    """Share of the selected pixels within `tol` of their median colour."""
    px = thumb[sel].astype(np.float32)
    return float((np.abs(px - np.median(px, axis=0)).max(axis=1) <= tol).mean())


def _flatter(flat: float, other: float) -> bool:
    """Whether a part `flat` plain (see `_flat`) is filled in one colour where the
    other part (`other` plain) is picture: the added border or fill of a copy."""
    return flat >= FLAT_SHARE and other <= flat - 0.35


def fill_outside(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    tol: float = PLAIN_TOL,
) -> float | None:
    """How flat B is where it shows nothing of A (share of those pixels within `tol`
    of their median colour), or None when that part is too small to tell.

    A small rotation or a warp kept at the source's size fills the corners it
    uncovered with one colour and cuts the source's corners off: the copy is flat
    outside the source's frame, the source is not outside the copy's."""
    ht = _thumb_homography(thumb_a, thumb_b, hmat, size_a, size_b)
    k = np.ones((3, 3), np.uint8)
    outside = ~(cv2.dilate(_frame_mask(thumb_a, thumb_b, ht), k, iterations=2) > 0)
    if outside.sum() < max(64, 0.01 * outside.size):
        return None
    return _flat(thumb_b, outside, tol)


def _grey_small(thumb: np.ndarray, side: int) -> tuple[np.ndarray, float, float]:
    """Grey float32 image of at most `side` px, and its x and y scale factors."""
    h, w = thumb.shape[:2]
    s = min(1.0, side / max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    small = cv2.resize(thumb, size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small
    return grey.astype(np.float32), size[0] / w, size[1] / h


def _box_map(box_from: tuple, size_from: tuple, box_to: tuple, size_to: tuple) -> np.ndarray:
    """The axis-aligned map of one frame's picture box onto another's (pixels)."""
    fx0, fy0, fx1, fy1 = (box_from[0] * size_from[0], box_from[1] * size_from[1],
                          box_from[2] * size_from[0], box_from[3] * size_from[1])  # fmt: skip
    tx0, ty0, tx1, ty1 = (box_to[0] * size_to[0], box_to[1] * size_to[1],
                          box_to[2] * size_to[0], box_to[3] * size_to[1])  # fmt: skip
    sx, sy = (tx1 - tx0) / max(fx1 - fx0, 1e-6), (ty1 - ty0) / max(fy1 - fy0, 1e-6)
    return np.array([[sx, 0, tx0 - sx * fx0], [0, sy, ty0 - sy * fy0], [0, 0, 1.0]])


def _ecc(tmpl: np.ndarray, inp: np.ndarray, init: np.ndarray, motion: int, mask: np.ndarray):
    """OpenCV's ECC alignment from `init` (3x3): (correlation, 3x3 warp) or None."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    warp0 = init[:2] if motion != cv2.MOTION_HOMOGRAPHY else init
    try:
        cc, warp = cv2.findTransformECC(
            tmpl, inp, warp0.astype(np.float32), motion, criteria, mask, 3
        )
    except cv2.error:
        return None
    warp = warp.astype(np.float64)
    return cc, (np.vstack([warp, [0, 0, 1.0]]) if warp.shape[0] == 2 else warp)


def _aspect_change(thumb_a: np.ndarray, thumb_b: np.ndarray, box_a: tuple, box_b: tuple) -> float:
    """How much the pictures' proportions differ (|log| of the ratio of their boxes'
    aspects): a framed, turned or warped copy keeps its picture's proportions."""
    (ha, wa), (hb, wb) = thumb_a.shape[:2], thumb_b.shape[:2]
    aspect_a = (box_a[2] - box_a[0]) * wa / max((box_a[3] - box_a[1]) * ha, 1e-6)
    aspect_b = (box_b[2] - box_b[0]) * wb / max((box_b[3] - box_b[1]) * hb, 1e-6)
    return abs(np.log(aspect_a / aspect_b))


def _dense_side(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    box_a: tuple,
    box_b: tuple,
    a_is_template: bool,
    side: int,
    found: np.ndarray | None,
    params: GeoParams,
) -> tuple[np.ndarray, float] | None:
    """One size of `_dense_direction`: the template's thumbnail pixels -> the input's
    (3x3) and its correlation, starting from the pictures' boxes (`found` None) or
    from the coarser size's result `found`; None when it does not align."""
    ga, ax, ay = _grey_small(thumb_a, side)
    gb, bx, by = _grey_small(thumb_b, side)
    sa, sb = np.diag([ax, ay, 1.0]), np.diag([bx, by, 1.0])
    tmpl, inp = (ga, gb) if a_is_template else (gb, ga)
    to_t, to_i = (sa, sb) if a_is_template else (sb, sa)
    tbox, ibox = (box_a, box_b) if a_is_template else (box_b, box_a)
    tshape, ishape = tmpl.shape[::-1], inp.shape[::-1]
    colour = np.median(edge(inp))
    mask = (~fill_mask(inp[..., None], np.array([colour], np.float32))).astype(np.uint8)
    if mask.sum() < 0.2 * mask.size:
        return None
    # the scale the pictures' boxes give, in this size's pixels
    boxes = _box_map(tbox, tshape, ibox, ishape)
    k_boxes = float(np.sqrt(boxes[0, 0] * boxes[1, 1]))
    if found is None:
        w0, k = boxes, k_boxes
    else:  # the coarse result, in full-resolution coordinates, at this size
        w0 = to_i @ found @ np.linalg.inv(to_t)
        k = float(np.sqrt(abs(np.linalg.det(w0[:2, :2]))))
    # the template at the input's scale: what is left is a rigid motion
    size = (max(8, round(tshape[0] * k)), max(8, round(tshape[1] * k)))
    scaled = cv2.resize(tmpl, size, interpolation=cv2.INTER_AREA)
    to_scaled = np.diag([size[0] / tshape[0], size[1] / tshape[1], 1.0])
    init = w0 @ np.linalg.inv(to_scaled)
    if found is None:
        init[:2, :2] = np.eye(2)
    else:  # keep the coarse rotation, without its scale
        init[:2, :2] /= np.sqrt(abs(np.linalg.det(init[:2, :2])))
    rigid = _ecc(scaled, inp, init, cv2.MOTION_EUCLIDEAN, mask)
    if rigid is None:
        return None
    cc, warp = rigid
    if side == params.dense_sides[-1]:
        proj = _ecc(scaled, inp, warp, cv2.MOTION_HOMOGRAPHY, mask)
        if proj is not None and proj[0] > cc + params.dense_homography_gain:
            cc, warp = proj
    # the alignment refines the pictures' correspondence, no more: it keeps
    # their scale and turns them by a small rotation's angle at most
    lin = warp[:2, :2] @ to_scaled[:2, :2]
    scale = float(np.sqrt(abs(np.linalg.det(lin))))
    turn = abs(np.degrees(np.arctan2(lin[1, 0], lin[0, 0])))
    if abs(np.log(scale / k_boxes)) > params.dense_max_aspect_change or turn > 30:
        return None
    # template thumbnail pixels -> input thumbnail pixels
    return np.linalg.inv(to_i) @ warp @ to_scaled @ to_t, cc


def _dense_direction(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    box_a: tuple,
    box_b: tuple,
    a_is_template: bool,
    params: GeoParams,
) -> tuple[np.ndarray | None, float]:
    """The template's thumbnail pixels -> the input's (A is the template when
    `a_is_template`) and the correlation at the last size; (None, -1.0) when a size
    does not align."""
    # W maps the template's pixels to the input's, input(W x) ~ template(x), found at
    # a coarse size, then refined at a finer one (a faint edge is a pixel wide)
    found, cc = None, -1.0
    for side in params.dense_sides:
        step = _dense_side(thumb_a, thumb_b, box_a, box_b, a_is_template, side, found, params)
        if step is None:
            return None, -1.0
        found, cc = step
    return found, cc


def dense_fit(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    mirrored: bool,
    params: GeoParams,
) -> np.ndarray | None:
    """Homography A->B (full-resolution coordinates) aligning the grey levels
    (OpenCV's ECC), for smooth pictures whose few keypoints cannot be matched.

    It starts from the picture inside each frame's plain margins (a border and
    caption, the fill of a turn or warp: `content_box`) mapped onto the other's, with
    the other's plain fill masked out. A smooth gradient lets a homography slide and
    stretch along it at almost no cost, so the scale is fixed from the pictures'
    boxes and a rigid motion is fitted; a homography only replaces it when it
    correlates clearly better (a perspective warp). Mirror images are not tried."""
    if mirrored:
        return None
    box_a, box_b = (content_box(reduced(t, FIND_SIDE)) for t in (thumb_a, thumb_b))
    if _aspect_change(thumb_a, thumb_b, box_a, box_b) > params.dense_max_aspect_change:
        return None
    best, best_cc = None, -1.0
    for a_is_template in (True, False):
        found, cc = _dense_direction(thumb_a, thumb_b, box_a, box_b, a_is_template, params)
        if found is not None and cc > best_cc:
            best, best_cc = (found if a_is_template else np.linalg.inv(found)), cc
        if best_cc >= params.dense_good_corr:  # aligned: the other way adds nothing
            break
    if best is None:
        return None
    # thumbnail pixels -> full-resolution coordinates
    left, right = _thumb_frames(thumb_a, thumb_b, size_a, size_b)
    hmat = np.linalg.inv(left) @ best @ np.linalg.inv(right)
    if not _well_conditioned(hmat):
        return None
    return hmat / hmat[2, 2]


# eq=False: a generated == would compare `hmat` arrays element-wise (and hash them)
@dataclass(frozen=True, eq=False)
class GeoVerdict:
    """A geometric verdict, oriented source first (file1 = `key1`, see `source_first`).

    `hmat` maps key1's full-resolution coordinates to key2's (normalised, [2, 2] = 1);
    `scale`, `angle` and `mirrored` are read off it at key1's centre (`decompose`);
    `crop` is the box of key1 that key2 shows (x, y, w, h in key1's pixels) and
    `area_fraction` its share of key1's frame. `inliers` of `matches` ratio-test
    matches (both 0 for a pair aligned on its grey levels) and `score` their share.
    `colour_change`: a colour, greyscale or tone change was measured.
    `accepted_by` says what made it a copy ("pixels", "geometry"); None marks a
    related pair (the geometry fits, the pixels differ), and `reason` then says why
    it is no copy. `direction_by`: what decided which is the source. `aligned`:
    "keypoints" or "grey levels" (`dense_fit`), which decides the record's method.
    `metrics`: the pixel check that decided (`verify.compare`, plus the inliers'
    `hull`). `coverage`: the share of each frame the other covers (key1's, key2's);
    `hull`: the share of that overlap the inliers span in each frame, rounded, in
    the order the pair was asked (a, b), not swapped with the source. Neither goes
    into the records: they are there to look at when tuning.
    """

    key1: str
    key2: str
    hmat: np.ndarray
    scale: float
    angle: float
    mirrored: int
    crop: tuple[float, ...]
    area_fraction: float
    inliers: int
    matches: int
    score: float
    colour_change: bool
    accepted_by: str | None
    reason: str | None
    direction_by: str
    aligned: str
    metrics: dict
    coverage: tuple[float, float]
    hull: tuple[float, float]


class _Overlap(NamedTuple):
    """How two frames overlap under a fit A->B (`_overlap`)."""

    cov_a: float  # share of A's frame that B's covers
    cov_b: float  # share of B's frame that A's covers
    hull_a: float  # share of the overlap the inliers span in A's frame (`hull_share`)
    hull_b: float  # ... in B's


class _Judgement(NamedTuple):
    """What the pixels say of a fit (`_judge`)."""

    metrics: dict  # the pixel check that decided, with the inliers' hull
    explained: int  # whose colours explain the other's (`verify.explains`), 0: no colour change
    colour: bool  # a colour/tone change was measured
    accepted_by: str | None  # "pixels", "geometry", or None: a related pair
    reason: str | None  # why a related pair is no copy


def verify_geometric(
    a: dict,
    b: dict,
    thumbs_a: np.ndarray,
    thumbs_b: np.ndarray,
    params: GeoParams,
    mirror_first: bool = False,
    dense: tuple | None = None,
) -> GeoVerdict | None:
    """Full verification of a shortlisted pair. `a`/`b` carry key, size, rank, features.

    Returns the relation with file1 = the source (see `source_first`), or None;
    `accepted_by` None marks a related pair (geometry fits, pixels differ). With
    `dense` (a smooth pair: loaders of both full-size thumbnails), a pair the
    keypoints cannot place is aligned on its grey levels (`dense_fit`) and accepted
    on its pixels alone.

    The steps: fit (`_fit_pair`), overlap (`_overlap`), what the pixels say
    (`_judge`), whether one is the other with a border or fill (`_border`), which way
    round (`_orient`).
    """
    size_a, size_b = (a["width"], a["height"]), (b["width"], b["height"])
    found = _fit_pair(a["feat"], b["feat"], size_a, size_b, mirror_first, params, dense)
    if found is None:
        return None
    over = _overlap(found, size_a, size_b, params)
    if over is None:
        return None
    # thumbnails may be given as loaders: most candidates never get this far
    thumb_a, thumb_b = _loaded(thumbs_a), _loaded(thumbs_b)
    judged = _judge(found, over, thumb_a, thumb_b, size_a, size_b, params)
    if judged is None:
        return None
    border = _border(thumb_a, thumb_b, found.hmat, size_a, size_b, over)
    return _orient(a, b, found, over, judged, border)


def _loaded(thumbs: np.ndarray | Callable[[], np.ndarray]) -> np.ndarray:
    """A thumbnail, or what its loader gives."""
    return thumbs() if callable(thumbs) else thumbs


def _fit_pair(
    feat_a: dict,
    feat_b: dict,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    mirrored: bool,
    params: GeoParams,
    dense: tuple | None,
) -> Fit | None:
    """The keypoint fit A->B (`fit`); failing that, with `dense` (loaders or arrays of
    both full-size thumbnails), the grey-level alignment (`dense_fit`) as a Fit with
    no inliers and no matches. None when neither places the pair."""
    found = fit(feat_a, feat_b, size_a, size_b, mirrored, params)
    if found is None and dense is not None:
        full_a, full_b = (_loaded(t) for t in dense)
        hmat = dense_fit(full_a, full_b, size_a, size_b, mirrored, params)
        if hmat is not None:
            none = np.zeros((0, 2))
            found = Fit(hmat, 0, 0, none, none)
    return found


def _overlap(
    found: Fit, size_a: tuple[int, int], size_b: tuple[int, int], params: GeoParams
) -> _Overlap | None:
    """How much of each frame the other covers under the fit, and how much of that
    overlap the fit's inliers span in each frame; None when A's frame does not land
    as a convex quadrilateral covering enough of B (or B's of A:
    `params.min_overlap`)."""
    cov_b = coverage(found.hmat, *size_a, *size_b)
    cov_a = coverage(np.linalg.inv(found.hmat), *size_b, *size_a)
    if min(cov_a, cov_b) < params.min_overlap:
        return None
    # how much of the overlap the inliers span, in each frame
    hull_a = hull_share(found.pa, cov_a, size_a)
    hull_b = hull_share(found.pb, cov_b, size_b)
    return _Overlap(cov_a, cov_b, hull_a, hull_b)


def _pixel_check(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    params: GeoParams,
    hull: float,
) -> tuple[dict, int]:
    """A warped onto B and compared (`warp_check`); when that fails, B onto A, kept
    if it passes. Gives the metrics kept (with `hull`, the inliers' larger share of
    the overlap) and whose colours explain the other's (`verify.explains`, seen
    from A)."""
    m = warp_check(thumb_a, thumb_b, hmat, size_a, size_b, params)
    m["hull"] = hull
    explained = explains(m, params.verify)
    if m["blocks"] >= MIN_BLOCKS and not accepted(m, params.verify, params.max_block_ratio):
        # the other way round: what each frame holds outside the other's (fill of a
        # warp, a border) then stays out of the comparison
        back = warp_check(thumb_b, thumb_a, np.linalg.inv(hmat), size_b, size_a, params)
        if back["blocks"] >= MIN_BLOCKS and accepted(back, params.verify, params.max_block_ratio):
            m, explained = back, -explains(back, params.verify)
            m["hull"] = hull
    return m, explained


def _judge(
    found: Fit,
    over: _Overlap,
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    params: GeoParams,
) -> _Judgement | None:
    """What the pixels say of a fit A->B whose frames overlap as `over` says
    (`_overlap`): the pixel check both ways (`_pixel_check`), whether the colours
    changed, and the acceptance: a copy (by its pixels, or by its geometry when
    `params.accept_on_geometry`), a related pair (accepted_by None, with the
    reason), or None: neither."""
    hull_a, hull_b = over.hull_a, over.hull_b
    area = min(hull_a * over.cov_a, hull_b * over.cov_b)  # of the whole frames
    m, explained = _pixel_check(
        thumb_a, thumb_b, found.hmat, size_a, size_b, params, max(hull_a, hull_b)
    )
    colour = photometric_change(m, params.verify)
    if not colour:
        # without a colour change measured, a one-way colour fit is resampling and
        # re-encoding, not a derivation (it turned three small rotations round)
        explained = 0
    if m["blocks"] < MIN_BLOCKS:
        return None
    inliers, matches = found.inliers, found.matches
    # one frame mostly within the other, as a copy's is (`min_copy_cover`)
    whole = max(over.cov_a, over.cov_b) >= params.min_copy_cover
    if matches == 0:  # aligned on its grey levels (`_fit_pair`)
        # nothing but the pixels speaks for a pair aligned on its grey levels
        if not (whole
                and accepted(m, params.verify, params.max_block_ratio)
                and m["corr"] >= params.dense_min_corr
                and m["blocks"] >= params.dense_min_blocks):  # fmt: skip
            return None
        accepted_by = "pixels"
    elif whole and accepted(m, params.verify, params.max_block_ratio):
        accepted_by = "pixels"
    elif (
        params.accept_on_geometry
        and whole
        and colour
        and inliers >= params.strong_inliers
        and inliers >= params.strong_inlier_ratio * matches
    ):
        accepted_by = "geometry"
    elif (
        inliers >= params.related_min_inliers
        and min(hull_a, hull_b) >= params.related_min_hull
        and area >= params.related_min_area
        and _in_content(found, thumb_a, thumb_b, size_a, size_b) >= params.related_min_inliers
    ):
        # the same scene or object, but not the same capture: a related pair
        accepted_by = None
    else:
        return None
    reason = None
    if accepted_by is None:
        reason = (
            f"the geometry fits ({inliers} of {matches} matches) but the pixels differ "
            f"after alignment: worst block {m['max_block_ratio']:.2f} (a copy <= "
            f"{params.max_block_ratio}), {m['colour_block_ratio']:.2f} after the colour "
            f"fit (<= {params.verify.max_colour_ratio})"
        )
    return _Judgement(m, explained, colour, accepted_by, reason)


def _border(
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    hmat: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    over: _Overlap,
) -> int:
    """Whether one frame is the other with a plain border or fill (`source_first`'s
    `border`): -1 B is A with a border (or B is filled where A is cut off), 1 the
    other way round, 0 neither or cannot tell. One frame showing all of the other
    and more: `plain_margin` around the smaller; each showing part of the other (a
    small rotation or warp kept at its size): `fill_outside` in both."""
    cov_a, cov_b = over.cov_a, over.cov_b
    border = 0
    if cov_a >= FULL_COVER and cov_b < FULL_COVER:  # B shows all of A and more
        border = -1 if plain_margin(thumb_a, thumb_b, hmat, size_a, size_b) else 0
    elif cov_b >= FULL_COVER and cov_a < FULL_COVER:
        inv = np.linalg.inv(hmat)
        border = 1 if plain_margin(thumb_b, thumb_a, inv, size_b, size_a) else 0
    elif cov_a < FULL_COVER and cov_b < FULL_COVER:  # each shows part of the other: a filled warp?
        fill_b = fill_outside(thumb_a, thumb_b, hmat, size_a, size_b)
        fill_a = fill_outside(thumb_b, thumb_a, np.linalg.inv(hmat), size_b, size_a)
        if fill_b is not None and fill_a is not None:
            if _flatter(fill_b, fill_a):
                border = -1
            elif _flatter(fill_a, fill_b):
                border = 1
    return border


def _orient(
    a: dict, b: dict, found: Fit, over: _Overlap, judged: _Judgement, border: int
) -> GeoVerdict:
    """The verdict with the source first: `source_first` decides from the scale,
    the coverage (`over`), the ranks of `a` and `b`, the `border` (`_border`) and whose
    colours explain the other's; when B is the source the fit is inverted. Then the
    transform as the records give it: scale, angle, mirror and crop box of the
    source."""
    size_a, size_b = (a["width"], a["height"]), (b["width"], b["height"])
    hmat = found.hmat
    cov_a, cov_b = over.cov_a, over.cov_b
    scale, angle, mirrored = decompose(hmat, *size_a)
    src_is_a, direction_by = source_first(
        scale, cov_a, cov_b, a["rank"], b["rank"], border, judged.explained
    )
    if not src_is_a:
        a, b, size_a, size_b = b, a, size_b, size_a
        hmat = np.linalg.inv(hmat)
        scale, angle, mirrored = decompose(hmat, *size_a)
        cov_a, cov_b = cov_b, cov_a
    hmat = hmat / hmat[2, 2]
    box = crop_box(hmat, *size_a, *size_b)
    return GeoVerdict(
        key1=a["key"],
        key2=b["key"],
        hmat=hmat,
        scale=scale,
        angle=angle,
        mirrored=int(mirrored),
        crop=box,
        area_fraction=box[2] * box[3] / (size_a[0] * size_a[1]),
        inliers=found.inliers,
        matches=found.matches,
        score=found.inliers / max(1, found.matches),
        colour_change=judged.colour,
        accepted_by=judged.accepted_by,
        reason=judged.reason,
        direction_by=direction_by,
        aligned="grey levels" if found.matches == 0 else "keypoints",
        metrics=judged.metrics,
        coverage=(cov_a, cov_b),
        hull=(round(over.hull_a, 4), round(over.hull_b, 4)),
    )


def source_first(
    scale: float,
    cov_a: float,
    cov_b: float,
    rank_a: tuple,
    rank_b: tuple,
    border: int = 0,
    explained: int = 0,
) -> tuple[bool, str]:
    """Whether A (not B) is the source of a geometric copy relation, and what said so
    (the record's `direction_by`).

    1. Different resolution (scale off 1 by > 5%): the higher-resolution image.
    2. One frame shows all of the other and more: the larger view (the other is a
       crop of it), unless what it shows more is a plain border (`border` -1: B is A
       with a border, 1: A is B with a border): then the one without. Each shows
       part of the other: the one not filled with a plain colour where the other's
       picture is cut off (`border` again: a small rotation's corners).
    3. Only one image's colours explain the other's (`explained`, see
       verify.explains): that one (greyscale, clipped contrast).
    4. Otherwise: more pixels, deeper, lossless (the hash stage's rank); when those
       tie too, 'tie', for the aggregation to resolve (direction.resolve_ties).
    """
    if scale < SAME_RESOLUTION:
        return True, "resolution"
    if scale > 1 / SAME_RESOLUTION:
        return False, "resolution"
    if border:
        return border < 0, "border"
    if cov_b >= FULL_COVER and cov_a < FULL_COVER:
        return True, "crop"
    if cov_a >= FULL_COVER and cov_b < FULL_COVER:
        return False, "crop"
    if explained:
        return explained > 0, "colour"
    return rank_a >= rank_b, content_basis(rank_a, rank_b)
