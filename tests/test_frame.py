"""The picture inside a frame's plain margins: a bordered, captioned or warped copy
of a smooth picture hashes like its source once the margins and fill are left out
(the whole frame's tone hash is 13-41 bits away), and other smooth pictures do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from archives import bordered, smooth_picture, warped

from archive_twins.demo import photo
from archive_twins.index.params import RetrievalParams
from archive_twins.ingest.frame import content_picture
from archive_twins.ingest.hashing import content_hashes, dihedral_hashes

LIMIT = RetrievalParams().max_tone_hamming


def jpeg(arr: np.ndarray, q: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def distance(a: list[str], b: list[str]) -> int:
    """Hamming distance of a's upright hash to b's nearest orientation."""
    return min(bin(int(a[0], 16) ^ int(h, 16)).count("1") for h in b)


PICTURES = {
    "sky": lambda: smooth_picture("rocket", (0, 240, 0, 110)),
    "wall": lambda: smooth_picture("coffee", (0, 90, 0, 160)),
    "defocused": lambda: cv2.GaussianBlur(photo("chelsea"), (0, 0), 6),
}


@pytest.mark.parametrize("name", sorted(PICTURES))
@pytest.mark.parametrize("colour", [255, 0])
def test_a_bordered_copy_hashes_like_its_source(name, colour):
    pic = PICTURES[name]()
    copy = jpeg(bordered(pic, colour))
    assert distance(content_hashes(copy), content_hashes(jpeg(pic))) <= LIMIT
    # the whole frame's tones are those of the border
    assert distance(dihedral_hashes(copy)[1], dihedral_hashes(jpeg(pic))[1]) > LIMIT


def test_a_warped_copy_hashes_like_its_source():
    pic = PICTURES["sky"]()
    copy = jpeg(warped(pic))
    assert distance(content_hashes(copy), content_hashes(jpeg(pic))) <= LIMIT
    assert distance(dihedral_hashes(copy)[1], dihedral_hashes(jpeg(pic))[1]) > LIMIT


def test_other_smooth_pictures_hash_apart():
    hashes = {name: content_hashes(jpeg(make())) for name, make in PICTURES.items()}
    wood = content_hashes(jpeg(smooth_picture("coffee", (0, 150, 400, 600))))
    assert distance(hashes["defocused"], hashes["sky"]) > LIMIT
    assert distance(hashes["defocused"], hashes["wall"]) > LIMIT
    assert distance(wood, hashes["wall"]) > LIMIT


def test_the_picture_is_cut_from_its_frame():
    pic = PICTURES["wall"]()
    inner = content_picture(jpeg(bordered(pic, 255)))
    h, w = pic.shape[:2]
    # the picture's proportions, less the inset at each side; none of the border
    assert inner.shape[0] / inner.shape[1] == pytest.approx(h / w, rel=0.05)
    assert inner.min(axis=2).max() < 250
    # a frame without plain margins is the whole frame, reduced
    assert content_picture(jpeg(pic)).shape[:2] == pytest.approx((128, 128 * w / h), abs=2)
