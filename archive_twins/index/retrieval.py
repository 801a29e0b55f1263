"""Candidate retrieval over the whole archive: one index per run, queried by chunks.

The `index` job gathers, from every shard, one item per distinct page-0 raster (its
size, rank facts, 8 dihedral pHashes, tone hashes, speck cells) and an inverted file of
fine visual words (each posting: raster, keypoint orientation, scale and place).
`match_chunk` jobs then ask it, for the rasters of their chunk, which others may be
copies:

- **hash candidates**: exact Hamming search of the upright pHash against the 8
  orientations of every other raster, both ways (pHash is only approximately
  equivariant under resampling); smooth rasters by their tone hashes too, plain
  scans (versos) by where their specks lie instead (`specksearch.py`);
- **word candidates**: shared fine words that agree on one rotation and one scale
  change (weak geometric consistency, Jégou et al. 2008) and cover the querying
  raster's frame, searched from both rasters (`wordsearch.py`).

Every criterion is a function of the two rasters and of which words are common in
the archive (held by more than `common_df` rasters: a colour chart's, a logo's),
and a pair is examined by exactly one chunk (`Index.owned`), so the candidates, and
thus the results, do not depend on how the archive is split into shards or chunks;
a rerun searches again the rasters a change may concern (new ones, those holding a
word that stopped being common, those a word becoming common lets cover fewer
cells, those the cap may bite) and judges again the pairs it found between rasters
holding a word that became common (otherwise such a word only takes votes away), so
it equals a fresh run.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import resource
import shutil
import struct
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..dihedral import inverse
from ..direction import content_rank
from ..ingest.features import BUNDLE_ARRAYS, N_WORDS, SIG_SCALARS
from ..ingest.hashing import hamming_search, hex64
from ..ingest.texture import MIN_SPECKS, NO_SPECK, SPECK_MAX
from ..util import atomic_dir, atomic_open, checked, fingerprint, read_jsonl, with_check
from . import specksearch
from .arrays import (
    finish,
    gather_lists,
    ranges,
    read_runs,
    release,
    segment_sums,
)
from .wordsearch import (
    CELLS,
    FIELDS,
    Postings,
    Queries,
    cells_needed,
    coverage_cell,
    pair_query,
    search,
)


@dataclass(frozen=True)
class RetrievalParams:
    """Candidate thresholds (fitted on scikit-image photographs and half of the
    development photographs; see docs/design.md, Matching)."""

    # pHash Hamming distance (of 64 bits) in any of the 8 orientations
    max_hamming: int = 12
    # ... and alike in at least `min_quarters` of the four quarters of the frame
    # (pHash of each, `hashing.quarter_hashes`, within max_quarter_hamming bits): a
    # copy looks like its source all over, two photographs sharing a caption strip or
    # a chart only where it is (measured in docs/furniture.md)
    max_quarter_hamming: int = 20
    min_quarters: int = 3
    # tone hash (hashing.tone_hash) distance, for pairs with a smooth raster: one
    # with fewer than `tone_max_words` distinct strong words (`Index.smooth`), where
    # the features have little to go on and pHash bits flip under colour and tone
    # changes
    max_tone_hamming: int = 4
    tone_max_words: int = 150
    # a pair of plain rasters (texture.is_plain: versos, empty sheets), whose tones
    # are any paper's, is a candidate by its specks instead: at least this many of
    # one's specks within a cell (of 256x256) of the other's, and this share of the
    # fewer specks of the two (measured on 1,435 plain rasters: 362 of 364 rescan
    # pairs pass, none of 1,028,531 pairs of different versos; docs/furniture.md),
    # with its tone hashes within max_tone_hamming in the same orientation
    min_shared_specks: int = 3
    min_speck_share: float = 0.5
    # the strongest keypoints of the querying raster whose words are looked up
    query_features: int = 150
    # consistent votes (shared words in the best orientation/scale bin)
    min_votes: int = 5
    # ... lying in this share of the cells of a 4x4 grid of the querying raster's
    # frame that hold its query keypoints (at least min_cells of them): a copy
    # covers its own frame, a shared colour chart or caption a corner or a strip
    # (wordsearch; measured in docs/furniture.md)
    min_coverage: float = 0.3
    min_cells: int = 3
    # a word held by more rasters than this is common (the words of a colour chart,
    # a ruler or a logo in many photographs): it neither votes nor counts for
    # coverage, and its postings are never read. The bound grows with the archive,
    # so that an ordinary word stays below it: `common_ratio` times the mean number
    # of rasters holding a word, rounded up to a power of two (so it moves seldom,
    # and a rerun seldom searches again for that reason), at least `common_df`
    common_df: int = 16
    common_ratio: float = 20.0
    # at most this many rasters are word candidates of one querying raster: those
    # with the most votes, then the first by pixel hash (a safety valve, logged when
    # it bites: with common words out, only an image copied hundreds of times fills
    # it; no archive makes the search quadratic)
    max_candidates: int = 500
    # at most this many later rasters are hash candidates of one raster: the nearest
    # by pHash, then the first in the index (logged when it bites: only an image with
    # hundreds of near-copies fills it; `cap_hash`)
    max_hash_candidates: int = 500
    # orientation bins over 360 degrees and scale bin width in quarter octaves
    angle_bins: int = 16
    scale_bin: int = 2
    # working set of one query batch (votes gathered at once; counts array cells):
    # the postings a batch reads stay resident until it ends, so smaller batches
    # hold less (a 262k chunk: 4M / 16M cells peaked at 760 MB, 1M / 4M at 361 MB,
    # in the same CPU time)
    batch_votes: int = 1_000_000
    batch_cells: int = 1 << 22

    def fingerprint(self) -> str:
        """What changes the candidate set (batch sizes do not)."""
        d = asdict(self)
        d.pop("batch_votes")
        d.pop("batch_cells")
        return fingerprint("retrieval-1", d)


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
        lossless (see direction.content_rank); the pixel hash orders a tie, which
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


def _save(path: Path, arr: np.ndarray) -> None:
    np.save(path, arr, allow_pickle=False)


# Item-major word lists (per raster, in index order): all words, the query words
# (the strongest `query_features` keypoints) and the mirror image's query words;
# each word with its keypoint's orientation, scale and position codes.
LIST_FIELDS = FIELDS
LIST_DTYPES = {"words": np.uint32, "ang": np.uint8, "lsc": np.int8, "pos": np.uint8}
FAMILIES = {fam: (f"{fam}off", *(fam + f for f in LIST_FIELDS)) for fam in ("a", "q", "mq")}
# The inverted file (CSR over words, postings sorted by raster within a word) of
# all words, queried by query words; by the prefix of its arrays.
INVERTED = {"": "a"}
# the words that have postings (sorted) and where their postings start, then the
# postings: raster, orientation, scale and position codes (the word table follows
# the archive: a few files' index holds a few thousand words, not 4.2M offsets)
WORD_ARRAYS = ("post_words", "post_start")
POSTING_ARRAYS = ("post_id", "post_ang", "post_lsc", "post_pos")
INVERTED_ARRAYS = (*WORD_ARRAYS, *POSTING_ARRAYS)
INDEX_FORMAT = 10
# An index is merged into the previous one while at most this share of its rasters
# is new (else rebuilt), and the candidates of the new rasters are searched once, by
# the index job, while at most this share is new (else each chunk searches its own).
MERGE_MAX_FRACTION = 0.5
DELTA_MAX_FRACTION = 0.1


def build_index(
    record_files: list[str],
    signature_files: list[str],
    out_dir: str | os.PathLike,
    params: RetrievalParams,
    gens_dir: str | os.PathLike | None = None,
    keep_gens: int = 8,
) -> dict:
    """Write the index directory (atomically): items, word lists, inverted files.

    With `gens_dir`, the last good index is kept there (`base/`, hard links) and the
    next index is merged into it: rasters already indexed (same pixel hash, same
    representative file, same signature settings) are copied, only new ones are read
    from their shard bundles, and the candidates of the new rasters are searched once
    (`delta.npz`) for every chunk. The result is the same as a rebuild (tests).
    """
    clock = _Stages()
    items = collect_items(record_files)
    key_arr, sha_arr = items["key"], items["sha"]
    n = len(key_arr)
    ident = identity_of(key_arr, sha_arr)
    sig_params = _bundle_params(signature_files)
    base = _open_base(gens_dir, params, sig_params)
    src = _match_items(base, key_arr, sha_arr) if base is not None else None
    if src is not None and (src < 0).sum() > MERGE_MAX_FRACTION * max(1, n):
        src = None
    with atomic_dir(out_dir) as tmp:
        _save(tmp / "keys.npy", key_arr)
        _save(tmp / "sha.npy", sha_arr)
        _save(tmp / "identity.npy", ident)
        for name in KEPT_ITEMS:
            _save(tmp / f"{name}.npy", items[name])
        del items
        need = np.ones(n, bool) if src is None else src < 0
        clock.done("items")
        sizes = _write_word_lists(signature_files, sha_arr, need, tmp, params, base, src)
        clock.done("word_lists")
        stats = {f"{f}_words": int(sizes[f]) for f in FAMILIES}
        if src is None:
            for prefix, fam in INVERTED.items():
                _invert(tmp, prefix, fam)
        else:
            old_to_new = np.full(base.n, -1, np.int64)
            old_to_new[src[src >= 0]] = np.flatnonzero(src >= 0)
            for prefix, fam in INVERTED.items():
                _merge_inverted(tmp, prefix, fam, base, old_to_new, np.flatnonzero(src < 0))
        clock.done("inverted")
        common = common_words(
            np.load(tmp / "post_words.npy"), np.load(tmp / "post_start.npy"), params
        )
        _save(tmp / "common.npy", common)
        stats.update(items=n, merged=src is not None, new=int(need.sum()), common=len(common))
        # The generation: which rasters (with which representative files) this index
        # holds, so a chunk can tell what was added since its previous run.
        gen = _gen_name(ident, params.fingerprint())
        stats["gen"] = gen
        meta = {
            "params": params.fingerprint(),
            "format": INDEX_FORMAT,
            "signatures": sig_params,
            **stats,
        }
        if gens_dir is not None:
            gdir = Path(gens_dir)
            gdir.mkdir(parents=True, exist_ok=True)
            with atomic_open(gdir / f"{gen}.npy", "wb") as fh:
                np.save(fh, ident)
            # checked when read (a damaged copy would hide a word's change)
            with atomic_open(gdir / f"{gen}.common", "wb") as fh:
                fh.write(with_check(_npy_bytes(common)))
            for old in sorted(gdir.glob("*.npy"), key=lambda p: p.stat().st_mtime)[:-keep_gens]:
                old.unlink(missing_ok=True)
                old.with_suffix(".common").unlink(missing_ok=True)
            meta["gens_dir"] = os.path.abspath(gens_dir)
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        change = None
        if src is not None:
            new_index = Index(tmp, gens_dir=gens_dir)
            change = new_index.common_change(base.meta["gen"])
        if change is not None and 0 < (need | change[1]).sum() <= DELTA_MAX_FRACTION * n:
            # rasters holding a word that stopped being common are searched again too
            # (one that became common is re-checked pair by pair: `match.recheck`)
            need = need | change[1]
            delta = new_index.delta_search(need, params)
            _save_delta(tmp / "delta.npz", need, *delta, new_index.delta_counts)
            meta["delta_from"] = base.meta["gen"]
            stats["delta_pairs"] = len(delta[0]) + len(delta[1])
            stats["gained"], stats["lost"] = int(change[0].sum()), int(change[1].sum())
            clock.done("delta")
        if src is not None:
            del new_index
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    if gens_dir is not None:
        _keep_as_base(out_dir, Path(gens_dir) / "base")
    stats["stages"] = clock.stages
    return stats


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def generation_common(gens_dir: str | os.PathLike, gen: str) -> np.ndarray | None:
    """The common words of index generation `gen` (`{gen}.common`, written with a
    size and CRC-32 line); None when not known or damaged (then not trusted)."""
    try:
        body = checked((Path(gens_dir) / f"{gen}.common").read_bytes())
        return None if body is None else np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError):
        return None


def _gen_name(ident: np.ndarray, params_fp: str) -> str:
    """An index generation's name: a digest of its rasters and candidate settings."""
    return hashlib.sha1(np.ascontiguousarray(ident).tobytes() + params_fp.encode()).hexdigest()[:16]


