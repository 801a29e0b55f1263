"""The item table: one item per distinct page-0 raster.

Takes the shard records (`ingest.shard`); gives the item columns (`collect_items`,
`ITEM_COLUMNS`), an item's identity digest, its record (`Item`) and content rank
(`content_rank`: which of two copies is the source by its pixels, bits and format;
`content_basis` names what decided), and the chunk of a pixel hash (`chunk_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..ingest.hashing import hex64
from ..util import read_jsonl

FORMAT_RANK = {"tiff": 3, "png": 2, "webp": 1, "jp2k": 1, "jpeg": 0, "gif": 0}


def content_rank(pixels: int, bits: int | None, fmt: str | None) -> tuple[int, int, int]:
    """What a raster's own content says about being a source: more pixels, more bits
    per sample, a lossless format (compared in this order)."""
    return pixels, bits or 0, FORMAT_RANK.get(fmt or "", 0)


def content_basis(rank_a: Sequence, rank_b: Sequence) -> str:
    """Name of the first `content_rank` entry that differs, or 'tie'."""
    for name, a, b in zip(("resolution", "depth", "format"), rank_a, rank_b, strict=False):
        if a != b:
            return name
    return "tie"


def chunk_of(key: str, n_chunks: int) -> int:
    """Chunk of a raster: a contiguous range of pixel-hash values, so a chunk's
    rasters are a contiguous range of the sorted index and the pairs it owns (first
    key in the chunk) are with the rasters after it."""
    return (int(key[:8], 16) * n_chunks) >> 32


@dataclass(frozen=True)
class Item:
    """One distinct page-0 raster (a set of files with identical pixels)."""

    key: str  # pixel hash
    sha256: str  # the representative file's content (its thumbnail)
    width: int
    height: int
    bits: int
    format: str
    size_bytes: int
    # nothing but a tone, its vignetting and grain (texture.is_plain)
    plain: bool = False

    def rank(self) -> tuple:
        """Which of two copies is the source, by content: more pixels, deeper,
        lossless (see `content_rank`); the pixel hash orders a tie, which
        the aggregation resolves (direction.resolve_ties)."""
        return (*content_rank(self.width * self.height, self.bits, self.format), self.key)


# The columns of the item table (`collect_items`): dtype and, for hashes, shape.
ITEM_COLUMNS = {
    "key": "S40",
    "sha": "S64",
    "size_bytes": np.int64,
    "width": np.int64,
    "height": np.int64,
    "bits": np.int64,
    "format": "S8",
    "blank": bool,
    "phash": np.uint64,
    "tone": np.uint64,
    "tone_ok": bool,
    "content": np.uint64,
    "content_ok": bool,
    "quarters": np.uint64,
    "quarters_ok": bool,
}
# the shape of a raster's hashes in the columns of 8 orientation hashes (4 quarters
# each for `quarters`), and the columns an index keeps (keys and sha apart; blank
# rasters are left out of it)
HASH_COLUMNS = {"phash": (8,), "tone": (8,), "content": (8,), "quarters": (8, 4)}
KEPT_ITEMS = tuple(name for name in ITEM_COLUMNS if name not in ("key", "sha", "blank"))


def _hash_columns(
    rows: list[dict], field: str, shape: tuple[int, ...] = (8,)
) -> tuple[np.ndarray, np.ndarray]:
    """An (n, *shape) array of a record field's hashes (8 orientations, or 8 x 4
    quarters), and which rows have them (records made before the field existed do
    not)."""
    size = int(np.prod(shape))
    hexes = [r.get(field) or () for r in rows]
    ok = np.array([len(t) == size for t in hexes], bool)
    arr = np.zeros((len(rows), size), np.uint64)
    if ok.any():
        arr[ok] = hex64(np.array([t for t in hexes if len(t) == size], "S16")).reshape(-1, size)
    return arr.reshape(len(rows), *shape), ok


def _item_rows(rows: list[dict]) -> dict[str, np.ndarray]:
    """The item columns of some shard records (status ok, with a pixel hash and
    pHashes)."""
    tone, tone_ok = _hash_columns(rows, "tone_hash")
    content, content_ok = _hash_columns(rows, "content_hash")
    quarters, quarters_ok = _hash_columns(rows, "quarter_phash", HASH_COLUMNS["quarters"])
    return {
        "key": np.array([r["pixel_hash"] for r in rows], "S40"),
        "sha": np.array([r["sha256"] for r in rows], "S64"),
        "size_bytes": np.array([r["size_bytes"] or 0 for r in rows], np.int64),
        "width": np.array([r["width"] for r in rows], np.int64),
        "height": np.array([r["height"] for r in rows], np.int64),
        "bits": np.array([r["bits_per_sample"] or 0 for r in rows], np.int64),
        "format": np.array([r["format"] or "" for r in rows], "S8"),
        "blank": np.array([bool(r.get("blank")) for r in rows], bool),
        "phash": hex64(np.array([r["phash"] for r in rows], "S16")).reshape(-1, 8),
        "tone": tone,
        "tone_ok": tone_ok,
        "content": content,
        "content_ok": content_ok,
        "quarters": quarters,
        "quarters_ok": quarters_ok,
    }


def collect_items(record_files: list[str]) -> dict[str, np.ndarray]:
    """One representative record per distinct raster (status ok, with hashes): the
    largest file, then the highest sha256, so it does not depend on file names or
    arrival order. Rasters whose representative is blank are left out.

    Returned as columns (`ITEM_COLUMNS`) sorted by pixel hash: a few hundred bytes
    per raster, read shard file by shard file (no Python object per raster, which
    took 3.5 KB each and most of the index job's memory)."""
    parts = []
    for path in record_files:
        rows = [
            r
            for r in read_jsonl(path)
            if r["status"] == "ok" and r.get("pixel_hash") and r.get("phash")
        ]
        if rows:
            parts.append(_item_rows(rows))
    if not parts:
        return {
            name: np.zeros((0, *HASH_COLUMNS.get(name, ())), dtype)
            for name, dtype in ITEM_COLUMNS.items()
        }
    cols = {name: np.concatenate([p[name] for p in parts]) for name in ITEM_COLUMNS}
    del parts
    # by pixel hash, then file size, then sha256: the last of each pixel hash wins
    order = np.lexsort((cols["sha"], cols["size_bytes"], cols["key"]))
    key = cols["key"][order]
    last = np.ones(len(order), bool)
    last[:-1] = key[1:] != key[:-1]
    pick = order[last]
    pick = pick[~cols["blank"][pick]]
    return {name: arr[pick] for name, arr in cols.items()}


def identity_of(keys: np.ndarray, shas: np.ndarray) -> np.ndarray:
    """64-bit digests of (pixel hash, sha256) pairs: the first 16 hex digits of each,
    combined (both are uniform hashes), compared as integers, not strings."""
    k = hex64(np.asarray(keys, dtype="S40").astype("S16"))
    h = hex64(np.asarray(shas, dtype="S64").astype("S16"))
    return k ^ (h * np.uint64(0x9E3779B97F4A7C15))


def _key_floor(prefix32: int) -> bytes:
    """The smallest 40-hex-digit key whose first 8 digits are `prefix32`."""
    return f"{prefix32:08x}".encode() + b"0" * 32
