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
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .dihedral import DIHEDRAL, dihedral_homography, inverse, nearest_dihedral, oriented_size
from .features import load_raster
from .geometry import GeoParams, verify_geometric
from .retrieval import Index, Item, RetrievalParams
from .util import read_jsonl, write_jsonl
from .verify import (
    VerifyParams,
    aspect_matches,
    homography_json,
    photometric_change,
    verify_dihedral,
)

log = logging.getLogger("archive_twins.match")


@dataclass(frozen=True)
class MatchParams:
    """Everything a verdict depends on besides the two rasters."""

    retrieval: RetrievalParams = RetrievalParams()
    max_orientations: int = 2
    verify: VerifyParams = VerifyParams()
    geo: GeoParams | None = GeoParams()
    # fingerprints of the thumbnails and features the verdicts are computed from
    inputs: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Part of every verdict's cache key: changing any setting re-verifies."""
        d = asdict(self)
        d["retrieval"] = self.retrieval.fingerprint()
        raw = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha1(raw.encode()).hexdigest()[:16]


class ThumbCache:
    """Thumbnails of the content store, decoded once per job and kept at the size
    verification works at (≤ max_side), so 1,024 cached images stay under 200 MB."""

    def __init__(self, store: str | os.PathLike, max_side: int = 256, size: int = 1024):
        self.store = Path(store)
        self.max_side = max_side
        self.get = lru_cache(maxsize=size)(self._load)

    def _load(self, sha: str) -> np.ndarray:
        path = self.store / sha[:2] / f"{sha}.jpg"
        arr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
        if arr is None:
            raise FileNotFoundError(path)
        h, w = arr.shape[:2]
        f = self.max_side / max(h, w)
        if f < 1:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


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
        if ok and (best is None or m["max_block_ratio"] < best[2]["max_block_ratio"]):
            best = (o, dist, m)
    if best is None:
        return None
    o, dist, m = best
    k, mirrored = DIHEDRAL[o]
    ow, _ = oriented_size(src.width, src.height, o)
    colour = photometric_change(m, params.verify)
    if colour or (k == 0 and mirrored):
        kind = "other"
    elif k:
        kind = "rotate90i"
    else:
        kind = "resize"
    hom = dihedral_homography((src.width, src.height), (dst.width, dst.height), o)
    return {
        "key1": src.key,
        "key2": dst.key,
        "kind": kind,
        "scale": round(dst.width / ow, 6),
        "angle": 90 * k,
        "mirrored": mirrored,
        "crop_x": 0.0,
        "crop_y": 0.0,
        "crop_w": float(src.width),
        "crop_h": float(src.height),
        "homography": homography_json(hom),
        "inliers": None,
        "score": round(m["corr"], 4),
        "method": "phash",
        "hamming": dist,
        "colour_change": colour,
        "area_fraction": 1.0,
        "metrics": {name: round(v, 4) for name, v in m.items()},
    }


def geo_copy(g: dict, by_key: dict[str, Item]) -> dict:
    """A geometric verdict in the copy-record format; dihedral-looking fits are
    reported as resize/rotate90i with their exact parameters."""
    src, dst = by_key[g["key1"]], by_key[g["key2"]]
    src_wh, dst_wh = (src.width, src.height), (dst.width, dst.height)
    o, err = nearest_dihedral(g["hmat"], src_wh, dst_wh, g["angle"], bool(g["mirrored"]))
    k_near = DIHEDRAL[o][0]
    dihedral_h = dihedral_homography(src_wh, dst_wh, o)
    near_dihedral = err < 0.01 and g["area_fraction"] > 0.98
    if near_dihedral:
        ow, _ = oriented_size(src.width, src.height, o)
        hom, scale, angle, crop = (
            dihedral_h,
            dst.width / ow,
            90 * k_near,
            (0.0, 0.0, float(src.width), float(src.height)),
        )
        mirror_only = k_near == 0 and g["mirrored"]
        kind = (
            "other" if g["colour_change"] or mirror_only else ("rotate90i" if k_near else "resize")
        )
    else:
        hom, scale, angle, crop, kind = g["hmat"], g["scale"], g["angle"], g["crop"], "other"
    return {
        "key1": src.key,
        "key2": dst.key,
        "kind": kind,
        "scale": round(float(scale), 6),
        "angle": round(float(angle), 3) % 360,
        "mirrored": int(g["mirrored"]),
        "crop_x": round(crop[0], 2),
        "crop_y": round(crop[1], 2),
        "crop_w": round(crop[2], 2),
        "crop_h": round(crop[3], 2),
        "homography": homography_json(hom),
        "inliers": g["inliers"],
        "score": round(g["score"], 4),
        "method": "sift" if g["accepted_by"] == "pixels" else "sift-geometry",
        "hamming": None,
        "colour_change": bool(g["colour_change"]),
        "area_fraction": round(crop[2] * crop[3] / (src.width * src.height), 4),
        "metrics": {name: round(float(v), 4) for name, v in g["metrics"].items()},
    }


