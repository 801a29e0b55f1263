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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .dihedral import inverse
from .features import N_WORDS, load_signatures
from .hashing import hamming_search
from .util import atomic_dir, atomic_open, read_jsonl

FORMAT_RANK = {"tiff": 3, "png": 2, "webp": 1, "jp2k": 1, "jpeg": 0, "gif": 0}


@dataclass(frozen=True)
class RetrievalParams:
    """Candidate thresholds (fitted on scikit-image photographs and half of the
    development photographs; see README, Matching)."""

    # pHash Hamming distance (of 64 bits) in any of the 8 orientations
    max_hamming: int = 12
    # the strongest keypoints of the querying raster whose words are looked up
    query_features: int = 150
    # consistent votes (shared words in the best orientation/scale bin)
    min_votes: int = 5
    # orientation bins over 360 degrees and scale bin width in quarter octaves
    angle_bins: int = 16
    scale_bin: int = 2
    # working set of one query batch (votes gathered at once; counts array cells)
    batch_votes: int = 4_000_000
    batch_cells: int = 1 << 24

    def fingerprint(self) -> str:
        """What changes the candidate set (batch sizes do not)."""
        d = asdict(self)
        d.pop("batch_votes")
        d.pop("batch_cells")
        return "r1:" + json.dumps(d, sort_keys=True)


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
        """Which of two copies is the source: more pixels, deeper, lossless, larger."""
        return (
            self.width * self.height,
            self.bits or 0,
            FORMAT_RANK.get(self.format, 0),
            self.size_bytes or 0,
            self.key,
        )


QUERY_ARRAYS = ("qoff", "qwords", "qang", "qlsc", "mqoff", "mqwords", "mqang", "mqlsc")
ALL_ARRAYS = ("aoff", "awords", "aang", "alsc")


def collect_items(record_files: list[str]) -> dict[str, tuple]:
    """One representative record per distinct raster (status ok, with hashes): the
    largest file, then the highest sha256, so it does not depend on file names or
    arrival order. Rasters whose representative is blank are left out."""
    items: dict[str, tuple] = {}
    for path in record_files:
        for r in read_jsonl(path):
            key = r.get("pixel_hash")
            if r["status"] != "ok" or not key or not r.get("phash"):
                continue
            it = (
                r["size_bytes"] or 0,
                r["sha256"],
                r["width"],
                r["height"],
                r["bits_per_sample"] or 0,
                r["format"] or "",
                tuple(r["phash"]),
                bool(r.get("blank")),
            )
            old = items.get(key)
            if old is None or it[:2] > old[:2]:
                items[key] = it
    return {k: v for k, v in items.items() if not v[7]}


def _save(path: Path, arr: np.ndarray) -> None:
    np.save(path, arr, allow_pickle=False)


def build_index(
    record_files: list[str],
    signature_files: list[str],
    out_dir: str | os.PathLike,
    params: RetrievalParams,
    gens_dir: str | os.PathLike | None = None,
    keep_gens: int = 8,
) -> dict:
    """Write the index directory (atomically): items, query words and postings.

    Two passes over the per-shard signature bundles (count, then fill memory-mapped
    arrays), so memory holds one shard's signatures plus the per-item facts.
    """
    items = collect_items(record_files)
    keys = sorted(items)
    n = len(keys)
    pos = {items[k][1]: i for i, k in enumerate(keys)}  # representative sha -> item
    with atomic_dir(out_dir) as tmp:
        _save(tmp / "keys.npy", np.array(keys, dtype="S40"))
        _save(tmp / "sha.npy", np.array([items[k][1] for k in keys], dtype="S64"))
        for j, name in ((2, "width"), (3, "height"), (4, "bits")):
            _save(tmp / f"{name}.npy", np.array([items[k][j] for k in keys], dtype=np.int64))
        _save(tmp / "size_bytes.npy", np.array([items[k][0] for k in keys], dtype=np.int64))
        _save(tmp / "format.npy", np.array([items[k][5] for k in keys], dtype="S8"))
        ph = np.zeros((n, 8), np.uint64)
        for i, k in enumerate(keys):
            ph[i] = [int(h, 16) for h in items[k][6]]
        _save(tmp / "phash.npy", ph)
        items_sha = {k: items[k][1] for k in keys}
        del items
        stats = _build_postings(signature_files, pos, tmp, params)
        stats["items"] = n
        # The generation: which rasters (with which representative files) this index
        # holds, so a chunk can tell what was added since its previous run.
        identity = identity_of(
            np.array(keys, dtype="S40"), np.array([items_sha[k] for k in keys], dtype="S64")
        )
        gen = hashlib.sha1(identity.tobytes() + params.fingerprint().encode()).hexdigest()[:16]
        stats["gen"] = gen
        if gens_dir is not None:
            gdir = Path(gens_dir)
            gdir.mkdir(parents=True, exist_ok=True)
            with atomic_open(gdir / f"{gen}.npy", "wb") as fh:
                np.save(fh, identity)
            for old in sorted(gdir.glob("*.npy"), key=lambda p: p.stat().st_mtime)[:-keep_gens]:
                old.unlink(missing_ok=True)
        meta = {"params": params.fingerprint(), **stats}
        if gens_dir is not None:
            meta["gens_dir"] = os.path.abspath(gens_dir)
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    return stats


