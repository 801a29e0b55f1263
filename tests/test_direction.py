"""Which copy is the source when the pixels cannot tell (same size, depth, format):
the JPEG quality estimate, the rules of the tie break, and the inversion of a
relation when the tie break turns it round."""

from __future__ import annotations

import json

import numpy as np
import pytest

from archive_twins.demo import photo, save
from archive_twins.dihedral import DIHEDRAL, dihedral_homography
from archive_twins.ingest.decode import jpeg_quality
from archive_twins.records import CopyRecord
from archive_twins.verify.direction import RasterFacts, resolve_ties, reverse, tie_break
from archive_twins.verify.geometry import crop_box, decompose
from archive_twins.verify.homography import homography_json


@pytest.mark.parametrize("q", [10, 20, 50, 75, 90, 95])
def test_jpeg_quality_is_read_from_the_tables(tmp_path, q):
    path = save(photo("astronaut")[:200, :300], tmp_path / "a.jpg", Q=q)
    assert jpeg_quality(str(path)) == pytest.approx(q, abs=2)


def test_jpeg_quality_after_large_metadata(tmp_path):
    """Metadata segments (EXIF, ICC, XMP: up to 64 KB each) before the tables are
    skipped over, however many there are."""
    data = save(photo("astronaut")[:50, :50], tmp_path / "a.jpg", Q=60).read_bytes()
    app = b"\xff\xe1" + (65_000).to_bytes(2, "big") + bytes(64_998)
    big = tmp_path / "meta.jpg"
    big.write_bytes(data[:2] + app * 20 + b"\xff" + data[2:])  # and a fill byte
    assert jpeg_quality(str(big)) == pytest.approx(60, abs=2)


def test_jpeg_quality_of_what_has_no_tables(tmp_path):
    png = save(photo("astronaut")[:50, :50], tmp_path / "a.png")
    assert jpeg_quality(str(png)) is None
    jpg = save(photo("astronaut")[:50, :50], tmp_path / "b.jpg", Q=80).read_bytes()
    dqt = jpg.index(b"\xff\xdb")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpg[: dqt + 20])  # ends inside the table
    assert jpeg_quality(str(cut)) is None


def _dqt(values: np.ndarray, precision: int) -> bytes:
    body = bytes([precision << 4 | 0]) + values.astype(">u2" if precision else "u1").tobytes()
    return b"\xff\xdb" + (len(body) + 2).to_bytes(2, "big") + body


def test_jpeg_quality_of_16_bit_tables_and_markers_without_length(tmp_path):
    from archive_twins.ingest.decode import _STD_LUMA

    table = np.round(_STD_LUMA * 0.5)  # libjpeg's q75
    # a restart marker, a TEM marker and fill bytes before the table, all without length
    path = tmp_path / "odd.jpg"
    path.write_bytes(b"\xff\xd8\xff\xd0\xff\x01\xff\xff" + _dqt(table, 1) + b"\xff\xda")
    assert jpeg_quality(str(path)) == 75
    path.write_bytes(b"\xff\xd8" + _dqt(table, 0) + b"\xff\xda")
    assert jpeg_quality(str(path)) == 75


def facts(q=None, t=None, size=1000, wh=(300, 200)) -> RasterFacts:
    return RasterFacts(wh[0], wh[1], q, t, size)


def test_tie_break_order():
    # a clearly lower JPEG quality is the copy, whatever the dates and sizes
    assert tie_break("a", facts(40, 9, 10), "b", facts(75, 1, 99)) == (False, "quality")
    # qualities within a step say nothing: the older raster is the source
    assert tie_break("a", facts(75, 9), "b", facts(73, 1)) == (False, "date")
    assert tie_break("a", facts(None, 1), "b", facts(None, 9)) == (True, "date")
    # same date: the larger file, then the pixel hash
    assert tie_break("a", facts(t=5, size=10), "b", facts(t=5, size=20)) == (False, "bytes")
    assert tie_break("b", facts(t=5), "a", facts(t=5)) == (True, "name")
    assert tie_break("a", facts(t=5), "b", facts(t=5)) == (False, "name")
    # the same pair given the other way round gets the opposite answer, same reason
    cases = [(facts(40, 9, 10), facts(75, 1, 99)), (facts(75, 9), facts(73, 1)),
             (facts(t=5, size=10), facts(t=5, size=20)), (facts(t=5), facts(t=5))]  # fmt: skip
    for a, b in cases:
        first, why = tie_break("a", a, "b", b)
        assert tie_break("b", b, "a", a) == (not first, why)


