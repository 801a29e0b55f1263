"""Local features (RootSIFT on thumbnails), a fixed fine visual vocabulary, and their store.

Features are what the hash stage cannot use: they survive crops, small rotations,
perspective and colour changes. The decode_shard job extracts them from the
thumbnails of rasters never seen before and keeps them per raster
(`{results}/features/by-raster/`, read pair by pair by the verification). What
retrieval needs, the *signature* (each distinct fine visual word once, with the
orientation and scale of its keypoint, for the image and for its mirror image), is
bundled per shard in `{results}/features/shard-NNNN.npz` for the index job.
"""

from __future__ import annotations

import logging
import os
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from .. import versions
from ..util import atomic_open, fingerprint, read_jsonl
from .store import load_thumbnail
from .texture import SPECK_MAX, is_plain, speck_cells

# the logger keeps the name it had before the stage packages (job logs unchanged)
log = logging.getLogger("archive_twins.features")
# what reading a truncated or damaged .npz raises
_DAMAGED = (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError)

VOCAB_PATH = Path(__file__).parents[1] / "data" / "imi-2x2048.npy"
HALF_WORDS = 2048
N_WORDS = HALF_WORDS * HALF_WORDS

# A mirror image's SIFT descriptor is the original's with the 4x4 grid's rows
# reversed and the 8 orientation bins negated (found empirically for OpenCV's SIFT).
_MIRROR_PERM = np.arange(128).reshape(4, 4, 8)[::-1, :, (-np.arange(8)) % 8].reshape(128).copy()


@dataclass(frozen=True)
class FeatureParams:
    """Extraction settings (part of the cache key)."""

    max_side: int = 512
    n_features: int = 400
    # Below OpenCV's default 0.04: smooth images (a retina, a sky) still get keypoints;
    # the strongest n_features are kept either way. Keypoints above it are *strong*:
    # a raster with few distinct strong words is smooth (`Index.smooth`).
    contrast_threshold: float = 0.015
    # A raster with fewer than n_features strong keypoints fills its budget with the
    # strongest weaker ones down to this contrast: a sky or a wall has little more
    # than its faint gradients and grain to go on (measured on a sky patch: 27
    # keypoints, 0 of its crops, rotations and perspective copies matched by
    # geometry; with the budget filled, 36-77 RANSAC inliers each). Keypoints above
    # contrast_threshold are the same either way.
    weak_contrast_threshold: float = 0.002
    # fingerprint of the thumbnails the features are extracted from (decode settings)
    thumbs: str = ""

    def fingerprint(self) -> str:
        """Changing these, the vocabulary, the thumbnails or the code's version
        (`versions.FEATURES`) re-extracts every raster."""
        return fingerprint(versions.FEATURES, {**asdict(self), "vocabulary": VOCAB_PATH.name})


