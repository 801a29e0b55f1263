"""Word candidates' definition (`wordsearch.pair_query`) and the batched search
(`wordsearch.search`) where common words are left out: r(a) counts the cells of
all query keypoints, so a word becoming common can only take votes away (what a
rerun relies on to re-check pairs instead of searching their rasters again)."""

from __future__ import annotations

import numpy as np

from archive_twins.retrieval import RetrievalParams
from archive_twins.wordsearch import FIELDS, Postings, Queries, coverage_cell, pair_query, search


def _pos(row: int, col: int) -> int:
    """A 16x16 position code in 4x4 cell (row, col)."""
    return (row * 4 + 1) * 16 + col * 4 + 1


def _pair() -> tuple[dict, dict, np.ndarray]:
    """A query raster with keypoints in all 16 cells (two words each) and a target
    sharing the words of 4 cells (8 votes, one orientation and scale); the words of
    6 other cells are common."""
    pos = np.array([_pos(r, c) for r in range(4) for c in range(4) for _ in range(2)], np.uint8)
    words = np.arange(32, dtype=np.uint32) + 100
    query = {
        "words": words,
        "ang": np.zeros(32, np.uint8),
        "lsc": np.zeros(32, np.int8),
        "pos": pos,
    }
    shared = np.arange(8)  # cells 0-3
    target = {f: query[f][shared] for f in FIELDS}
    common = np.zeros(32, bool)
    common[8:20] = True  # cells 4-9 hold only common words
    return query, target, common


def _search(query: dict, target: dict, cells: int | None) -> dict:
    post = Postings(
        target["words"].astype(np.uint32),
        np.arange(len(target["words"]) + 1, dtype=np.int64),
        np.ones(len(target["words"]), np.uint32),
        target["ang"],
        target["lsc"],
        target["pos"],
        whole=False,
    )
    q = Queries(
        np.array([0]),
        np.array([len(query["words"])]),
        query["words"].astype(np.int64),
        query["ang"],
        query["lsc"],
        query["pos"],
        None if cells is None else np.array([cells]),
    )
    out: dict = {}
    search(q, post, 2, RetrievalParams(), out, False)
    return out


def test_cells_of_common_words_count_in_r():
    """Left out of the votes, common words' keypoints still count in r(a): 16
    occupied cells need 5 covered (4 are not enough), whereas the 10 cells of the
    other words alone would need 3. The search and the definition agree both ways."""
    query, target, common = _pair()
    kept = {f: query[f][~common] for f in FIELDS}
    r_all = len(np.unique(coverage_cell(query["pos"])))
    assert r_all == 16
    assert pair_query(kept, target, RetrievalParams()) is not None
    assert _search(kept, target, None) == {(0, 1): (8, False)}
    assert pair_query({**kept, "cells": r_all}, target, RetrievalParams()) is None
    assert _search(kept, target, r_all) == {}


def test_a_word_becoming_common_only_takes_votes_away():
    """Random pairs, random words made common: with r(a) fixed, no pair that was not
    a candidate becomes one, and a candidate's votes never grow."""
    rng = np.random.default_rng(5)
    params = RetrievalParams()
    checked = 0
    for _ in range(300):
        n = int(rng.integers(8, 60))
        query = {
            "words": rng.choice(400, n, replace=False).astype(np.uint32),
            "ang": rng.integers(0, 4, n).astype(np.uint8),
            "lsc": rng.integers(-1, 2, n).astype(np.int8),
            "pos": rng.integers(0, 256, n).astype(np.uint8),
        }
        t = rng.choice(n, int(rng.integers(0, n)), replace=False)
        target = {f: query[f][t] for f in FIELDS}
        cells = len(np.unique(coverage_cell(query["pos"])))
        before = pair_query({**query, "cells": cells}, target, params)
        drop = rng.random(n) < rng.random()
        after = pair_query({**{f: query[f][~drop] for f in FIELDS}, "cells": cells}, target, params)
        if after is not None:
            assert before is not None and after[0] <= before[0]
            checked += 1
    assert checked > 20