def _dihedral_record(o_angle: int, mirrored: bool, size1, size2) -> CopyRecord:

    o = DIHEDRAL.index((o_angle // 90, int(mirrored)))
    return CopyRecord(
        key1="k1",
        key2="k2",
        kind="rotate90i",
        scale=1.0,
        angle=o_angle,
        mirrored=int(mirrored),
        crop_x=0.0,
        crop_y=0.0,
        crop_w=float(size1[0]),
        crop_h=float(size1[1]),
        homography=homography_json(dihedral_homography(size1, size2, o)),
        inliers=None,
        score=1.0,
        area_fraction=1.0,
        direction_by="tie",
    )


@pytest.mark.parametrize(("angle", "mirrored", "back"), [(90, False, 270), (270, False, 90),
                                                        (180, False, 180), (90, True, 90),
                                                        (0, True, 0)])  # fmt: skip
def test_reverse_of_a_rotation_or_mirror(angle, mirrored, back):
    size1 = (300, 200)
    size2 = size1[::-1] if angle % 180 else size1
    c = _dihedral_record(angle, mirrored, size1, size2)
    r = reverse(c, size1, size2)
    assert (r.key1, r.key2, r.angle, r.mirrored, r.scale) == ("k2", "k1", back, mirrored, 1.0)
    assert (r.crop_x, r.crop_y, r.crop_w, r.crop_h) == (0, 0, *size2)
    # the matrix is the exact orientation of the new source onto the other, and its
    # parameters are those the matrix has
    hmat = np.array(json.loads(r.homography))
    o = DIHEDRAL.index((back // 90, int(mirrored)))
    assert hmat == pytest.approx(dihedral_homography(size2, size1, o), abs=1e-9)
    scale, turn, flip = decompose(hmat, *size2)
    assert (scale, turn % 360, flip) == pytest.approx((1.0, back, mirrored), abs=1e-6)
    # and it is the same relation the other way: reversing again gives it back
    assert reverse(r, size2, size1) == c


def test_reverse_of_a_warp_moves_the_crop_box():
    """A small rotation that keeps the size: the angle turns round, the crop box is
    found in the new source's pixels, and reversing twice gives the relation back."""
    size = (400, 300)
    t = np.deg2rad(8)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    centre = np.array([[1, 0, 200], [0, 1, 150], [0, 0, 1.0]])
    hmat = centre @ rot @ np.linalg.inv(centre)
    x, y, w, h = crop_box(hmat, *size, *size)
    c = CopyRecord(key1="k1", key2="k2", kind="other", scale=1.0, angle=8.0, mirrored=0,
                   crop_x=x, crop_y=y, crop_w=w, crop_h=h, homography=homography_json(hmat),
                   inliers=80, score=0.9, area_fraction=1.0, direction_by="tie")  # fmt: skip
    r = reverse(c, size, size)
    assert r.angle == pytest.approx(352.0, abs=0.01) and r.scale == pytest.approx(1.0)
    inv = np.linalg.inv(hmat)
    assert (r.crop_x, r.crop_y, r.crop_w, r.crop_h) == pytest.approx(
        crop_box(inv, *size, *size), abs=0.01
    )
    back = reverse(r, size, size)
    assert back.angle == pytest.approx(8.0, abs=0.01)
    assert np.array(json.loads(back.homography)) == pytest.approx(hmat, abs=1e-4)


def test_reverse_of_a_fitted_zoom_is_not_taken_for_a_rotation():
    """A fitted homography with a full crop box and an angle of 0 (a 1% zoom of one
    size onto the same size): its reverse has a real crop box, not the whole frame."""
    size = (400, 300)
    zoom = np.array([[0.99, 0, 2.0], [0, 0.99, 1.5], [0, 0, 1]])  # shrinks into B
    c = CopyRecord(key1="k1", key2="k2", kind="other", scale=0.99, angle=0.0, mirrored=0,
                   crop_x=0.0, crop_y=0.0, crop_w=400.0, crop_h=300.0,
                   homography=homography_json(zoom), inliers=90, score=0.9,
                   area_fraction=1.0, direction_by="tie")  # fmt: skip
    r = reverse(c, size, size)
    assert (r.crop_x, r.crop_y, r.crop_w, r.crop_h) == pytest.approx(
        (2.0, 1.5, 396.0, 297.0), abs=0.02
    )
    assert r.scale == pytest.approx(1 / 0.99, abs=1e-4) and r.area_fraction < 1


def test_resolve_ties_orients_only_ties():
    size1, size2 = (300, 200), (200, 300)
    tie = _dihedral_record(90, False, size1, size2)
    decided = CopyRecord(**{**tie.to_dict(), "direction_by": "resolution"})
    older_second = {"k1": facts(75, 9, wh=size1), "k2": facts(75, 1, wh=size2)}
    out = resolve_ties([tie, decided], older_second)
    assert (out[0].key1, out[0].angle, out[0].direction_by) == ("k2", 270, "date")
    assert out[1] == decided
    older_first = {"k1": facts(75, 1, wh=size1), "k2": facts(75, 9, wh=size2)}
    (kept,) = resolve_ties([tie], older_first)
    assert (kept.key1, kept.angle, kept.direction_by) == ("k1", 90, "date")