def root_sift(desc: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman): L1-normalise, square root; float32."""
    d = desc.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    return np.sqrt(d)


def mirror_descriptors(desc: np.ndarray) -> np.ndarray:
    """Descriptors as they would be computed on the left-right mirrored image."""
    return desc[:, _MIRROR_PERM]


# OpenCV's SIFT keeps an extremum when |DoG| * nOctaveLayers >= contrastThreshold and
# reports |DoG| as its response
_SIFT_LAYERS = 3


def extract(thumb_rgb: np.ndarray, full_wh: tuple[int, int], params: FeatureParams) -> dict:
    """SIFT keypoints (in full-resolution pixel coordinates), strongest first, uint8
    descriptors, and how many of them are strong (above `contrast_threshold`)."""
    grey = cv2.cvtColor(thumb_rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    f = min(1.0, params.max_side / max(h, w))
    if f < 1:
        grey = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    low = min(params.contrast_threshold, params.weak_contrast_threshold)
    # one detection at the lower threshold: its keypoints above the higher one are
    # exactly those a detection at the higher one finds, and the strongest
    # n_features are kept, so a textured raster's features do not change
    sift = cv2.SIFT_create(nfeatures=params.n_features, contrastThreshold=low)
    kps, desc = sift.detectAndCompute(grey, None)
    if desc is None or not kps:
        return {
            "xy": np.zeros((0, 2), np.float32),
            "desc": np.zeros((0, 128), np.uint8),
            "angle": np.zeros(0, np.float32),
            "size": np.zeros(0, np.float32),
            "strong": np.array(0, np.int32),
        }
    # strongest first (OpenCV's retainBest only partitions), so that a prefix of the
    # keypoints is the strongest ones; ties keep OpenCV's order
    order = sorted(range(len(kps)), key=lambda i: -kps[i].response)[: params.n_features]
    kps, desc = [kps[i] for i in order], desc[order]
    sx, sy = full_wh[0] / grey.shape[1], full_wh[1] / grey.shape[0]
    xy = np.array([k.pt for k in kps], np.float32)
    xy = (xy + 0.5) * np.array([sx, sy], np.float32)  # pixel centres -> continuous coords
    return {
        "xy": xy,
        "desc": np.clip(np.rint(desc), 0, 255).astype(np.uint8),
        # orientation in degrees (OpenCV's convention) and size relative to the frame's
        # longer side, so that a resized copy has the same sizes
        "angle": np.array([k.angle for k in kps], np.float32),
        "size": np.array([k.size for k in kps], np.float32) / max(grey.shape),
        "strong": np.array(
            sum(k.response * _SIFT_LAYERS >= params.contrast_threshold for k in kps), np.int32
        ),
    }


def describe(thumb_rgb: np.ndarray, full_wh: tuple[int, int], params: FeatureParams) -> dict:
    """Everything the geometric stage keeps of a raster: keypoints, descriptors, the
    signature retrieval indexes (see `signature`) and its texture (`texture.py`)."""
    f = extract(thumb_rgb, full_wh, params)
    f.update(signature(f, full_wh))
    f["plain"] = np.array(is_plain(thumb_rgb), np.int8)
    f["specks"] = speck_cells(thumb_rgb)
    return f


@cache
def vocabulary() -> np.ndarray:
    """The fixed fine vocabulary: two codebooks of 2,048 centroids, one for each half
    of a RootSIFT descriptor (an inverted multi-index, Babenko & Lempitsky), so a
    word is one of 1,048,576 cells. Shipped with the package, so every machine,
    shard and rerun quantises the same way."""
    return np.load(VOCAB_PATH).astype(np.float32)


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    # argmin ||x - c||^2 = argmax (x.c - |c|^2/2)
    return (x @ centres.T - 0.5 * (centres * centres).sum(axis=1)[None, :]).argmax(axis=1)


def quantise(desc: np.ndarray) -> np.ndarray:
    """Fine visual word (0..N_WORDS-1) of each uint8 SIFT descriptor."""
    if len(desc) == 0:
        return np.zeros(0, np.uint32)
    v = vocabulary()
    d = root_sift(desc)
    a = _nearest(d[:, :64], v[0])
    b = _nearest(d[:, 64:], v[1])
    return (a * HALF_WORDS + b).astype(np.uint32)


def angle_code(angle: np.ndarray) -> np.ndarray:
    """Keypoint orientation as one byte (1.4 degree steps)."""
    return (np.rint(np.asarray(angle, np.float64) * 256 / 360).astype(np.int64) % 256).astype(
        np.uint8
    )


def scale_code(size: np.ndarray) -> np.ndarray:
    """log2 of a keypoint's relative size in quarter octaves, as one signed byte."""
    lg = np.log2(np.maximum(np.asarray(size, np.float64), 1e-6)) * 4
    return np.clip(np.rint(lg), -127, 127).astype(np.int8)


QUERY_GRID = 4
# positions are kept on a POS_GRID x POS_GRID grid of the frame, one byte each
POS_GRID = 16


def position_code(xy: np.ndarray, full_wh: tuple[int, int] | None) -> np.ndarray:
    """A keypoint's place in its frame as one byte: row * 16 + column of a 16 x 16
    grid. Retrieval asks how much of a frame the shared words cover: a colour chart
    or a caption two photographs share covers a corner or a strip of both."""
    if len(xy) == 0 or not full_wh:
        return np.zeros(len(xy), np.uint8)
    w, h = max(1, full_wh[0]), max(1, full_wh[1])
    cx = np.clip((xy[:, 0] * POS_GRID / w).astype(np.int64), 0, POS_GRID - 1)
    cy = np.clip((xy[:, 1] * POS_GRID / h).astype(np.int64), 0, POS_GRID - 1)
    return (cy * POS_GRID + cx).astype(np.uint8)


