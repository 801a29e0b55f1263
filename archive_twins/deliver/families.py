"""Copy families: a master and everything derived from it.

Takes the aggregation's duckdb tables (`f`: one row per file; `frank`: the files in
the order of the master rules, see `rank_files`; `t_copy`: the verified copies);
gives the table `t_fam`, the `families` rows. A family is a connected component of copy
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
from collections.abc import Sequence

import duckdb
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..dihedral import DIHEDRAL, nearest_dihedral
from ..index.items import FORMAT_RANK
from ..records import TRANSFORM_PARAMETER, duck_type

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
# the copies' kinds (resize, rotate90i, other), by the index the arrays hold
KINDS = tuple(TRANSFORM_PARAMETER)
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
    """Table `frank`: every file with its MASTER_RULES columns, its sha256 and `rank`,
    its place in the rules' order (1 first). Needs `f` and `dec_file` (file
    decisions)."""
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
                         f.filename, f.sha256
                  FROM f LEFT JOIN dec_file d USING (file_id))"""
    )


def _arrays(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, np.ndarray]:
    """A query's columns as numpy arrays (the query leaves no NULL in them)."""
    return {k: np.asarray(v) for k, v in con.execute(sql).fetchnumpy().items()}


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


def _derived(kind: np.ndarray, hom: np.ndarray, size1: np.ndarray, size2: np.ndarray) -> np.ndarray:
    """Per copy (`kind`: index into KINDS): is it derived from its source, i.e. does
    the source's picture fill its frame (FILLS)? A resize or a rotation by 90
    degrees always does."""
    from ..verify.homography import coverage  # OpenCV: only for copies of kind 'other'

    out = np.ones(len(kind), bool)
    for i in np.flatnonzero(kind == KINDS.index("other")):
        out[i] = coverage(hom[i], *size1[i], *size2[i]) >= FILLS
    return out


def homographies(con: duckdb.DuckDBPyConnection, sql: str, batch: int = 8192) -> np.ndarray:
    """The homographies (JSON 3x3 matrices) a query gives, as one (n, 3, 3) array,
    read and parsed a batch at a time (a JSON list of lists per copy would be ~0.6 KB
    of Python objects each)."""
    parts = []
    brackets = str.maketrans("[]", "  ")
    cur = con.cursor()
    res = cur.execute(sql)
    while rows := res.fetchmany(batch):
        text = ",".join(r[0] for r in rows).translate(brackets)
        parts.append(np.fromstring(text, sep=",").reshape(-1, 3, 3))
    cur.close()
    return np.concatenate(parts) if parts else np.zeros((0, 3, 3))


def _hom_text(h: np.ndarray, batch: int = 8192) -> np.ndarray:
    """verify.homography.homography_json of many matrices (the same text), a batch at a time."""
    out = np.empty(len(h), dtype=object)
    for i in range(0, len(h), batch):
        rows = (np.round(h[i : i + batch].reshape(-1, 9), 6) + 0.0).tolist()
        out[i : i + batch] = ["[[{}, {}, {}], [{}, {}, {}], [{}, {}, {}]]".format(*m) for m in rows]
    return out


