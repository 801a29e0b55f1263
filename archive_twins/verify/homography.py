"""The homography helpers every stage shares: project points, a frame's corners,
how much of one frame another covers, the scale/angle/mirror a homography applies at
a frame's centre, the part of one frame another shows, and a fitted transform as
the fields of a copy record (`transform_fields`, the one place they are rounded;
`dihedral_fields`, the exact ones of a turn or mirror).

Takes 3x3 homographies and frame sizes in pixels; gives numbers and boxes. Low in
the import graph (OpenCV and numpy only): `geometry` fits homographies, `direction`
turns copies round, `families` composes relations, all with these.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np

from ..dihedral import DIHEDRAL, dihedral_homography, oriented_size

# a frame is "all" of itself inside another when this share of it is covered: a
# homography fitted on thumbnails leaves the corners a pixel or so off
FULL_COVER = 0.97


def frame_corners(w: float, h: float) -> np.ndarray:
    """The four corners of a w x h frame, clockwise from the origin."""
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def project(hmat: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (n x 2) mapped through a homography."""
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), hmat).reshape(-1, 2)


def coverage(hmat: np.ndarray, wa: int, ha: int, wb: int, hb: int) -> float:
    """Fraction of B's frame covered by A's frame mapped through hmat."""
    quad = project(hmat, frame_corners(wa, ha)).astype(np.float32)
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return 0.0
    inter, _ = cv2.intersectConvexConvex(quad, frame_corners(wb, hb))
    return inter / (wb * hb)


def decompose(hmat: np.ndarray, wa: int, ha: int) -> tuple[float, float, bool]:
    """Local scale, clockwise angle (degrees) and mirror flag of hmat at A's centre."""
    cx, cy = wa / 2, ha / 2
    d = 1.0
    p = project(hmat, np.array([[cx, cy], [cx + d, cy], [cx, cy + d]]))
    jac = np.column_stack([p[1] - p[0], p[2] - p[0]]) / d
    det = float(np.linalg.det(jac))
    mirrored = det < 0
    scale = math.sqrt(abs(det))
    j = jac.copy()
    if mirrored:
        j[:, 0] = -j[:, 0]  # undo the left-right mirror that precedes the rotation
    angle = math.degrees(math.atan2(j[1, 0], j[0, 0])) % 360  # y down: positive = clockwise
    return scale, angle, mirrored


def crop_box(hmat: np.ndarray, wa: int, ha: int, wb: int, hb: int) -> tuple[float, ...]:
    """Bounding box, in A's pixels, of the part of A that appears in B."""
    inv = np.linalg.inv(hmat)
    quad = project(inv, frame_corners(wb, hb)).astype(np.float32)
    inter, poly = cv2.intersectConvexConvex(quad, frame_corners(wa, ha))
    if poly is None or inter <= 0:
        return 0.0, 0.0, float(wa), float(ha)
    poly = poly.reshape(-1, 2)
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def homography_json(mat: np.ndarray) -> str:
    """The contract's JSON 3x3 matrix (rows), rounded for readability."""
    return json.dumps([[round(float(v), 6) + 0.0 for v in row] for row in mat])


def transform_fields(
    hmat: np.ndarray,
    scale: float,
    angle: float,
    mirrored: bool,
    crop: tuple[float, float, float, float],
    src_wh: tuple[int, int],
) -> dict:
    """A fitted transform (source -> copy) as a copy record's fields, rounded the one
    way every fitted relation is reported (a geometric verdict, a relation turned
    round): scale to 6 decimals, angle to 3 in [0, 360), the crop box to 2, the
    share of the source it covers to 4."""
    return {
        "scale": round(float(scale), 6),
        "angle": round(float(angle), 3) % 360,
        "mirrored": int(mirrored),
        "crop_x": round(crop[0], 2),
        "crop_y": round(crop[1], 2),
        "crop_w": round(crop[2], 2),
        "crop_h": round(crop[3], 2),
        "homography": homography_json(hmat),
        "area_fraction": round(crop[2] * crop[3] / (src_wh[0] * src_wh[1]), 4),
    }


def dihedral_fields(src_wh: tuple[int, int], dst_wh: tuple[int, int], o: int) -> dict:
    """A copy that is its source in orientation o, resized: the copy record's fields,
    exact (a whole number of quarter turns, the whole frame, the mirror as found)."""
    k, mirrored = DIHEDRAL[o]
    ow, _ = oriented_size(*src_wh, o)
    return {
        "scale": round(dst_wh[0] / ow, 6),
        "angle": 90 * k,
        "mirrored": mirrored,
        "crop_x": 0.0,
        "crop_y": 0.0,
        "crop_w": float(src_wh[0]),
        "crop_h": float(src_wh[1]),
        "homography": homography_json(dihedral_homography(src_wh, dst_wh, o)),
        "area_fraction": 1.0,
    }
