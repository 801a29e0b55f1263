"""What a word becoming common does to a pair's word test (`wordsearch.pair_query`),
which a rerun relies on (`match.recheck`, `Index.need_dropped`): while the querying
raster needs as many covered cells as before, it only takes votes away; when it
empties the cells only it held, fewer cells may be enough, and a pair may become a
candidate (so such a raster is searched again)."""

from __future__ import annotations

import numpy as np

from archive_twins.index.params import RetrievalParams
from archive_twins.index.wordsearch import FIELDS, cells_needed, coverage_cell, pair_query


def _pos(row: int, col: int) -> int:
    """A 16x16 position code in 4x4 cell (row, col)."""
    return (row * 4 + 1) * 16 + col * 4 + 1


def _need(query: dict) -> int:
    r = len(np.unique(coverage_cell(query["pos"])))
    return int(cells_needed(np.array([r]), RetrievalParams())[0])


def test_emptied_cells_lower_the_cells_needed():
    """A raster with keypoints in all 16 cells sharing 8 words (4 cells) with
    another: 16 cells need 5 covered, no candidate; once the words of 6 other cells
    are common, 10 cells need 3, and the pair is one."""
    pos = np.array([_pos(r, c) for r in range(4) for c in range(4) for _ in range(2)], np.uint8)
    query = {
        "words": np.arange(32, dtype=np.uint32) + 100,
        "ang": np.zeros(32, np.uint8),
        "lsc": np.zeros(32, np.int8),
        "pos": pos,
    }
    target = {f: query[f][:8] for f in FIELDS}
    common = np.zeros(32, bool)
    common[8:20] = True
    kept = {f: query[f][~common] for f in FIELDS}
    assert (_need(query), _need(kept)) == (5, 3)
    assert pair_query(query, target, RetrievalParams()) is None
    assert pair_query(kept, target, RetrievalParams()) == (8, 4)


def test_a_word_becoming_common_only_takes_votes_away_while_the_need_stays():
    """Random pairs, random words made common: when the querying raster needs as
    many cells as before, no pair that was not a candidate becomes one and a
    candidate's votes never grow."""
    rng = np.random.default_rng(5)
    params = RetrievalParams()
    checked = 0
    for _ in range(400):
        n = int(rng.integers(8, 60))
        query = {
            "words": rng.choice(400, n, replace=False).astype(np.uint32),
            "ang": rng.integers(0, 4, n).astype(np.uint8),
            "lsc": rng.integers(-1, 2, n).astype(np.int8),
            "pos": rng.integers(0, 256, n).astype(np.uint8),
        }
        t = rng.choice(n, int(rng.integers(0, n)), replace=False)
        target = {f: query[f][t] for f in FIELDS}
        drop = rng.random(n) < rng.random()
        kept = {f: query[f][~drop] for f in FIELDS}
        if not drop.all() and _need(kept) != _need(query):
            continue
        before = pair_query(query, target, params)
        after = pair_query(kept, target, params) if not drop.all() else None
        if after is not None:
            assert before is not None and after[0] <= before[0]
            checked += 1
    assert checked > 20