class _Stages:
    """CPU seconds and peak resident set of a job's stages (for the logs)."""

    def __init__(self) -> None:
        self.stages: dict[str, list] = {}
        self.t = self._cpu()

    @staticmethod
    def _cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def done(self, name: str) -> None:
        t = self._cpu()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        self.stages[name] = [round(t - self.t, 2), peak]
        self.t = t


# ---------------------------------------------------------------- shard bundles


class _Bundle:
    """One shard's signature bundle (an uncompressed .npz): its arrays are memory-
    mapped, so reading a few rasters' signatures reads only their bytes."""

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
        with zipfile.ZipFile(self.path) as zf, zf.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)


def _open_bundle(path: str) -> _Bundle | None:
    """A readable bundle of the current format, else None (as `load_signatures`)."""
    try:
        b = _Bundle(path)
    except (FileNotFoundError, OSError, zipfile.BadZipFile, ValueError):
        return None
    return b if all(name in b for name in BUNDLE_ARRAYS) else None


def _bundle_params(signature_files: list[str]) -> list[str]:
    """The feature settings the bundles were made with (part of what an index holds)."""
    out = set()
    for path in signature_files:
        b = _open_bundle(path)
        if b is not None:
            out.add(str(b["params"][()]))
    return sorted(out)


def _family_source(b: _Bundle, rows: np.ndarray, fam: str, q: int) -> np.ndarray:
    """Positions in a bundle's arrays of the entries of family `fam` of these rows,
    row after row (a raster's entries keep their bundle order)."""
    off = np.asarray(b["moffsets" if fam == "mq" else "offsets"], np.int64)
    take = ranges(off[rows], off[rows + 1])
    if fam == "a":
        return take
    rank = np.asarray(b["mrank" if fam == "mq" else "rank"][take])
    return take[rank < q]


