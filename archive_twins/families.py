"""Copy families: a master and everything derived from it.

Takes the aggregation's duckdb tables (`f`: one row per file; `frank`: the files in
the order of the master rules, see `rank_files`) and the verified copies between
rasters; gives the `families` rows. A family is a connected component of copy
relations, identical and same-pixel sets (at least two files). Its master is its
first file by the master rules; every other member carries its relation to the
master: the direct pair's when there is one, else composed along the shortest chain
of copies (`via_file_id`: the member the chain reaches it through).

Components, breadth-first searches and the composition of homographies run on
integer arrays (one entry per raster and per copy), not on Python objects per pair,
and every tie is broken by content (raster keys, sha256s, names), never by file ids
or input order: a rerun gives a fresh run's families.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence

import duckdb
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .dihedral import DIHEDRAL, nearest_dihedral
from .direction import FORMAT_RANK, reverse
from .records import CopyRecord
from .verify import homography_json

# The master rules, in order: which file of a family (or of an identical or
# same-pixel set, or of a raster's files) is kept. Each is a column of `frank`
# (smaller first) and the reason redundant.csv gives when it decided.
MASTER_RULES = (
    ("c_master", "curator: master"),
    ("c_redundant", "curator: redundant"),
    ("c_pixels", "more pixels"),
    ("c_bits", "more bits per sample"),
    ("c_format", "lossless format"),
    ("c_path", "master_paths"),
    ("c_mtime", "older file"),
    ("filename", "name"),
)
# A copy whose frame holds this much of its source's area holds the whole picture:
# the source is explained from the copy too (a crop of it).
WHOLE = 0.98
# A copy is derived from its source when the source's picture fills at least this
# much of the copy's frame (a border and caption leave ~0.6); a collage of two
# photographs, or a view overlapping another, fills less: it adds a picture.
FILLS = 0.55
# families columns: the contract's, then the extra ones
FAMILY_COLUMNS = [
    ("family_id", "TEXT NOT NULL"),
    ("file_id", "INTEGER NOT NULL"),
    ("role", "TEXT NOT NULL"),
    ("via_file_id", "INTEGER"),
    ("kind", "TEXT"),
    ("scale", "REAL"),
    ("angle", "REAL"),
    ("mirrored", "INTEGER"),
    ("crop_x", "REAL"),
    ("crop_y", "REAL"),
    ("crop_w", "REAL"),
    ("crop_h", "REAL"),
    ("colour_change", "INTEGER"),
    ("mixed", "INTEGER NOT NULL"),
    # beyond the contract: family size, the member whose bytes or pixels a duplicate
    # shares, copies between it and the master, whether a chain of derivations
    # explains it, and the composed homography (master pixels -> member pixels)
    ("family_size", "INTEGER NOT NULL"),
    ("duplicate_of", "INTEGER"),
    ("hops", "INTEGER NOT NULL"),
    ("explained", "INTEGER NOT NULL"),
    ("homography", "TEXT"),
]
ROLE_ORDER = {"master": 0, "derivative": 1, "duplicate": 2}


def path_rank(patterns: Sequence[str]):  # noqa: ANN201 (a duckdb scalar function)
    """The master_paths rule: the index of the first pattern a filename matches (a
    prefix such as `Masters/`, or a glob with * ? [), len(patterns) for none."""

    def rank(name: str) -> int:
        for i, p in enumerate(patterns):
            if fnmatch.fnmatchcase(name, p) if any(c in p for c in "*?[") else name.startswith(p):
                return i
        return len(patterns)

    return rank


def rank_files(con: duckdb.DuckDBPyConnection, master_paths: Sequence[str]) -> None:
    """Table `frank`: every file with its MASTER_RULES columns and `rank`, its place
    in the rules' order (1 first). Needs `f` and `dec_file` (file decisions)."""
    fmt = " ".join(f"WHEN '{k}' THEN {v}" for k, v in FORMAT_RANK.items())
    if master_paths:
        con.create_function(
            "master_path_rank", path_rank(list(master_paths)), ["VARCHAR"], "INTEGER"
        )
        path = "master_path_rank(f.filename)"
    else:
        path = "0"
    con.execute(
        f"""CREATE TABLE frank AS
            SELECT *, row_number() OVER (ORDER BY {", ".join(c for c, _ in MASTER_RULES)}) AS rank
            FROM (SELECT f.file_id,
                         -d.master_at AS c_master,
                         CAST(coalesce(d.redundant, false) AS INTEGER) AS c_redundant,
                         -CAST(coalesce(f.width, 0) AS BIGINT) * coalesce(f.height, 0) AS c_pixels,
                         -coalesce(f.bits_per_sample, 0) AS c_bits,
                         -(CASE f.format {fmt} ELSE 0 END) AS c_format,
                         {path} AS c_path,
                         f.mtime_ns AS c_mtime,
                         f.filename
                  FROM f LEFT JOIN dec_file d USING (file_id))"""
    )


def _arrays(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> dict:
    return {k: np.asarray(v) for k, v in con.execute(sql, params or []).fetchnumpy().items()}


def _bfs(
    n: int, tail: np.ndarray, head: np.ndarray, pref: np.ndarray, roots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Breadth-first search from all roots at once over arcs tail -> head: each
    node's depth (-1: unreached) and the arc it was reached by. Of several arcs into
    a node at one depth, the preferred (`pref` 1) then the one from the smallest
    tail wins, so the tree depends on the graph alone."""
    order = np.lexsort((head, tail))
    tail, head, pref = tail[order], head[order], pref[order]
    start = np.searchsorted(tail, np.arange(n + 1))
    depth = np.full(n, -1, np.int32)
    arc = np.full(n, -1, np.int64)
    depth[roots] = 0
    frontier, d = np.unique(roots), 0
    while frontier.size:
        counts = start[frontier + 1] - start[frontier]
        total = int(counts.sum())
        if not total:
            break
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        idx = np.repeat(start[frontier], counts) + offsets
        idx = idx[depth[head[idx]] < 0]
        idx = idx[np.lexsort((tail[idx], -pref[idx], head[idx]))]
        new, first = np.unique(head[idx], return_index=True)
        depth[new] = d + 1
        arc[new] = order[idx[first]]
        frontier, d = new, d + 1
    return depth, arc


def _composed(
    hmat: np.ndarray, size_m: tuple[int, int], size_n: tuple[int, int], colour: bool
) -> CopyRecord:
    """The relation master -> member of a composed homography."""
    from .geometry import crop_box, decompose  # OpenCV: only when a chain is composed

    hmat = hmat / hmat[2, 2]
    scale, angle, mirrored = decompose(hmat, *size_m)
    crop = crop_box(hmat, *size_m, *size_n)
    area = crop[2] * crop[3] / max(size_m[0] * size_m[1], 1)
    o, err = nearest_dihedral(hmat, size_m, size_n, angle, mirrored)
    k, m = DIHEDRAL[o]
    if err > 1e-4 or area < WHOLE:
        kind = "other"
    else:
        kind = "other" if colour or (k == 0 and m) else ("rotate90i" if k else "resize")
    return CopyRecord(
        key1="",
        key2="",
        kind=kind,
        scale=round(float(scale), 6),
        angle=round(float(angle), 3) % 360,
        mirrored=int(mirrored),
        crop_x=round(crop[0], 2),
        crop_y=round(crop[1], 2),
        crop_w=round(crop[2], 2),
        crop_h=round(crop[3], 2),
        homography=homography_json(hmat),
        inliers=None,
        score=0.0,
        method="composed",
        area_fraction=round(area, 4),
        colour_change=colour,
    )


IDENTITY_JSON = homography_json(np.eye(3))


def _derived(
    kinds: Sequence[CopyRecord], hom: np.ndarray, size1: np.ndarray, size2: np.ndarray
) -> np.ndarray:
    """Per copy: is it derived from its source, i.e. does the source's picture fill
    its frame (FILLS)? A resize or a rotation by 90 degrees always does."""
    from .geometry import coverage  # OpenCV: only for copies of kind 'other'

    out = np.ones(len(kinds), bool)
    for i, c in enumerate(kinds):
        if c.kind not in ("resize", "rotate90i"):
            out[i] = coverage(hom[i], *size1[i], *size2[i]) >= FILLS
    return out


def build_families(con: duckdb.DuckDBPyConnection, copies: Sequence[CopyRecord]) -> list[tuple]:
    """The `families` rows (FAMILY_COLUMNS), in the order families are listed: mixed
    first, then larger first, then by id. Needs `f` and `frank`."""
    con.execute(
        """CREATE TABLE fam_node AS
           SELECT file_id, rank, sha256, filename, width, height, key,
                  dense_rank() OVER (ORDER BY key) - 1 AS node
           FROM (SELECT f.*, frank.rank,
                        CASE WHEN status = 'ok' AND pixel_hash IS NOT NULL THEN pixel_hash
                             ELSE 's:' || sha256 END AS key
                 FROM f JOIN frank USING (file_id)
                 WHERE sha256 IS NOT NULL AND size_bytes > 0)"""
    )
    fa = _arrays(
        con,
        "SELECT file_id, node, rank, coalesce(width, 0) AS w, coalesce(height, 0) AS h "
        "FROM fam_node ORDER BY node, rank",
    )
    if not len(fa["node"]):
        return []
    n = int(fa["node"][-1]) + 1
    # the copies as arcs between raster nodes
    con.execute(
        "CREATE TABLE fam_edge AS SELECT unnest(?::VARCHAR[]) AS k1, unnest(?::VARCHAR[]) AS k2,"
        " unnest(?::BIGINT[]) AS e",
        [[c.key1 for c in copies], [c.key2 for c in copies], list(range(len(copies)))],
    )
    ea = _arrays(
        con,
        """WITH k AS (SELECT DISTINCT node, key FROM fam_node)
           SELECT e, a.node AS u, b.node AS v
           FROM fam_edge JOIN k a ON a.key = k1 JOIN k b ON b.key = k2 ORDER BY e""",
    )
    e_idx, u, v = ea["e"].astype(np.int64), ea["u"].astype(np.int64), ea["v"].astype(np.int64)
    graph = coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    node_of = fa["node"].astype(np.int64)
    fam_files = np.bincount(comp[node_of], minlength=comp.max() + 1)
    # a node's first file by the rules (rows are ordered by node, rank)
    node_first = np.r_[True, node_of[1:] != node_of[:-1]]
    node_rep = np.zeros(n, np.int64)
    node_rep[node_of[node_first]] = fa["file_id"][node_first]
    # a family's master: its first file by rank, i.e. the best node rep
    rank = fa["rank"].astype(np.int64)
    by_comp = np.lexsort((rank, comp[node_of]))
    cf = comp[node_of][by_comp]
    comp_first = by_comp[np.r_[True, cf[1:] != cf[:-1]]]
    masters = comp_first[fam_files[comp[node_of[comp_first]]] >= 2]
    master_node = node_of[masters]

    # arcs: each copy forward (source -> copy) and backward (copy -> source)
    kinds = [copies[i] for i in e_idx]
    size = np.zeros((n, 2), np.int64)
    size[node_of] = np.column_stack([fa["w"], fa["h"]])
    hom = np.array([json.loads(c.homography) for c in kinds], float).reshape(-1, 3, 3)
    colour = np.array([bool(c.colour_change) for c in kinds], bool)
    tail, head = np.r_[u, v], np.r_[v, u]
    forward = np.r_[np.ones(len(u), bool), np.zeros(len(u), bool)]
    derives = np.r_[
        _derived(kinds, hom, size[u], size[v]),
        np.array([(c.area_fraction or 0) >= WHOLE for c in kinds], bool),
    ]
    depth, arc = _bfs(n, tail, head, derives.astype(np.int8), master_node)
    d_tail, d_head = tail[derives], head[derives]
    explained_depth, _ = _bfs(n, d_tail, d_head, np.ones(len(d_tail), np.int8), master_node)

    # homographies master -> node, level by level along the tree
    arc_h = np.concatenate([hom, np.linalg.inv(hom)]) if len(hom) else np.zeros((0, 3, 3))
    node_h = np.zeros((n, 3, 3))
    node_h[master_node] = np.eye(3)
    node_colour = np.zeros(n, bool)
    for d in range(1, int(depth.max()) + 1 if n else 0):
        level = np.flatnonzero(depth == d)
        a = arc[level]
        node_h[level] = arc_h[a] @ node_h[tail[a]]
        node_colour[level] = node_colour[tail[a]] | np.r_[colour, colour][a]

    return _rows(con, kinds, comp, fam_files, node_rep, masters, fa, depth, arc, tail,
                 forward, explained_depth, node_h, node_colour)  # fmt: skip


def _rows(
    con: duckdb.DuckDBPyConnection,
    kinds: list[CopyRecord],
    comp: np.ndarray,
    fam_files: np.ndarray,
    node_rep: np.ndarray,
    masters: np.ndarray,
    fa: dict,
    depth: np.ndarray,
    arc: np.ndarray,
    tail: np.ndarray,
    forward: np.ndarray,
    explained_depth: np.ndarray,
    node_h: np.ndarray,
    node_colour: np.ndarray,
) -> list[tuple]:
    """One row per member of every family."""
    node_of = fa["node"].astype(np.int64)
    in_family = fam_files[comp[node_of]] >= 2
    members = np.flatnonzero(in_family)
    master_of_comp = {int(comp[node_of[m]]): int(fa["file_id"][m]) for m in masters}
    mixed_comp = set(np.unique(comp[explained_depth < 0]).tolist()) & set(master_of_comp)
    # what the rows need of the members' files, by file_id
    info = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT file_id, sha256, filename, width, height FROM fam_node WHERE file_id IN "
            "(SELECT unnest(?::BIGINT[]))",
            [fa["file_id"][members].tolist()],
        ).fetchall()
    }
    n_arcs = len(kinds)
    relation: dict[int, CopyRecord] = {}  # node -> relation to its master
    rows = []
    for i in members:
        fid, node = int(fa["file_id"][i]), int(node_of[i])
        c = int(comp[node])
        master = master_of_comp[c]
        sha, name, w, h = info[fid]
        d = int(depth[node])
        rep = int(node_rep[node])
        via = None
        if fid == master:
            role, rel = "master", None
        elif d == 0:
            role = "duplicate"
            kind = "identical" if sha == info[master][0] else "same_pixels"
            rel = CopyRecord(key1="", key2="", kind=kind, scale=1.0, angle=0.0, mirrored=0,
                             crop_x=0.0, crop_y=0.0, crop_w=float(w or 0), crop_h=float(h or 0),
                             homography=IDENTITY_JSON, inliers=None, score=1.0)  # fmt: skip
        else:
            role = "derivative" if fid == rep else "duplicate"
            if node not in relation:
                a = int(arc[node])
                e = a % n_arcs
                if d == 1 and forward[a]:
                    relation[node] = kinds[e]
                elif d == 1:
                    ms, ns = info[master], info[rep]
                    relation[node] = reverse(kinds[e], (ns[2], ns[3]), (ms[2], ms[3]))
                else:
                    ms = info[master]
                    relation[node] = _composed(
                        node_h[node], (ms[2], ms[3]), (w, h), bool(node_colour[node])
                    )
            rel = relation[node]
            if d >= 2:
                via = int(node_rep[tail[int(arc[node])]])
        params = (
            (None,) * 9
            if rel is None
            else (
                rel.kind,
                rel.scale,
                rel.angle,
                int(rel.mirrored),
                rel.crop_x,
                rel.crop_y,
                rel.crop_w,
                rel.crop_h,
                int(bool(rel.colour_change)),
            )
        )
        rows.append(
            (
                info[master][0][:16],
                fid,
                role,
                via,
                *params[:9],
                int(c in mixed_comp),
                int(fam_files[c]),
                rep if role == "duplicate" else None,
                max(d, 0),
                int(explained_depth[node] >= 0),
                None if rel is None else rel.homography,
                name,
            )
        )
    rows.sort(key=lambda r: (-r[13], -r[14], r[0], ROLE_ORDER[r[2]], r[16], r[-1]))
    return [r[:-1] for r in rows]
