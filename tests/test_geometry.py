"""Geometric stage: features, mirrored descriptors, RANSAC fit, crop box, direction."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from archives import smooth_picture

from archive_twins.demo import photo
from archive_twins.index.params import RetrievalParams
from archive_twins.index.wordsearch import pair_votes
from archive_twins.ingest.features import (
    HALF_WORDS,
    FeatureParams,
    describe,
    extract,
    quantise,
    vocabulary,
)
from archive_twins.ingest.frame import reduced
from archive_twins.verify.geometry import (
    GeoParams,
    crop_box,
    decompose,
    dense_fit,
    fit,
    source_first,
    verify_geometric,
)


def feats(arr):
    h, w = arr.shape[:2]
    return describe(arr, (w, h), FeatureParams())


def side(arr, key, rank=(0,)):
    h, w = arr.shape[:2]
    return {"key": key, "width": w, "height": h, "rank": rank, "feat": feats(arr)}


def test_vocabulary_is_shipped_and_fixed():
    v = vocabulary()
    assert v.shape == (2, HALF_WORDS, 64)  # one codebook per descriptor half
    words = quantise(extract(photo("coffee"), (600, 400), FeatureParams())["desc"])
    assert len(np.unique(words)) > 300  # the fine words spread real descriptors


def test_a_smooth_picture_fills_its_keypoint_budget_with_weak_keypoints():
    params = FeatureParams()
    sky = smooth_picture("rocket", (0, 240, 200, 310))  # a patch of sky: smooth
    f = extract(sky, (220, 480), params)
    grey = cv2.cvtColor(sky, cv2.COLOR_RGB2GRAY)
    strong = cv2.SIFT_create(contrastThreshold=params.contrast_threshold).detect(grey, None)
    assert len(strong) < 100 and int(f["strong"]) == len(strong)
    assert len(f["xy"]) == params.n_features  # filled with weak ones
    # the strong keypoints come first, and are those found without the fill
    pts = sorted(f["xy"][: len(strong)].tolist())
    alone = sorted([k.pt[0] + 0.5, k.pt[1] + 0.5] for k in strong)
    assert np.allclose(pts, alone, atol=1e-3)


def test_a_textured_picture_keeps_its_features():
    params = FeatureParams()
    arr = photo("astronaut")
    f = extract(arr, (512, 512), params)
    g = extract(arr, (512, 512), FeatureParams(weak_contrast_threshold=params.contrast_threshold))
    assert int(f["strong"]) == len(f["xy"]) == params.n_features

    def rows(h: dict) -> list:  # a keypoint found twice with two orientations: any order
        return sorted(zip(h["xy"].tolist(), h["angle"].tolist(), h["desc"].tolist(), strict=True))

    assert rows(f) == rows(g)


def test_a_smooth_picture_is_fitted_to_its_crop_on_weak_keypoints():
    """A crop of the sky: with the strong keypoints alone, too few to fit (the
    previous features); with the weak ones, the crop box is found."""
    sky = smooth_picture("rocket", (0, 240, 200, 310))  # a patch of sky: smooth
    crop = np.ascontiguousarray(sky[40:400, 20:200])
    for params, fitted in (
        (FeatureParams(weak_contrast_threshold=FeatureParams().contrast_threshold), False),
        (FeatureParams(), True),
    ):
        fa = describe(sky, (220, 480), params)
        fb = describe(crop, (180, 360), params)
        found = fit(fa, fb, (220, 480), (180, 360), False, GeoParams())
        assert (found is not None) == fitted
    box = crop_box(found.hmat, 220, 480, 180, 360)
    assert box == pytest.approx((20, 40, 180, 360), abs=3)


def test_crop_box_of_a_translation():
    hmat = np.array([[1, 0, -40.0], [0, 1, -30], [0, 0, 1]])
    assert crop_box(hmat, 400, 300, 100, 50) == pytest.approx((40, 30, 100, 50))


@pytest.mark.parametrize("deg, mirrored", [(30, False), (-10, False), (90, True), (200, True)])
def test_decompose(deg, mirrored):
    t = math.radians(deg)
    rot = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    flip = np.diag([-1.0, 1, 1]) if mirrored else np.eye(3)
    scale, angle, m = decompose(np.diag([0.5, 0.5, 1]) @ rot @ flip, 200, 100)
    assert scale == pytest.approx(0.5)
    assert angle == pytest.approx(deg % 360)
    assert m == mirrored


def test_mirrored_descriptors_fit_a_mirror():
    a = photo("astronaut")
    b = np.ascontiguousarray(a[:, ::-1])
    fa, fb = feats(a), feats(b)
    # the plain descriptors fit nothing, so the mirrored ones are tried after them
    plain_first = fit(fa, fb, (512, 512), (512, 512), False, GeoParams())
    assert plain_first is not None and np.linalg.det(plain_first.hmat[:2, :2]) < 0
    found = fit(fa, fb, (512, 512), (512, 512), True, GeoParams())
    assert found is not None
    assert found.inliers == plain_first.inliers
    hmat, inliers = found.hmat, found.inliers
    assert inliers >= 50
    assert np.linalg.det(hmat[:2, :2]) < 0
    x, y, w = cv2.perspectiveTransform(np.array([[[100.0, 200.0]]]), hmat)[0, 0].tolist() + [1]
    assert (x, y) == pytest.approx((412, 200), abs=2)


def test_mirrored_crop_is_found_with_its_box():
    a = photo("chelsea")
    crop = np.ascontiguousarray(a[50:250, 100:400][:, ::-1])
    sa, sb = side(a, "a", (2,)), side(crop, "b", (1,))
    # retrieval: the mirrored words of the crop agree with the photograph, the plain
    # ones do not, so the mirrored variant is the one matched
    rp = RetrievalParams()
    mirrored_votes = pair_votes(sb["feat"], sa["feat"], rp, mirrored=True)
    plain_votes = pair_votes(sb["feat"], sa["feat"], rp, mirrored=False)
    assert mirrored_votes >= 3 * rp.min_votes > plain_votes
    mirror_hint = mirrored_votes > plain_votes
    res = verify_geometric(sa, sb, a, crop, GeoParams(), mirror_hint)
    assert res is not None
    assert res.key1 == "a" and res.mirrored == 1
    assert res.crop == pytest.approx((100, 50, 300, 200), abs=4)
    assert res.area_fraction == pytest.approx(300 * 200 / (451 * 300), abs=0.02)


def test_different_photographs_are_not_fitted():
    a, b = photo("coffee"), photo("rocket")
    assert verify_geometric(side(a, "a"), side(b, "b"), a, b, GeoParams()) is None


def test_stereo_pair_fits_a_homography_but_is_a_related_pair_not_a_copy():
    left, right = photo("motorcycle_left"), photo("motorcycle_right")
    found = fit(
        feats(left), feats(right), left.shape[1::-1], right.shape[1::-1], False, GeoParams()
    )
    assert found is not None and found[1] >= 40  # the background plane fits
    res = verify_geometric(side(left, "l"), side(right, "r"), left, right, GeoParams())
    assert res is not None and res.accepted_by is None  # related, never a copy
    assert "pixels differ" in res.reason
    assert res.metrics["max_block_ratio"] > 0.8
    assert res.metrics["colour_block_ratio"] > 0.4
    # a weaker fit whose pixels differ is neither a copy nor related
    strict = GeoParams(related_min_inliers=10_000)
    assert verify_geometric(side(left, "l"), side(right, "r"), left, right, strict) is None


def test_source_rules():
    assert source_first(0.5, 1.0, 0.3, (1,), (2,)) == (True, "resolution")
    assert source_first(2.0, 1.0, 1.0, (2,), (1,)) == (False, "resolution")
    assert source_first(1.0, 0.4, 1.0, (1,), (2,)) == (True, "crop")  # B is a crop of A
    assert source_first(1.0, 1.0, 0.4, (2,), (1,)) == (False, "crop")  # A is a crop of B
    # otherwise the rank decides, naming what differs; equal content ranks tie
    assert source_first(1.0, 0.9, 0.9, (2, 8, 0, "k"), (1, 8, 0, "j")) == (True, "resolution")
    assert source_first(1.0, 0.9, 0.9, (2, 8, 0, "j"), (2, 16, 0, "k")) == (False, "depth")
    assert source_first(1.0, 0.9, 0.9, (2, 8, 0, "k"), (2, 8, 0, "j")) == (True, "tie")


def test_degenerate_homographies_are_refused():
    from archive_twins.verify.geometry import _well_conditioned

    assert _well_conditioned(np.eye(3))
    assert not _well_conditioned(np.zeros((3, 3)))
    assert not _well_conditioned(np.array([[1.0, 2, 0], [2, 4, 0], [0, 0, 1]]))  # rank 2
    assert not _well_conditioned(np.diag([1e-4, 1e-4, 1.0]))  # collapses the image


@pytest.mark.parametrize("changed", [False, True])
def test_colours_tell_the_source_only_of_a_colour_change(monkeypatch, changed):
    """A one-way colour fit names the source of a colour change (greyscale, clipping);
    without a change measured it is resampling and re-encoding, and left a tie (for
    the files' facts), not taken as evidence: it had turned small rotations round."""
    import archive_twins.verify.geometry as geometry

    pic = cv2.resize(photo("coffee"), (300, 200), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", pic, [cv2.IMWRITE_JPEG_QUALITY, 60])
    again = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    monkeypatch.setattr(geometry, "explains", lambda m, p: 1)  # "A's colours explain B's"
    monkeypatch.setattr(geometry, "photometric_change", lambda m, p: changed)
    rank = (60000, 8, 0)
    res = verify_geometric(side(pic, "a", (*rank, "a")), side(again, "b", (*rank, "b")),
                           pic, again, GeoParams())  # fmt: skip
    assert res is not None and res.accepted_by == "pixels"
    if changed:
        assert (res.key1, res.direction_by) == ("a", "colour")
    else:  # ranks alike: the pixel hash orders them, for the aggregation to decide
        assert (res.key1, res.direction_by) == ("b", "tie")


def _small(arr: np.ndarray) -> np.ndarray:
    """At the size verification works at (match.ThumbCache)."""
    return reduced(arr, 256)


def _framed_sky(shrink: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    from archives import bordered

    sky = smooth_picture("rocket", (0, 240, 200, 310))
    framed = bordered(sky, 255)
    if shrink != 1.0:
        size = (round(framed.shape[1] * shrink), round(framed.shape[0] * shrink))
        framed = cv2.resize(framed, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", framed, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return sky, cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    ("original", "shrink"),
    [
        (1, 1.0),  # both thumbnails are the originals
        (2, 1.0),  # the sky's original is twice its stored thumbnail
        (1, 0.5),  # the framed copy is small (its thumbnail below the finer size)
    ],
)
def test_a_framed_smooth_picture_is_aligned_on_its_grey_levels(monkeypatch, original, shrink):
    """When keypoints cannot place a smooth picture (the benchmark's framed sky: 5
    ratio-test matches; made so here), it is aligned on its grey levels from the
    picture inside the border: it lands where it was framed (its faint tower edge
    holds it), in full-resolution coordinates whatever the thumbnails' sizes."""
    import archive_twins.verify.geometry as geometry

    monkeypatch.setattr(geometry, "fit", lambda *args: None)
    sky, framed = _framed_sky(shrink)
    a = {**side(sky, "a", (1, 8, 2, "a")), "width": 220 * original, "height": 480 * original}
    b = side(framed, "b", (2, 8, 0, "b"))
    res = verify_geometric(a, b, _small(sky), _small(framed), GeoParams(), dense=(sky, framed))
    assert res is not None and res.aligned == "grey levels"
    assert res.accepted_by == "pixels" and res.key1 == "a"
    # the sky sits at (20, 20) in the frame (within 5 px: a gradient pins a picture
    # least along itself), at the frame's scale
    corner = res.hmat @ np.array([0.0, 0.0, 1.0])
    assert corner[:2] / corner[2] == pytest.approx((20 * shrink, 20 * shrink), abs=5 * shrink)
    assert res.scale == pytest.approx(shrink / original, rel=0.03)


def test_another_sky_of_the_same_proportions_is_not_aligned(monkeypatch):
    """The sky on the other side of the rocket, framed: same proportions, a smooth
    blue gradient too; aligned on grey levels, its pixels are not the sky's."""
    from archives import bordered

    import archive_twins.verify.geometry as geometry

    monkeypatch.setattr(geometry, "fit", lambda *args: None)
    sky = smooth_picture("rocket", (0, 240, 200, 310))
    other = bordered(smooth_picture("rocket", (0, 240, 0, 110)), 255)
    a, b = side(sky, "a", (1, 8, 2, "a")), side(other, "b", (2, 8, 0, "b"))
    assert (
        verify_geometric(a, b, _small(sky), _small(other), GeoParams(), dense=(sky, other)) is None
    )


def test_a_patch_of_another_sky_is_not_aligned():
    """Any smooth gradient can be stretched onto another: a grey-level alignment only
    refines the pictures' correspondence, which needs their proportions to agree."""
    sky = smooth_picture("rocket", (0, 240, 200, 310))
    top = cv2.resize(photo("rocket")[0:100, 420:640], (124, 56), interpolation=cv2.INTER_AREA)
    a, b = side(sky, "a", (1, 8, 2, "a")), side(top, "b", (2, 8, 0, "b"))
    assert dense_fit(sky, top, (220, 480), (124, 56), False, GeoParams()) is None
    res = verify_geometric(a, b, _small(sky), _small(top), GeoParams(), dense=(sky, top))
    assert res is None
