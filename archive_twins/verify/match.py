"""Matching jobs: verify the candidate copies of one chunk of the index.

Each `match_chunk` job takes the rasters of its chunk (a contiguous range of pixel
hashes) and asks the index for the pairs it owns (first raster in the chunk):
resize/rotate90i/mirror candidates from the pHashes, then crop/rotation/perspective/
colour candidates from the fine visual words. Every candidate is verified on pixels
before it is reported. Verdicts are remembered in the job's output under a key made
of everything they were computed from (both rasters' contents, the candidate
evidence, every setting), so a rerun verifies only pairs it has not seen, and a
reused verdict is exactly what a fresh run would compute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..dihedral import (
    DIHEDRAL,
    aspect_matches,
    dihedral,
    dihedral_homography,
    inverse,
    nearest_dihedral,
    oriented_size,
)
from ..index.items import Item, content_basis
from ..index.params import RetrievalParams
from ..index.query import Index, cap_hash
from ..ingest.features import load_raster
from ..ingest.frame import reduced
from ..ingest.store import load_thumbnail
from ..ingest.texture import texture_corr
from ..progress import Progress
from ..records import CopyRecord, copy_kind
from ..util import fingerprint, read_jsonl, write_jsonl
from .capture import moved, residual_motion
from .geometry import GeoParams, GeoVerdict, verify_geometric
from .homography import dihedral_fields, transform_fields
from .pixels import (
    VerifyParams,
    explains,
    photometric_change,
    verify_dihedral,
)

# the logger keeps the name it had before the stage packages (job logs unchanged)
log = logging.getLogger("archive_twins.match")

# A geometric fit this close to a dihedral map (its frame corners within 1% of the
# copy's larger side, nearest_dihedral) over nearly all of the source (the crop's
# share of its area) is a resize or quarter turn: reported with exact parameters.
NEAR_DIHEDRAL_ERR = 0.01
NEAR_DIHEDRAL_AREA = 0.98


@dataclass(frozen=True)
class MatchParams:
    """Everything a verdict depends on besides the two rasters."""

    retrieval: RetrievalParams = RetrievalParams()
    max_orientations: int = 2
    # grey-level correlation a pair found by its tone hash alone needs (measured:
    # such copies in the quality benchmark's fit half >= 0.97; two patches of one sky,
    # one turned by 90 degrees, 0.55-0.79)
    min_tone_corr: float = 0.9
    # correlation of the fine texture (grain, specks) a pair with a plain raster
    # needs, aligned (texture.texture_corr; measured: a verso's rescans 0.50-0.92,
    # other versos <= 0.02): two empty versos pass every other test
    min_texture_corr: float = 0.2
    verify: VerifyParams = VerifyParams()
    geo: GeoParams | None = GeoParams()
    # fingerprints of the thumbnails and features the verdicts are computed from
    inputs: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Part of every verdict's cache key: changing any setting re-verifies."""
        return fingerprint("match-3", {**asdict(self), "retrieval": self.retrieval.fingerprint()})


class ThumbCache:
    """Thumbnails of the content store, decoded once per job and kept at the size
    verification works at (≤ max_side), so 1,024 cached images stay under 200 MB."""

    def __init__(
        self,
        store: str | os.PathLike,
        max_side: int = 256,
        size: int = 1024,
        repair: Callable[[str], bool] | None = None,
    ):
        self.store = Path(store)
        self.max_side = max_side
        self.repair = repair  # rebuilds a damaged thumbnail (store.load_thumbnail)
        self.get = lru_cache(maxsize=size)(self._load)

    def full(self, sha: str) -> np.ndarray:
        """The stored thumbnail at its own size (not kept): a grey-level alignment
        needs the pixel-wide faint edges the verification size blurs away."""
        return load_thumbnail(self.store, sha, self.repair)

    def _load(self, sha: str) -> np.ndarray:
        return reduced(self.full(sha), self.max_side)