def balanced_order(xy: np.ndarray, full_wh: tuple[int, int] | None) -> np.ndarray:
    """Keypoints (given strongest first) in the order retrieval ranks them: the
    strongest of every cell of a 4x4 grid, then the second of every cell, and so on.
    A raster's query words then cover its whole frame, so a caption, a colour chart
    or one busy corner cannot take all of them, and a crop of any part of the frame
    shares query words with it."""
    n = len(xy)
    if n == 0 or not full_wh:
        return np.arange(n)
    w, h = max(1, full_wh[0]), max(1, full_wh[1])
    cx = np.clip((xy[:, 0] * QUERY_GRID / w).astype(np.int64), 0, QUERY_GRID - 1)
    cy = np.clip((xy[:, 1] * QUERY_GRID / h).astype(np.int64), 0, QUERY_GRID - 1)
    cell = cy * QUERY_GRID + cx
    # rank of each keypoint within its cell (the input order is by strength)
    by_cell = np.lexsort((np.arange(n), cell))
    starts = np.searchsorted(cell[by_cell], cell[by_cell], side="left")
    within = np.empty(n, np.int64)
    within[by_cell] = np.arange(n) - starts
    return np.lexsort((np.arange(n), within))


def signature(f: dict, full_wh: tuple[int, int] | None = None) -> dict:
    """What retrieval indexes of a raster: each distinct fine word once (at its
    first keypoint in `balanced_order`) with that keypoint's orientation and scale
    codes, its place in the frame (`position_code`) and its rank there (0 = first);
    the same for the mirror image, whose keypoints have mirrored descriptors,
    orientation 180 - angle and mirrored places (the mirrored grid holds the same
    keypoints per cell, so the ranks are the same)."""
    out = {}
    # the strong keypoints balanced over the frame, then the weak ones: a weak
    # keypoint (faint, less repeatable) never displaces a strong one from the query
    strong = int(f["strong"])
    order = np.concatenate(
        [
            balanced_order(f["xy"][:strong], full_wh),
            strong + balanced_order(f["xy"][strong:], full_wh),
        ]
    ).astype(np.int64)
    xy = np.asarray(f["xy"], np.float64).reshape(-1, 2)
    mxy = xy.copy()
    if full_wh:
        mxy[:, 0] = full_wh[0] - mxy[:, 0]
    for prefix, desc, angle, pts in (
        ("", f["desc"], f["angle"], xy),
        ("m", mirror_descriptors(f["desc"]), (180.0 - f["angle"]) % 360.0, mxy),
    ):
        words = quantise(desc[order])
        uniq, first = np.unique(words, return_index=True)
        out[prefix + "words"] = uniq.astype(np.uint32)
        out[prefix + "ang"] = angle_code(angle[order][first])
        out[prefix + "lsc"] = scale_code(f["size"][order][first])
        out[prefix + "pos"] = position_code(pts[order][first], full_wh)
        out[prefix + "rank"] = first.astype(np.uint16)
        if not prefix:
            # distinct words of the strong keypoints (the first `strong` here)
            out["nstrong"] = np.array(len(np.unique(words[:strong])), np.int32)
    return out


SIG_FIELDS = ("words", "ang", "lsc", "pos", "rank", "mwords", "mang", "mlsc", "mpos", "mrank")
SIG_DTYPES = {
    "words": np.uint32,
    "ang": np.uint8,
    "lsc": np.int8,
    "pos": np.uint8,
    "rank": np.uint16,
}
# one value per raster: distinct words of its strong keypoints; whether it is plain,
# and where its specks lie (texture.py)
SIG_SCALARS = {"nstrong": (np.int32, ()), "plain": (np.int8, ())}
SIG_SCALARS["specks"] = (np.uint32, (SPECK_MAX,))
SIG_KEYS = (*SIG_FIELDS, *SIG_SCALARS)
RASTER_FIELDS = ("xy", "desc", "angle", "size", "strong", *SIG_KEYS)
# what a shard bundle of the current format holds besides its signature arrays
BUNDLE_ARRAYS = frozenset({"params", "moffsets", "pos", "mpos", *SIG_SCALARS})


