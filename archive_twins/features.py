"""Local features (RootSIFT on thumbnails), a fixed visual vocabulary, and their store.

Features are what the hash stage cannot use: they survive crops, small rotations,
perspective and colour changes. The decode_shard job extracts them from the
thumbnails of rasters never seen before, keeps them per raster and bundles them per
shard in `{results}/features/shard-NNNN.npz` for the matching jobs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from .util import atomic_open, read_jsonl

VOCAB_PATH = Path(__file__).parent / "data" / "vocab-1024.npy"

# A mirror image's SIFT descriptor is the original's with the 4x4 grid's rows
# reversed and the 8 orientation bins negated (found empirically for OpenCV's SIFT).
_MIRROR_PERM = np.arange(128).reshape(4, 4, 8)[::-1, :, (-np.arange(8)) % 8].reshape(128).copy()


@dataclass(frozen=True)
class FeatureParams:
    """Extraction settings (part of the cache key)."""

    max_side: int = 512
    n_features: int = 400
    # Below OpenCV's default 0.04: smooth images (a retina, a sky) still get keypoints;
    # the strongest n_features are kept either way.
    contrast_threshold: float = 0.015

    def fingerprint(self) -> str:
        """Changing these re-extracts every raster."""
        return (
            f"sift2:{self.max_side}:{self.n_features}:{self.contrast_threshold}:{VOCAB_PATH.name}"
        )


def root_sift(desc: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman): L1-normalise, square root; float32."""
    d = desc.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    return np.sqrt(d)


def mirror_descriptors(desc: np.ndarray) -> np.ndarray:
    """Descriptors as they would be computed on the left-right mirrored image."""
    return desc[:, _MIRROR_PERM]