def _fit_score(m: dict, params: MatchParams) -> float:
    """How well an orientation explains the copy (lower is better), either way."""
    v = params.verify
    return min(
        m["max_block_ratio"] / v.max_block_ratio, m["colour_block_ratio"] / v.max_colour_ratio
    )


def verify_candidate(
    x: Item, y: Item, orients: dict[int, int], thumbs: ThumbCache, params: MatchParams
) -> dict | None:
    """Verify the best orientations of a candidate; return the copy relation or None.

    Up to `max_orientations` orientations (by Hamming distance) are compared on
    pixels; of those accepted, the best-aligned one wins, so a near-symmetric image
    is not reported with the wrong rotation just because its hash came first.
    """
    src, dst = (x, y) if x.rank() >= y.rank() else (y, x)
    best = None
    tried = 0
    for o_xy, dist in sorted(orients.items(), key=lambda t: (t[1], t[0])):
        o = o_xy if src is x else inverse(o_xy)
        if not aspect_matches((src.width, src.height), (dst.width, dst.height), o):
            continue
        if tried >= params.max_orientations:
            break
        tried += 1
        ok, m = verify_dihedral(thumbs.get(src.sha256), thumbs.get(dst.sha256), o, params.verify)
        if ok and (src.plain or dst.plain):
            # plain scans: only the same grain and specks make a copy
            a, b = dihedral(thumbs.get(src.sha256), o), thumbs.get(dst.sha256)
            a = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA)
            m["texture"] = texture_corr(a, b)
            ok = m["texture"] >= params.min_texture_corr
        if ok and dist > params.retrieval.max_hamming and m["corr"] < params.min_tone_corr:
            # found by the tone hash alone: two smooth pictures leave the block test
            # little to go on (a sky turned by 90 degrees passes as another sky), so
            # their grey levels must follow each other closely too
            ok = False
        if ok and (best is None or _fit_score(m, params) < _fit_score(best[2], params)):
            best = (o, dist, m)
    if best is None:
        return None
    o, dist, m = best
    # measured, not inferred from which pixel test passed: a q10 JPEG fails the grey
    # test and passes the colour fit without any colour change
    colour = photometric_change(m, params.verify)
    direction_by = content_basis(src.rank(), dst.rank())
    # colours explaining the other's one way only tell a colour change's source;
    # without a change measured, that is resampling and re-encoding
    if (told := explains(m, params.verify) if colour else 0) != 0:
        direction_by = "colour"
    if told == -1:
        # the lower-ranked image's colours explain the other's, not the other way
        # round (a greyscale or clipped copy saved larger): it is the source
        src, dst, o = dst, src, inverse(o)
    k, mirrored = DIHEDRAL[o]
    return copy_record(
        src,
        dst,
        copy_kind(k, mirrored, colour),
        dihedral_fields((src.width, src.height), (dst.width, dst.height), o),
        inliers=None,
        score=round(m["corr"], 4),
        # found by the tone hash of a smooth raster when pHash was too far apart
        method="phash" if dist <= params.retrieval.max_hamming else "tone-hash",
        hamming=dist,
        colour_change=colour,
        direction_by=direction_by,
        metrics={name: round(v, 4) for name, v in m.items()},
    )


def copy_record(src: Item, dst: Item, kind: str, transform: dict, **evidence: object) -> dict:
    """The one builder of a copy record (JSON form), for every path: the pair (source
    first), its kind (`records.copy_kind`, or other/related), the transform's fields
    (`homography.dihedral_fields` exact, `homography.transform_fields` fitted) and
    the evidence (inliers, score, method, metrics, ...)."""
    return CopyRecord(key1=src.key, key2=dst.key, kind=kind, **transform, **evidence).to_dict()