def build_vocabulary(k: int = HALF_WORDS, seed: int = 0) -> np.ndarray:
    """Two k-means codebooks (one per descriptor half) on RootSIFT descriptors of the
    photographs bundled with scikit-image, at three scales and mirrored (run once,
    shipped). Neither the test nor the development photographs are used."""
    from ..demo import PHOTOS, photo

    rng = np.random.default_rng(seed)
    descs = []
    params = FeatureParams(max_side=800, n_features=3000)
    names = [*PHOTOS, "motorcycle_left", "clock", "cell", "page", "text", "horse", "cat"]
    for name in names:
        arr = photo(name)
        for scale in (1.0, 0.6, 0.35):
            h, w = arr.shape[:2]
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            img = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
            desc = extract(img, (w, h), params)["desc"]
            descs.append(desc)
            descs.append(mirror_descriptors(desc))
    data = root_sift(np.concatenate(descs))
    data = data[rng.permutation(len(data))]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-4)
    books = []
    for half in (data[:, :64], data[:, 64:]):
        cv2.setRNGSeed(seed)
        _, _, centres = cv2.kmeans(
            np.ascontiguousarray(half), k, None, criteria, 1, cv2.KMEANS_PP_CENTERS
        )
        books.append(centres)
    return np.stack(books).astype(np.float16)


class SignatureBundle:
    """One shard's signature bundle (`save_signatures`: an uncompressed .npz), the one
    reader of it. `bundle[name]` memory-maps an array, so reading a few rasters'
    signatures reads only their bytes, unchecked (the index job); `read(names)` reads
    arrays whole, each checked against its CRC, raising one of `_DAMAGED` for a
    damaged bundle (`load_signatures`, which a decode job reuses from)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        with zipfile.ZipFile(self.path) as zf:
            self.infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}

    def __contains__(self, name: str) -> bool:
        return name in self.infos

    def __getitem__(self, name: str) -> np.ndarray:
        info = self.infos[name]
        if info.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as fh:
                fh.seek(info.header_offset)
                n_name, n_extra = struct.unpack("<HH", fh.read(30)[26:30])
                fh.seek(info.header_offset + 30 + n_name + n_extra)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
            if not fortran and not dtype.hasobject:
                if int(np.prod(shape)) == 0:
                    return np.zeros(shape, dtype)
                return np.memmap(self.path, dtype, "r", offset, shape)
        with zipfile.ZipFile(self.path) as zf:
            return _read_member(zf, info)

    def read(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """The arrays `names` read whole, in that order, each checked against its CRC
        (reading a member to its end checks it, as `np.load` does)."""
        out = {}
        with zipfile.ZipFile(self.path) as zf:
            for name in names:
                if name not in self.infos:  # np.load's words
                    raise KeyError(f"{name} is not a file in the archive")
                out[name] = _read_member(zf, self.infos[name])
        return out


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def load_signatures(path: str | os.PathLike) -> dict[str, dict]:
    """Signatures of one shard bundle: {sha256: {words, ang, lsc, rank, mwords, ...}};
    empty when there is none or it is damaged (its arrays carry CRCs)."""
    try:
        bundle = SignatureBundle(path)
        if not all(name in bundle for name in BUNDLE_ARRAYS):
            return {}
        # every array is read once, whole: its CRC is checked
        z = bundle.read(["keys", "params", "offsets", "moffsets", *SIG_FIELDS, *SIG_SCALARS])
        keys, fp = z["keys"], str(z["params"])
        off, moff = z["offsets"], z["moffsets"]
        arrays = {name: z[name] for name in SIG_FIELDS}
        scalars = {name: z[name] for name in SIG_SCALARS}
    except FileNotFoundError:
        return {}
    except _DAMAGED as exc:
        log.warning("signature bundle %s damaged (%s): rebuilt", path, exc)
        return {}
    out = {}
    for i, key in enumerate(keys.tolist()):
        rec: dict = {"params": fp}
        for name, arr in arrays.items():
            o = moff if name.startswith("m") else off
            rec[name] = arr[o[i] : o[i + 1]]
        for name, arr in scalars.items():
            rec[name] = arr[i]
        out[key] = rec
    return out


def save_signatures(path: str | os.PathLike, sigs: dict[str, dict], fp: str) -> None:
    """Write one shard's signatures (concatenated arrays + offsets) atomically."""
    keys = sorted(sigs)

    def offsets(name: str) -> np.ndarray:
        sizes = [len(sigs[k][name]) for k in keys]
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def cat(name: str) -> np.ndarray:
        dtype = SIG_DTYPES[name.removeprefix("m")]
        if not keys:
            return np.zeros(0, dtype)
        return np.concatenate([sigs[k][name] for k in keys]).astype(dtype)

    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            keys=np.array(keys, dtype="U64"),
            offsets=offsets("words"),
            moffsets=offsets("mwords"),
            params=np.array(fp),
            **{name: cat(name) for name in SIG_FIELDS},
            **{
                name: np.array([sigs[k][name] for k in keys], dtype).reshape(-1, *shape)
                for name, (dtype, shape) in SIG_SCALARS.items()
            },
        )


