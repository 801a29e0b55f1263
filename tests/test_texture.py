"""Plain scans: speck hashes follow a verso through its rescans and orientations,
and only a rescan's grain correlates with the verso's."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from furniture import verso

from archive_twins.dihedral import dihedral
from archive_twins.retrieval import RetrievalParams
from archive_twins.texture import is_plain, speck_hashes, texture_corr


def _rescan(img: np.ndarray, o: int, half: bool) -> np.ndarray:
    if half:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(dihedral(img, o)), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _dist(a: list[int], b: list[int]) -> int:
    return min(bin(a[0] ^ b[o]).count("1") for o in range(8))


def _shared(a: list[int], b: list[int]) -> int:
    """Cells holding a speck in both, in the orientation the hashes agree best."""
    o = min(range(8), key=lambda o: bin(a[0] ^ b[o]).count("1"))
    return bin(a[0] & b[o]).count("1")


def test_a_verso_is_plain_and_a_photograph_is_not():
    from archive_twins.demo import photo

    rng = np.random.default_rng(1)
    assert all(is_plain(verso(rng)) for _ in range(5))
    assert not any(is_plain(photo(n)) for n in ("astronaut", "moon", "brick"))


def test_speck_hashes_follow_a_rescan_and_tell_versos_apart():
    rng = np.random.default_rng(2)
    versos = [verso(rng) for _ in range(12)]
    hashes = [speck_hashes(v)[0] for v in versos]
    assert all(speck_hashes(v)[1] >= 3 for v in versos)
    shared = RetrievalParams().min_shared_specks
    for v, h in zip(versos[:4], hashes[:4], strict=True):
        for o, half in ((0, True), (1, False), (6, True)):
            assert _dist(h, speck_hashes(_rescan(v, o, half))[0]) <= 4
            # the same specks, not only the same empty cells
            assert _shared(h, speck_hashes(_rescan(v, o, half))[0]) >= shared
    assert min(_dist(a, b) for a, b in itertools.combinations(hashes, 2)) > 4


def test_versos_with_few_specks_agree_where_neither_has_one():
    """Among 120 different versos a few pairs come within 4 bits of 64 cells, most
    of those by cells empty in both: they are no candidates (`min_shared_specks`)."""
    rng = np.random.default_rng(5)
    hashes = [speck_hashes(verso(rng))[0] for _ in range(120)]
    close = [(a, b) for a, b in itertools.combinations(hashes, 2) if _dist(a, b) <= 4]
    assert len(close) >= 3
    kept = [p for p in close if _shared(*p) >= RetrievalParams().min_shared_specks]
    assert len(kept) <= len(close) // 2


def test_only_a_rescans_grain_correlates():
    rng = np.random.default_rng(3)
    a, b = verso(rng), verso(rng)
    scan = _rescan(a, 1, True)
    # aligned: the rescan turned back, both at the verification's size
    back = dihedral(scan, 3)
    size = (256, 192)
    a_s, b_s, back_s = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (a, b, back))
    assert texture_corr(a_s, back_s) > 0.4
    assert abs(texture_corr(a_s, b_s)) < 0.1