def _write_word_lists(
    signature_files: list[str],
    sha_arr: np.ndarray,
    need: np.ndarray,
    tmp: Path,
    params: RetrievalParams,
    base: Index | None,
    src: np.ndarray | None,
) -> dict[str, int]:
    """The item-major word lists of every family: rasters of the base index copied
    (runs of consecutive rasters at once), the others (`need`) read from the bundles
    that hold their representative's signature (first one found)."""
    n, q = len(need), params.query_features
    seen = ~need
    by_sha = np.argsort(sha_arr, kind="stable")  # representative sha256 -> item
    sorted_sha = sha_arr[by_sha]
    plan = []
    sizes = {fam: np.zeros(n, np.int64) for fam in FAMILIES}
    # per raster: distinct words of its strong keypoints (`Index.smooth`), whether
    # it is plain, its speck cells (`Index.plain`)
    per_raster = {
        name: np.zeros((n, *shape), dtype) for name, (dtype, shape) in SIG_SCALARS.items()
    }
    if base is not None and src is not None:
        kept = np.flatnonzero(src >= 0)
        for fam, (off_name, *_) in FAMILIES.items():
            old = np.asarray(base.arrays[off_name], np.int64)
            sizes[fam][kept] = old[src[kept] + 1] - old[src[kept]]
        for name, arr in per_raster.items():
            arr[kept] = np.load(base.path / f"{name}.npy")[src[kept]]
    for path in signature_files:
        if not need.any() or seen.all():
            break
        b = _open_bundle(path)
        if b is None:
            continue
        bkeys = np.asarray(b["keys"]).astype("S64")
        at = np.minimum(np.searchsorted(sorted_sha, bkeys), max(n - 1, 0))
        hit = np.flatnonzero(sorted_sha[at] == bkeys) if n else np.zeros(0, np.int64)
        its_all = by_sha[at[hit]]
        fresh = ~seen[its_all]
        # a bundle holds each sha256 once; the first bundle holding a raster is read
        rows_a, its_a = hit[fresh].astype(np.int64), its_all[fresh].astype(np.int64)
        if len(rows_a) == 0:
            continue
        seen[its_a] = True
        plan.append((path, rows_a, its_a))
        for name, arr in per_raster.items():
            arr[its_a] = np.asarray(b[name])[rows_a]
        for fam in FAMILIES:
            off = np.asarray(b["moffsets" if fam == "mq" else "offsets"], np.int64)
            lens = off[rows_a + 1] - off[rows_a]
            if fam == "a":
                sizes[fam][its_a] = lens
            else:
                take = ranges(off[rows_a], off[rows_a + 1])
                rank = np.asarray(b["mrank" if fam == "mq" else "rank"][take])
                sizes[fam][its_a] = segment_sums(rank < q, lens)
    for name, arr in per_raster.items():
        _save(tmp / f"{name}.npy", arr)
    totals = {}
    for fam, (off_name, *names) in FAMILIES.items():
        off = np.concatenate([[0], np.cumsum(sizes[fam])]).astype(np.int64)
        _save(tmp / f"{off_name}.npy", off)
        total = int(off[-1])
        totals[fam] = total
        out = {
            name: _open_out(tmp, name, LIST_DTYPES[field], total)
            for name, field in zip(names, LIST_FIELDS, strict=True)
        }
        if base is not None and src is not None:
            _copy_runs(out, base, off, np.asarray(base.arrays[off_name], np.int64), src)
        prefix = "m" if fam == "mq" else ""
        for path, rows_a, its_a in plan:
            b = _Bundle(path)
            take = _family_source(b, rows_a, fam, q)
            dst = ranges(off[its_a], off[its_a + 1])
            for name, field in zip(names, LIST_FIELDS, strict=True):
                out[name][dst] = np.asarray(b[prefix + field])[take] if len(take) else 0
            release(*out.values())
        finish(*out.values())
        del out
    return totals


def _open_out(tmp: Path, name: str, dtype: type, size: int) -> np.ndarray:
    return np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", dtype, (size,))


def _copy_runs(
    out: dict[str, np.ndarray],
    base: Index,
    new_off: np.ndarray,
    old_off: np.ndarray,
    src: np.ndarray,
    release_every: int = 1 << 24,
) -> None:
    """Copy the word lists of the base index's rasters, run by run (consecutive
    rasters in both indexes)."""
    kept = np.flatnonzero(src >= 0)
    if len(kept) == 0:
        return
    brk = np.flatnonzero((np.diff(kept) != 1) | (np.diff(src[kept]) != 1)) + 1
    starts = np.concatenate([[0], brk])
    ends = np.concatenate([brk, [len(kept)]])
    copied = 0
    for a, e in zip(starts.tolist(), ends.tolist(), strict=True):
        i0, i1 = int(kept[a]), int(kept[e - 1]) + 1
        p0, p1 = int(src[kept[a]]), int(src[kept[e - 1]]) + 1
        s, t = int(old_off[p0]), int(old_off[p1])
        d = int(new_off[i0])
        assert int(new_off[i1]) - d == t - s
        for name, arr in out.items():
            arr[d : d + t - s] = base.arrays[name][s:t]
        copied += t - s
        if copied >= release_every:
            release(*out.values(), *(base.arrays[k] for k in out))
            copied = 0


def _match_items(base: Index, keys: np.ndarray, shas: np.ndarray) -> np.ndarray:
    """Per item, its index in the base index when it is the same raster with the same
    representative file there, else -1. An empty base (a run on an empty archive, or
    one of blank pages only) matches nothing."""
    if base.n == 0:
        return np.full(len(keys), -1, np.int64)
    p = np.minimum(np.searchsorted(base.keys, keys), base.n - 1)
    ok = (base.keys[p] == keys) & (base.sha[p] == shas)
    return np.where(ok, p, -1).astype(np.int64)


def _open_base(gens_dir: str | os.PathLike | None, params: RetrievalParams, sig_params: list):
    """The last good index kept in the generations directory, if it was made the same
    way (format, candidate settings, signature settings)."""
    if gens_dir is None:
        return None
    try:
        base = Index(Path(gens_dir) / "base")
    except (FileNotFoundError, OSError, ValueError, KeyError):
        return None
    m = base.meta
    if (m.get("format"), m.get("params"), m.get("signatures")) != (
        INDEX_FORMAT,
        params.fingerprint(),
        sig_params,
    ):
        return None
    return base


def _keep_as_base(out_dir: str | os.PathLike, base_dir: Path) -> None:
    """Hard links to the index just written (files are never rewritten in place), as
    the base of the next merge; a failed run leaves the previous base."""
    with atomic_dir(base_dir) as tmp:
        for f in Path(out_dir).iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)


# ---------------------------------------------------------------- inverted files


def _stable_order(values: np.ndarray) -> np.ndarray:
    """Stable argsort of uint32 values as one or two 16-bit radix sorts (numpy sorts
    16-bit keys stably by radix, 4x faster than its 32-bit merge sort)."""
    if len(values) == 0 or int(values.max()) < 1 << 16:
        return np.argsort(values.astype(np.uint16), kind="stable")
    low = np.argsort((values & 0xFFFF).astype(np.uint16), kind="stable")
    return low[np.argsort((values[low] >> 16).astype(np.uint16), kind="stable")]


# the one-byte fields of a posting besides its raster (orientation, scale, position)
POST_FIELDS = LIST_FIELDS[1:]


def _pack(fields: list[np.ndarray]) -> np.ndarray:
    """A posting's one-byte fields in one uint32 (the first in the low byte)."""
    out = np.zeros(len(fields[0]), np.uint32)
    for shift, arr in enumerate(fields):
        out |= np.asarray(arr).view(np.uint8).astype(np.uint32) << np.uint32(8 * shift)
    return out


def _unpack(packed: np.ndarray) -> list[np.ndarray]:
    """The fields `_pack` put together, with their dtypes."""
    return [
        ((packed >> np.uint32(8 * shift)) & np.uint32(0xFF)).astype(np.uint8).view(LIST_DTYPES[f])
        for shift, f in enumerate(POST_FIELDS)
    ]