def _sig_batches(signature_files: list[str], pos: dict[str, int]):
    """Each indexed raster's signature (its representative's) once, shard by shard:
    (item index, sig)."""
    seen = np.zeros(len(pos), bool)
    for path in signature_files:
        batch = []
        for key, sig in sorted(load_signatures(path).items()):
            i = pos.get(key)
            if i is None or seen[i]:
                continue
            seen[i] = True
            batch.append((i, sig))
        yield batch


def _build_postings(
    signature_files: list[str], pos: dict[str, int], tmp: Path, params: RetrievalParams
) -> dict:
    n = len(pos)
    counts = np.zeros(N_WORDS, np.int64)
    qn = np.zeros(n, np.int64)
    mqn = np.zeros(n, np.int64)
    an = np.zeros(n, np.int64)
    q = params.query_features
    for batch in _sig_batches(signature_files, pos):
        for i, sig in batch:
            qn[i] = int((sig["rank"] < q).sum())
            mqn[i] = int((sig["mrank"] < q).sum())
            an[i] = len(sig["words"])
        if batch:
            counts += np.bincount(
                np.concatenate([sig["words"] for _, sig in batch]).astype(np.int64),
                minlength=N_WORDS,
            )
    indptr = np.zeros(N_WORDS + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    total = int(indptr[-1])
    _save(tmp / "indptr.npy", indptr)

    def mm(name: str, dtype: type, size: int) -> np.ndarray:
        return np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", dtype, (size,))

    post_id, post_ang, post_lsc = (
        mm("post_id", np.uint32, total),
        mm("post_ang", np.uint8, total),
        mm("post_lsc", np.int8, total),
    )
    qoff = np.concatenate([[0], np.cumsum(qn)]).astype(np.int64)
    mqoff = np.concatenate([[0], np.cumsum(mqn)]).astype(np.int64)
    aoff = np.concatenate([[0], np.cumsum(an)]).astype(np.int64)
    _save(tmp / "qoff.npy", qoff)
    _save(tmp / "mqoff.npy", mqoff)
    _save(tmp / "aoff.npy", aoff)
    qa = {
        "qwords": mm("qwords", np.uint32, int(qoff[-1])),
        "qang": mm("qang", np.uint8, int(qoff[-1])),
        "qlsc": mm("qlsc", np.int8, int(qoff[-1])),
        "mqwords": mm("mqwords", np.uint32, int(mqoff[-1])),
        "mqang": mm("mqang", np.uint8, int(mqoff[-1])),
        "mqlsc": mm("mqlsc", np.int8, int(mqoff[-1])),
        "awords": mm("awords", np.uint32, int(aoff[-1])),
        "aang": mm("aang", np.uint8, int(aoff[-1])),
        "alsc": mm("alsc", np.int8, int(aoff[-1])),
    }
    cursor = indptr[:-1].copy()
    written, release_every = 0, 1 << 23
    for batch in _sig_batches(signature_files, pos):
        if not batch:
            continue
        for i, sig in batch:
            for prefix, off in (("", qoff), ("m", mqoff)):
                sel = sig[prefix + "rank"] < q
                s, e = off[i], off[i + 1]
                qa[prefix + "qwords"][s:e] = sig[prefix + "words"][sel]
                qa[prefix + "qang"][s:e] = sig[prefix + "ang"][sel]
                qa[prefix + "qlsc"][s:e] = sig[prefix + "lsc"][sel]
            s, e = aoff[i], aoff[i + 1]
            qa["awords"][s:e], qa["aang"][s:e], qa["alsc"][s:e] = (
                sig["words"],
                sig["ang"],
                sig["lsc"],
            )
        words = np.concatenate([sig["words"] for _, sig in batch]).astype(np.int64)
        ids = np.concatenate([np.full(len(sig["words"]), i, np.uint32) for i, sig in batch])
        ang = np.concatenate([sig["ang"] for _, sig in batch])
        lsc = np.concatenate([sig["lsc"] for _, sig in batch])
        order = np.argsort(words, kind="stable")
        ws = words[order]
        first = np.searchsorted(ws, ws, side="left")
        slot = cursor[ws] + (np.arange(len(ws)) - first)
        post_id[slot], post_ang[slot], post_lsc[slot] = ids[order], ang[order], lsc[order]
        np.add.at(cursor, ws, 1)
        written += len(ws)
        if written >= release_every:  # bounded resident set, few re-faults
            release(post_id, post_ang, post_lsc, *qa.values())
            written = 0
    _sort_within_words(indptr, post_id, post_ang, post_lsc)
    for arr in (post_id, post_ang, post_lsc, *qa.values()):
        arr.flush()
    return {"postings": total, "query_words": int(qoff[-1]), "mirror_query_words": int(mqoff[-1])}


def release(*arrays: np.ndarray) -> None:
    """Drop the pages of memory-mapped arrays from this process's resident set (they
    stay in the page cache): a job that streams through an index of any size keeps
    only what it works on now resident."""
    for arr in arrays:
        m = getattr(arr, "_mmap", None)
        if m is None:
            continue
        if arr.mode != "r":
            arr.flush()
        try:
            m.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError, AttributeError):
            pass


