"""Candidate retrieval over the whole archive: one index per run, queried by chunks.

The `index` job gathers, from every shard, one item per distinct page-0 raster (its
size, rank facts and 8 dihedral pHashes) and an inverted file of fine visual words
(each posting: raster, keypoint orientation and scale). `match_chunk` jobs then ask
it, for the rasters of their chunk, which others may be copies:

- **hash candidates**: exact Hamming search of the upright pHash against the 8
  orientations of every other raster, both ways (pHash is only approximately
  equivariant under resampling);
- **word candidates**: shared fine words that agree on one rotation and one scale
  change (weak geometric consistency, Jégou et al. 2008): the number of votes in the
  best orientation/scale bin, for the image and its mirror image.

Both criteria are functions of the two rasters alone (no top-k, no statistics over
the archive), and a pair is examined by exactly one chunk (the chunk of its first
key), so the candidates, and thus the results, do not depend on how the archive is
split into shards or chunks, nor on what else the archive holds or held before.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import resource
import shutil
import struct
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .dihedral import inverse
from .direction import content_rank
from .features import BUNDLE_ARRAYS, N_WORDS
from .hashing import hamming_search
from .util import atomic_dir, atomic_open, fingerprint, read_jsonl


@dataclass(frozen=True)
class RetrievalParams:
    """Candidate thresholds (fitted on scikit-image photographs and half of the
    development photographs; see README, Matching)."""

    # pHash Hamming distance (of 64 bits) in any of the 8 orientations
    max_hamming: int = 12
    # tone hash (hashing.tone_hash) distance, for pairs with a smooth raster: one
    # with fewer than `tone_max_words` distinct strong words (`Index.smooth`), where
    # the features have little to go on and pHash bits flip under colour and tone
    # changes
    max_tone_hamming: int = 4
    tone_max_words: int = 150
    # the strongest keypoints of the querying raster whose words are looked up
    query_features: int = 150
    # consistent votes (shared words in the best orientation/scale bin)
    min_votes: int = 5
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

    def rank(self) -> tuple:
        """Which of two copies is the source, by content: more pixels, deeper,
        lossless (see direction.content_rank); the pixel hash orders a tie, which
        the aggregation resolves (direction.resolve_ties)."""
        return (*content_rank(self.width * self.height, self.bits, self.format), self.key)


QUERY_ARRAYS = ("qoff", "qwords", "qang", "qlsc", "mqoff", "mqwords", "mqang", "mqlsc")
ALL_ARRAYS = ("aoff", "awords", "aang", "alsc")


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
}
# the columns of 8 orientation hashes, and those an index keeps (keys and sha apart;
# blank rasters are left out of it)
HASH_COLUMNS = ("phash", "tone", "content")
KEPT_ITEMS = tuple(name for name in ITEM_COLUMNS if name not in ("key", "sha", "blank"))


def _hash_columns(rows: list[dict], field: str) -> tuple[np.ndarray, np.ndarray]:
    """An (n, 8) array of a record field's 8 orientation hashes, and which rows have
    them (records made before the field existed do not)."""
    hexes = [r.get(field) or () for r in rows]
    ok = np.array([len(t) == 8 for t in hexes], bool)
    arr = np.zeros((len(rows), 8), np.uint64)
    if ok.any():
        arr[ok] = _hex64(np.array([t for t in hexes if len(t) == 8], "S16"))
    return arr, ok


def _item_rows(rows: list[dict]) -> dict[str, np.ndarray]:
    """The item columns of some shard records (status ok, with a pixel hash and
    pHashes)."""
    tone, tone_ok = _hash_columns(rows, "tone_hash")
    content, content_ok = _hash_columns(rows, "content_hash")
    return {
        "key": np.array([r["pixel_hash"] for r in rows], "S40"),
        "sha": np.array([r["sha256"] for r in rows], "S64"),
        "size_bytes": np.array([r["size_bytes"] or 0 for r in rows], np.int64),
        "width": np.array([r["width"] for r in rows], np.int64),
        "height": np.array([r["height"] for r in rows], np.int64),
        "bits": np.array([r["bits_per_sample"] or 0 for r in rows], np.int64),
        "format": np.array([r["format"] or "" for r in rows], "S8"),
        "blank": np.array([bool(r.get("blank")) for r in rows], bool),
        "phash": _hex64(np.array([r["phash"] for r in rows], "S16")).reshape(-1, 8),
        "tone": tone,
        "tone_ok": tone_ok,
        "content": content,
        "content_ok": content_ok,
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
            name: np.zeros((0, 8) if name in HASH_COLUMNS else 0, dtype)
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
# (the strongest `query_features` keypoints) and the mirror image's query words.
FAMILIES = {
    "a": ("aoff", "awords", "aang", "alsc"),
    "q": ("qoff", "qwords", "qang", "qlsc"),
    "mq": ("mqoff", "mqwords", "mqang", "mqlsc"),
}
# Inverted files (CSR over words, postings sorted by raster within a word), by the
# prefix of their arrays: of all words (queried by query words), and of the query
# words plain and mirrored (queried by a new raster's words, the other way round).
INVERTED = {"": "a", "q_": "q", "mq_": "mq"}
INVERTED_ARRAYS = ("indptr", "post_id", "post_ang", "post_lsc")
INDEX_FORMAT = 5
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
        stats.update(items=n, merged=src is not None, new=int(need.sum()))
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
            for old in sorted(gdir.glob("*.npy"), key=lambda p: p.stat().st_mtime)[:-keep_gens]:
                old.unlink(missing_ok=True)
            meta["gens_dir"] = os.path.abspath(gens_dir)
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        if src is not None and 0 < need.sum() <= DELTA_MAX_FRACTION * n:
            new_index = Index(tmp)
            delta = new_index.delta_search(need, params)
            _save_delta(tmp / "delta.npz", need, *delta)
            meta["delta_from"] = base.meta["gen"]
            stats["delta_pairs"] = len(delta[0]) + len(delta[1])
            clock.done("delta")
            del new_index
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    if gens_dir is not None:
        _keep_as_base(out_dir, Path(gens_dir) / "base")
    stats["stages"] = clock.stages
    return stats


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


def _batches(qlen: np.ndarray, max_q: int, budget: int):
    """Consecutive query ranges [b0, b1) of at most max_q queries whose votes stay
    within the budget (a query alone may exceed it)."""
    b0 = 0
    while b0 < len(qlen):
        b1, used = b0, 0
        while b1 < len(qlen) and b1 - b0 < max_q and (b1 == b0 or used + qlen[b1] <= budget):
            used += int(qlen[b1])
            b1 += 1
        yield b0, b1
        b0 = b1


def _segment_sums(values: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Sums of consecutive segments of the given lengths."""
    cs = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    ends = np.cumsum(lens)
    return cs[ends] - cs[ends - lens]