def geo_copy(g: GeoVerdict, by_key: dict[str, Item]) -> dict:
    """A geometric verdict as a CopyRecord (JSON form); dihedral-looking fits are
    reported as resize/rotate90i with their exact parameters."""
    src, dst = by_key[g.key1], by_key[g.key2]
    src_wh, dst_wh = (src.width, src.height), (dst.width, dst.height)
    o, err = nearest_dihedral(g.hmat, src_wh, dst_wh, g.angle, bool(g.mirrored))
    k_near = DIHEDRAL[o][0]
    dihedral_h = dihedral_homography(src_wh, dst_wh, o)
    near_dihedral = err < NEAR_DIHEDRAL_ERR and g.area_fraction > NEAR_DIHEDRAL_AREA
    related = g.accepted_by is None
    if near_dihedral and not related:
        # the fit rounded to the turn it is: exact parameters, rounded as a fit
        ow, _ = oriented_size(src.width, src.height, o)
        hom, scale, angle, crop = (
            dihedral_h,
            dst.width / ow,
            90 * k_near,
            (0.0, 0.0, float(src.width), float(src.height)),
        )
        kind = copy_kind(k_near, bool(g.mirrored), bool(g.colour_change))
    else:
        hom, scale, angle, crop = g.hmat, g.scale, g.angle, g.crop
        kind = "related" if related else "other"
    return copy_record(
        src,
        dst,
        kind,
        transform_fields(hom, scale, angle, g.mirrored, crop, src_wh),
        inliers=g.inliers,
        score=round(g.score, 4),
        method=(
            "grey-alignment"
            if g.aligned == "grey levels"
            else {"pixels": "sift", "geometry": "sift-geometry"}.get(g.accepted_by, "related")
        ),
        hamming=None,
        colour_change=bool(g.colour_change),
        metrics={name: round(float(v), 4) for name, v in g.metrics.items()},
        reason=g.reason,
        direction_by=g.direction_by,
    )


class FeatureCache:
    """Full features of file contents, loaded on demand and kept for the most
    recently used `size` contents (with their RootSIFT arrays), so memory does not
    grow with the archive (the same LRU as ThumbCache)."""

    def __init__(
        self,
        store: str | os.PathLike,
        fp: str,
        size: int = 512,
        rebuild: Callable[[str], dict | None] | None = None,
    ):
        self.store, self.fp = store, fp
        self.rebuild = rebuild  # extracts lost or damaged features again
        self.get = lru_cache(maxsize=size)(self._load)

    def _load(self, sha: str) -> dict | None:
        """Features of a file content, or None if there are none to be had."""
        f = load_raster(self.store, sha, self.fp, ("xy", "desc"))
        if f is None and self.rebuild is not None:
            f = self.rebuild(sha)
        return f


def verdict_key(stage: str, x: Item, y: Item, evidence: object, fp: str) -> str:
    """Cache key of a verdict: stage, both rasters and the files whose thumbnails and
    features were used, the candidate evidence, and the settings."""
    raw = json.dumps([stage, x.key, x.sha256, y.key, y.sha256, evidence, fp], sort_keys=True)
    return hashlib.sha1(raw.encode()).hexdigest()


@dataclass
class ChunkJob:
    """What the stages of one chunk share."""

    index: Index
    params: MatchParams
    thumbs: ThumbCache
    feats: FeatureCache
    previous: dict[str, dict]
    rows: list[dict] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    smooth: np.ndarray | None = None

    def is_smooth(self, i: int) -> bool:
        """Whether a raster is smooth (see Index.smooth), computed once per job."""
        if self.smooth is None:
            self.smooth = self.index.smooth(self.params.retrieval)
        return bool(self.smooth[i])


