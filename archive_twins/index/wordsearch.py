"""Word candidates: which rasters share enough of a raster's picture to be checked.

Takes a raster's query words (the words of its strongest keypoints, each with the
keypoint's orientation, scale and place in the frame) and an inverted file of the
archive's words (postings: raster, orientation, scale, place); gives, for each
querying raster a, the rasters b for which

    Q(a -> b): in one box of orientation and scale change (weak geometric
    consistency), at least `min_votes` of a's query words are shared with b, and
    they lie in at least k(a) cells of a 4x4 grid of a's frame, k(a) =
    ceil(min_coverage * r(a)) (at least `min_cells`, at most r(a)), where r(a) is
    the number of cells holding any of a's query keypoints.

A derivative of a photograph covers its own frame with shared words: a crop, a
turned, warped or recoloured copy all hold nothing but the photograph. Two
photographs that only share furniture (a colour chart, a ruler, a caption strip,
a logo) share it in a corner or a strip of both frames, so neither direction
covers enough cells (measured: `docs/furniture.md`). A pair is a candidate when
either direction holds, so a crop is found from its own side.

The search is exact, yet what thousands of rasters share is not read: a raster
that must cover k of its r cells has a shared word in at least `SPARE` of any
r - k + SPARE of them (pigeonhole), so the postings of its k - SPARE costliest
cells (the chart's words, held by every charted raster) are not read in full;
they are searched by bisection for the few rasters the other cells leave, whose
votes are then counted in full. Every criterion is a function of the two
rasters, so the answer does not depend on how the archive is split or on what
else it holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .arrays import batches, first_after, list_parts, ranges, read_runs, release, segment_sums

if TYPE_CHECKING:
    from .params import RetrievalParams

# a word list's fields: word, orientation, scale and position codes
FIELDS = ("words", "ang", "lsc", "pos")
# the coverage grid: 4 x 4 cells of the frame (positions are kept on 16 x 16)
CELLS = 16
# cells that must hold shared words among the enumerated ones (see the docstring):
# two make a raster that shares one word by chance with the query no survivor
SPARE = 2
# orientation bins x scale bins of a vote's box (retrieval.box_keys)
BOX_SCALES = 66


def coverage_cell(pos: np.ndarray) -> np.ndarray:
    """The 4x4 cell of 16x16 position codes (row * 16 + column)."""
    p = np.asarray(pos, np.int64)
    return ((p >> 6) << 2) | ((p & 15) >> 2)


def cells_needed(occupied: np.ndarray, params: RetrievalParams) -> np.ndarray:
    """k(a): cells of its frame a raster's shared words must lie in."""
    r = np.asarray(occupied, np.int64)
    k = np.array([math.ceil(params.min_coverage * x - 1e-9) for x in r.tolist()], np.int64)
    return np.minimum(r, np.maximum(params.min_cells, k))


def box_keys(dang: np.ndarray, dscale: np.ndarray, params: RetrievalParams) -> np.ndarray:
    """The 2x2 boxes of (orientation, scale) bins each vote falls in, so a transform
    on a bin edge is not split: 4 box ids per vote (all first boxes, then all
    second ...). dang in 1/256 turns, dscale in quarter octaves."""
    a_bins = params.angle_bins
    abin = (np.asarray(dang, np.int64) % 256) * a_bins // 256
    sbin = np.clip(np.floor_divide(np.asarray(dscale, np.int64), params.scale_bin), -32, 31) + 33
    out = [((abin - da) % a_bins) * BOX_SCALES + (sbin - ds) for da in (0, 1) for ds in (0, 1)]
    return np.concatenate(out)