def _kind_of(k: np.ndarray, mirrored: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The kind of a whole-frame relation in orientation k*90 (mirrored), as the
    matching jobs name it: a colour change or a mirror alone is 'other'."""
    return np.where(colour | ((k == 0) & mirrored), "other", np.where(k > 0, "rotate90i", "resize"))


def relations(
    hom: np.ndarray, size_m: np.ndarray, size_n: np.ndarray, colour: np.ndarray
) -> dict[str, np.ndarray]:
    """The relation master -> member of composed homographies (master pixels ->
    member pixels; sizes (w, h) of each): kind, scale, angle, mirrored and crop box,
    as geometry.decompose and crop_box give them. Axis-aligned affine maps (chains of
    resizes, rotations by 90 degrees, mirrors and crops) are computed for all at once;
    the others (small rotations, perspective) one by one."""
    from ..verify.homography import crop_box, decompose  # OpenCV: only for those others

    h = hom / hom[:, 2:3, 2:3]
    lin = h[:, :2, :2]
    big = np.abs(lin).max(axis=(1, 2))
    diag = np.abs(lin[:, [0, 1], [1, 0]]).max(axis=1) <= 1e-9 * big
    anti = np.abs(lin[:, [0, 1], [0, 1]]).max(axis=1) <= 1e-9 * big
    fast = (np.abs(h[:, 2, :2]).max(axis=1) <= 1e-12) & (diag | anti)
    det = lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]
    mirrored = det < 0
    scale = np.sqrt(np.abs(det))
    sign = np.where(mirrored, -1.0, 1.0)
    angle = np.degrees(np.arctan2(lin[:, 1, 0] * sign, lin[:, 0, 0] * sign)) % 360
    wm, hm = size_m[:, 0].astype(float), size_m[:, 1].astype(float)
    wn, hn = size_n[:, 0].astype(float), size_n[:, 1].astype(float)

    def corners(m: np.ndarray, w: np.ndarray, hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs = np.stack([np.zeros_like(w), w, np.zeros_like(w), w], 1)
        ys = np.stack([np.zeros_like(hh), np.zeros_like(hh), hh, hh], 1)
        return (m[:, 0, :1] * xs + m[:, 0, 1:2] * ys + m[:, 0, 2:3],
                m[:, 1, :1] * xs + m[:, 1, 1:2] * ys + m[:, 1, 2:3])  # fmt: skip

    # the member's frame in the master's pixels, clipped to the master's frame
    inv = np.linalg.inv(np.where(fast[:, None, None], h, np.eye(3)))
    cx, cy = corners(inv, wn, hn)
    x0, x1 = np.clip(cx.min(1), 0, wm), np.clip(cx.max(1), 0, wm)
    y0, y1 = np.clip(cy.min(1), 0, hm), np.clip(cy.max(1), 0, hm)
    empty = (x1 <= x0) | (y1 <= y0)
    crop = np.where(empty[:, None], np.stack([0 * wm, 0 * hm, wm, hm], 1),
                    np.stack([x0, y0, x1 - x0, y1 - y0], 1))  # fmt: skip
    # the master's frame lands on the member's frame: a resize, rotation or mirror
    mx, my = corners(h, wm, hm)
    tol = 1e-4 * np.maximum(wn, hn)
    onto = (np.abs(mx.min(1)) <= tol) & (np.abs(my.min(1)) <= tol)
    onto &= (np.abs(mx.max(1) - wn) <= tol) & (np.abs(my.max(1) - hn) <= tol)
    k = np.round(angle / 90).astype(int) % 4
    kind = np.where(onto, _kind_of(k, mirrored, colour), "other")
    for i in np.flatnonzero(~fast):
        sm, sn = tuple(size_m[i]), tuple(size_n[i])
        sc, an, mi = decompose(h[i], *sm)
        crop[i] = crop_box(h[i], *sm, *sn)
        scale[i], angle[i], mirrored[i] = sc, an, mi
        o, err = nearest_dihedral(h[i], sm, sn, an, mi)
        area = crop[i, 2] * crop[i, 3] / max(sm[0] * sm[1], 1)
        whole = err <= 1e-4 and area >= WHOLE
        kind[i] = _kind_of(np.array(DIHEDRAL[o][0]), np.array(mi), colour[i]) if whole else "other"
    return {
        "kind": kind.astype(object),
        "scale": np.round(scale, 6),
        "angle": np.round(angle, 3) % 360,
        "mirrored": mirrored.astype(np.int64),
        "crop": np.round(crop, 2),
        "homography": _hom_text(h),
    }


def build_families(con: duckdb.DuckDBPyConnection) -> None:
    """Table `t_fam`: one row per member of every family, the FAMILY_COLUMNS and
    `fam_pos` (the family's place: mixed first, then larger, then by id), `role_code`
    and `filename` (the order of members). Needs `f`, `frank` and `t_copy` (the
    copies, between the files standing for their rasters)."""
    con.execute(
        """CREATE TABLE fam_node AS
           SELECT file_id, rank, width, height, key,
                  dense_rank() OVER (ORDER BY key) - 1 AS node
           FROM (SELECT f.*, frank.rank,
                        CASE WHEN status = 'ok' AND pixel_hash IS NOT NULL THEN pixel_hash
                             ELSE 's:' || f.sha256 END AS key
                 FROM f JOIN frank USING (file_id)
                 WHERE f.sha256 IS NOT NULL AND size_bytes > 0)"""
    )
    fa = _arrays(
        con,
        "SELECT file_id, node, rank, coalesce(width, 0) AS w, coalesce(height, 0) AS h "
        "FROM fam_node ORDER BY node, rank",
    )
    n = int(fa["node"][-1]) + 1 if len(fa["node"]) else 0
    if not n:
        cols = [f"CAST(NULL AS {duck_type(t)}) AS {c}" for c, t in FAMILY_COLUMNS]
        con.execute(
            f"CREATE TABLE t_fam AS SELECT {', '.join(cols)}, 0 AS fam_pos, 0 AS role_code, "
            "'' AS filename WHERE false"
        )
        return
    # the copies (table t_copy, between the files standing for their rasters) as
    # arcs between raster nodes, with what the relations need of them
    ea = _arrays(
        con,
        f"""SELECT a.node AS u, b.node AS v,
                   CASE c.kind {" ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(KINDS))}
                   END AS kind,
                   c.scale, c.angle, c.mirrored, c.crop_x, c.crop_y, c.crop_w, c.crop_h,
                   coalesce(c.area_fraction, 0) AS area,
                   coalesce(c.colour_change, 0) AS colour
            FROM t_copy c JOIN fam_node a ON a.file_id = c.file_id1
                 JOIN fam_node b ON b.file_id = c.file_id2
            ORDER BY c.file_id1, c.file_id2""",
    )
    u, v = ea["u"].astype(np.int64), ea["v"].astype(np.int64)
    hom = homographies(con, "SELECT homography FROM t_copy ORDER BY file_id1, file_id2")
    _, comp = connected_components(coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n)))
    node_of = fa["node"].astype(np.int64)
    fam_files = np.bincount(comp[node_of], minlength=n)
    # a node's first file by the rules (rows are ordered by node, rank)
    node_first = np.r_[True, node_of[1:] != node_of[:-1]]
    node_rep = np.zeros(n, np.int64)
    node_rep[node_of[node_first]] = fa["file_id"][node_first]
    # a family's master: its first file by rank, i.e. the best node rep
    by_comp = np.lexsort((fa["rank"], comp[node_of]))
    cf = comp[node_of][by_comp]
    comp_first = by_comp[np.r_[True, cf[1:] != cf[:-1]]]
    masters = comp_first[fam_files[comp[node_of[comp_first]]] >= 2]
    master_node = node_of[masters]
    master_file = np.zeros(n, np.int64)  # by component
    master_file[comp[master_node]] = fa["file_id"][masters]
    master_of = np.zeros(n, np.int64)  # by component
    master_of[comp[master_node]] = master_node

    # arcs: each copy forward (source -> copy) and backward (copy -> source)
    size = np.zeros((n, 2), np.int64)
    size[node_of] = np.column_stack([fa["w"], fa["h"]])
    colour = ea["colour"].astype(bool)
    tail, head = np.r_[u, v], np.r_[v, u]
    forward = np.r_[np.ones(len(u), bool), np.zeros(len(u), bool)]
    derives = np.r_[_derived(ea["kind"], hom, size[u], size[v]), ea["area"] >= WHOLE]
    depth, arc = _bfs(n, tail, head, derives.astype(np.int8), master_node)
    d_tail, d_head = tail[derives], head[derives]
    explained_depth, _ = _bfs(n, d_tail, d_head, np.ones(len(d_tail), np.int8), master_node)

    # homographies master -> node, level by level along the tree, for the member
    # rasters but the masters' (kept in the order of `rel_nodes`; the last row is the
    # masters' identity)
    rel_nodes = np.flatnonzero(depth >= 1)
    hpos = np.full(n, len(rel_nodes), np.int64)
    hpos[rel_nodes] = np.arange(len(rel_nodes))
    node_h = np.zeros((len(rel_nodes) + 1, 3, 3))
    node_h[-1] = np.eye(3)
    node_colour = np.zeros(n, bool)
    for d in range(1, int(depth.max(initial=0)) + 1):
        level = np.flatnonzero(depth == d)
        a = arc[level]
        step = hom[a % len(u)]
        back = ~forward[a]
        step[back] = np.linalg.inv(step[back])
        node_h[hpos[level]] = step @ node_h[hpos[tail[a]]]
        node_colour[level] = node_colour[tail[a]] | colour[a % len(u)]
    del hom

    # each member raster's relation to its master: the pair's own when it is direct
    # and points away from the master, else composed (in batches: bounded memory)
    k = len(rel_nodes)
    rel = {"kind": np.empty(k, object), "scale": np.empty(k), "angle": np.empty(k),
           "mirrored": np.empty(k, np.int64), "crop": np.empty((k, 4)),
           "homography": np.empty(k, object)}  # fmt: skip
    for i in range(0, k, 65536):
        nodes = rel_nodes[i : i + 65536]
        part = relations(
            node_h[i : i + len(nodes)], size[master_of[comp[nodes]]], size[nodes],
            node_colour[nodes],
        )  # fmt: skip
        for key, values in part.items():
            rel[key][i : i + len(nodes)] = values
    del node_h
    direct = np.flatnonzero(forward[arc[rel_nodes]] & (depth[rel_nodes] == 1))
    e = arc[rel_nodes[direct]]  # forward arcs are the copies' own indexes
    rel["kind"][direct] = np.array(KINDS, object)[ea["kind"][e]]
    for key in ("scale", "angle", "mirrored"):
        rel[key][direct] = ea[key][e]
    rel["crop"][direct] = np.column_stack(
        [ea[k][e] for k in ("crop_x", "crop_y", "crop_w", "crop_h")]
    )

    # one row per member file
    members = np.flatnonzero(fam_files[comp[node_of]] >= 2)
    fid, node = fa["file_id"][members].astype(np.int64), node_of[members]
    c = comp[node]
    role = np.where(fid == master_file[c], 0, np.where(fid == node_rep[node], 1, 2))
    role[(role == 1) & (depth[node] == 0)] = 2  # the master raster's other files
    r = hpos[node]  # the member's raster in `rel`, if it has a relation there
    has = r < len(rel_nodes)
    master_dup = (role == 2) & ~has
    # the node each member was reached from (its tree parent)
    parent = tail[np.maximum(arc[node], 0)] if len(tail) else np.zeros(len(node), np.int64)
    mixed = np.zeros(n, bool)
    mixed[np.unique(comp[(explained_depth < 0) & (fam_files[comp] >= 2)])] = True

    def col(values: np.ndarray, default: object, dtype: object = None) -> np.ndarray:
        out = np.full(len(members), default, dtype=dtype or values.dtype)
        out[has] = values[r[has]]
        return out

    crop = np.zeros((len(members), 4))
    crop[has] = rel["crop"][r[has]]
    crop[master_dup] = np.c_[np.zeros((master_dup.sum(), 2)), size[node[master_dup]]]
    kind = col(rel["kind"], None, object)
    kind[master_dup] = "duplicate of the master"
    cols = {
        "master": master_file[c],
        "file_id": fid,
        "role_code": role,
        "via": np.ma.masked_array(node_rep[parent], mask=depth[node] < 2),
        "kind": kind,
        "scale": np.ma.masked_array(np.where(master_dup, 1.0, col(rel["scale"], 0.0)), role == 0),
        "angle": np.ma.masked_array(col(rel["angle"], 0.0), role == 0),
        "mirrored": np.ma.masked_array(col(rel["mirrored"], 0), role == 0),
        **{
            k: np.ma.masked_array(crop[:, j], role == 0)
            for j, k in enumerate(("crop_x", "crop_y", "crop_w", "crop_h"))
        },
        "colour_change": np.ma.masked_array(node_colour[node].astype(np.int64), role == 0),
        "mixed": mixed[c].astype(np.int64),
        "family_size": fam_files[c],
        "duplicate_of": np.ma.masked_array(node_rep[node], mask=role != 2),
        "hops": np.maximum(depth[node], 0).astype(np.int64),
        "explained": (explained_depth[node] >= 0).astype(np.int64),
        "homography": np.where(master_dup, IDENTITY, col(rel["homography"], None, object)),
    }
    con.register("fam_cols", cols)
    con.execute(
        f"""CREATE TABLE t_fam AS
            SELECT substr(m.sha256, 1, 16) AS family_id, x.file_id,
                   CASE x.role_code WHEN 0 THEN 'master' WHEN 1 THEN 'derivative'
                        ELSE 'duplicate' END AS role,
                   x.via AS via_file_id,
                   CASE WHEN x.kind IS DISTINCT FROM 'duplicate of the master' THEN x.kind
                        WHEN fx.sha256 = m.sha256 THEN 'identical' ELSE 'same_pixels' END
                   AS kind,
                   {", ".join(f"x.{k}" for k, _ in FAMILY_COLUMNS[5:])},
                   dense_rank() OVER (ORDER BY x.mixed DESC, x.family_size DESC,
                                      substr(m.sha256, 1, 16)) AS fam_pos,
                   x.role_code, fx.filename
            FROM fam_cols x JOIN frank m ON m.file_id = x.master
                 JOIN frank fx ON fx.file_id = x.file_id"""
    )
    con.unregister("fam_cols")


IDENTITY = _hom_text(np.eye(3)[None])[0]
# the order of the families table's rows
FAMILY_ORDER = "fam_pos, role_code, hops, filename"