def other_capture(job: ChunkJob, i: int, j: int, copy: dict) -> tuple[dict | None, dict | None]:
    """(copy, related) of a pair the pixel check accepted: the copy, or, when part of
    the picture moved after the alignment (`capture.residual_motion`; see
    `VerifyParams.max_capture_motion`), the same record as a related pair, another
    capture of the scene. A smooth raster's shifts are too uncertain to tell: its
    copy stands."""
    x, y = job.index.item(i), job.index.item(j)
    if job.is_smooth(i) or job.is_smooth(j):
        return copy, None
    src, dst = (x, y) if copy["key1"] == x.key else (y, x)
    hmat = np.array(json.loads(copy["homography"]), np.float64)
    try:
        motion = residual_motion(
            job.thumbs.get(src.sha256),
            job.thumbs.get(dst.sha256),
            hmat,
            (src.width, src.height),
            (dst.width, dst.height),
        )
    except (np.linalg.LinAlgError, cv2.error, ValueError) as exc:
        # a numerically degenerate alignment tells nothing; one pair never stops a job
        log.warning("capture check failed for %s/%s: %s", x.key, y.key, exc)
        return copy, None
    shifts = {"capture_motion": round(motion[0], 4), "capture_motion_two": round(motion[1], 4)}
    copy = {**copy, "metrics": {**copy.get("metrics", {}), **shifts}}
    v = job.params.verify
    if not moved(motion, v.max_capture_motion, v.max_capture_motion_two):
        return copy, None
    reason = (
        f"another capture of the scene: the pixels agree after alignment, but parts of "
        f"the picture moved by {motion[0]:.2f} and {motion[1]:.2f} px beyond it (a copy: "
        f"<= {v.max_capture_motion} and <= {v.max_capture_motion_two})"
    )
    return None, {**copy, "kind": "related", "method": "related", "reason": reason}


def _verdict(stage: str, x: Item, y: Item, evidence: list, key: str | None, copy: dict | None):
    return {
        "pair": [x.key, y.key],
        "stage": stage,
        "evidence": evidence,
        "key": key,
        "copy": copy,
    }


def _hash_stage(job: ChunkJob, cands: dict[tuple[int, int], dict]) -> set[tuple[int, int]]:
    """Resize / rotate90i / mirror: pHash candidates verified on aligned pixels."""
    index, params, stats = job.index, job.params, job.stats
    fp = params.fingerprint()
    found = set()
    stats["candidates"] = len(cands)
    progress = Progress(len(cands), log, what="hash candidates")
    for (i, j), orients in progress.each(sorted(cands.items())):
        x, y = index.item(i), index.item(j)
        evidence = sorted([int(o), int(d)] for o, d in orients.items())
        key = verdict_key("phash", x, y, evidence, fp)
        verdict = job.previous.get(key)
        if verdict is not None:
            stats["reused"] += 1
        else:
            stats["verified"] += 1
            try:
                copy = verify_candidate(x, y, dict(evidence), job.thumbs, params)
                related = None
                if copy is not None:
                    copy, related = other_capture(job, i, j, copy)
            except FileNotFoundError as exc:
                log.warning("thumbnail missing, candidate not verified: %s", exc)
                job.rows.append(_verdict("phash", x, y, evidence, None, None))
                continue
            verdict = _verdict("phash", x, y, evidence, key, copy)
            if related is not None:
                verdict["related"] = related
        if verdict["copy"] is not None:
            stats["found"] += 1
            found.add((i, j))
        job.rows.append(verdict)
    return found


def smooth_retries(
    index: Index, hash_c: dict[tuple[int, int], dict], found: set, params: MatchParams
) -> dict[tuple[int, int], tuple[int, bool]]:
    """Hash candidates with a smooth raster that the hash stage did not confirm, as
    geometric candidates (0 votes): a crop of a sky or a wall keeps its tones (its
    tone hash) but shares too few fine words with its source to be a word candidate,
    and only a fit of its keypoints can place it. The fit is tried mirrored only
    when no upright orientation matched (a smooth picture often looks like its own
    mirror image). Like every candidate, a function of the pair."""
    smooth = index.smooth(params.retrieval)
    out = {}
    for (i, j), orients in hash_c.items():
        if (i, j) in found or not (smooth[i] or smooth[j]) or index.plain[i] or index.plain[j]:
            # a plain scan is a copy by its texture at one of its orientations only
            continue
        out[(i, j)] = (0, all(DIHEDRAL[o][1] for o in orients))
    return out