def _invert(tmp: Path, prefix: str, fam: str, block: int = 1 << 22) -> None:
    """An inverted file of one family's word lists, in bounded memory: the postings
    are first spilled, raster block by raster block, into files by word range (of
    about `block` postings each), then each range is sorted by word (stable, so
    within a word they stay sorted by raster) and written in place. Every write is
    sequential: scattering postings straight into the output touched all its pages
    per block, 7 bytes per posting resident (2.8 KB per raster)."""
    off_name, w_name, *f_names = FAMILIES[fam]
    off = np.load(tmp / f"{off_name}.npy")
    words = np.load(tmp / f"{w_name}.npy", mmap_mode="r")
    fields = [np.load(tmp / f"{name}.npy", mmap_mode="r") for name in f_names]
    total = int(off[-1])
    counts = np.zeros(N_WORDS, np.int64)
    for s in range(0, total, block):
        counts += np.bincount(np.asarray(words[s : s + block], np.int64), minlength=N_WORDS)
        release(words)  # read pages would otherwise stay resident: 4 bytes per posting
    indptr = _save_word_table(tmp, prefix, counts)
    del counts
    # word ranges: the words holding every block-th posting start one
    bounds = np.unique(
        np.concatenate(
            [[0], np.searchsorted(indptr, np.arange(0, total, block), side="right") - 1, [N_WORDS]]
        )
    )
    assert len(bounds) <= 1 << 16, "block too small for this many postings"
    # a posting spilled as (word << 32 | raster) and its packed one-byte fields
    spills = [
        (tmp / f"{prefix}spill-{k}.key", tmp / f"{prefix}spill-{k}.al")
        for k in range(len(bounds) - 1)
    ]
    n = len(off) - 1
    i0 = 0
    while i0 < n:
        i1 = int(np.searchsorted(off, off[i0] + block, side="right")) - 1
        i1 = min(max(i1, i0 + 1), n)
        s, e = int(off[i0]), int(off[i1])
        if e > s:
            w = np.asarray(words[s:e])
            ids = np.repeat(np.arange(i0, i1, dtype=np.uint64), np.diff(off[i0 : i1 + 1]))
            key = (w.astype(np.uint64) << np.uint64(32)) | ids
            al = _pack([np.asarray(f[s:e]) for f in fields])
            # 16-bit bucket numbers: numpy's stable sort is then a radix sort
            bucket = (np.searchsorted(bounds, w, side="right") - 1).astype(np.uint16)
            order = np.argsort(bucket, kind="stable")
            key, al, bucket = key[order], al[order], bucket[order]
            cuts = np.searchsorted(bucket, np.arange(len(bounds)))
            for k in np.unique(bucket).tolist():
                a, b = cuts[k], cuts[k + 1]
                with open(spills[k][0], "ab") as fh:
                    key[a:b].tofile(fh)
                with open(spills[k][1], "ab") as fh:
                    al[a:b].tofile(fh)
            del w, ids, key, al, bucket, order
            release(words, *fields)
        i0 = i1
    post_id = _open_out(tmp, f"{prefix}post_id", np.uint32, total)
    posts = [_open_out(tmp, f"{prefix}post_{f}", LIST_DTYPES[f], total) for f in POST_FIELDS]
    for k, (kpath, apath) in enumerate(spills):
        s, e = int(indptr[bounds[k]]), int(indptr[bounds[k + 1]])
        if e == s:
            continue
        key, al = np.fromfile(kpath, np.uint64), np.fromfile(apath, np.uint32)
        kpath.unlink()
        apath.unlink()
        assert len(key) == len(al) == e - s, (len(key), e - s)
        order = _stable_order((key >> np.uint64(32)).astype(np.uint32) - np.uint32(bounds[k]))
        post_id[s:e] = key[order].astype(np.uint32)  # the low 32 bits: the raster
        for out, vals in zip(posts, _unpack(al[order]), strict=True):
            out[s:e] = vals
        del key, al, order
        release(post_id, *posts)
    finish(post_id, *posts)