def extract(thumb_rgb: np.ndarray, full_wh: tuple[int, int], params: FeatureParams) -> dict:
    """SIFT keypoints (in full-resolution pixel coordinates) and uint8 descriptors."""
    grey = cv2.cvtColor(thumb_rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    f = min(1.0, params.max_side / max(h, w))
    if f < 1:
        grey = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    sift = cv2.SIFT_create(nfeatures=params.n_features, contrastThreshold=params.contrast_threshold)
    kps, desc = sift.detectAndCompute(grey, None)
    if desc is None or not kps:
        return {"xy": np.zeros((0, 2), np.float32), "desc": np.zeros((0, 128), np.uint8)}
    kps, desc = kps[: params.n_features], desc[: params.n_features]
    sx, sy = full_wh[0] / grey.shape[1], full_wh[1] / grey.shape[0]
    xy = np.array([k.pt for k in kps], np.float32)
    xy = (xy + 0.5) * np.array([sx, sy], np.float32)  # pixel centres -> continuous coords
    return {"xy": xy, "desc": np.clip(np.rint(desc), 0, 255).astype(np.uint8)}


def describe(thumb_rgb: np.ndarray, full_wh: tuple[int, int], params: FeatureParams) -> dict:
    """Everything the geometric stage keeps of a raster: keypoints, descriptors and
    the visual words of the image and of its mirror image."""
    f = extract(thumb_rgb, full_wh, params)
    f["words"] = quantise(f["desc"])
    f["mwords"] = quantise(mirror_descriptors(f["desc"]))
    return f


@cache
def vocabulary() -> np.ndarray:
    """The fixed visual vocabulary (RootSIFT centroids); shipped with the package so
    every machine, shard and rerun quantises the same way."""
    return np.load(VOCAB_PATH).astype(np.float32)


def quantise(desc: np.ndarray) -> np.ndarray:
    """Nearest visual word of each (uint8 SIFT) descriptor."""
    if len(desc) == 0:
        return np.zeros(0, np.int16)
    v = vocabulary()
    d = root_sift(desc)
    # argmin ||d - v||^2 = argmax (d.v - |v|^2/2)
    scores = d @ v.T - 0.5 * (v * v).sum(axis=1)[None, :]
    return scores.argmax(axis=1).astype(np.int16)


def build_vocabulary(k: int = 1024, seed: int = 0) -> np.ndarray:
    """k-means on RootSIFT descriptors of the bundled photographs (run once, shipped)."""
    from .demo import PHOTOS, photo

    rng = np.random.default_rng(seed)
    descs = []
    params = FeatureParams(max_side=800, n_features=3000)
    names = [*PHOTOS, "motorcycle_left", "clock", "cell", "page", "text", "horse"]
    for name in names:
        arr = photo(name)
        for scale in (1.0, 0.6):
            h, w = arr.shape[:2]
            img = cv2.resize(arr, (round(w * scale), round(h * scale)), cv2.INTER_AREA)
            desc = extract(img, (w, h), params)["desc"]
            descs.append(desc)
            descs.append(mirror_descriptors(desc))
    data = root_sift(np.concatenate(descs))
    data = data[rng.permutation(len(data))]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    cv2.setRNGSeed(seed)
    _, _, centres = cv2.kmeans(data, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    return centres.astype(np.float16)


def load_features(path: str | os.PathLike) -> dict[str, dict]:
    """Per-raster features of one shard file: {pixel_hash: {xy, desc, words, mwords}}."""
    try:
        z = np.load(path, allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError):
        return {}
    if "params" not in z.files:
        return {}
    # NpzFile reads an array from the archive on every z[name]: read each one once.
    keys, off, fp = z["keys"], z["offsets"], str(z["params"])
    arrays = {name: z[name] for name in ("xy", "desc", "words", "mwords")}
    out = {}
    for i, key in enumerate(keys.tolist()):
        s, e = off[i], off[i + 1]
        out[key] = {name: arr[s:e] for name, arr in arrays.items()} | {"params": fp}
    return out


def save_features(path: str | os.PathLike, feats: dict[str, dict], fp: str) -> None:
    """Write one shard's features (concatenated arrays + offsets) atomically."""
    keys = sorted(feats)
    sizes = [len(feats[k]["xy"]) for k in keys]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def cat(name: str, shape: tuple, dtype: type) -> np.ndarray:
        if not keys:
            return np.zeros(shape, dtype)
        return np.concatenate([feats[k][name] for k in keys]).astype(dtype)

    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            keys=np.array(keys, dtype="U64"),
            offsets=offsets,
            xy=cat("xy", (0, 2), np.float32),
            desc=cat("desc", (0, 128), np.uint8),
            words=cat("words", (0,), np.int16),
            mwords=cat("mwords", (0,), np.int16),
            params=np.array(fp),
        )


def _raster_path(store: Path, key: str) -> Path:
    return store / "by-raster" / key[:2] / f"{key}.npz"


def _load_raster(path: Path, fp: str) -> dict | None:
    try:
        z = np.load(path, allow_pickle=False)
        if str(z["params"]) != fp:
            return None
        return {name: z[name] for name in ("xy", "desc", "words", "mwords")} | {"params": fp}
    except (FileNotFoundError, ValueError, OSError, KeyError):
        return None


def run_features_shard(
    records: str | os.PathLike,
    output: str | os.PathLike,
    store: str | os.PathLike,
    params: FeatureParams,
    raster_store: str | os.PathLike | None = None,
    enabled: bool = True,
) -> dict:
    """Bring a shard's feature bundle up to date; extract only rasters never seen.

    Features are also kept per raster (`raster_store/by-raster/`), so a raster that
    moves to another shard, or a byte copy filed elsewhere, is not extracted again.
    """
    fp = params.fingerprint()
    rstore = Path(raster_store) if raster_store else Path(output).parent
    previous = {k: v for k, v in load_features(output).items() if v["params"] == fp}
    feats: dict[str, dict] = {}
    stats = {"rasters": 0, "reused": 0, "extracted": 0, "missing_thumb": 0}
    if not enabled:  # geometric stage switched off: an empty bundle
        save_features(output, {}, fp)
        return stats
    for r in read_jsonl(records):
        key = r.get("pixel_hash")
        if r["status"] != "ok" or not key or key in feats:
            continue
        stats["rasters"] += 1
        cached = previous.get(key) or _load_raster(_raster_path(rstore, key), fp)
        if cached is not None:
            feats[key] = cached
            stats["reused"] += 1
            continue
        thumb = Path(store) / r["sha256"][:2] / f"{r['sha256']}.jpg"
        bgr = cv2.imread(os.fspath(thumb), cv2.IMREAD_COLOR)
        if bgr is None:
            stats["missing_thumb"] += 1
            continue
        f = describe(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (r["width"], r["height"]), params)
        with atomic_open(_raster_path(rstore, key), "wb") as fh:
            np.savez(fh, **f, params=np.array(fp))
        feats[key] = f
        stats["extracted"] += 1
    save_features(output, feats, fp)
    return stats


if __name__ == "__main__":
    out = build_vocabulary()
    VOCAB_PATH.parent.mkdir(exist_ok=True)
    np.save(VOCAB_PATH, out)
    print(f"wrote {VOCAB_PATH} {out.shape}")