def _geo_stage(
    job: ChunkJob, cands: dict[tuple[int, int], tuple[int, bool]], skip: set[tuple[int, int]]
) -> None:
    """Crops, small rotations, perspective, colour: word candidates verified by a
    RANSAC homography and the pixel check on the warped overlap."""
    index, params, stats = job.index, job.params, job.stats
    fp = params.fingerprint()
    progress = Progress(len(cands), log, what="geometric candidates")
    for (i, j), (votes, mirrored) in progress.each(sorted(cands.items())):
        if (i, j) in skip:
            continue
        stats["geo_candidates"] += 1
        x, y = index.item(i), index.item(j)
        evidence = [int(votes), bool(mirrored)]
        key = verdict_key("geo", x, y, evidence, fp)
        verdict = job.previous.get(key)
        if verdict is None:
            stats["geo_verified"] += 1
            try:
                # a smooth pair (no shared words, 0 votes) may be aligned on grey levels
                copy, related = _verify_geo(job, x, y, bool(mirrored), dense=votes == 0)
                if copy is not None:
                    copy, related = other_capture(job, i, j, copy)
            except FileNotFoundError as exc:
                log.warning("thumbnail missing, candidate not verified: %s", exc)
                job.rows.append(_verdict("geo", x, y, evidence, None, None))
                continue
            verdict = _verdict("geo", x, y, evidence, key, copy)
            if related is not None:
                verdict["related"] = related
        else:
            stats["reused"] += 1
        stats["geo_found"] += verdict["copy"] is not None
        job.rows.append(verdict)


def _verify_geo(
    job: ChunkJob, x: Item, y: Item, mirrored: bool, dense: bool = False
) -> tuple[dict | None, dict | None]:
    """(copy, related) of a word candidate; at most one of them."""
    fx, fy = job.feats.get(x.sha256), job.feats.get(y.sha256)
    if fx is None or fy is None:
        return None, None

    def side(it: Item, f: dict) -> dict:
        return {"key": it.key, "width": it.width, "height": it.height, "rank": it.rank(), "feat": f}

    try:
        g = verify_geometric(
            side(x, fx),
            side(y, fy),
            lambda: job.thumbs.get(x.sha256),
            lambda: job.thumbs.get(y.sha256),
            job.params.geo,
            mirrored,
            (lambda: job.thumbs.full(x.sha256), lambda: job.thumbs.full(y.sha256))
            if dense
            else None,
        )
    except (np.linalg.LinAlgError, cv2.error, ValueError) as exc:
        # a numerically degenerate fit is no copy; one pair never stops a job
        log.warning("geometric check failed for %s/%s: %s", x.key, y.key, exc)
        return None, None
    if g is None:
        return None, None
    record = geo_copy(g, {x.key: x, y.key: y})
    return (None, record) if g.accepted_by is None else (record, None)


def _carried(index: Index, rows: list[dict], old: np.ndarray) -> dict:
    """Hash candidates of the previous run between rasters that are still there and
    unchanged: their evidence depends on the two rasters only, so it stands."""
    hash_c: dict[tuple[int, int], dict] = {}
    for r in rows:
        if r.get("stage") != "phash" or "pair" not in r or "evidence" not in r:
            continue
        ij = [index.find(k) for k in r["pair"]]
        if any(i is None or not old[i] for i in ij):
            continue
        hash_c[(ij[0], ij[1])] = {o: d for o, d in r["evidence"]}
    return hash_c


Dirs = dict[tuple[int, int], tuple[int, bool]]


def dirs_meta(index: Index, dirs: Dirs) -> dict[str, list]:
    """What a chunk's word searches found, Q(a -> b) for its rasters a (`Index.
    word_search`: every direction, not only the pairs the chunk owns), by pixel hash,
    for the next run (`_carried_dirs`)."""
    out: dict[str, list] = {}
    for (a, b), (v, m) in sorted(dirs.items()):
        out.setdefault(index.key(a), []).append([index.key(b), int(v), bool(m)])
    return out