class FeatureCache:
    """Full features of file contents, loaded on demand and kept for the most
    recently used `size` contents (with their RootSIFT arrays), so memory does not
    grow with the archive."""

    def __init__(self, store: str | os.PathLike, fp: str, size: int = 512):
        self.store, self.fp, self.size = store, fp, size
        self.cache: OrderedDict[str, dict | None] = OrderedDict()

    def get(self, sha: str) -> dict | None:
        """Features of a file content, or None if they were never extracted."""
        if sha in self.cache:
            self.cache.move_to_end(sha)
            return self.cache[sha]
        f = load_raster(self.store, sha, self.fp)
        self.cache[sha] = f
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
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
    lo: int
    hi: int
    params: MatchParams
    thumbs: ThumbCache
    feats: FeatureCache
    previous: dict[str, dict]
    rows: list[dict] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


def _hash_stage(job: ChunkJob) -> set[tuple[int, int]]:
    """Resize / rotate90i / mirror: pHash candidates verified on aligned pixels."""
    index, params, thumbs, previous, rows, stats = (
        job.index,
        job.params,
        job.thumbs,
        job.previous,
        job.rows,
        job.stats,
    )
    fp = params.fingerprint()
    found = set()
    cands = index.hash_candidates(job.lo, job.hi, params.retrieval.max_hamming)
    stats["candidates"] = len(cands)
    for (i, j), orients in sorted(cands.items()):
        x, y = index.item(i), index.item(j)
        evidence = sorted(orients.items())
        key = verdict_key("phash", x, y, evidence, fp)
        verdict = previous.get(key)
        if verdict is not None:
            stats["reused"] += 1
        else:
            stats["verified"] += 1
            try:
                found_copy = verify_candidate(x, y, orients, thumbs, params)
            except FileNotFoundError as exc:
                log.warning("thumbnail missing, candidate skipped: %s", exc)
                continue
            verdict = {"pair": [x.key, y.key], "stage": "phash", "key": key, "copy": found_copy}
        if verdict["copy"] is not None:
            stats["found"] += 1
            found.add((i, j))
        rows.append(verdict)
    return found


def _geo_stage(job: ChunkJob, skip: set[tuple[int, int]]) -> None:
    """Crops, small rotations, perspective, colour: word candidates verified by a
    RANSAC homography and the pixel check on the warped overlap."""
    index, params, thumbs, feats, previous, rows, stats = (
        job.index,
        job.params,
        job.thumbs,
        job.feats,
        job.previous,
        job.rows,
        job.stats,
    )
    fp = params.fingerprint()
    cands = index.word_candidates(job.lo, job.hi, params.retrieval)
    for (i, j), (votes, mirrored) in sorted(cands.items()):
        if (i, j) in skip:
            continue
        stats["geo_candidates"] += 1
        x, y = index.item(i), index.item(j)
        key = verdict_key("geo", x, y, [votes, mirrored], fp)
        verdict = previous.get(key)
        if verdict is not None:
            stats["reused"] += 1
        else:
            stats["geo_verified"] += 1
            copy = None
            fx, fy = feats.get(x.sha256), feats.get(y.sha256)
            if fx is not None and fy is not None:
                try:
                    g = verify_geometric(
                        {
                            "key": x.key,
                            "width": x.width,
                            "height": x.height,
                            "rank": x.rank(),
                            "feat": fx,
                        },
                        {
                            "key": y.key,
                            "width": y.width,
                            "height": y.height,
                            "rank": y.rank(),
                            "feat": fy,
                        },
                        thumbs.get(x.sha256),
                        thumbs.get(y.sha256),
                        params.geo,
                        mirrored,
                    )
                except FileNotFoundError as exc:
                    log.warning("thumbnail missing, candidate skipped: %s", exc)
                    continue
                except (np.linalg.LinAlgError, cv2.error, ValueError) as exc:
                    # a numerically degenerate fit is no copy; one pair never stops a job
                    log.warning("geometric check failed for %s/%s: %s", x.key, y.key, exc)
                    g = None
                copy = geo_copy(g, {x.key: x, y.key: y}) if g is not None else None
            verdict = {"pair": [x.key, y.key], "stage": "geo", "key": key, "copy": copy}
        stats["geo_found"] += verdict["copy"] is not None
        rows.append(verdict)


def run_match_chunk(
    index_dir: str | os.PathLike,
    chunk: int,
    n_chunks: int,
    output: str | os.PathLike,
    thumb_store: str | os.PathLike,
    feature_store: str | os.PathLike,
    params: MatchParams,
    feature_fp: str = "",
) -> dict:
    """Bring one chunk's verdicts up to date (reusing earlier verdicts by key)."""
    index = Index(index_dir)
    lo, hi = index.chunk_range(chunk, n_chunks)
    previous = {r["key"]: r for r in read_jsonl(output) if "key" in r}
    job = ChunkJob(
        index,
        lo,
        hi,
        params,
        ThumbCache(thumb_store, max_side=params.verify.compare_size),
        FeatureCache(feature_store, feature_fp),
        previous,
    )
    job.stats.update(
        items=index.n,
        chunk_items=hi - lo,
        candidates=0,
        verified=0,
        reused=0,
        found=0,
        geo_candidates=0,
        geo_verified=0,
        geo_found=0,
    )
    found = _hash_stage(job)
    if params.geo is not None:
        _geo_stage(job, found)
    write_jsonl(output, job.rows)
    return job.stats