def _sort_within_words(
    indptr: np.ndarray,
    post_id: np.ndarray,
    post_ang: np.ndarray,
    post_lsc: np.ndarray,
    max_block: int = 1 << 23,
) -> None:
    """Sort each word's postings by raster index (in bounded blocks of words), so a
    query can skip the rasters before it by bisection."""
    n_words = len(indptr) - 1
    w0 = 0
    while w0 < n_words:
        w1 = int(np.searchsorted(indptr, indptr[w0] + max_block, side="right")) - 1
        w1 = min(max(w1, w0 + 1), n_words)
        s, e = int(indptr[w0]), int(indptr[w1])
        if e > s:
            lens = np.diff(indptr[w0 : w1 + 1])
            word = np.repeat(np.arange(w1 - w0, dtype=np.uint64), lens)
            order = np.argsort((word << np.uint64(32)) | post_id[s:e].astype(np.uint64))
            post_id[s:e] = post_id[s:e][order]
            post_ang[s:e] = post_ang[s:e][order]
            post_lsc[s:e] = post_lsc[s:e][order]
            release(post_id, post_ang, post_lsc)
        w0 = w1


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
        self.indptr = load("indptr", True)
        self.post = {name: load(name, True) for name in ("post_id", "post_ang", "post_lsc")}
        self.query = {name: load(name, True) for name in QUERY_ARRAYS}
        self.all_words = {name: load(name, True) for name in ALL_ARRAYS}

    def find(self, key: str) -> int | None:
        """Item index of a pixel hash, or None."""
        k = key.encode()
        i = int(np.searchsorted(self.keys, k))
        return i if i < self.n and self.keys[i] == k else None

    def unchanged_since(self, gen: str | None) -> np.ndarray | None:
        """Which items (same raster, same representative file) were already in index
        generation `gen`; None when that generation is not known."""
        if not gen or not self.gens_dir:
            return None
        try:
            old = np.load(Path(self.gens_dir) / f"{gen}.npy")
        except (FileNotFoundError, ValueError, OSError):
            return None
        return np.isin(self.identity(), old)

    def identity(self) -> np.ndarray:
        """Per item, a 64-bit digest of its pixel hash and representative sha256: what
        its candidates depend on."""
        return identity_of(self.keys, self.sha)

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

    def hash_candidates(
        self, queries: np.ndarray, max_dist: int, targets: np.ndarray | None = None
    ) -> dict[tuple[int, int], dict]:
        """Pairs (i, j), i in `queries`, j > i (in `targets` if given), whose pHashes
        are within max_dist in some orientation: {(i, j): {orientation taking i to j:
        Hamming distance}}."""
        out: dict[tuple[int, int], dict[int, int]] = {}
        queries = np.asarray(queries, np.int64)
        if len(queries) == 0:
            return out
        if targets is None:
            targets = np.arange(int(queries.min()) + 1, self.n, dtype=np.int64)
        targets = np.asarray(targets, np.int64)
        if len(targets) == 0:
            return out
        ph = self.phash
        # i upright against the 8 orientations of every later raster: i = o(j)
        qi, ti, oi, di = hamming_search(ph[queries, 0], ph[targets], max_dist)
        for i, j, o, d in zip(
            queries[qi].tolist(), targets[ti].tolist(), oi.tolist(), di.tolist(), strict=True
        ):
            if j > i:
                seen = out.setdefault((i, j), {})
                o_ij = inverse(o)
                seen[o_ij] = min(d, seen.get(o_ij, 99))
        # every later raster upright against the 8 orientations of i: j = o(i)
        ti, qi, oi, di = hamming_search(ph[targets, 0], ph[queries], max_dist)
        for i, j, o, d in zip(
            queries[qi].tolist(), targets[ti].tolist(), oi.tolist(), di.tolist(), strict=True
        ):
            if j > i:
                seen = out.setdefault((i, j), {})
                seen[o] = min(d, seen.get(o, 99))
        return out

    def postings(self) -> Postings:
        """The whole inverted file."""
        return Postings(
            self.indptr, None, self.post["post_id"], self.post["post_ang"], self.post["post_lsc"]
        )

    def postings_of(self, items: np.ndarray) -> Postings:
        """An inverted file of only these items (the rasters added since a chunk's
        last run), built from their item-major word lists."""
        aoff = self.all_words["aoff"]
        items = np.asarray(items, np.int64)
        take = _ranges(np.asarray(aoff[items], np.int64), np.asarray(aoff[items + 1], np.int64))
        sizes = np.asarray(aoff[items + 1], np.int64) - np.asarray(aoff[items], np.int64)
        words = np.asarray(self.all_words["awords"][take], np.int64)
        ids = np.repeat(items, sizes)
        order = np.lexsort((ids, words))
        return Postings(
            None,
            words[order],
            ids[order].astype(np.uint32),
            np.asarray(self.all_words["aang"][take])[order],
            np.asarray(self.all_words["alsc"][take])[order],
        )

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
            qw = np.asarray(self.query[prefix + "qwords"][take], np.int64)
            starts, lens = post.lookup(qw)
            sizes = s1 - s0
            cum = np.concatenate([[0], np.cumsum(sizes)])
            qlen = np.zeros(len(queries), np.int64)
            nonempty = sizes > 0
            if nonempty.any():
                qlen[nonempty] = np.add.reduceat(lens, cum[:-1][nonempty]) if len(lens) else 0
            b0 = 0
            while b0 < len(queries):
                b1, budget = b0, 0
                while (
                    b1 < len(queries)
                    and b1 - b0 < max_q
                    and (b1 == b0 or budget + qlen[b1] <= params.batch_votes)
                ):
                    budget += int(qlen[b1])
                    b1 += 1
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
                b0 = b1
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
        ends = starts + lens
        if post.indptr is not None:
            first = _first_after(post.ids, starts, ends, qitems[local])
        else:  # a small inverted file (the rasters added since the last run)
            first = starts
        lens = ends - first
        total = int(lens.sum())
        if total == 0:
            return
        rep = np.repeat(np.arange(len(qw), dtype=np.int64), lens)
        p = (first - (np.cumsum(lens) - lens))[rep] + np.arange(total, dtype=np.int64)
        db = np.asarray(post.ids[p], np.int64)
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
        n_box = params.angle_bins * BOX_SCALES
        keys, box_counts = np.unique(np.tile(cell * n_box, 4) + box, return_counts=True)
        pair_cell = keys // n_box
        starts_idx = np.flatnonzero(np.r_[True, pair_cell[1:] != pair_cell[:-1]])
        best = np.maximum.reduceat(box_counts, starts_idx)
        for c, v in zip(pair_cell[starts_idx].tolist(), best.tolist(), strict=True):
            if v < params.min_votes:
                continue
            i, j = int(qitems[c // n]), c % n
            old = out.get((i, j))
            if old is None or v > old[0]:
                out[(i, j)] = (int(v), mirrored)


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
    k = np.array([int(x[:16], 16) for x in keys], dtype=np.uint64)
    h = np.array([int(x[:16], 16) for x in shas], dtype=np.uint64)
    return k ^ (h * np.uint64(0x9E3779B97F4A7C15))


def _key_floor(prefix32: int) -> bytes:
    """The smallest 40-hex-digit key whose first 8 digits are `prefix32`."""
    return f"{prefix32:08x}".encode() + b"0" * 32
