"""Plain scans paired by where their specks lie.

Takes the speck cells of plain rasters (`texture.speck_cells`: up to SPECK_MAX cells
of a fine grid of the frame); gives the triples (x, y, o) for which x upright and y
seen in orientation o share enough specks: at least `min_shared_specks` of x's
specks have one of y's within one cell, and at least `min_speck_share` of the fewer
specks of the two. A rescan of a verso keeps its specks in their places; two
different versos share a few cells by chance only (measured on 1,435 plain rasters:
none of 1,028,531 pairs of different versos passes, 362 of 364 rescan pairs do;
docs/furniture.md).

Searched like words: postings from cell to (raster, orientation), each of the
query's specks looking up its cell and the eight around it, so the cost is the
postings read, not the pairs of plain rasters. The test is a function of the pair
(`shared`), the search returns exactly the triples it accepts.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..dihedral import dihedral
from ..ingest.texture import NO_SPECK, SPECK_GRID
from .arrays import batches, ranges

# query rasters searched at once, and the postings one such batch may read (the
# rows of its join: 4M rows hold ~100 MB while counted)
QUERY_BLOCK = 512
ROW_BUDGET = 1 << 22


@cache
def _orient_table() -> np.ndarray:
    """[o, cell] -> the cell it lands in when the frame is seen in orientation o."""
    g = SPECK_GRID
    table = np.zeros((8, g * g), np.int64)
    grid = np.arange(g * g).reshape(g, g)
    for o in range(8):
        table[o, dihedral(grid, o).reshape(-1)] = np.arange(g * g)
    return table


def orient(cells: np.ndarray, o: int) -> np.ndarray:
    """Speck cells (any shape, NO_SPECK kept) as seen in orientation o."""
    cells = np.asarray(cells)
    valid = cells != NO_SPECK
    out = np.full(cells.shape, NO_SPECK, np.int64)
    out[valid] = _orient_table()[o][cells[valid].astype(np.int64)]
    return out


def count(cells: np.ndarray) -> np.ndarray:
    """How many specks each row of speck cells holds."""
    return (np.asarray(cells) != NO_SPECK).sum(axis=-1)


def need(n_x: np.ndarray, n_y: np.ndarray, min_shared: int, share: float) -> np.ndarray:
    """Specks a pair must share: `min_shared`, and `share` of the fewer specks."""
    fewer = np.minimum(n_x, n_y)
    return np.maximum(min_shared, np.ceil(share * fewer - 1e-9)).astype(np.int64)


def shared(x_cells: np.ndarray, y_cells: np.ndarray, o: int) -> int:
    """How many of x's specks (upright) have one of y's (seen in orientation o)
    within one cell: the pair's own test, which `search` follows."""
    xs = np.asarray(x_cells)
    xs = xs[xs != NO_SPECK].astype(np.int64)
    ys = orient(y_cells, o)
    ys = ys[ys != NO_SPECK]
    if len(xs) == 0 or len(ys) == 0:
        return 0
    g = SPECK_GRID
    dr = np.abs(xs[:, None] // g - ys[None, :] // g)
    dc = np.abs(xs[:, None] % g - ys[None, :] % g)
    return int(((dr <= 1) & (dc <= 1)).any(axis=1).sum())


def _postings(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every target speck in every orientation, sorted by cell: (cell, target * 8 + o)."""
    keys, vals = [], []
    rows = np.arange(len(cells), dtype=np.int64)[:, None]
    for o in range(8):
        oc = orient(cells, o)
        valid = oc != NO_SPECK
        keys.append(oc[valid])
        vals.append(np.broadcast_to(rows * 8 + o, oc.shape)[valid])
    keys, vals = np.concatenate(keys), np.concatenate(vals)
    order = np.argsort(keys, kind="stable")
    return keys[order], vals[order]


def _neighbourhoods(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query speck, its cell and the (up to) eight around it:
    (neighbour cell, query row, speck index)."""
    g = SPECK_GRID
    q, k = np.nonzero(cells != NO_SPECK)
    c = cells[q, k].astype(np.int64)
    r, col = c // g, c % g
    out_c, out_q, out_k = [], [], []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            rr, cc = r + dr, col + dc
            ok = (rr >= 0) & (rr < g) & (cc >= 0) & (cc < g)
            out_c.append(rr[ok] * g + cc[ok])
            out_q.append(q[ok])
            out_k.append(k[ok])
    return np.concatenate(out_c), np.concatenate(out_q), np.concatenate(out_k)


def search(
    q_cells: np.ndarray, t_cells: np.ndarray, min_shared: int, share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query row, target row, o) with `shared(q, t, o)` >= `need`: the query
    upright against every orientation of every target."""
    q_cells, t_cells = np.asarray(q_cells), np.asarray(t_cells)
    empty = np.zeros(0, np.int64)
    if len(q_cells) == 0 or len(t_cells) == 0:
        return empty, empty, empty
    p_keys, p_vals = _postings(t_cells)
    n_q, n_t = count(q_cells), count(t_cells)
    k_max = q_cells.shape[1]
    # every query speck's neighbourhood and the postings it reads, once, in query
    # order: the queries are batched by the rows they read
    nb, qrow, spk = _neighbourhoods(q_cells)
    order = np.argsort(qrow, kind="stable")
    nb, qrow, spk = nb[order], qrow[order], spk[order]
    lo, hi = np.searchsorted(p_keys, nb, "left"), np.searchsorted(p_keys, nb, "right")
    per_query = np.bincount(qrow, weights=hi - lo, minlength=len(q_cells)).astype(np.int64)
    first = np.searchsorted(qrow, np.arange(len(q_cells) + 1))
    found = []
    for q0, q1 in batches(per_query, QUERY_BLOCK, ROW_BUDGET):
        at = slice(first[q0], first[q1])
        take = ranges(lo[at], hi[at])
        if len(take) == 0:
            continue
        reps = hi[at] - lo[at]
        vals = p_vals[take]
        # a speck of the query counts once per (target, orientation)
        key = (np.repeat(qrow[at], reps) * (len(t_cells) * 8) + vals) * k_max
        key += np.repeat(spk[at], reps)
        pair = np.unique(key) // k_max
        pair, votes = np.unique(pair, return_counts=True)
        qi, tv = pair // (len(t_cells) * 8), pair % (len(t_cells) * 8)
        ti, oi = tv // 8, tv % 8
        ok = votes >= need(n_q[qi], n_t[ti], min_shared, share)
        found.append((qi[ok], ti[ok], oi[ok]))
    if not found:
        return empty, empty, empty
    return tuple(np.concatenate(col).astype(np.int64) for col in zip(*found, strict=True))