def _carried_dirs(index: Index, stored: dict[str, list], old: np.ndarray) -> Dirs:
    """The previous run's directions between rasters still there and unchanged."""
    out: Dirs = {}
    for ka, found in stored.items():
        a = index.find(ka)
        if a is None or not old[a]:
            continue
        for kb, v, m in found:
            b = index.find(kb)
            if b is not None and old[b]:
                out[(a, b)] = (int(v), bool(m))
    return out


def recheck(index: Index, dirs: Dirs, gained: np.ndarray, rp: RetrievalParams) -> int:
    """Directions between two rasters that both hold a word which became common since
    they were found, judged again by the pair's definition (in place): unless it
    lets the querying raster cover fewer cells (searched again), such a word only
    takes votes away, so no other pair can have become a candidate. Returns how many
    were judged."""
    todo = [p for p in dirs if gained[p[0]] and gained[p[1]]]
    for a, b in todo:
        ev = index.pair_word(a, b, rp)
        if ev is None:
            del dirs[(a, b)]
        else:
            dirs[(a, b)] = ev
    return len(todo)


def chunk_candidates(
    index: Index,
    lo: int,
    hi: int,
    params: MatchParams,
    old: np.ndarray | None = None,
    rows: list[dict] | None = None,
    since: str | None = None,
    gained: np.ndarray | None = None,
) -> tuple[dict, dict, dict]:
    """The hash and word candidates of the pairs a chunk owns, and what the search
    counted (`counts`: among them `found`, per raster key the rasters its word
    search found when more than a few, `capped`, the rasters it capped, and `dirs`,
    what its word searches found, kept for the next run; `hash_capped`, the rasters
    whose hash candidates `max_hash_candidates` capped).

    With `old` (which items are unchanged since the chunk's previous run and hold no
    word that stopped being common) and that run's rows, only pairs involving a new
    raster are searched: when the index job already searched them since that run's
    generation (`since`), they are read from the index; else new rasters of the
    chunk are searched against everything, unchanged ones against the new rasters
    only. The directions found before between two rasters that both hold a word
    which became common (`gained`) are judged again (`recheck`), and a raster such
    a word lets cover fewer cells is searched again. Both candidate
    criteria are functions of the pair, so this equals a full search; so does the
    cap: a raster it may bite now (its earlier count, kept in the rows' meta, plus
    its new finds above `max_candidates`) is searched again in full, and a raster
    whose hash candidates were capped has them searched again in full too.
    """
    rp = params.retrieval
    geo = params.geo is not None
    plain = index.plain
    mine = np.arange(lo, hi, dtype=np.int64)
    found = np.zeros(hi - lo, np.int64)
    counts: dict = {"queries_full": hi - lo, "queries_delta": 0, "stored_delta": False}
    before = rows[0].get("meta", {}) if rows else {}
    dirs: Dirs = {}
    if old is None or rows is None or (geo and "dirs" not in before):
        hash_c = index.hash_candidates(mine, rp)
        if geo:
            dirs = index.word_search(mine, rp)
            found = _found(index, lo, hi)
    else:
        hash_c = _carried(index, rows, old)
        if geo:
            dirs = _carried_dirs(index, before["dirs"], old)
            counts["rechecked"] = recheck(index, dirs, gained, rp) if gained is not None else 0
        new = index.delta_since(since)
        if new is not None and np.array_equal(~new, old):
            dh, dd, found = index.delta_candidates(lo, hi)
            hash_c.update(dh)
            if geo:
                dirs.update(dd)
            counts.update(queries_full=0, queries_delta=0, stored_delta=True)
        else:
            fresh, kept = mine[~old[lo:hi]], mine[old[lo:hi]]
            added = np.flatnonzero(~old)
            counts.update(queries_full=len(fresh), queries_delta=len(kept))
            hash_c.update(index.hash_candidates(fresh, rp))
            hash_c.update(index.hash_candidates(kept, rp, targets=added))
            if geo:
                dirs.update(index.word_search(fresh, rp))
                found = _found(index, lo, hi)
                if len(added) and len(kept):
                    dirs.update(index.word_search(kept, rp, index.postings_of(added)))
                    found += _found(index, lo, hi)
        if geo:
            # an unchanged raster's earlier finds (a bound: some may be gone since)
            earlier = before.get("found", {})
            for k in range(lo, hi):
                if old[k]:
                    found[k - lo] += earlier.get(index.key(k), FOUND_FLOOR)
            heavy = [
                k
                for k in range(lo, hi)
                if old[k]
                and (found[k - lo] > rp.max_candidates or index.key(k) in before.get("capped", ()))
            ]
            # rasters a word becoming common lets cover fewer cells: their own search
            # may find more now
            dropped = _need_dropped(index, mine[old[lo:hi]], gained, since, rp)
            counts["need_dropped"] = len(dropped)
            heavy = sorted(set(heavy) | set(dropped.tolist()))
            if heavy:
                dirs = _search_again(index, np.array(heavy, np.int64), dirs, rp)
                found[np.array(heavy) - lo] = [index.found_counts.get(k, 0) for k in heavy]
        # a raster whose hash candidates were capped kept only some: all of them again
        at = (index.find(key) for key in before.get("hash_capped", ()))
        again = sorted(k for k in at if k is not None and lo <= k < hi and old[k])
        if again:
            redo = set(again)
            hash_c = {p: ev for p, ev in hash_c.items() if p[0] not in redo}
            hash_c.update(index.hash_candidates(np.array(again, np.int64), rp))
    # the pairs' own tests (ownership, the word evidence of a hash pair) see every
    # hash candidate; only the capped ones are verified as such
    hash_all = hash_c
    hash_c, bitten = cap_hash(hash_all, rp.max_hash_candidates)
    counts["hash_capped"] = [index.key(i) for i in bitten]
    word_c: dict[tuple[int, int], tuple[int, bool]] = {}
    if geo:
        word_c = {p: ev[:2] for p, ev in index.owned(dirs, rp).items()}
        # a hash candidate this chunk owns that only the other raster's search found
        word_c.update(index.reverse_words(hash_all, word_c, rp))
        # a plain scan's keypoints are its grain: it is matched by its texture alone
        word_c = {(i, j): v for (i, j), v in word_c.items() if not (plain[i] or plain[j])}
    counts["dirs"] = dirs
    counts["found"] = {
        index.key(lo + k): int(c) for k, c in enumerate(found.tolist()) if c >= FOUND_FLOOR
    }
    counts["capped"] = sorted(
        index.key(lo + k) for k in np.flatnonzero(found > rp.max_candidates).tolist()
    )
    return hash_c, word_c, counts