def judge(
    pair: np.ndarray,
    qcell: np.ndarray,
    dang: np.ndarray,
    dscale: np.ndarray,
    need: np.ndarray,
    params: RetrievalParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which pairs hold Q. One entry per shared word: the pair it belongs to, the
    query keypoint's cell, the orientation and scale change, and the cells the
    pair's query raster must cover. Returns the accepted pairs (sorted), with the
    votes and cells of their best accepted box (most votes, then most cells)."""
    e = np.zeros(0, np.int64)
    if len(pair) == 0:
        return e, e, e
    pair = np.asarray(pair, np.int64)
    n_box = params.angle_bins * BOX_SCALES
    pb = np.tile(pair, 4) * n_box + box_keys(dang, dscale, params)
    boxes, votes = np.unique(pb, return_counts=True)
    cells = np.unique(pb * CELLS + np.tile(np.asarray(qcell, np.int64), 4))
    _, n_cells = np.unique(cells // CELLS, return_counts=True)
    box_pair = boxes // n_box
    pairs, at = np.unique(pair, return_index=True)
    k = np.asarray(need, np.int64)[at][np.searchsorted(pairs, box_pair)]
    ok = (votes >= params.min_votes) & (n_cells >= k)
    if not ok.any():
        return e, e, e
    bp, v, c = box_pair[ok], votes[ok], n_cells[ok]
    order = np.lexsort((-c, -v, bp))
    bp, v, c = bp[order], v[order], c[order]
    head = np.r_[True, bp[1:] != bp[:-1]]
    return bp[head], v[head], c[head]


def pair_query(query: dict, target: dict, params: RetrievalParams) -> tuple[int, int] | None:
    """Q(a -> b) for one pair, by its definition: `query` holds a's query words
    (words, ang, lsc, pos), `target` all of b's words. (votes, cells) of the best
    accepted box, or None. The reference the batched search must agree with, and
    the test of a single pair (who owns it)."""
    qcell = coverage_cell(query["pos"])
    need = int(cells_needed(np.array([len(np.unique(qcell))]), params)[0])
    common, qi, ti = np.intersect1d(query["words"], target["words"], return_indices=True)
    if len(common) < params.min_votes:
        return None
    dang = np.asarray(target["ang"], np.int64)[ti] - np.asarray(query["ang"], np.int64)[qi]
    dsc = np.asarray(target["lsc"], np.int64)[ti] - np.asarray(query["lsc"], np.int64)[qi]
    zeros = np.zeros(len(common), np.int64)
    p, v, c = judge(zeros, qcell[qi], dang, dsc, zeros + need, params)
    return (int(v[0]), int(c[0])) if len(p) else None


def pair_votes(query: dict, target: dict, params: RetrievalParams, mirrored: bool) -> int:
    """Q(a -> b) of two signatures (`features.signature`): the votes of the best
    accepted box, 0 when Q does not hold."""
    prefix = "m" if mirrored else ""
    sel = np.asarray(query[prefix + "rank"]) < params.query_features
    q = {f: np.asarray(query[prefix + f])[sel] for f in FIELDS}
    r = pair_query(q, {f: np.asarray(target[f]) for f in FIELDS}, params)
    return r[0] if r else 0


@dataclass(frozen=True)
class Postings:
    """An inverted file: its words that have postings (sorted) and where each one's
    start, then the raster ids, orientation, scale and position codes of each
    word's postings, sorted by word then raster. `whole`: the index's own (every
    raster, counted in dense arrays), else a small one (the rasters added since a
    chunk's last run)."""

    words: np.ndarray
    starts: np.ndarray
    ids: np.ndarray
    ang: np.ndarray
    lsc: np.ndarray
    pos: np.ndarray
    whole: bool = True

    def lookup(self, qw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, length) of each queried word's postings (length 0: none)."""
        qw = np.asarray(qw, np.int64)
        if len(self.words) == 0:
            return np.zeros(len(qw), np.int64), np.zeros(len(qw), np.int64)
        at = np.minimum(np.searchsorted(self.words, qw), len(self.words) - 1)
        hit = np.asarray(self.words[at], np.int64) == qw
        s = np.asarray(self.starts[at], np.int64)
        e = np.asarray(self.starts[at + 1], np.int64)
        return np.where(hit, s, 0), np.where(hit, e - s, 0)


@dataclass(frozen=True)
class Queries:
    """The query words of some rasters, raster after raster (`sizes` words each)."""

    items: np.ndarray
    sizes: np.ndarray
    words: np.ndarray
    ang: np.ndarray
    lsc: np.ndarray
    pos: np.ndarray


def search(
    q: Queries,
    post: Postings,
    n: int,
    params: RetrievalParams,
    out: dict[tuple[int, int], tuple[int, bool]],
    mirrored: bool,
) -> None:
    """Q(a -> b) for every raster a of `q` and raster b (!= a) of `post` (ids below
    `n`), into `out` {(a, b): (votes, mirrored)}: a mirrored hit replaces a plain
    one only with more votes. Cut into batches of at most `batch_votes` postings
    read (and, against the whole index, `batch_cells` counters)."""
    n_q = len(q.items)
    if n_q == 0:
        return
    local = np.repeat(np.arange(n_q, dtype=np.int64), q.sizes)
    starts, lens = post.lookup(q.words)
    cell = coverage_cell(q.pos)
    qc = local * CELLS + cell
    occupied = np.zeros(n_q * CELLS, bool)
    occupied[qc] = True
    occupied = occupied.reshape(n_q, CELLS)
    need = cells_needed(occupied.sum(axis=1), params)
    # the k - SPARE costliest occupied cells of each query are searched by bisection
    cost = np.bincount(qc, weights=lens, minlength=n_q * CELLS).reshape(n_q, CELLS)
    order = np.argsort(np.where(occupied, -cost, np.inf), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(CELLS), order.shape), axis=1)
    n_skip = np.maximum(need - SPARE, 0)
    skipped = (rank < n_skip[:, None]).reshape(-1)[qc]
    enum_need = need - n_skip
    qlen = segment_sums(np.where(skipped, 0, lens), q.sizes)
    dense = post.whole
    max_q = max(1, params.batch_cells // max(1, n)) if dense else 1 << 16
    cum = np.concatenate([[0], np.cumsum(q.sizes)])
    for b0, b1 in batches(qlen, max_q, params.batch_votes):
        w = slice(int(cum[b0]), int(cum[b1]))
        found = _batch(
            q.items[b0:b1],
            local[w] - b0,
            cell[w],
            skipped[w],
            starts[w],
            lens[w],
            q.ang[w],
            q.lsc[w],
            need[b0:b1],
            enum_need[b0:b1],
            post,
            n,
            dense,
            params,
        )
        for a, b, v in found:
            old = out.get((a, b))
            if old is None or v > old[0]:
                out[(a, b)] = (v, mirrored)
        release(post.ids, post.ang, post.lsc, post.pos)


def _batch(
    items: np.ndarray,
    local: np.ndarray,
    cell: np.ndarray,
    skipped: np.ndarray,
    starts: np.ndarray,
    lens: np.ndarray,
    qang: np.ndarray,
    qlsc: np.ndarray,
    need: np.ndarray,
    enum_need: np.ndarray,
    post: Postings,
    n: int,
    dense: bool,
    params: RetrievalParams,
) -> list[tuple[int, int, int]]:
    """One batch of `search`: (a, b, votes) of the pairs that hold Q."""
    # 1. the words of the enumerated cells: their postings read whole
    e = np.flatnonzero(~skipped)
    le = lens[e]
    ids = read_runs(post.ids, starts[e], le)
    lo = np.cumsum(le) - le
    rep, tgt, p = list_parts(ids, lo, lo, lo + le, starts[e])
    w = e[rep]
    ql = local[w]
    keep = tgt != items[ql]
    w, ql, tgt, p = w[keep], ql[keep], tgt[keep], p[keep]
    pid = ql * n + tgt
    # 2. survivors: shared words in at least `enum_need` enumerated cells
    if dense:
        counts = np.bincount(pid, minlength=len(items) * n)
        sel = counts[pid] >= enum_need[ql]
    else:
        _, inv, counts = np.unique(pid, return_inverse=True, return_counts=True)
        sel = counts[inv] >= enum_need[ql]
    w, p, pid = w[sel], p[sel], pid[sel]
    pc, n_cells = np.unique(np.unique(pid * CELLS + cell[w]) // CELLS, return_counts=True)
    surv = pc[n_cells >= enum_need[pc // n]]
    if len(surv) == 0:
        return []
    sel = np.isin(pid, surv, assume_unique=False)
    w, p, pid = w[sel], p[sel], pid[sel]
    # 3. the skipped cells' words: is each survivor in their postings? (bisection)
    s_idx = np.flatnonzero(skipped)
    if len(s_idx):
        ptr = np.searchsorted(local[s_idx], np.arange(len(items) + 1))
        sq, st = surv // n, surv % n
        rows = np.repeat(np.arange(len(surv)), ptr[sq + 1] - ptr[sq])
        sw = s_idx[ranges(ptr[sq], ptr[sq + 1])]
        t = st[rows]
        a, b = starts[sw], starts[sw] + lens[sw]
        at = first_after(post.ids, a, b, t - 1)
        inside = at < b
        probe = np.where(inside, at, 0)
        hit = inside & (np.asarray(post.ids[probe], np.int64) == t)
        w = np.concatenate([w, sw[hit]])
        p = np.concatenate([p, at[hit]])
        pid = np.concatenate([pid, surv[rows[hit]]])
    # 4. every shared word of the survivors, judged
    dang = np.asarray(post.ang[p], np.int64) - np.asarray(qang[w], np.int64)
    dsc = np.asarray(post.lsc[p], np.int64) - np.asarray(qlsc[w], np.int64)
    acc, votes, _ = judge(pid, cell[w], dang, dsc, need[pid // n], params)
    return [
        (int(items[x // n]), int(x % n), int(v))
        for x, v in zip(acc.tolist(), votes.tolist(), strict=True)
    ]
