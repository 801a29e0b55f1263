"""Plain scans: speck cells follow a verso through its rescans and orientations,
and only a rescan's grain correlates with the verso's."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from furniture import verso

from archive_twins.dihedral import dihedral, inverse
from archive_twins.index import specksearch
from archive_twins.index.params import RetrievalParams
from archive_twins.ingest.texture import (
    MIN_SPECKS,
    NO_SPECK,
    SPECK_GRID,
    SPECK_MAX,
    is_plain,
    speck_cells,
    texture_corr,
)


def _rescan(img: np.ndarray, o: int, half: bool) -> np.ndarray:
    if half:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(dihedral(img, o)), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _best(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(most specks of a shared with b in one orientation, what the pair needs)."""
    n_a, n_b = specksearch.count(np.stack([a, b]))
    p = RetrievalParams()
    need = int(specksearch.need(n_a, n_b, p.min_shared_specks, p.min_speck_share))
    return max(specksearch.shared(a, b, o) for o in range(8)), need


def test_a_verso_is_plain_and_a_photograph_is_not():
    from archive_twins.demo import photo

    rng = np.random.default_rng(1)
    assert all(is_plain(verso(rng)) for _ in range(5))
    assert not any(is_plain(photo(n)) for n in ("astronaut", "moon", "brick"))


def test_speck_cells_follow_a_rescan_and_tell_versos_apart():
    rng = np.random.default_rng(2)
    versos = [verso(rng) for _ in range(12)]
    cells = [speck_cells(v) for v in versos]
    assert all(specksearch.count(c) >= MIN_SPECKS for c in cells)
    for v, c in zip(versos[:4], cells[:4], strict=True):
        for o, half in ((0, True), (1, False), (6, True)):
            scan = speck_cells(_rescan(v, o, half))
            # the rescan seen turned back lies on the verso's specks
            back = inverse(o)
            n, need = specksearch.shared(c, scan, back), _best(c, scan)[1]
            assert n >= need, (o, half, n, need)
    for a, b in itertools.combinations(cells, 2):
        found, need = _best(a, b)
        assert found < need


def test_different_versos_almost_never_share_their_specks():
    """Among 150 different versos (11,175 pairs, 8 orientations each) at most one
    pair shares enough specks by chance (measured: 6 in a million)."""
    rng = np.random.default_rng(5)
    cells = [speck_cells(verso(rng)) for _ in range(150)]
    best = [_best(a, b) for a, b in itertools.combinations(cells, 2)]
    assert sum(found >= need for found, need in best) <= 1


def test_the_speck_search_finds_exactly_the_pairs_its_test_accepts():
    """`specksearch.search` (postings) returns exactly the triples `shared` accepts,
    also where specks crowd (several in neighbouring cells) and at the frame's edge."""
    rng = np.random.default_rng(7)
    versos = [verso(rng) for _ in range(10)]
    cells = [speck_cells(v) for v in versos]
    cells += [
        speck_cells(_rescan(v, o, True)) for v, o in zip(versos[:5], (1, 3, 4, 6, 0), strict=True)
    ]
    g = SPECK_GRID
    for _ in range(10):  # crowded: specks in a few neighbouring cells, some on the edge
        r = rng.integers(0, 3, 12) + rng.choice([0, g - 3])
        c = rng.integers(0, 4, 12) + rng.integers(0, g - 4)
        row = np.full(SPECK_MAX, NO_SPECK, np.uint32)
        u = np.unique(r * g + c)
        row[: len(u)] = u
        cells.append(row)
    cells = np.stack(cells)
    p = RetrievalParams()
    qi, ti, oi = specksearch.search(cells, cells, p.min_shared_specks, p.min_speck_share)
    got = set(zip(qi.tolist(), ti.tolist(), oi.tolist(), strict=True))
    n = specksearch.count(cells)
    want = {
        (i, j, o)
        for i in range(len(cells))
        for j in range(len(cells))
        for o in range(8)
        if specksearch.shared(cells[i], cells[j], o)
        >= specksearch.need(n[i], n[j], p.min_shared_specks, p.min_speck_share)
    }
    assert got == want
    # the rescans are found, and not every pair
    assert any(i < 10 <= j for i, j, _ in want) and len(want) < len(cells) ** 2


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