def _family_source(b: _Bundle, rows: np.ndarray, fam: str, q: int) -> np.ndarray:
    """Positions in a bundle's arrays of the entries of family `fam` of these rows,
    row after row (a raster's entries keep their bundle order)."""
    off = np.asarray(b["moffsets" if fam == "mq" else "offsets"], np.int64)
    take = _ranges(off[rows], off[rows + 1])
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
    # distinct words of each raster's strong keypoints (`Index.smooth`)
    nstrong = np.zeros(n, np.int32)
    if base is not None and src is not None:
        kept = np.flatnonzero(src >= 0)
        for fam, (off_name, *_) in FAMILIES.items():
            old = np.asarray(base.arrays[off_name], np.int64)
            sizes[fam][kept] = old[src[kept] + 1] - old[src[kept]]
        nstrong[kept] = base.strong_words()[src[kept]]
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
        nstrong[its_a] = np.asarray(b["nstrong"])[rows_a]
        for fam in FAMILIES:
            off = np.asarray(b["moffsets" if fam == "mq" else "offsets"], np.int64)
            lens = off[rows_a + 1] - off[rows_a]
            if fam == "a":
                sizes[fam][its_a] = lens
            else:
                take = _ranges(off[rows_a], off[rows_a + 1])
                rank = np.asarray(b["mrank" if fam == "mq" else "rank"][take])
                sizes[fam][its_a] = _segment_sums(rank < q, lens)
    _save(tmp / "nstrong.npy", nstrong)
    totals = {}
    for fam, (off_name, w_name, a_name, l_name) in FAMILIES.items():
        off = np.concatenate([[0], np.cumsum(sizes[fam])]).astype(np.int64)
        _save(tmp / f"{off_name}.npy", off)
        total = int(off[-1])
        totals[fam] = total
        out = {
            w_name: _open_out(tmp, w_name, np.uint32, total),
            a_name: _open_out(tmp, a_name, np.uint8, total),
            l_name: _open_out(tmp, l_name, np.int8, total),
        }
        if base is not None and src is not None:
            _copy_runs(out, base, off, np.asarray(base.arrays[off_name], np.int64), src)
        prefix = "m" if fam == "mq" else ""
        for path, rows_a, its_a in plan:
            b = _Bundle(path)
            take = _family_source(b, rows_a, fam, q)
            dst = _ranges(off[its_a], off[its_a + 1])
            for name, field in ((w_name, "words"), (a_name, "ang"), (l_name, "lsc")):
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