# finds of a raster's word search below this are not kept (it stands for them)
FOUND_FLOOR = 16


def _found(index: Index, lo: int, hi: int) -> np.ndarray:
    """How many rasters the last word search found for each raster of [lo, hi)."""
    out = np.zeros(hi - lo, np.int64)
    for a, c in index.found_counts.items():
        if lo <= a < hi:
            out[a - lo] = c
    return out


def _search_again(index: Index, heavy: np.ndarray, dirs: Dirs, rp: RetrievalParams) -> Dirs:
    """Directions with the rasters `heavy` searched in full again, capped as a fresh
    run would."""
    h = set(heavy.tolist())
    out = {p: ev for p, ev in dirs.items() if p[0] not in h}
    out.update(index.word_search(heavy, rp))
    return out


def _need_dropped(
    index: Index,
    items: np.ndarray,
    gained: np.ndarray | None,
    since: str | None,
    rp: RetrievalParams,
) -> np.ndarray:
    """Those of `items` holding a word that became common since generation `since`
    and needing fewer covered cells because of it (`Index.need_dropped`)."""
    if gained is None or len(items) == 0:
        return np.zeros(0, np.int64)
    items = items[gained[items]]
    return items[index.need_dropped(items, since, rp)]


def _unchanged(index: Index, since: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(rasters whose own searches stand since generation `since`: the same rasters,
    holding no word that stopped being common; rasters holding a word that became
    common), or (None, None) when that is not known."""
    old = index.unchanged_since(since)
    change = index.common_change(since)
    if old is None or change is None:
        return None, None
    return old & ~change[1], change[0]


def run_match_chunk(
    index_dir: str | os.PathLike,
    chunk: int,
    n_chunks: int,
    output: str | os.PathLike,
    thumb_store: str | os.PathLike,
    feature_store: str | os.PathLike,
    params: MatchParams,
    feature_fp: str = "",
    repair: Callable[[str], bool] | None = None,
    rebuild: Callable[[str], dict | None] | None = None,
) -> dict:
    """Bring one chunk's verdicts up to date (`repair`/`rebuild`: see ThumbCache
    and FeatureCache).

    Earlier verdicts are reused by key; when the previous output was made for the same
    chunk of the same settings and its index generation is still known, only pairs
    involving rasters added or changed since then are searched.
    """
    index = Index(index_dir)
    lo, hi = index.chunk_range(chunk, n_chunks)
    prev_rows = read_jsonl(output)
    meta = {
        "gen": index.meta["gen"],
        "chunk": chunk,
        "n_chunks": n_chunks,
        "params": params.fingerprint(),
    }
    old, since, gained = None, None, None
    if prev_rows and "meta" in prev_rows[0]:
        pm = prev_rows[0]["meta"]
        if {k: pm.get(k) for k in ("chunk", "n_chunks", "params")} == {
            k: meta[k] for k in ("chunk", "n_chunks", "params")
        }:
            since = pm.get("gen")
            old, gained = _unchanged(index, since)
            stored = index.delta_since(since)
            if stored is not None and gained is not None:
                old = ~stored
    job = ChunkJob(
        index,
        params,
        ThumbCache(thumb_store, max_side=params.verify.compare_size, repair=repair),
        FeatureCache(feature_store, feature_fp, rebuild=rebuild),
        {r["key"]: r for r in prev_rows if r.get("key")},
    )
    t0 = time.perf_counter()
    hash_c, word_c, counts = chunk_candidates(index, lo, hi, params, old, prev_rows, since, gained)
    # kept for the next run's searches and cap (chunk_candidates), logged when it bites
    meta["found"], meta["capped"] = counts.pop("found"), counts.pop("capped")
    meta["hash_capped"] = counts.pop("hash_capped")
    meta["dirs"] = dirs_meta(index, counts.pop("dirs"))
    if meta["hash_capped"]:
        log.warning(
            "%d rasters have more than %d hash candidates among the later rasters; the "
            "%d nearest by pHash were kept for each: %s",
            len(meta["hash_capped"]),
            params.retrieval.max_hash_candidates,
            params.retrieval.max_hash_candidates,
            ", ".join(meta["hash_capped"][:5]),
        )
    if meta["capped"]:
        log.warning(
            "%d rasters have more than %d word candidates; the %d with the most votes were "
            "kept for each: %s",
            len(meta["capped"]),
            params.retrieval.max_candidates,
            params.retrieval.max_candidates,
            ", ".join(meta["capped"][:5]),
        )
    job.stats.update(
        capped=len(meta["capped"]),
        hash_capped=len(meta["hash_capped"]),
        retrieval_s=round(time.perf_counter() - t0, 3),
        items=index.n,
        chunk_items=hi - lo,
        delta=old is not None,
        **counts,
        candidates=0,
        verified=0,
        reused=0,
        found=0,
        geo_candidates=0,
        geo_verified=0,
        geo_found=0,
    )
    found = _hash_stage(job, hash_c)
    if params.geo is not None:
        _geo_stage(job, {**smooth_retries(index, hash_c, found, params), **word_c}, found)
    write_jsonl(output, [{"meta": meta}, *job.rows])
    return job.stats
