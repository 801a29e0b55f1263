"""The `Index` the matching jobs query; takes an index directory (`build`), gives
hash candidates, word candidates and their owners.

Candidate retrieval over the whole archive: one index per run, queried by chunks.

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

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..dihedral import inverse
from ..ingest.features import N_WORDS
from ..ingest.hashing import hamming_search
from ..ingest.texture import MIN_SPECKS, NO_SPECK, SPECK_MAX
from . import specksearch
from .arrays import gather_lists, read_runs, release
from .format import FAMILIES, INVERTED, INVERTED_ARRAYS, LIST_FIELDS, _sorted_postings
from .generations import _gen_name, generation_common
from .items import Item, _key_floor, identity_of
from .params import RetrievalParams
from .wordsearch import CELLS, Postings, Queries, cells_needed, coverage_cell, pair_query, search


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