def _invert(tmp: Path, prefix: str, fam: str, block: int = 1 << 22) -> None:
    """An inverted file of one family's word lists, in bounded memory: the postings
    are first spilled, raster block by raster block, into files by word range (of
    about `block` postings each), then each range is sorted by word (stable, so
    within a word they stay sorted by raster) and written in place. Every write is
    sequential: scattering postings straight into the output touched all its pages
    per block, 6 bytes per posting resident (2.4 KB per raster)."""
    off_name, w_name, a_name, l_name = FAMILIES[fam]
    off = np.load(tmp / f"{off_name}.npy")
    words = np.load(tmp / f"{w_name}.npy", mmap_mode="r")
    ang = np.load(tmp / f"{a_name}.npy", mmap_mode="r")
    lsc = np.load(tmp / f"{l_name}.npy", mmap_mode="r")
    total = int(off[-1])
    counts = np.zeros(N_WORDS, np.int64)
    for s in range(0, total, block):
        counts += np.bincount(np.asarray(words[s : s + block], np.int64), minlength=N_WORDS)
        release(words)  # read pages would otherwise stay resident: 4 bytes per posting
    indptr = np.zeros(N_WORDS + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    _save(tmp / f"{prefix}indptr.npy", indptr)
    # word ranges: the words holding every block-th posting start one
    bounds = np.unique(
        np.concatenate(
            [[0], np.searchsorted(indptr, np.arange(0, total, block), side="right") - 1, [N_WORDS]]
        )
    )
    assert len(bounds) <= 1 << 16, "block too small for this many postings"
    # a posting spilled as (word << 32 | raster) and (scale code << 8 | orientation code)
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
            al = np.asarray(ang[s:e]).astype(np.uint16) | (
                np.asarray(lsc[s:e]).view(np.uint8).astype(np.uint16) << np.uint16(8)
            )
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
            release(words, ang, lsc)
        i0 = i1
    post_id = _open_out(tmp, f"{prefix}post_id", np.uint32, total)
    post_ang = _open_out(tmp, f"{prefix}post_ang", np.uint8, total)
    post_lsc = _open_out(tmp, f"{prefix}post_lsc", np.int8, total)
    for k, (kpath, apath) in enumerate(spills):
        s, e = int(indptr[bounds[k]]), int(indptr[bounds[k + 1]])
        if e == s:
            continue
        key, al = np.fromfile(kpath, np.uint64), np.fromfile(apath, np.uint16)
        kpath.unlink()
        apath.unlink()
        assert len(key) == len(al) == e - s, (len(key), e - s)
        order = _stable_order((key >> np.uint64(32)).astype(np.uint32) - np.uint32(bounds[k]))
        post_id[s:e] = key[order].astype(np.uint32)  # the low 32 bits: the raster
        al = al[order]
        post_ang[s:e] = al.astype(np.uint8)
        post_lsc[s:e] = (al >> np.uint16(8)).astype(np.uint8).view(np.int8)
        del key, al, order
        release(post_id, post_ang, post_lsc)
    finish(post_id, post_ang, post_lsc)


def _gather_lists(
    off: np.ndarray, items: np.ndarray, *arrays: np.ndarray, group: int = 1024
) -> list[np.ndarray]:
    """The word lists (`off`: offsets) of some rasters from memory-mapped arrays, a
    group of rasters at a time, released after each: rasters spread over the index
    touch a page each, and the kernel maps the neighbouring pages with it (at 1M,
    10,000 new rasters held ~2 GB of pages read at once)."""
    parts: list[list[np.ndarray]] = [[] for _ in arrays]
    for g in range(0, len(items), group):
        its = items[g : g + group]
        take = _ranges(off[its], off[its + 1])
        for out, arr in zip(parts, arrays, strict=True):
            out.append(np.asarray(arr[take]))
        release(*arrays)
    return [
        np.concatenate(p) if p else np.zeros(0, arr.dtype)
        for p, arr in zip(parts, arrays, strict=True)
    ]


def _sorted_postings(
    off: np.ndarray, items: np.ndarray, words: np.ndarray, ang: np.ndarray, lsc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The postings of some rasters' word lists, sorted by word then raster: words
    and raster ids (int64), orientation and scale codes."""
    w, a, s = _gather_lists(off, items, words, ang, lsc)
    w = w.astype(np.int64)
    ids = np.repeat(items, np.asarray(off[items + 1], np.int64) - np.asarray(off[items], np.int64))
    order = np.lexsort((ids, w))
    return w[order], ids[order], a[order], s[order]


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
    off_name, w_name, a_name, l_name = FAMILIES[fam]
    off = np.load(tmp / f"{off_name}.npy")
    words = np.load(tmp / f"{w_name}.npy", mmap_mode="r")
    ang = np.load(tmp / f"{a_name}.npy", mmap_mode="r")
    lsc = np.load(tmp / f"{l_name}.npy", mmap_mode="r")
    # the new postings, sorted by word then raster
    nw, nid, nang, nlsc = _sorted_postings(off, new_items, words, ang, lsc)
    # postings of the base's rasters that are gone (or changed)
    old_indptr = base.inverted[prefix]["indptr"]
    bo = np.asarray(base.arrays[off_name], np.int64)
    gone = np.flatnonzero(old_to_new < 0)
    gw = _gather_lists(bo, gone, base.arrays[w_name])[0].astype(np.int64)
    counts = np.diff(old_indptr) - np.bincount(gw, minlength=N_WORDS)
    counts += np.bincount(nw, minlength=N_WORDS)
    indptr = np.zeros(N_WORDS + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    _save(tmp / f"{prefix}indptr.npy", indptr)
    total = int(indptr[-1])
    out = (
        _open_out(tmp, f"{prefix}post_id", np.uint32, total),
        _open_out(tmp, f"{prefix}post_ang", np.uint8, total),
        _open_out(tmp, f"{prefix}post_lsc", np.int8, total),
    )
    old = [base.inverted[prefix][k] for k in ("post_id", "post_ang", "post_lsc")]
    new = (nid.astype(np.uint32), nang, nlsc)
    w0, cur = 0, 0
    while w0 < N_WORDS:
        w1 = int(np.searchsorted(old_indptr, old_indptr[w0] + block, side="right")) - 1
        w1 = min(max(w1, w0 + 1), N_WORDS)
        s, e = int(old_indptr[w0]), int(old_indptr[w1])
        oid = old_to_new[np.asarray(old[0][s:e], np.int64)]
        keep = oid >= 0
        a0, a1 = np.searchsorted(nw, [w0, w1])
        if keep.all() and a0 == a1:
            parts = [oid.astype(np.uint32), old[1][s:e], old[2][s:e]]
        else:
            wloc = np.repeat(np.arange(w1 - w0, dtype=np.int64), np.diff(old_indptr[w0 : w1 + 1]))
            kold = (wloc[keep] << 32) | oid[keep]
            knew = ((nw[a0:a1] - w0) << 32) | nid[a0:a1]
            ins = np.searchsorted(kold, knew) + np.arange(a1 - a0)
            is_new = np.zeros(len(kold) + a1 - a0, bool)
            is_new[ins] = True
            parts = []
            for o_arr, n_arr, src_vals in zip(
                out, new, (oid, old[1][s:e], old[2][s:e]), strict=True
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


def finish(*arrays: np.ndarray) -> None:
    """Write memory-mapped outputs to disk (once, at the end) and release them."""
    for arr in arrays:
        arr.flush()
    release(*arrays)


def release(*arrays: np.ndarray) -> None:
    """Drop the pages of memory-mapped arrays from this process's resident set (they
    stay in the page cache, written pages too, and reach the disk with the page
    cache's writeback or `finish`): a job that streams through an index of any size
    keeps only what it works on now resident."""
    for arr in arrays:
        m = getattr(arr, "_mmap", None)
        if m is None:
            continue
        try:
            m.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError, AttributeError):
            pass


def _save_delta(path: Path, new: np.ndarray, hash_c: dict, word_c: dict) -> None:
    """The candidates of every pair with a new raster, sorted by first raster."""
    hk = sorted(hash_c)
    ev = [sorted(hash_c[p].items()) for p in hk]
    hoff = np.concatenate([[0], np.cumsum([len(e) for e in ev])]).astype(np.int64)
    flat = [x for e in ev for x in e]
    wk = sorted(word_c)
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            new=new,
            hpair=np.array(hk, np.int64).reshape(-1, 2),
            hoff=hoff,
            hev=np.array(flat, np.int64).reshape(-1, 2),
            wpair=np.array(wk, np.int64).reshape(-1, 2),
            wvotes=np.array([word_c[p][0] for p in wk], np.int64),
            wmirror=np.array([word_c[p][1] for p in wk], bool),
        )


def _read_runs(arr: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The runs [starts, starts + lens) of an array, concatenated. A memory-mapped
    array is read with explicit reads, not through its mapping: faulting a mapped run
    in maps the 64 KB around it, and a batch's few thousand postings lists, scattered
    over the file, held hundreds of MB resident (the 1M index job's delta search)."""
    starts, lens = np.asarray(starts, np.int64), np.asarray(lens, np.int64)
    mm = getattr(arr, "_mmap", None)
    if mm is None or arr.base is not mm or getattr(arr, "filename", None) is None:
        return np.asarray(arr[_ranges(starts, starts + lens)])
    size = arr.dtype.itemsize
    fd = os.open(arr.filename, os.O_RDONLY)
    try:
        at, nbytes = (arr.offset + starts * size).tolist(), (lens * size).tolist()
        data = b"".join(os.pread(fd, n, a) for a, n in zip(at, nbytes, strict=True) if n)
    finally:
        os.close(fd)
    if len(data) != int(lens.sum()) * size:
        raise OSError(f"short read of {arr.filename}")
    return np.frombuffer(data, arr.dtype)


def _list_parts(
    ids: np.ndarray, lo: np.ndarray, a: np.ndarray, b: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions [a, b) of each word's postings list, of the lists read one after
    another into `ids` (word i's from lo[i], from `starts[i]` in the inverted file):
    the word each posting belongs to, its raster, and its position in the inverted
    file (where its orientation and scale codes are)."""
    local = _ranges(a, b)
    rep = np.repeat(np.arange(len(a), dtype=np.int64), b - a)
    return rep, ids[local].astype(np.int64), starts[rep] + (local - lo[rep])


def _first_after(
    ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """Per segment [starts, ends) of ids sorted ascending: the first position whose id
    is greater than q (bisection on all segments at once)."""
    lo, hi = starts.copy(), ends.copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        probe = np.where(active, mid, 0)
        gt = np.asarray(ids[probe], np.int64) > q
        hi = np.where(active & gt, mid, hi)
        lo = np.where(active & ~gt, mid + 1, lo)


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
        self.arrays = {name: load(name, True) for names in FAMILIES.values() for name in names}
        self.inverted = {
            prefix: {name: load(prefix + name, True) for name in INVERTED_ARRAYS}
            for prefix in INVERTED
            if (self.path / f"{prefix}indptr.npy").exists()
        }
        self.indptr = self.inverted[""]["indptr"]
        self.post = {name: self.inverted[""][name] for name in INVERTED_ARRAYS[1:]}
        self.query = {name: self.arrays[name] for name in QUERY_ARRAYS}
        self.all_words = {name: self.arrays[name] for name in ALL_ARRAYS}
        self._identity = None
        self._n_words: np.ndarray | None = None

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

    def delta_candidates(self, lo: int, hi: int) -> tuple[dict, dict]:
        """The stored candidates (hash, word) of the pairs with a new raster whose first
        raster is in [lo, hi) (after `delta_since` found them)."""
        d = self._delta
        hp, hoff, hev = d["hpair"], d["hoff"], d["hev"]
        a, b = np.searchsorted(hp[:, 0], [lo, hi])
        hash_c = {}
        for k in range(int(a), int(b)):
            ev = hev[hoff[k] : hoff[k + 1]].tolist()
            hash_c[(int(hp[k, 0]), int(hp[k, 1]))] = {o: dd for o, dd in ev}
        wp = d["wpair"]
        a, b = np.searchsorted(wp[:, 0], [lo, hi])
        word_c = {
            (int(i), int(j)): (int(v), bool(m))
            for (i, j), v, m in zip(
                wp[a:b].tolist(), d["wvotes"][a:b].tolist(), d["wmirror"][a:b].tolist(), strict=True
            )
        }
        return hash_c, word_c

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
        return self.tone_ok & (self.strong_words() < params.tone_max_words)

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
        hits = [(xs[qi], ys[ti], oi, di.astype(np.int64))]
        smooth = self.smooth(params)
        # the whole frame's tones, and the picture's inside plain margins and fill
        for hashes, ok in ((self.tone, self.tone_ok), (self.content, self.content_ok)):
            for a, b in ((xs[smooth[xs]], ys), (xs[~smooth[xs]], ys[smooth[ys]])):
                a, b = a[ok[a]], b[ok[b]]
                if len(a) == 0 or len(b) == 0:
                    continue
                qi, ti, oi, _ = hamming_search(hashes[a, 0], hashes[b], params.max_tone_hamming)
                x, y = a[qi], b[ti]
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
        at a cost that grows with the new rasters, not with the archive's pairs."""
        return (
            self.hash_candidates_with(np.flatnonzero(new), params),
            self.word_candidates_with(new, params),
        )

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

    def word_candidates_with(self, new: np.ndarray, params: RetrievalParams) -> dict:
        """`word_candidates` of every pair (i < j) with a new raster (`new`, a mask):
        new rasters' query words against all later rasters, as in a full search; and,
        the other way round, all words of each new raster j against the inverted files
        of query words, for the earlier rasters i that are not new."""
        new = np.asarray(new, bool)
        out = self.word_candidates(np.flatnonzero(new), params)
        js = np.flatnonzero(new)
        if len(js) == 0:
            return out
        aoff = self.arrays["aoff"]
        s0, s1 = np.asarray(aoff[js], np.int64), np.asarray(aoff[js + 1], np.int64)
        jw, ja, js_ = (
            a.astype(np.int64)
            for a in _gather_lists(
                aoff, js, self.arrays["awords"], self.arrays["aang"], self.arrays["alsc"]
            )
        )
        release(*self.arrays.values())
        sizes = s1 - s0
        cum = np.concatenate([[0], np.cumsum(sizes)])
        local = np.repeat(np.arange(len(js), dtype=np.int64), sizes)
        max_q = max(1, params.batch_cells // max(1, self.n))
        for mirrored, prefix in ((False, "q_"), (True, "mq_")):
            inv = self.inverted[prefix]
            if len(inv["post_id"]) == 0:
                continue
            post = Postings(inv["indptr"], None, inv["post_id"], inv["post_ang"], inv["post_lsc"])
            starts, lens = post.lookup(jw)
            # batches cut by all postings of the words: what a batch reads, then
            # cuts to the rasters before j
            qlen = _segment_sums(lens, sizes)
            for b0, b1 in _batches(qlen, max_q, params.batch_votes):
                w = slice(cum[b0], cum[b1])
                self._reverse_batch(
                    js[b0:b1],
                    local[w] - b0,
                    starts[w],
                    lens[w],
                    ja[w],
                    js_[w],
                    post,
                    new,
                    params,
                    mirrored,
                    out,
                )
                release(post.ids, post.ang, post.lsc)
        return out

    def _reverse_batch(
        self,
        jitems: np.ndarray,
        local: np.ndarray,
        starts: np.ndarray,
        lens: np.ndarray,
        jang: np.ndarray,
        jlsc: np.ndarray,
        post: Postings,
        new: np.ndarray,
        params: RetrievalParams,
        mirrored: bool,
        out: dict,
    ) -> None:
        # the words' postings lists read whole, then only the rasters before j kept
        ids = _read_runs(post.ids, starts, lens)
        lo = np.cumsum(lens) - lens
        ends = _first_after(ids, lo, lo + lens, jitems[local] - 1)
        rep, db, p = _list_parts(ids, lo, lo, ends, starts)
        if len(rep) == 0:
            return
        keep = ~new[db]  # pairs of two new rasters: found by the earlier one's query
        p, db, rep = p[keep], db[keep], rep[keep]
        n = self.n
        cell = local[rep] * n + db
        counts = np.bincount(cell, minlength=len(jitems) * n)
        sel = counts[cell] >= params.min_votes
        if not sel.any():
            return
        cell, p, rep = cell[sel], p[sel], rep[sel]
        box = box_keys(
            jang[rep] - np.asarray(post.ang[p], np.int64),
            jlsc[rep] - np.asarray(post.lsc[p], np.int64),
            params,
        )
        for c, v in _best_bins(cell, box, params):
            if v < params.min_votes:
                continue
            i, j = c % n, int(jitems[c // n])
            old = out.get((i, j))
            if old is None or v > old[0]:
                out[(i, j)] = (int(v), mirrored)

    def postings(self) -> Postings:
        """The whole inverted file."""
        return Postings(
            self.indptr, None, self.post["post_id"], self.post["post_ang"], self.post["post_lsc"]
        )

    def postings_of(self, items: np.ndarray) -> Postings:
        """An inverted file of only these items (the rasters added since a chunk's
        last run), built from their item-major word lists."""
        a = self.all_words
        words, ids, ang, lsc = _sorted_postings(
            a["aoff"], np.asarray(items, np.int64), a["awords"], a["aang"], a["alsc"]
        )
        return Postings(None, words, ids.astype(np.uint32), ang, lsc)

    def word_candidates(
        self,
        queries: np.ndarray,
        params: RetrievalParams,
        postings: Postings | None = None,
    ) -> dict[tuple[int, int], tuple[int, bool]]:
        """Pairs (i, j), i in `queries`, j > i (among `postings`, default all), with at
        least `min_votes` geometrically consistent shared words: {(i, j): (votes,
        whether i's mirror image won)}."""
        out: dict[tuple[int, int], tuple[int, bool]] = {}
        queries = np.asarray(queries, np.int64)
        if len(queries) == 0:
            return out
        post = postings if postings is not None else self.postings()
        # a dense count array per batch for the whole index; sparse counting for a
        # small inverted file (few votes), so batches are bounded by votes alone
        dense = post.indptr is not None
        max_q = max(1, params.batch_cells // max(1, self.n)) if dense else 1 << 16
        for mirrored, prefix in ((False, ""), (True, "m")):
            off = self.query[prefix + "qoff"]
            s0, s1 = np.asarray(off[queries], np.int64), np.asarray(off[queries + 1], np.int64)
            # every query word looked up once: its postings, and the votes each query
            # may gather, to cut the queries into bounded batches
            take = _ranges(s0, s1)
            qw = _gather_lists(off, queries, self.query[prefix + "qwords"])[0].astype(np.int64)
            starts, lens = post.lookup(qw)
            sizes = s1 - s0
            cum = np.concatenate([[0], np.cumsum(sizes)])
            qlen = _segment_sums(lens, sizes)
            for b0, b1 in _batches(qlen, max_q, params.batch_votes):
                w = slice(cum[b0], cum[b1])
                self._vote_batch(
                    queries[b0:b1],
                    sizes[b0:b1],
                    take[w],
                    qw[w],
                    (starts[w], lens[w]),
                    prefix,
                    post,
                    params,
                    mirrored,
                    out,
                )
                release(post.ids, post.ang, post.lsc, *self.query.values())
        return out

    def _vote_batch(
        self,
        qitems: np.ndarray,
        sizes: np.ndarray,
        take: np.ndarray,
        qw: np.ndarray,
        found: tuple[np.ndarray, np.ndarray],
        prefix: str,
        post: Postings,
        params: RetrievalParams,
        mirrored: bool,
        out: dict,
    ) -> None:
        if len(take) == 0:
            return
        qa = np.asarray(self.query[prefix + "qang"][take], np.int64)
        qs = np.asarray(self.query[prefix + "qlsc"][take], np.int64)
        local = np.repeat(np.arange(len(qitems), dtype=np.int64), sizes)
        # postings of each word are sorted by raster: take only those after the query
        starts, lens = found
        # the words' postings lists read whole (a batch's are bounded by batch_votes)
        ids = _read_runs(post.ids, starts, lens)
        lo = np.cumsum(lens) - lens
        if post.indptr is not None:
            first = _first_after(ids, lo, lo + lens, qitems[local])
        else:  # a small inverted file (the rasters added since the last run)
            first = lo
        rep, db, p = _list_parts(ids, lo, first, lo + lens, starts)
        if len(rep) == 0:
            return
        ql = local[rep]
        if post.indptr is None:
            keep = db > qitems[ql]
            p, db, ql, rep = p[keep], db[keep], ql[keep], rep[keep]
        n = self.n
        cell = ql * n + db
        if post.indptr is not None:
            counts = np.bincount(cell, minlength=len(qitems) * n)
            sel = counts[cell] >= params.min_votes
        else:
            _, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
            sel = counts[inverse] >= params.min_votes
        if not sel.any():
            return
        cell, p, rep = cell[sel], p[sel], rep[sel]
        box = box_keys(
            np.asarray(post.ang[p], np.int64) - qa[rep],
            np.asarray(post.lsc[p], np.int64) - qs[rep],
            params,
        )
        for c, v in _best_bins(cell, box, params):
            if v < params.min_votes:
                continue
            i, j = int(qitems[c // n]), c % n
            old = out.get((i, j))
            if old is None or v > old[0]:
                out[(i, j)] = (int(v), mirrored)


def _best_bins(cell: np.ndarray, box: np.ndarray, params: RetrievalParams) -> list:
    """(pair cell, votes in its best orientation/scale box) of the votes of a batch."""
    n_box = params.angle_bins * BOX_SCALES
    keys, box_counts = np.unique(np.tile(cell * n_box, 4) + box, return_counts=True)
    pair_cell = keys // n_box
    starts_idx = np.flatnonzero(np.r_[True, pair_cell[1:] != pair_cell[:-1]])
    best = np.maximum.reduceat(box_counts, starts_idx)
    return list(zip(pair_cell[starts_idx].tolist(), best.tolist(), strict=True))


@dataclass(frozen=True)
class Postings:
    """An inverted file: the raster ids, orientation and scale codes of each word,
    sorted by word then raster; words found through `indptr` (the index's CSR
    pointers) or, for a small file, by searching its sorted `words`."""

    indptr: np.ndarray | None
    words: np.ndarray | None
    ids: np.ndarray
    ang: np.ndarray
    lsc: np.ndarray

    def lookup(self, qw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, length) of each queried word's postings."""
        if self.indptr is not None:
            starts = np.asarray(self.indptr[qw], np.int64)
            return starts, np.asarray(self.indptr[qw + 1], np.int64) - starts
        starts = np.searchsorted(self.words, qw, side="left").astype(np.int64)
        return starts, np.searchsorted(self.words, qw, side="right").astype(np.int64) - starts


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], ends[i]), vectorised."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    rep = np.repeat(np.arange(len(lens)), lens)
    return starts[rep] + np.arange(total, dtype=np.int64) - (np.cumsum(lens) - lens)[rep]


BOX_SCALES = 66


def box_keys(dang: np.ndarray, dscale: np.ndarray, params: RetrievalParams) -> np.ndarray:
    """The 2x2 boxes of (orientation, scale) bins each vote falls in, so a transform
    on a bin edge is not split: 4 box ids per vote (all first boxes, then all
    second ...). dang in 1/256 turns, dscale in quarter octaves."""
    a_bins = params.angle_bins
    abin = (np.asarray(dang, np.int64) % 256) * a_bins // 256
    sbin = np.clip(np.floor_divide(np.asarray(dscale, np.int64), params.scale_bin), -32, 31) + 33
    out = [((abin - da) % a_bins) * BOX_SCALES + (sbin - ds) for da in (0, 1) for ds in (0, 1)]
    return np.concatenate(out)


def pair_votes(query: dict, target: dict, params: RetrievalParams, mirrored: bool) -> int:
    """Consistent votes of one query raster's signature against another's: the
    reference the index's batched search must agree with (tests)."""
    prefix = "m" if mirrored else ""
    sel = query[prefix + "rank"] < params.query_features
    qw, qa, qs = (query[prefix + n][sel] for n in ("words", "ang", "lsc"))
    common, qi, ti = np.intersect1d(qw, target["words"], return_indices=True)
    if len(common) == 0:
        return 0
    box = box_keys(
        target["ang"][ti].astype(np.int64) - qa[qi].astype(np.int64),
        target["lsc"][ti].astype(np.int64) - qs[qi].astype(np.int64),
        params,
    )
    return int(np.unique(box, return_counts=True)[1].max())


def identity_of(keys: np.ndarray, shas: np.ndarray) -> np.ndarray:
    """64-bit digests of (pixel hash, sha256) pairs: the first 16 hex digits of each,
    combined (both are uniform hashes), compared as integers, not strings."""
    k = _hex64(np.asarray(keys, dtype="S40").astype("S16"))
    h = _hex64(np.asarray(shas, dtype="S64").astype("S16"))
    return k ^ (h * np.uint64(0x9E3779B97F4A7C15))


_NIBBLE = np.zeros(256, np.uint64)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint64)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint64)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint64)


def _hex64(hexes: np.ndarray) -> np.ndarray:
    """Values of 16-digit hexadecimal byte strings (any shape), as uint64, at once."""
    a = np.ascontiguousarray(hexes, dtype="S16")
    if a.size and not (np.char.str_len(a) == 16).all():  # fewer digits: one by one
        return np.array([int(x, 16) for x in a.ravel().tolist()], np.uint64).reshape(a.shape)
    digits = _NIBBLE[a.view(np.uint8).reshape(*a.shape, 16)]
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    return np.bitwise_or.reduce(digits << shifts, axis=-1).astype(np.uint64)


def _key_floor(prefix32: int) -> bytes:
    """The smallest 40-hex-digit key whose first 8 digits are `prefix32`."""
    return f"{prefix32:08x}".encode() + b"0" * 32