def _save_word_table(tmp: Path, prefix: str, counts: np.ndarray) -> np.ndarray:
    """Save the words that have postings and where each one's start (`WORD_ARRAYS`);
    return the dense CSR pointers (over every word) the build works with."""
    indptr = np.zeros(N_WORDS + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    present = np.flatnonzero(counts).astype(np.uint32)
    _save(tmp / f"{prefix}post_words.npy", present)
    _save(tmp / f"{prefix}post_start.npy", np.append(indptr[present], indptr[-1]))
    return indptr


def dense_indptr(path: str | os.PathLike, prefix: str = "") -> np.ndarray:
    """The CSR pointers over every word of an index's inverted file."""
    words = np.load(Path(path) / f"{prefix}post_words.npy").astype(np.int64)
    start = np.load(Path(path) / f"{prefix}post_start.npy")
    counts = np.zeros(N_WORDS, np.int64)
    counts[words] = np.diff(start)
    indptr = np.zeros(N_WORDS + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def _sorted_postings(
    off: np.ndarray, items: np.ndarray, *lists: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The postings of some rasters' word lists (words first, then the one-byte
    fields), sorted by word then raster: words and raster ids (int64), then the
    fields."""
    w, *fields = gather_lists(off, items, *lists)
    w = w.astype(np.int64)
    ids = np.repeat(items, np.asarray(off[items + 1], np.int64) - np.asarray(off[items], np.int64))
    order = np.lexsort((ids, w))
    return w[order], ids[order], *(f[order] for f in fields)


def _merge_inverted(
    tmp: Path,
    prefix: str,
    fam: str,
    base: Index,
    old_to_new: np.ndarray,
    new_items: np.ndarray,
    block: int = 1 << 22,
) -> None:
    """The base index's inverted file with the postings of dropped rasters left out,
    the others renumbered, and those of new rasters inserted in place (a merge of
    sorted runs, block of words by block of words)."""
    off_name, w_name, *f_names = FAMILIES[fam]
    off = np.load(tmp / f"{off_name}.npy")
    lists = [np.load(tmp / f"{name}.npy", mmap_mode="r") for name in (w_name, *f_names)]
    # the new postings, sorted by word then raster
    nw, nid, *nfields = _sorted_postings(off, new_items, *lists)
    # postings of the base's rasters that are gone (or changed)
    old_indptr = dense_indptr(base.path, prefix)
    bo = np.asarray(base.arrays[off_name], np.int64)
    gone = np.flatnonzero(old_to_new < 0)
    gw = gather_lists(bo, gone, base.arrays[w_name])[0].astype(np.int64)
    counts = np.diff(old_indptr) - np.bincount(gw, minlength=N_WORDS)
    counts += np.bincount(nw, minlength=N_WORDS)
    indptr = _save_word_table(tmp, prefix, counts)
    total = int(indptr[-1])
    names = POSTING_ARRAYS
    out = tuple(
        _open_out(
            tmp, prefix + name, np.uint32 if name == "post_id" else LIST_DTYPES[name[5:]], total
        )
        for name in names
    )
    old = [base.inverted[prefix][name] for name in names]
    new = (nid.astype(np.uint32), *nfields)
    w0, cur = 0, 0
    while w0 < N_WORDS:
        w1 = int(np.searchsorted(old_indptr, old_indptr[w0] + block, side="right")) - 1
        w1 = min(max(w1, w0 + 1), N_WORDS)
        s, e = int(old_indptr[w0]), int(old_indptr[w1])
        oid = old_to_new[np.asarray(old[0][s:e], np.int64)]
        keep = oid >= 0
        a0, a1 = np.searchsorted(nw, [w0, w1])
        if keep.all() and a0 == a1:
            parts = [oid.astype(np.uint32), *(o[s:e] for o in old[1:])]
        else:
            wloc = np.repeat(np.arange(w1 - w0, dtype=np.int64), np.diff(old_indptr[w0 : w1 + 1]))
            kold = (wloc[keep] << 32) | oid[keep]
            knew = ((nw[a0:a1] - w0) << 32) | nid[a0:a1]
            ins = np.searchsorted(kold, knew) + np.arange(a1 - a0)
            is_new = np.zeros(len(kold) + a1 - a0, bool)
            is_new[ins] = True
            parts = []
            for o_arr, n_arr, src_vals in zip(
                out, new, (oid, *(o[s:e] for o in old[1:])), strict=True
            ):
                merged = np.empty(len(is_new), o_arr.dtype)
                merged[~is_new] = np.asarray(src_vals)[keep]
                merged[is_new] = n_arr[a0:a1]
                parts.append(merged)
        m = len(parts[0])
        for o_arr, part in zip(out, parts, strict=True):
            o_arr[cur : cur + m] = part
        cur += m
        release(*out, *old)
        w0 = w1
    assert cur == total, (cur, total)
    finish(*out)


def _save_delta(path: Path, new: np.ndarray, hash_c: dict, dirs: dict, counts: np.ndarray) -> None:
    """The candidates of every pair with a new raster: hash candidates sorted by
    first raster, word search directions Q(a -> b) by a; and per raster how many
    rasters its search found (new rasters: all; the others: new ones), for the cap
    (`max_candidates`)."""
    hk = sorted(hash_c)
    ev = [sorted(hash_c[p].items()) for p in hk]
    hoff = np.concatenate([[0], np.cumsum([len(e) for e in ev])]).astype(np.int64)
    flat = [x for e in ev for x in e]
    dk = sorted(dirs)
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            new=new,
            hpair=np.array(hk, np.int64).reshape(-1, 2),
            hoff=hoff,
            hev=np.array(flat, np.int64).reshape(-1, 2),
            dpair=np.array(dk, np.int64).reshape(-1, 2),
            dvotes=np.array([dirs[p][0] for p in dk], np.int64),
            dmirror=np.array([dirs[p][1] for p in dk], bool),
            found=counts,
        )


class Index:
    """The index directory, memory-mapped: per-item facts in memory (a few hundred
    bytes per raster), postings and query words paged in as used."""

    def __init__(self, path: str | os.PathLike, gens_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.gens_dir = gens_dir if gens_dir is not None else self.meta.get("gens_dir")

        def load(name: str, mmap: bool = False) -> np.ndarray:
            return np.load(self.path / f"{name}.npy", mmap_mode="r" if mmap else None)

        self.keys = load("keys")
        self.n = len(self.keys)
        self.sha, self.width, self.height = load("sha"), load("width"), load("height")
        self.bits, self.format, self.size_bytes = load("bits"), load("format"), load("size_bytes")
        self.phash = load("phash")
        self.tone, self.tone_ok = load("tone"), load("tone_ok")
        self.content, self.content_ok = load("content"), load("content_ok")
        self.quarters, self.quarters_ok = load("quarters", True), load("quarters_ok")
        self.arrays = {name: load(name, True) for names in FAMILIES.values() for name in names}
        self.inverted = {
            prefix: {name: load(prefix + name, True) for name in INVERTED_ARRAYS}
            for prefix in INVERTED
            if (self.path / f"{prefix}post_words.npy").exists()
        }
        self.post = self.inverted[""]
        self._identity = None
        self._n_words: np.ndarray | None = None
        self._smooth: dict[int, np.ndarray] = {}
        # of the last `word_search`: rasters found per query, and queries capped
        self.found_counts: Counter = Counter()
        self.capped: set[int] = set()
        # plain rasters and the speck cells of those with enough specks (texture.py)
        self.plain = self._optional("plain", np.zeros(self.n, np.int8)).astype(bool)
        self.specks = self._optional("specks", np.full((self.n, SPECK_MAX), NO_SPECK, np.uint32))
        self.speck_ok = self.plain & (specksearch.count(self.specks) >= MIN_SPECKS)
        self._common: np.ndarray | None = None
        self._before: dict[str, np.ndarray | None] = {}

    def _optional(self, name: str, default: np.ndarray) -> np.ndarray:
        path = self.path / f"{name}.npy"
        return np.load(path) if path.exists() else default

    def find(self, key: str) -> int | None:
        """Item index of a pixel hash, or None."""
        k = key.encode()
        i = int(np.searchsorted(self.keys, k))
        return i if i < self.n and self.keys[i] == k else None

    def unchanged_since(self, gen: str | None) -> np.ndarray | None:
        """Which items (same raster, same representative file) were already in index
        generation `gen`; None when that generation is not known (or its file is
        damaged: a generation is named by the digest of its content)."""
        if not gen or not self.gens_dir:
            return None
        try:
            old = np.load(Path(self.gens_dir) / f"{gen}.npy")
        except (FileNotFoundError, ValueError, OSError):
            return None
        if _gen_name(old, self.meta["params"]) != gen:
            return None
        return np.isin(self.identity(), old)

    def common(self) -> np.ndarray:
        """Which words are common in this index (`common_words`), as a mask over
        the vocabulary."""
        if self._common is None:
            mask = np.zeros(N_WORDS, bool)
            path = self.path / "common.npy"
            if path.exists():
                mask[np.load(path)] = True
            self._common = mask
        return self._common

    def common_before(self, gen: str | None) -> np.ndarray | None:
        """The common words of index generation `gen` (sorted), read once; None when
        not known."""
        if not gen or not self.gens_dir:
            return None
        if gen not in self._before:
            self._before[gen] = generation_common(self.gens_dir, gen)
        return self._before[gen]

    def common_change(self, gen: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Which rasters hold a word that became common since generation `gen`
        (`gained`: a pair of them can only lose votes, so a rerun re-checks the pairs
        it had found, unless the raster now needs fewer cells: `need_dropped`) and
        which hold one that stopped being common (`lost`: searched again); None when
        that generation's common words are not known."""
        before = self.common_before(gen)
        if before is None:
            return None
        now = np.flatnonzero(self.common())
        out = []
        for changed in (np.setdiff1d(now, before), np.setdiff1d(before, now)):
            mask = np.zeros(self.n, bool)
            if len(changed):
                starts, lens = self.postings().lookup(changed.astype(np.int64))
                mask[read_runs(self.post["post_id"], starts, lens).astype(np.int64)] = True
            out.append(mask)
        return out[0], out[1]

    def identity(self) -> np.ndarray:
        """Per item, a 64-bit digest of its pixel hash and representative sha256: what
        its candidates depend on."""
        if self._identity is None:
            path = self.path / "identity.npy"
            self._identity = np.load(path) if path.exists() else identity_of(self.keys, self.sha)
        return self._identity

    def delta_since(self, gen: str | None) -> np.ndarray | None:
        """Which items are new since generation `gen` when the index job searched
        their candidates (`delta_candidates`), else None."""
        if not gen or gen != self.meta.get("delta_from"):
            return None
        try:
            self._delta = np.load(self.path / "delta.npz")
            return self._delta["new"]
        except (FileNotFoundError, OSError, ValueError, KeyError):
            return None

    def delta_candidates(self, lo: int, hi: int) -> tuple[dict, dict, np.ndarray]:
        """The stored hash candidates of the pairs with a new raster owned by the
        rasters in [lo, hi), the word search directions from them (after
        `delta_since` found them), and how many rasters the search of each of them
        found (`_save_delta`)."""
        d = self._delta
        hp, hoff, hev = d["hpair"], d["hoff"], d["hev"]
        a, b = np.searchsorted(hp[:, 0], [lo, hi])
        hash_c = {}
        for k in range(int(a), int(b)):
            ev = hev[hoff[k] : hoff[k + 1]].tolist()
            hash_c[(int(hp[k, 0]), int(hp[k, 1]))] = {o: dd for o, dd in ev}
        dp = d["dpair"]
        a, b = np.searchsorted(dp[:, 0], [lo, hi])
        dirs = {
            (int(i), int(j)): (int(v), bool(m))
            for (i, j), v, m in zip(
                dp[a:b].tolist(), d["dvotes"][a:b].tolist(), d["dmirror"][a:b].tolist(), strict=True
            )
        }
        return hash_c, dirs, np.asarray(d["found"][lo:hi], np.int64)

    def key(self, i: int) -> str:
        """Pixel hash of item i."""
        return self.keys[i].decode()

    def item(self, i: int) -> Item:
        """The facts of item i as a record."""
        return Item(
            key=self.key(i),
            sha256=self.sha[i].decode(),
            width=int(self.width[i]),
            height=int(self.height[i]),
            bits=int(self.bits[i]),
            format=self.format[i].decode(),
            size_bytes=int(self.size_bytes[i]),
            plain=bool(self.plain[i]),
        )

    def chunk_range(self, chunk: int, n_chunks: int) -> tuple[int, int]:
        """Item index range [lo, hi) of a chunk (items are sorted by key)."""
        # the first prefix of chunk c is ceil(c * 2^32 / n), as in `chunk_of`
        bounds = [-(-(c << 32) // n_chunks) for c in range(n_chunks + 1)]
        lo = int(np.searchsorted(self.keys, _key_floor(bounds[chunk]), side="left"))
        if chunk == n_chunks - 1:
            return lo, self.n
        return lo, int(np.searchsorted(self.keys, _key_floor(bounds[chunk + 1]), side="left"))

    def strong_words(self) -> np.ndarray:
        """Distinct words of each raster's strong keypoints (above the features'
        contrast threshold); all its words in an index without that count."""
        if self._n_words is None:  # read once
            path = self.path / "nstrong.npy"
            if path.exists():
                self._n_words = np.load(path).astype(np.int64)
            else:
                self._n_words = np.diff(np.asarray(self.arrays["aoff"], np.int64))
        return self._n_words

    def smooth(self, params: RetrievalParams) -> np.ndarray:
        """Which rasters are searched by tone hash too: fewer than `tone_max_words`
        distinct strong words (a sky, sand, a defocused photograph: its weak
        keypoints fill the feature budget, but its strong ones are few)."""
        if params.tone_max_words not in self._smooth:
            self._smooth[params.tone_max_words] = self.tone_ok & (
                self.strong_words() < params.tone_max_words
            )
        return self._smooth[params.tone_max_words]

    def quarters_alike(
        self, xs: np.ndarray, ys: np.ndarray, os_: np.ndarray, params: RetrievalParams
    ) -> np.ndarray:
        """Whether x upright and y in orientation o are alike in at least
        `min_quarters` quarters of the frame, for each (x, y, o); true where a raster
        has no quarter hashes (an index of records made before them)."""
        xs, ys, os_ = (np.asarray(a, np.int64) for a in (xs, ys, os_))
        if len(xs) == 0:
            return np.zeros(0, bool)
        q = self.quarters
        d = np.bitwise_count(np.asarray(q[xs, 0]) ^ np.asarray(q[ys, os_]))
        alike = (d <= params.max_quarter_hamming).sum(axis=1) >= params.min_quarters
        return alike | ~(self.quarters_ok[xs] & self.quarters_ok[ys])

    def _phash_evidence(
        self, xs: np.ndarray, ys: np.ndarray, os_: np.ndarray, params: RetrievalParams
    ) -> np.ndarray:
        """Which pHash hits (x upright ~ y in orientation o) make candidates: alike in
        enough quarters, and not two plain rasters (a verso's pHash is its paper's
        tone and vignetting, any verso's: two plain scans are candidates by their
        specks alone)."""
        both_plain = self.plain[np.asarray(xs, np.int64)] & self.plain[np.asarray(ys, np.int64)]
        return self.quarters_alike(xs, ys, os_, params) & ~both_plain

    def _speck_evidence(
        self, xs: np.ndarray, ys: np.ndarray, os_: np.ndarray, params: RetrievalParams
    ) -> np.ndarray:
        """Which speck hits (enough specks shared, `specksearch`) make candidates:
        those whose tones are alike in the same orientation too."""
        xs, ys, os_ = (np.asarray(a, np.int64) for a in (xs, ys, os_))
        tone_d = np.bitwise_count(np.asarray(self.tone[xs, 0]) ^ np.asarray(self.tone[ys, os_]))
        return tone_d <= params.max_tone_hamming

    def _hash_hits(
        self, xs: np.ndarray, ys: np.ndarray, params: RetrievalParams
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, o, d): x in xs upright looks like y in ys seen in orientation o
        (x = o(y)), by pHash within max_hamming, or, when x or y is smooth, by tone
        hash or content hash (the picture inside plain margins) within
        max_tone_hamming; d is the pHash distance either way (the evidence of the
        pair, whichever test found it)."""
        ph = self.phash
        qi, ti, oi, di = hamming_search(ph[xs, 0], ph[ys], params.max_hamming)
        keep = self._phash_evidence(xs[qi], ys[ti], oi, params)
        hits = [(xs[qi][keep], ys[ti][keep], oi[keep], di[keep].astype(np.int64))]
        smooth = self.smooth(params) & ~self.plain
        # the whole frame's tones, and the picture's inside plain margins and fill
        for hashes, ok in ((self.tone, self.tone_ok), (self.content, self.content_ok)):
            ok = ok & ~self.plain
            for a, b in ((xs[smooth[xs]], ys), (xs[~smooth[xs]], ys[smooth[ys]])):
                a, b = a[ok[a]], b[ok[b]]
                if len(a) == 0 or len(b) == 0:
                    continue
                qi, ti, oi, _ = hamming_search(hashes[a, 0], hashes[b], params.max_tone_hamming)
                x, y = a[qi], b[ti]
                d = np.bitwise_count(np.bitwise_xor(ph[x, 0], ph[y, oi])).astype(np.int64)
                hits.append((x, y, oi, d))
        # two plain rasters: the same specks where the tones agree too
        ok = self.speck_ok & self.tone_ok
        a, b = xs[ok[xs]], ys[ok[ys]]
        if len(a) and len(b):
            qi, ti, oi = specksearch.search(
                self.specks[a], self.specks[b], params.min_shared_specks, params.min_speck_share
            )
            x, y = a[qi], b[ti]
            keep = self._speck_evidence(x, y, oi, params)
            x, y, oi = x[keep], y[keep], oi[keep]
            d = np.bitwise_count(np.bitwise_xor(ph[x, 0], ph[y, oi])).astype(np.int64)
            hits.append((x, y, oi, d))
        return tuple(np.concatenate(col) for col in zip(*hits, strict=True))

    def hash_candidates(
        self, queries: np.ndarray, params: RetrievalParams, targets: np.ndarray | None = None
    ) -> dict[tuple[int, int], dict]:
        """Pairs (i, j), i in `queries`, j > i (in `targets` if given), whose hashes
        agree in some orientation (`_hash_hits`): {(i, j): {orientation taking i to
        j: pHash distance}}."""
        out: dict[tuple[int, int], dict[int, int]] = {}
        queries = np.asarray(queries, np.int64)
        if len(queries) == 0:
            return out
        if targets is None:
            targets = np.arange(int(queries.min()) + 1, self.n, dtype=np.int64)
        targets = np.asarray(targets, np.int64)
        if len(targets) == 0:
            return out
        # i upright against the 8 orientations of every later raster: i = o(j)
        xs, ys, os_, ds = self._hash_hits(queries, targets, params)
        for i, j, o, d in zip(xs.tolist(), ys.tolist(), os_.tolist(), ds.tolist(), strict=True):
            if j > i:
                seen = out.setdefault((i, j), {})
                o_ij = inverse(o)
                seen[o_ij] = min(d, seen.get(o_ij, 99))
        # every later raster upright against the 8 orientations of i: j = o(i)
        ys, xs, os_, ds = self._hash_hits(targets, queries, params)
        for i, j, o, d in zip(xs.tolist(), ys.tolist(), os_.tolist(), ds.tolist(), strict=True):
            if j > i:
                seen = out.setdefault((i, j), {})
                seen[o] = min(d, seen.get(o, 99))
        return out

    def delta_search(self, new: np.ndarray, params: RetrievalParams) -> tuple[dict, dict]:
        """The hash and word candidates of every pair with a new raster (`new`, a mask),
        at a cost that grows with the new rasters, not with the archive's pairs: the
        new rasters' query words against every raster, every other raster's query
        words against the new rasters only. Word candidates as search directions
        Q(a -> b), which each chunk turns into the pairs it owns (`owned`)."""
        fresh = np.flatnonzero(new)
        found = self.word_search(fresh, params)
        counts = np.zeros(self.n, np.int64)
        for a, c in self.found_counts.items():
            counts[a] = c
        old = np.flatnonzero(~np.asarray(new, bool))
        if len(fresh) and len(old):
            found.update(self.word_search(old, params, self.postings_of(fresh)))
            for a, c in self.found_counts.items():
                counts[a] = c
        self.delta_counts = counts
        return self.hash_candidates_with(fresh, params), found

    def hash_candidates_with(self, new: np.ndarray, params: RetrievalParams) -> dict:
        """`hash_candidates` of every pair (i < j) with a raster of `new` among them:
        each of them upright against the 8 orientations of every raster, and every
        raster upright against their 8 orientations."""
        out: dict[tuple[int, int], dict[int, int]] = {}
        new = np.asarray(new, np.int64)
        if len(new) == 0:
            return out
        mask = np.zeros(self.n, bool)
        mask[new] = True
        old = np.flatnonzero(~mask)
        # new x old both ways, then new x new (apart, so self-matches stay few)
        hits = [
            self._hash_hits(new, old, params),
            self._hash_hits(old, new, params),
            self._hash_hits(new, new, params),
        ]
        for xs, ys, os_, ds in hits:
            # x upright ~ y in orientation o (x = o(y)): orientation x -> y is o^-1
            for x, y, o, d in zip(xs.tolist(), ys.tolist(), os_.tolist(), ds.tolist(), strict=True):
                if x == y:
                    continue
                pair, o_ij = ((x, y), inverse(o)) if x < y else ((y, x), o)
                seen = out.setdefault(pair, {})
                seen[o_ij] = min(d, seen.get(o_ij, 99))
        return out

    def postings(self) -> Postings:
        """The whole inverted file."""
        return Postings(*(self.post[n] for n in INVERTED_ARRAYS), whole=True)

    def postings_of(self, items: np.ndarray) -> Postings:
        """An inverted file of only these items (the rasters added since a chunk's
        last run), built from their item-major word lists."""
        off_name, *names = FAMILIES["a"]
        words, ids, *fields = _sorted_postings(
            self.arrays[off_name],
            np.asarray(items, np.int64),
            *(self.arrays[n] for n in names),
        )
        distinct, first = np.unique(words, return_index=True)
        start = np.append(first, len(words)).astype(np.int64)
        return Postings(distinct, start, ids.astype(np.uint32), *fields, whole=False)

    def word_candidates(
        self,
        queries: np.ndarray,
        params: RetrievalParams,
        postings: Postings | None = None,
    ) -> dict[tuple[int, int], tuple[int, bool]]:
        """The word candidates (i, j), i < j, owned by the chunk of `queries`, of
        their searches against `postings` (default: all rasters): {(i, j): (votes,
        whether the mirror image won)} (see `owned`)."""
        found = self.word_search(queries, params, postings)
        return {p: ev[:2] for p, ev in self.owned(found, params).items()}

    def word_search(
        self,
        queries: np.ndarray,
        params: RetrievalParams,
        postings: Postings | None = None,
        group: int = 4096,
    ) -> dict[tuple[int, int], tuple[int, bool]]:
        """Q(a -> b) (`wordsearch`) for every raster a of `queries` and raster b of
        `postings` (default: all rasters): {(a, b): (votes, whether a's mirror image
        won)}; a mirrored hit replaces a plain one only with more votes."""
        out: dict[tuple[int, int], tuple[int, bool]] = {}
        queries = np.asarray(queries, np.int64)
        post = postings if postings is not None else self.postings()
        for mirrored in (False, True):
            for g in range(0, len(queries), group):
                q = self.query_lists(queries[g : g + group], mirrored)
                search(q, post, self.n, params, out, mirrored)
                release(*self.arrays.values())
        self.found_counts = Counter(a for a, _ in out)
        self.capped = {a for a, c in self.found_counts.items() if c > params.max_candidates}
        if self.capped:
            kept: dict[int, list] = {a: [] for a in self.capped}
            for (a, b), ev in out.items():
                if a in kept:
                    kept[a].append((-ev[0], b))
            for a, cands in kept.items():
                for _, b in sorted(cands)[params.max_candidates :]:
                    del out[(a, b)]
        return out

    def query_lists(self, items: np.ndarray, mirrored: bool = False) -> Queries:
        """The query words of some rasters (plain or of their mirror images)."""
        fam = "mq" if mirrored else "q"
        off_name, *names = FAMILIES[fam]
        off = self.arrays[off_name]
        items = np.asarray(items, np.int64)
        lists = gather_lists(off, items, *(self.arrays[n] for n in names))
        sizes = np.asarray(off[items + 1], np.int64) - np.asarray(off[items], np.int64)
        # common words neither vote nor count (their postings are never read)
        keep = ~self.common()[lists[0]]
        if not keep.all():
            local = np.repeat(np.arange(len(items)), sizes)
            sizes = np.bincount(local[keep], minlength=len(items)).astype(np.int64)
            lists = [arr[keep] for arr in lists]
        return Queries(items, sizes, lists[0].astype(np.int64), *lists[1:])

    def need_dropped(
        self, items: np.ndarray, gen: str | None, params: RetrievalParams
    ) -> np.ndarray:
        """Which of `items` need fewer covered cells k(a) now than with the common
        words of generation `gen` (all of them when those are not known): a word
        becoming common empties the cells only it held, so fewer cells may now be
        enough, and such a raster's own search is done again
        (`match.chunk_candidates`)."""
        items = np.asarray(items, np.int64)
        before = self.common_before(gen)
        if before is None:
            return np.ones(len(items), bool)
        out = np.zeros(len(items), bool)
        if len(items) == 0:
            return out
        was = np.zeros(N_WORDS, bool)
        was[np.asarray(before, np.int64)] = True
        for fam in ("q", "mq"):
            off_name, *names = FAMILIES[fam]
            off = self.arrays[off_name]
            words, *_, pos = gather_lists(off, items, *(self.arrays[n] for n in names))
            sizes = np.asarray(off[items + 1], np.int64) - np.asarray(off[items], np.int64)
            cell = np.repeat(np.arange(len(items)), sizes) * CELLS + coverage_cell(pos)
            k = []
            for common in (was, self.common()):
                occupied = np.zeros(len(items) * CELLS, bool)
                occupied[cell[~common[words]]] = True
                k.append(cells_needed(occupied.reshape(len(items), CELLS).sum(axis=1), params))
            out |= k[1] < k[0]
        return out

    def lists_of(self, i: int, fam: str) -> dict[str, np.ndarray]:
        """One raster's word list of a family ("a": all words, "q"/"mq": query
        words), field by field."""
        off_name, *names = FAMILIES[fam]
        off = self.arrays[off_name]
        s, e = int(off[i]), int(off[i + 1])
        out = {f: np.asarray(self.arrays[n][s:e]) for f, n in zip(LIST_FIELDS, names, strict=True)}
        keep = ~self.common()[out["words"]]
        return {f: arr[keep] for f, arr in out.items()}

    def pair_word(self, a: int, b: int, params: RetrievalParams) -> tuple[int, bool] | None:
        """Q(a -> b) of one pair, by its definition (`wordsearch.pair_query`): (votes,
        mirrored) as `word_search` would find it, or None."""
        target = self.lists_of(b, "a")
        best = None
        for mirrored in (False, True):
            r = pair_query(self.lists_of(a, "mq" if mirrored else "q"), target, params)
            if r is not None and (best is None or r[0] > best[0]):
                best = (r[0], mirrored)
        return best

    def hash_pair(self, i: int, j: int, params: RetrievalParams) -> bool:
        """Whether (i, j) is a hash candidate (`hash_candidates`), for one pair."""

        def close(hashes: np.ndarray, x: int, y: int, limit: int) -> np.ndarray:
            return np.bitwise_count(hashes[x, 0] ^ hashes[y]) <= limit

        smooth = self.smooth(params) & ~self.plain
        for x, y in ((i, j), (j, i)):
            near = np.flatnonzero(close(self.phash, x, y, params.max_hamming))
            pair = np.full(len(near), x), np.full(len(near), y)
            if self._phash_evidence(*pair, near, params).any():
                return True
            for hashes, ok in ((self.tone, self.tone_ok), (self.content, self.content_ok)):
                ok = ok & ~self.plain
                if (smooth[x] or smooth[y]) and ok[x] and ok[y]:
                    if close(hashes, x, y, params.max_tone_hamming).any():
                        return True
            if self.speck_ok[x] and self.speck_ok[y] and self.tone_ok[x] and self.tone_ok[y]:
                n_x, n_y = specksearch.count(self.specks[[x, y]])
                need = specksearch.need(n_x, n_y, params.min_shared_specks, params.min_speck_share)
                near = np.array(
                    [
                        o
                        for o in range(8)
                        if specksearch.shared(self.specks[x], self.specks[y], o) >= need
                    ],
                    np.int64,
                )
                pair = np.full(len(near), x), np.full(len(near), y)
                if self._speck_evidence(*pair, near, params).any():
                    return True
        return False

    def owned(
        self, found: dict[tuple[int, int], tuple[int, bool]], params: RetrievalParams
    ) -> dict[tuple[int, int], tuple[int, bool, int]]:
        """The pairs of a set of found directions and the raster whose chunk owns
        each: {(i, j): (votes, mirrored, owner)}, i < j.

        A pair is a word candidate when Q holds either way; the chunk of i (the
        first raster, which also owns hash candidates) owns it when (i, j) is a
        hash candidate or Q(i -> j) holds, else the chunk of j, with j's evidence.
        Each test is a function of the pair, so every pair has one owner whatever
        the split, and a chunk that finds Q(j -> i) alone tests the pair itself."""
        out: dict[tuple[int, int], tuple[int, bool, int]] = {}
        for (a, b), (votes, mirrored) in found.items():
            if a < b:
                out[(a, b)] = (votes, mirrored, a)
            elif (b, a) in found or self.hash_pair(b, a, params):
                continue
            elif self.pair_word(b, a, params) is None:
                out[(b, a)] = (votes, mirrored, a)
        return out

    def reverse_words(
        self, hash_c: dict, word_c: dict, params: RetrievalParams
    ) -> dict[tuple[int, int], tuple[int, bool]]:
        """Word evidence of hash candidates (i, j) that i's own search did not find:
        Q(j -> i), searched by j's chunk, which leaves the pair to i's (`owned`)."""
        out = {}
        for i, j in hash_c:
            if (i, j) not in word_c and (ev := self.pair_word(j, i, params)) is not None:
                out[(i, j)] = ev
        return out


def cap_hash(hash_c: dict, cap: int) -> tuple[dict, list[int]]:
    """Hash candidates (i, j), j > i, with at most `cap` for each i: the nearest by
    pHash (over the orientations found), then the first j. A function of i's
    candidates among the later rasters, so of the archive, not of the split; gives
    the kept candidates and the rasters it bit."""
    per: dict[int, list] = {}
    for (i, j), ev in hash_c.items():
        per.setdefault(i, []).append((min(ev.values()), j))
    bitten = sorted(i for i, found in per.items() if len(found) > cap)
    if not bitten:
        return hash_c, []
    drop = {(i, j) for i in bitten for _, j in sorted(per[i])[cap:]}
    return {p: ev for p, ev in hash_c.items() if p not in drop}, bitten


def common_bound(postings: int, params: RetrievalParams) -> int:
    """How many rasters may hold a word before it is common (`common_df`,
    `common_ratio`): 16 up to ~5,000 rasters, 32 at 10,000, 512 at 262,000, 2,048 at
    1M."""
    mean = postings / N_WORDS
    scaled = params.common_ratio * mean
    bound = 1 << max(0, math.ceil(math.log2(scaled))) if scaled > 1 else 1
    return max(params.common_df, bound)


def common_words(words: np.ndarray, start: np.ndarray, params: RetrievalParams) -> np.ndarray:
    """The words held by more than `common_bound` rasters (of an inverted file's
    word table: its words and where their postings start), sorted: what hundreds of
    photographs share (a colour chart, a ruler, a logo, the grain of one paper) is
    not evidence that two of them are copies.
    A function of the archive, not of the pair: a rerun re-checks or searches again
    what a word whose commonness changed can have changed (`Index.common_change`)."""
    start = np.asarray(start, np.int64)
    df = np.diff(start)
    bound = common_bound(int(start[-1]) if len(start) else 0, params)
    return np.asarray(words, np.uint32)[df > bound]


def identity_of(keys: np.ndarray, shas: np.ndarray) -> np.ndarray:
    """64-bit digests of (pixel hash, sha256) pairs: the first 16 hex digits of each,
    combined (both are uniform hashes), compared as integers, not strings."""
    k = hex64(np.asarray(keys, dtype="S40").astype("S16"))
    h = hex64(np.asarray(shas, dtype="S64").astype("S16"))
    return k ^ (h * np.uint64(0x9E3779B97F4A7C15))


def _key_floor(prefix32: int) -> bytes:
    """The smallest 40-hex-digit key whose first 8 digits are `prefix32`."""
    return f"{prefix32:08x}".encode() + b"0" * 32
