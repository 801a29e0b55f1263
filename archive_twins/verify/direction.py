"""Which of two copies is the source (`file_id1`), and what said so.

The pixels decide when they can: more pixels, a crop's larger view, a frame
without the added border, colours that explain the other's, more bits per sample,
a lossless format. Two rasters of one size, depth and format (a rotation by 90
degrees, a mirror image or a hue shift saved like its source) leave the matching
jobs with a tie (`direction_by = 'tie'`), which the aggregation resolves with the
files' own facts, in this order:

1. `quality`: of two JPEGs, the one saved at a clearly higher quality (estimated
   from the quantisation tables); a re-save rarely raises it.
2. `date`: the raster that was in the archive first (the oldest modification time
   of its files); a derivative is written after what it is made from.
3. `bytes`: the larger file; 4. `name`: the pixel hash, so the answer is fixed.

The content rank the matching jobs compare (pixels, depth, format: `content_rank`,
`content_basis`) lives with the item table (`index.items`), which orders by it.

The tie is resolved at aggregation, not in the matching jobs, because the dates of
files change without their content (a touch, a copy): the verdicts stay cached and
every run decides from the current dates, the same as a fresh run would.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import numpy as np

from ..dihedral import DIHEDRAL, dihedral_homography, inverse, oriented_size
from ..records import CopyRecord
from .homography import crop_box, decompose, transform_fields

# JPEG qualities (estimated, 1-100) closer than this are the same setting
QUALITY_STEP = 5


@dataclasses.dataclass(frozen=True)
class RasterFacts:
    """What the aggregation knows of a raster from its files' records."""

    width: int
    height: int
    jpeg_quality: int | None  # the highest of its JPEG files, None without one
    mtime_ns: int | None  # the oldest of its files
    size_bytes: int  # the largest of its files


def tie_break(key_a: str, a: RasterFacts, key_b: str, b: RasterFacts) -> tuple[bool, str]:
    """Whether A is the source of a tied pair, and the fact that decided."""
    qa, qb = a.jpeg_quality, b.jpeg_quality
    if qa is not None and qb is not None and abs(qa - qb) >= QUALITY_STEP:
        return qa > qb, "quality"
    if a.mtime_ns is not None and b.mtime_ns is not None and a.mtime_ns != b.mtime_ns:
        return a.mtime_ns < b.mtime_ns, "date"
    if a.size_bytes != b.size_bytes:
        return a.size_bytes > b.size_bytes, "bytes"
    return key_a > key_b, "name"


def _dihedral_of(c: CopyRecord, fwd: np.ndarray, size1: tuple, size2: tuple) -> int | None:
    """The orientation whose exact matrix the record holds (a rotation by 90
    degrees, a mirror or none, scaled to the other frame), or None (a fitted warp,
    even one whose angle happens to be a multiple of 90 degrees)."""
    if round(c.angle, 3) % 90:
        return None
    o = DIHEDRAL.index((round(c.angle) // 90 % 4, int(bool(c.mirrored))))
    exact = dihedral_homography(size1, size2, o)
    tol = 1e-5 * max(*size1, *size2)
    return o if np.allclose(fwd / fwd[2, 2], exact, atol=tol, rtol=0) else None


def reverse(c: CopyRecord, size1: tuple[int, int], size2: tuple[int, int]) -> CopyRecord:
    """The same relation seen from key2: key2 becomes the source and the transform,
    its parameters and the crop box (now in key2's pixels) are inverted."""
    fwd = np.array(json.loads(c.homography), float)
    hmat = np.linalg.inv(fwd)
    hmat = hmat / hmat[2, 2]
    (w1, h1), (w2, h2) = size1, size2
    o = _dihedral_of(c, fwd, size1, size2)
    if o is not None:
        # a rotation by 90 degrees, a mirror or none: exact parameters stay exact
        back = inverse(o)
        k, mirrored = DIHEDRAL[back]
        scale, angle = w1 / oriented_size(w2, h2, back)[0], 90 * k
        hmat = dihedral_homography(size2, size1, back)
        crop = (0.0, 0.0, float(w2), float(h2))
    else:
        scale, angle, mirrored = decompose(hmat, w2, h2)
        crop = crop_box(hmat, w2, h2, w1, h1)
    fields = transform_fields(hmat, scale, angle, mirrored, crop, (w2, h2))
    return dataclasses.replace(c, key1=c.key2, key2=c.key1, **fields)


def resolve_ties(copies: list[CopyRecord], facts: Mapping[str, RasterFacts]) -> list[CopyRecord]:
    """Copies with the tied ones oriented by `tie_break` (key1 = source) and their
    `direction_by` set to the fact that decided; others are returned unchanged."""
    out = []
    for c in copies:
        if c.direction_by == "tie" and c.key1 in facts and c.key2 in facts:
            a, b = facts[c.key1], facts[c.key2]
            first, why = tie_break(c.key1, a, c.key2, b)
            if not first:
                c = reverse(c, (a.width, a.height), (b.width, b.height))
            c = dataclasses.replace(c, direction_by=why)
        out.append(c)
    return out