def raster_path(store: str | os.PathLike, sha: str) -> Path:
    """Where the full features of a file content's thumbnail live (by sha256: two
    files with the same pixels but other bytes may have slightly different
    thumbnails, and the matching uses the thumbnail of one chosen file)."""
    return Path(store) / "by-content" / sha[:2] / f"{sha}.npz"


def load_raster(
    store: str | os.PathLike, sha: str, fp: str, fields: tuple[str, ...] = RASTER_FIELDS
) -> dict | None:
    """Features (by default all: keypoints, descriptors, signature) of a file
    content, or None when missing, damaged (its arrays carry CRCs; it is then
    extracted again by the caller) or extracted with other settings."""
    path = raster_path(store, sha)
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["params"]) != fp:
                return None
            return {name: z[name] for name in fields} | {"params": fp}
    except FileNotFoundError:
        return None
    except _DAMAGED as exc:
        log.warning("features %s damaged (%s): extracted again", path, exc)
        return None


def extract_raster(
    store: str | os.PathLike,
    sha: str,
    thumb_rgb: np.ndarray,
    full_wh: tuple[int, int],
    params: FeatureParams,
) -> dict:
    """Extract a content's features from its thumbnail and keep them in the store."""
    f = describe(thumb_rgb, full_wh, params)
    with atomic_open(raster_path(store, sha), "wb") as fh:
        np.savez(fh, **f, params=np.array(params.fingerprint()))
    return f


def run_features_shard(
    records: str | os.PathLike,
    output: str | os.PathLike,
    store: str | os.PathLike,
    params: FeatureParams,
    raster_store: str | os.PathLike | None = None,
    enabled: bool = True,
    repair: Callable[[str], bool] | None = None,
) -> dict:
    """Bring a shard's signature bundle (keyed by sha256) up to date; extract only
    contents never seen.

    Full features are kept per content (`raster_store/by-content/`), so a file that
    moves to another shard, or a byte copy filed elsewhere, is not extracted again.
    Thumbnails are checked before use; `repair(sha)` rebuilds a damaged one.
    """
    fp = params.fingerprint()
    rstore = Path(raster_store) if raster_store else Path(output).parent
    previous = {k: v for k, v in load_signatures(output).items() if v["params"] == fp}
    sigs: dict[str, dict] = {}
    stats = {"rasters": 0, "reused": 0, "extracted": 0, "missing_thumb": 0}
    if not enabled:  # geometric stage switched off: an empty bundle
        save_signatures(output, {}, fp)
        return stats
    for r in read_jsonl(records):
        key = r.get("sha256")
        if r["status"] != "ok" or not key or key in sigs or r.get("blank"):
            continue
        stats["rasters"] += 1
        cached = previous.get(key)
        if cached is not None and raster_path(rstore, key).exists():
            sigs[key] = cached
            stats["reused"] += 1
            continue
        full = load_raster(rstore, key, fp)
        if full is not None:
            sigs[key] = {name: full[name] for name in SIG_KEYS}
            stats["reused"] += 1
            continue
        try:
            rgb = load_thumbnail(store, key, repair)
        except FileNotFoundError:
            stats["missing_thumb"] += 1
            continue
        f = extract_raster(rstore, key, rgb, (r["width"], r["height"]), params)
        sigs[key] = {name: f[name] for name in SIG_KEYS}
        stats["extracted"] += 1
    save_signatures(output, sigs, fp)
    return stats


if __name__ == "__main__":
    out = build_vocabulary()
    VOCAB_PATH.parent.mkdir(exist_ok=True)
    np.save(VOCAB_PATH, out)
    print(f"wrote {VOCAB_PATH} {out.shape}")
