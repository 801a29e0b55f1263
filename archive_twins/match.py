"""Matching jobs: find copies between the images of two blocks of shards.

Each job loads the records of its two blocks, keeps one item per distinct page-0
raster (files with the same pixels are already reported as identical or same-pixel
sets), proposes candidates by Hamming distance between dihedral pHashes, and
verifies every candidate on pixels before reporting it. Verified and rejected
candidates are remembered in the job's output, so a rerun after an archive change
only verifies pairs it has not seen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .features import load_features
from .geometry import GeoParams, shortlist, verify_geometric
from .hashing import DIHEDRAL, hamming_search, hashes_to_array, inverse
from .util import read_jsonl, write_jsonl
from .verify import (
    VerifyParams,
    aspect_matches,
    dihedral_homography,
    homography_json,
    oriented_size,
    photometric_change,
    verify_dihedral,
)

log = logging.getLogger("archive_twins.match")

FORMAT_RANK = {"tiff": 3, "png": 2, "webp": 1, "jp2k": 1, "jpeg": 0, "gif": 0}


@dataclass(frozen=True)
class MatchParams:
    """Candidate threshold and verification thresholds of the hash stage."""

    max_hamming: int = 12
    max_orientations: int = 2
    verify: VerifyParams = VerifyParams()

    def fingerprint(self) -> str:
        """Part of the pair cache key: changing a threshold re-verifies."""
        return f"h1:{self.max_hamming}:{self.max_orientations}:{self.verify}"


@dataclass(frozen=True)
class Item:
    """One distinct page-0 raster (a set of files with identical pixels)."""

    key: str  # pixel hash
    sha256: str
    width: int
    height: int
    bits: int
    format: str
    size_bytes: int
    phash: tuple[str, ...]

    def rank(self) -> tuple:
        """Which of two copies is the source: more pixels, deeper, lossless, larger."""
        return (
            self.width * self.height,
            self.bits or 0,
            FORMAT_RANK.get(self.format, 0),
            self.size_bytes or 0,
            self.key,
        )


def load_items(record_files: Iterable[str | os.PathLike]) -> list[Item]:
    """Items of the given shard records: status ok, one per pixel hash."""
    items: dict[str, Item] = {}
    for path in record_files:
        for r in read_jsonl(path):
            if r["status"] != "ok" or not r.get("phash") or not r.get("pixel_hash"):
                continue
            it = Item(
                key=r["pixel_hash"],
                sha256=r["sha256"],
                width=r["width"],
                height=r["height"],
                bits=r["bits_per_sample"],
                format=r["format"],
                size_bytes=r["size_bytes"],
                phash=tuple(r["phash"]),
            )
            old = items.get(it.key)
            if old is None or (it.size_bytes, it.sha256) > (old.size_bytes, old.sha256):
                items[it.key] = it
    return sorted(items.values(), key=lambda i: i.key)


def candidates(
    a: list[Item], b: list[Item], same: bool, max_dist: int
) -> dict[tuple[str, str], dict[int, int]]:
    """Candidate pairs (key_x < key_y) -> {orientation x->y: Hamming distance}.

    Both directions are searched (x upright against y's 8 orientations and back),
    since pHash is only approximately equivariant under resampling.
    """
    out: dict[tuple[str, str], dict[int, int]] = {}
    if not a or not b:
        return out
    ha, hb = hashes_to_array([i.phash for i in a]), hashes_to_array([i.phash for i in b])
    for qs, idx, qa, ia, flip in ((a, b, ha, hb, False), (b, a, hb, ha, True)):
        if same and flip:
            break  # within one block, x->y and y->x are both covered by one pass
        qi, ii, oi, di = hamming_search(qa[:, 0], ia, max_dist)
        for q, i, o, d in zip(qi.tolist(), ii.tolist(), oi.tolist(), di.tolist(), strict=True):
            x, y = qs[q], idx[i]
            if x.key == y.key:
                continue
            # the hit says: x upright ~ y in orientation o, i.e. x = o(y)
            o_y_to_x = o
            if x.key < y.key:
                pair, o_xy = (x.key, y.key), inverse(o_y_to_x)
            else:
                pair, o_xy = (y.key, x.key), o_y_to_x
            seen = out.setdefault(pair, {})
            seen[o_xy] = min(d, seen.get(o_xy, 99))
    return out


class ThumbCache:
    """Thumbnails of the content store, decoded once per job and kept at the size
    verification works at (≤ max_side), so 2,048 cached images stay under 400 MB."""

    def __init__(self, store: str | os.PathLike, max_side: int = 256, size: int = 2048):
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
    k_near = round(g["angle"] / 90) % 4
    o = 4 * g["mirrored"] + k_near
    dihedral_h = dihedral_homography((src.width, src.height), (dst.width, dst.height), o)
    corners = np.array(
        [[0, 0, 1], [src.width, 0, 1], [0, src.height, 1], [src.width, src.height, 1]], float
    ).T
    fitted = g["hmat"] @ corners
    fitted = fitted[:2] / fitted[2]
    exact = dihedral_h @ corners
    err = np.abs(fitted - exact[:2]).max() / max(dst.width, dst.height)
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


def match_block(
    items_a: list[Item],
    items_b: list[Item],
    same: bool,
    store: str | os.PathLike,
    params: MatchParams,
    previous: dict[tuple, dict] | None = None,
    feats: dict[str, dict] | None = None,
    geo: GeoParams | None = None,
) -> tuple[list[dict], dict]:
    """Verified copy relations between two blocks (or within one), plus counts.

    Stage 1 (phash) finds resize/rotate90i/mirror copies; stage 2 (sift), when
    features are given, looks for crops and other deformations among the pairs stage 1
    did not find. `previous` maps (pair, stage) of earlier verdicts to reuse.
    """
    previous = previous or {}
    by_key = {i.key: i for i in items_a} | {i.key: i for i in items_b}
    cands = candidates(items_a, items_b, same, params.max_hamming)
    thumbs = ThumbCache(store, max_side=params.verify.compare_size)
    rows: list[dict] = []
    stats = {
        "candidates": len(cands),
        "verified": 0,
        "reused": 0,
        "found": 0,
        "geo_candidates": 0,
        "geo_verified": 0,
        "geo_found": 0,
    }
    fp = params.fingerprint()
    found_pairs = set()
    for (kx, ky), orients in sorted(cands.items()):
        old = previous.get(((kx, ky), "phash"))
        if old is not None and old.get("params") == fp:
            stats["reused"] += 1
            verdict = old
        else:
            stats["verified"] += 1
            try:
                found = verify_candidate(by_key[kx], by_key[ky], orients, thumbs, params)
            except FileNotFoundError as exc:
                log.warning("thumbnail missing, candidate skipped: %s", exc)
                continue
            verdict = {"pair": [kx, ky], "stage": "phash", "params": fp, "copy": found}
        if verdict["copy"] is not None:
            stats["found"] += 1
            found_pairs.add((kx, ky))
        rows.append(verdict)
    if geo is None or feats is None:
        return rows, stats
    gfp = geo.fingerprint()
    fa = [i for i in items_a if i.key in feats]
    fb = fa if same else [i for i in items_b if i.key in feats]
    sl = shortlist(
        [i.key for i in fa],
        [feats[i.key] for i in fa],
        [i.key for i in fb],
        [feats[i.key] for i in fb],
        same,
        geo,
    )
    for pair, (_sim, mirror_hint) in sorted(sl.items()):
        if pair in found_pairs:
            continue
        stats["geo_candidates"] += 1
        old = previous.get((pair, "geo"))
        if old is not None and old.get("params") == gfp:
            stats["reused"] += 1
            verdict = old
        else:
            stats["geo_verified"] += 1
            x, y = by_key[pair[0]], by_key[pair[1]]
            try:
                g = verify_geometric(
                    {
                        "key": x.key,
                        "width": x.width,
                        "height": x.height,
                        "rank": x.rank(),
                        "feat": feats[x.key],
                    },
                    {
                        "key": y.key,
                        "width": y.width,
                        "height": y.height,
                        "rank": y.rank(),
                        "feat": feats[y.key],
                    },
                    thumbs.get(x.sha256),
                    thumbs.get(y.sha256),
                    geo,
                    mirror_hint,
                )
            except FileNotFoundError as exc:
                log.warning("thumbnail missing, candidate skipped: %s", exc)
                continue
            except (np.linalg.LinAlgError, cv2.error, ValueError) as exc:
                # a numerically degenerate fit is no copy; one pair never stops a job
                log.warning("geometric check failed for %s: %s", pair, exc)
                g = None
            copy = geo_copy(g, by_key) if g is not None else None
            verdict = {"pair": list(pair), "stage": "geo", "params": gfp, "copy": copy}
        stats["geo_found"] += verdict["copy"] is not None
        rows.append(verdict)
    return rows, stats


def block_of(shard: int, n_shards: int, n_blocks: int) -> int:
    """Matching block of a shard: contiguous ranges of shards."""
    return shard * n_blocks // n_shards


def shards_of_block(block: int, n_shards: int, n_blocks: int) -> list[int]:
    """Shards in a matching block."""
    return [s for s in range(n_shards) if block_of(s, n_shards, n_blocks) == block]


def run_match_block(
    records_a: list[str],
    records_b: list[str],
    same: bool,
    output: str | os.PathLike,
    store: str | os.PathLike,
    params: MatchParams,
    features: list[str] | None = None,
    geo: GeoParams | None = None,
) -> dict:
    """Bring one block pair's output up to date (reusing its previous verdicts)."""
    previous = {(tuple(r["pair"]), r.get("stage", "phash")): r for r in read_jsonl(output)}
    items_a = load_items(records_a)
    items_b = items_a if same else load_items(records_b)
    feats = None
    if features is not None:
        feats = {}
        for path in features:
            feats.update(load_features(path))
    rows, stats = match_block(items_a, items_b, same, store, params, previous, feats, geo)
    write_jsonl(output, rows)
    stats["items_a"], stats["items_b"] = len(items_a), len(items_b)
    return stats
