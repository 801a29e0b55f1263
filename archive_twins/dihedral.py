"""The dihedral group D4 of an image frame: 90/180/270 rotations and mirrors.

Orientation index o = 4*m + k: mirror left-right first if m, then rotate k*90
degrees clockwise. Composition and inverses are tables built once at import, since
they are looked up for every hash hit.
"""

from __future__ import annotations

import numpy as np

DIHEDRAL: list[tuple[int, int]] = [(k, m) for m in (0, 1) for k in range(4)]


def dihedral(arr: np.ndarray, o: int) -> np.ndarray:
    """Orientation `o` of an image array (HxW or HxWxC)."""
    k, m = DIHEDRAL[o]
    if m:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(np.rot90(arr, -k))


def _compose_table() -> list[list[int]]:
    probe = np.arange(6).reshape(2, 3)
    views = [dihedral(probe, o) for o in range(8)]
    table = []
    for o1 in range(8):
        row = []
        for o2 in range(8):
            target = dihedral(views[o1], o2)
            row.append(
                next(
                    o
                    for o in range(8)
                    if views[o].shape == target.shape and (views[o] == target).all()
                )
            )
        table.append(row)
    return table


COMPOSE = _compose_table()
INVERSE = [COMPOSE[o].index(0) for o in range(8)]


def compose(o1: int, o2: int) -> int:
    """Orientation of applying o1 then o2."""
    return COMPOSE[o1][o2]


def inverse(o: int) -> int:
    """Orientation undoing `o`."""
    return INVERSE[o]


def oriented_size(w: int, h: int, o: int) -> tuple[int, int]:
    """Size of a w x h image after orientation o."""
    k, _ = DIHEDRAL[o]
    return (h, w) if k % 2 else (w, h)


def aspect_matches(src_wh: tuple[int, int], dst_wh: tuple[int, int], o: int) -> bool:
    """Whether dst can be src in orientation o, uniformly scaled (rounding allowed)."""
    sw, sh = oriented_size(*src_wh, o)
    dw, dh = dst_wh
    # dst's height predicted from its width, with a pixel of rounding on either side
    pred = sh * dw / sw
    tol = max(1.0, 0.01 * dh) + sh / sw
    return abs(pred - dh) <= tol


def dihedral_homography(src_wh: tuple[int, int], dst_wh: tuple[int, int], o: int) -> np.ndarray:
    """3x3 matrix mapping src pixel coordinates to dst for mirror/rotation/scale."""
    w, h = src_wh
    k, m = DIHEDRAL[o]
    mat = np.eye(3)
    if m:
        mat = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1.0]]) @ mat
    cw, ch = w, h
    for _ in range(k):
        mat = np.array([[0, -1, ch], [1, 0, 0], [0, 0, 1.0]]) @ mat
        cw, ch = ch, cw
    scale = np.diag([dst_wh[0] / cw, dst_wh[1] / ch, 1.0])
    return scale @ mat


def nearest_dihedral(
    hmat: np.ndarray, src_wh: tuple[int, int], dst_wh: tuple[int, int], angle: float, mirrored: bool
) -> tuple[int, float]:
    """The dihedral orientation closest to a fitted homography, and how far the fit's
    frame corners are from it (as a fraction of dst's larger side)."""
    k = round(angle / 90) % 4
    o = 4 * int(mirrored) + k
    exact = dihedral_homography(src_wh, dst_wh, o)
    w, h = src_wh
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float).T
    fitted = hmat @ corners
    fitted = fitted[:2] / fitted[2]
    ref = exact @ corners
    err = float(np.abs(fitted - ref[:2]).max()) / max(dst_wh)
    return o, err
