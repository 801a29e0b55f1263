"""End to end: colour changes of a smooth picture (a patch of sky: few keypoints,
pHash bits that flip under any colour change) are found through the tone hash, a
crop of it is placed by its weak keypoints, a framed or turned copy is found by the
tones of its picture inside the margins and aligned on its grey levels, and other
smooth pictures are not taken for its copies."""

from __future__ import annotations

import cv2
import pytest
from archives import bordered, colour_change, smooth_picture, turned
from conftest import read_json_tables, run_workflow

from archive_twins.demo import photo, save

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    root = tmp_path_factory.mktemp("smooth")
    sky = smooth_picture("rocket", (0, 240, 200, 310))
    save(sky, root / "masters" / "sky.png")
    save(colour_change(sky, 1.45, 0), root / "copies" / "sky_saturated.jpg", Q=90)
    save(colour_change(sky, 1.0, 40), root / "copies" / "sky_hue.jpg", Q=90)
    # off-centre, keeping the faint edge of the tower (a crop of the featureless
    # middle alone fits anywhere along the gradient: no test can place it)
    save(sky[40:400, 0:180], root / "copies" / "sky_crop.jpg", Q=90)
    # framed for a catalogue (border and caption), and turned with grey corners
    save(bordered(sky, 255), root / "copies" / "sky_framed.jpg", Q=90)
    save(turned(sky, 12, 128), root / "copies" / "sky_turned.jpg", Q=90)
    # other smooth pictures: the sky on the other side of the rocket (its mirror
    # image has the same tone hash), wood, a defocused photograph
    save(smooth_picture("rocket", (0, 240, 0, 110)), root / "others" / "other_sky.png")
    # a small landscape patch of the sky above: turned by 90 degrees, its tones and
    # grey blocks pass for the portrait sky's (the tone hash and block test alone)
    top = cv2.resize(photo("rocket")[0:100, 420:640], (124, 56), interpolation=cv2.INTER_AREA)
    save(top, root / "others" / "sky_top_small.jpg", Q=90)
    save(smooth_picture("coffee", (0, 150, 400, 600)), root / "others" / "wood.png")
    save(cv2.GaussianBlur(photo("camera"), (0, 0), 6), root / "others" / "camera_blur.png")
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=2, extra=["match_chunks=2"])
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}
    return {(names[p["file_id1"]], names[p["file_id2"]]): p for p in tables["copy_pairs"]}


@pytest.mark.parametrize("copy", ["copies/sky_saturated.jpg", "copies/sky_hue.jpg"])
def test_colour_changes_of_a_smooth_picture_are_copies(found, copy):
    pair = found.get(("masters/sky.png", copy))
    assert pair is not None, sorted(found)
    assert pair["kind"] == "other" and pair["colour_change"] == 1
    if copy.endswith("saturated.jpg"):  # its pHash is 20 bits away: only the tone hash
        assert pair["method"] == "tone-hash"


def test_a_crop_of_a_smooth_picture_is_a_copy(found):
    """Too few strong keypoints for a word candidate, but its tones are the sky's:
    the tone-hash candidate is fitted on weak keypoints and its crop box found."""
    pair = found.get(("masters/sky.png", "copies/sky_crop.jpg"))
    assert pair is not None, sorted(found)
    assert pair["kind"] == "other" and pair["colour_change"] == 0
    box = (pair["crop_x"], pair["crop_y"], pair["crop_w"], pair["crop_h"])
    assert box == pytest.approx((0, 40, 180, 360), abs=4)


@pytest.mark.parametrize("copy", ["copies/sky_framed.jpg", "copies/sky_turned.jpg"])
def test_a_framed_or_turned_smooth_picture_is_a_copy(found, copy):
    """The whole frame's tones are the border's or the fill's; the picture's inside
    them are the sky's (its content hash). Too few keypoints match to fit it, so it
    is aligned on its grey levels; its faint tower edge holds the alignment."""
    pair = found.get(("masters/sky.png", copy))
    assert pair is not None, sorted(found)
    assert pair["kind"] == "other" and pair["colour_change"] == 0
    if copy.endswith("framed.jpg"):  # 3 keypoints match: aligned on its grey levels
        assert pair["method"] == "grey-alignment"
    else:  # 12 degrees counter-clockwise
        assert pair["angle"] == pytest.approx(348, abs=1)
        assert pair["scale"] == pytest.approx(1.0, abs=0.01)


def test_other_smooth_pictures_are_not_copies(found):
    assert not [p for p in found if any(name.startswith("others/") for name in p)]
    # the sky and each of its copies
    copies = ("saturated", "hue", "crop", "framed", "turned")
    assert {p for p in found if "masters/sky.png" in p} == {
        ("masters/sky.png", f"copies/sky_{c}.jpg") for c in copies
    }
