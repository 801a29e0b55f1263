"""The candidate index: batched search equals the pairwise definitions, for any split."""

from __future__ import annotations

import hashlib
import itertools
import shutil

import cv2
import numpy as np
import pytest
from archives import colour_change, smooth_picture

from archive_twins.demo import photo
from archive_twins.dihedral import dihedral, inverse
from archive_twins.index.arrays import read_runs
from archive_twins.index.build import build_index
from archive_twins.index.format import FAMILIES, INVERTED, dense_indptr
from archive_twins.index.generations import generation_common
from archive_twins.index.invert import _invert
from archive_twins.index.items import chunk_of
from archive_twins.index.params import RetrievalParams
from archive_twins.index.query import Index
from archive_twins.index.wordsearch import pair_votes
from archive_twins.ingest.features import FeatureParams, describe, save_signatures
from archive_twins.ingest.hashing import dihedral_hashes
from archive_twins.util import write_jsonl


def _images() -> dict[str, np.ndarray]:
    a, c, r = photo("astronaut"), photo("chelsea"), photo("rocket")
    h, w = c.shape[:2]
    rot = cv2.warpAffine(c, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0), (w, h))
    # a smooth picture (a patch of sky, few keypoints) and a saturation change of it
    sky = smooth_picture("rocket", (0, 240, 200, 310))
    return {
        "sky": sky,
        "sky_saturated": colour_change(sky, 1.45, 0),
        "astronaut": a,
        "astronaut_crop": np.ascontiguousarray(a[60:400, 100:480]),
        "astronaut_rot90": dihedral(a, 1),
        "chelsea": c,
        "chelsea_rot12": rot,
        "chelsea_mirror_crop": np.ascontiguousarray(c[40:260, 80:400][:, ::-1]),
        "rocket": r,
        "rocket_small": cv2.resize(r, (160, 107), interpolation=cv2.INTER_AREA),
        "coffee": photo("coffee"),
        # a quarter of the frame: its words cover a corner of the photograph's frame,
        # all of its own (found from its own side only)
        "coffee_corner": np.ascontiguousarray(photo("coffee")[:200, :300]),
        "brick": photo("brick"),
        "gravel": photo("gravel"),
        "moon": photo("moon"),
    }


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    """Records and signatures of the images in 3 shards, and the index over them."""
    return _index_of(tmp_path_factory.mktemp("index"), _images())


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def family_index(tmp_path_factory):
    """An index of three photographs with several near-copies each (resized,
    re-encoded, turned, mirrored): rasters with many hash candidates."""
    images = {}
    for name in ("astronaut", "chelsea", "rocket"):
        img = photo(name)
        h, w = img.shape[:2]
        images |= {
            name: img,
            f"{name}_small": cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
            f"{name}_smaller": cv2.resize(img, (w // 3, h // 3), interpolation=cv2.INTER_AREA),
            f"{name}_q30": _jpeg(img, 30),
            f"{name}_rot90": dihedral(img, 1),
            f"{name}_mirror": dihedral(img, 4),
        }
    return _index_of(tmp_path_factory.mktemp("family"), images)


def _index_of(root, images: dict[str, np.ndarray]):
    sigs, recs = {}, []
    for name, img in images.items():
        key = hashlib.blake2b(name.encode(), digest_size=20).hexdigest()
        sha = hashlib.sha256(name.encode()).hexdigest()
        h, w = img.shape[:2]
        sigs[sha] = describe(img, (w, h), FeatureParams())
        recs.append(
            {
                "path": name,
                "status": "ok",
                "pixel_hash": key,
                "sha256": sha,
                "size_bytes": 1000,
                "width": w,
                "height": h,
                "bits_per_sample": 8,
                "format": "png",
                **dict(zip(("phash", "tone_hash"), dihedral_hashes(img), strict=True)),
                "blank": False,
                "name": name,
            }
        )
    records, signatures = [], []
    for s in range(3):
        part = recs[s::3]
        records.append(str(root / f"shard-{s}.jsonl"))
        write_jsonl(records[-1], part)
        signatures.append(str(root / f"shard-{s}.npz"))
        save_signatures(signatures[-1], {r["sha256"]: sigs[r["sha256"]] for r in part}, "fp")
    build_index(records, signatures, root / "index", RetrievalParams())
    return root / "index", {r["pixel_hash"]: r for r in recs}, sigs


def _names(index: Index, truth: dict, pairs) -> set:
    return {(truth[index.key(i)]["name"], truth[index.key(j)]["name"]) for i, j in pairs}


def test_word_candidates_equal_the_pairwise_definition(index_dir):
    path, truth, sigs = index_dir
    index, params = Index(path), RetrievalParams()
    found = index.word_candidates(np.arange(index.n), params)
    hash_c = index.hash_candidates(np.arange(index.n), params)

    def q(a: int, b: int) -> tuple[int, bool] | None:
        best = None
        x, y = truth[index.key(a)], truth[index.key(b)]
        for mirrored in (False, True):
            v = pair_votes(sigs[x["sha256"]], sigs[y["sha256"]], params, mirrored)
            if v and (best is None or v > best[0]):
                best = (v, mirrored)
        return best

    expected = {}
    for i, j in itertools.combinations(range(index.n), 2):
        # the chunk of i owns a pair Q holds for from i's side, or a hash candidate
        if (ev := q(i, j)) is not None:
            expected[(i, j)] = ev
        elif (ev := q(j, i)) is not None and (i, j) not in hash_c:
            expected[(i, j)] = ev
    assert found == expected
    assert any(q(i, j) is None for i, j in found)  # found from the other side only
    names = _names(index, truth, found)
    for pair in [
        ("astronaut", "astronaut_crop"),
        ("chelsea", "chelsea_rot12"),
        ("chelsea", "chelsea_mirror_crop"),
        ("astronaut", "astronaut_rot90"),
    ]:
        assert pair in names or pair[::-1] in names, pair
    assert not any("brick" in p and "gravel" in p for p in names)


@pytest.mark.parametrize("n_chunks", [1, 2, 5, 16])
def test_any_chunking_gives_the_same_candidates(index_dir, n_chunks):
    path, _, _ = index_dir
    index, params = Index(path), RetrievalParams()
    whole_w = index.word_candidates(np.arange(index.n), params)
    whole_h = index.hash_candidates(np.arange(index.n), params)
    got_w, got_h, covered = {}, {}, []
    for c in range(n_chunks):
        lo, hi = index.chunk_range(c, n_chunks)
        covered += list(range(lo, hi))
        assert all(chunk_of(index.key(i), n_chunks) == c for i in range(lo, hi))
        got_w.update(index.word_candidates(np.arange(lo, hi), params))
        got_h.update(index.hash_candidates(np.arange(lo, hi), params))
    assert covered == list(range(index.n))
    assert got_w == whole_w
    assert got_h == whole_h


def test_hash_candidates_equal_brute_force(index_dir):
    path, truth, _ = index_dir
    index = Index(path)
    params = RetrievalParams()
    found = index.hash_candidates(np.arange(index.n), params)
    expected = {}
    ph, tone = index.phash, index.tone
    smooth = index.smooth(params)
    assert 0 < smooth.sum() < index.n

    def close(x: int, y: int, o: int) -> bool:
        """x upright looks like y in orientation o."""
        if np.bitwise_count(ph[x, 0] ^ ph[y, o]) <= params.max_hamming:
            # ... in at least min_quarters of its quarters
            quarters = np.bitwise_count(index.quarters[x, 0] ^ index.quarters[y, o])
            if (quarters <= params.max_quarter_hamming).sum() >= params.min_quarters:
                return True
        tone_d = np.bitwise_count(tone[x, 0] ^ tone[y, o])
        return bool((smooth[x] or smooth[y]) and tone_d <= params.max_tone_hamming)

    for i, j in itertools.combinations(range(index.n), 2):
        orients = {}
        for o in range(8):
            # i upright ~ j in orientation o means i = o(j): orientation i->j is o^-1
            d = int(np.bitwise_count(ph[i, 0] ^ ph[j, o]))
            if close(i, j, o):
                orients[inverse(o)] = min(d, orients.get(inverse(o), 99))
            d = int(np.bitwise_count(ph[j, 0] ^ ph[i, o]))
            if close(j, i, o):
                orients[o] = min(d, orients.get(o, 99))
        if orients:
            expected[(i, j)] = orients
    assert found == expected
    names = _names(index, truth, found)
    assert ("rocket", "rocket_small") in names or ("rocket_small", "rocket") in names
    # the saturation change of the smooth picture: pHash far apart, tone hash close
    sky = [
        o
        for (i, j), o in found.items()
        if _names(index, truth, [(i, j)]) & {("sky", "sky_saturated"), ("sky_saturated", "sky")}
    ]
    assert sky and min(sky[0].values()) > params.max_hamming
    rot = [
        o
        for (i, j), o in found.items()
        if {"astronaut", "astronaut_rot90"}
        == {truth[index.key(i)]["name"], truth[index.key(j)]["name"]}
    ]
    assert rot and (1 in rot[0] or 3 in rot[0])


def test_a_pairs_own_tests_agree_with_the_search(index_dir):
    """Who owns a pair is decided from the pair alone (`hash_pair`, `pair_word`):
    they must say what the batched searches say."""
    path, _, _ = index_dir
    index, rp = Index(path), RetrievalParams()
    hashes = index.hash_candidates(np.arange(index.n), rp)
    words = index.word_search(np.arange(index.n), rp)
    for i, j in itertools.combinations(range(index.n), 2):
        assert index.hash_pair(i, j, rp) == ((i, j) in hashes), (i, j)
        for a, b in ((i, j), (j, i)):
            assert index.pair_word(a, b, rp) == words.get((a, b)), (a, b)


@pytest.mark.parametrize("n_chunks", [1, 3])
def test_delta_search_equals_a_full_search(index_dir, tmp_path, n_chunks):
    """A chunk rerun that searches only pairs involving added rasters, carrying the
    rest from its previous rows, finds exactly the candidates of a full search."""
    from archive_twins.util import read_jsonl
    from archive_twins.verify.match import MatchParams, chunk_candidates

    path, truth, _ = index_dir
    full = Index(path)
    root = path.parent
    records = sorted(str(p) for p in root.glob("shard-*.jsonl"))
    signatures = sorted(str(p) for p in root.glob("shard-*.npz"))
    # the earlier archive lacked four rasters, among them copies and originals
    dropped = {"astronaut_crop", "chelsea", "rocket_small", "moon"}
    earlier = []
    for i, path_ in enumerate(records):
        rows = [r for r in read_jsonl(path_) if r["name"] not in dropped]
        earlier.append(str(tmp_path / f"earlier-{i}.jsonl"))
        write_jsonl(earlier[-1], rows)
    build_index(earlier, signatures, tmp_path / "old", RetrievalParams(), tmp_path / "gens")
    old_index = Index(tmp_path / "old")
    build_index(records, signatures, tmp_path / "new", RetrievalParams(), tmp_path / "gens")
    new_index = Index(tmp_path / "new")
    assert new_index.n == full.n == old_index.n + len(dropped)
    params = MatchParams()
    old_mask = new_index.unchanged_since(old_index.meta["gen"])
    assert int((~old_mask).sum()) == len(dropped)
    for c in range(n_chunks):
        lo, hi = old_index.chunk_range(c, n_chunks)
        rows = _rows(old_index, *chunk_candidates(old_index, lo, hi, params))
        lo, hi = new_index.chunk_range(c, n_chunks)
        h_full, w_full, _ = chunk_candidates(new_index, lo, hi, params)
        h_delta, w_delta, counts = chunk_candidates(new_index, lo, hi, params, old_mask, rows)
        assert h_delta == h_full
        assert w_delta == w_full
        assert counts["queries_full"] == int((~old_mask[lo:hi]).sum())


def _history(index_dir, tmp_path, dropped: set[str]) -> tuple[list[str], list[str], list[str]]:
    """Record files of the whole archive, and of an earlier one without `dropped`."""
    from archive_twins.util import read_jsonl

    path, _, _ = index_dir
    root = path.parent
    records = sorted(str(p) for p in root.glob("shard-*.jsonl"))
    signatures = sorted(str(p) for p in root.glob("shard-*.npz"))
    earlier = []
    for i, path_ in enumerate(records):
        rows = [r for r in read_jsonl(path_) if r["name"] not in dropped]
        earlier.append(str(tmp_path / f"earlier-{len(dropped)}-{i}.jsonl"))
        write_jsonl(earlier[-1], rows)
    return records, earlier, signatures


def _arrays(path) -> dict[str, np.ndarray]:
    return {p.stem: np.load(p) for p in sorted(path.glob("*.npy"))}


def test_merged_index_equals_a_rebuilt_index(index_dir, tmp_path):
    """An index merged into the previous one (rasters added, removed, and both at
    once) holds exactly the arrays of an index built from scratch."""
    records, earlier, signatures = _history(index_dir, tmp_path, {"chelsea", "moon", "coffee"})
    _, later, _ = _history(index_dir, tmp_path, {"rocket", "astronaut_crop"})
    params, gens = RetrievalParams(), tmp_path / "gens"
    for step, recs in enumerate([earlier, records, later, earlier]):
        stats = build_index(recs, signatures, tmp_path / "index", params, gens)
        assert stats["merged"] == (step > 0)
        build_index(recs, signatures, tmp_path / f"fresh-{step}", params)
        got, want = _arrays(tmp_path / "index"), _arrays(tmp_path / f"fresh-{step}")
        assert got.keys() == want.keys()
        for name in want:
            assert np.array_equal(got[name], want[name]), (step, name)
        gens_equal = (
            Index(tmp_path / "index").meta["gen"] == Index(tmp_path / f"fresh-{step}").meta["gen"]
        )
        assert gens_equal


@pytest.mark.parametrize("n_chunks", [1, 3])
def test_stored_delta_equals_a_full_search(index_dir, tmp_path, monkeypatch, n_chunks):
    """The candidates of the new rasters searched once by the index job (new rasters'
    query words against everything, and all their words against the earlier rasters'
    query words) are exactly those of a full search, chunk by chunk."""
    from archive_twins.index import build
    from archive_twins.verify.match import MatchParams, chunk_candidates

    monkeypatch.setattr(build, "DELTA_MAX_FRACTION", 1.0)
    dropped = {"astronaut_crop", "chelsea", "rocket_small", "moon", "brick"}
    records, earlier, signatures = _history(index_dir, tmp_path, dropped)
    params, gens = MatchParams(), tmp_path / "gens"
    build_index(earlier, signatures, tmp_path / "index", params.retrieval, gens)
    old_index = Index(tmp_path / "index")
    old_gen = old_index.meta["gen"]
    rows_of = _chunk_rows(old_index, params, n_chunks)
    stats = build_index(records, signatures, tmp_path / "index", params.retrieval, gens)
    assert stats["merged"] and stats["new"] == len(dropped)
    index = Index(tmp_path / "index")
    new = index.delta_since(old_gen)
    assert new is not None and int(new.sum()) == len(dropped)
    assert np.array_equal(~new, index.unchanged_since(old_gen))
    assert index.delta_since("something else") is None
    whole_h, whole_d = index.delta_search(new, params.retrieval)
    full_h = index.hash_candidates(np.arange(index.n), params.retrieval)
    full_d = index.word_search(np.arange(index.n), params.retrieval)
    assert whole_h == {p: v for p, v in full_h.items() if new[p[0]] or new[p[1]]}
    assert whole_d == {p: v for p, v in full_d.items() if new[p[0]] or new[p[1]]}
    assert any(not new[a] and new[b] for a, b in whole_d)  # the reversed direction counts
    for c in range(n_chunks):
        lo, hi = index.chunk_range(c, n_chunks)
        h_full, w_full, _ = chunk_candidates(index, lo, hi, params)
        h, w, counts = chunk_candidates(index, lo, hi, params, ~new, rows_of[c], old_gen)
        assert counts["stored_delta"]
        assert (h, w) == (h_full, w_full)


def _chunk_rows(index: Index, params, n_chunks: int) -> dict[int, list[dict]]:
    """Each chunk's output rows of a full search (`_rows`), by chunk."""
    from archive_twins.verify.match import chunk_candidates

    rows_of = {}
    for c in range(n_chunks):
        lo, hi = index.chunk_range(c, n_chunks)
        rows_of[c] = _rows(index, *chunk_candidates(index, lo, hi, params))
    return rows_of


def _rows(index: Index, hash_c: dict, word_c: dict, counts: dict) -> list[dict]:
    """A chunk's output rows carrying these candidates (`chunk_candidates`'s
    result), with the meta `run_match_chunk` keeps for the next run."""
    from archive_twins.verify.match import dirs_meta

    meta = {
        "found": counts["found"],
        "capped": counts["capped"],
        "hash_capped": counts["hash_capped"],
        "dirs": dirs_meta(index, counts["dirs"]),
    }
    return (
        [{"meta": meta}]
        + [
            {
                "pair": [index.key(i), index.key(j)],
                "stage": "phash",
                "evidence": sorted([o, d] for o, d in ev.items()),
            }
            for (i, j), ev in hash_c.items()
        ]
        + [
            {"pair": [index.key(i), index.key(j)], "stage": "geo", "evidence": [v, m]}
            for (i, j), (v, m) in word_c.items()
        ]
    )


@pytest.mark.parametrize("block", [97, 1 << 22])
def test_inverted_files_are_postings_sorted_by_word_then_raster(index_dir, tmp_path, block):
    """The inverted files equal their definition however the build splits them
    (a tiny block: many raster blocks and many word ranges spilled apart)."""
    path, _, _ = index_dir
    work = tmp_path / "index"
    shutil.copytree(path, work)
    for prefix, fam in INVERTED.items():
        _invert(work, prefix, fam, block=block)
        off_name, w_name, *f_names = FAMILIES[fam]
        off = np.load(work / f"{off_name}.npy")
        words = np.load(work / f"{w_name}.npy").astype(np.int64)
        ids = np.repeat(np.arange(len(off) - 1), np.diff(off))
        order = np.lexsort((ids, words))
        indptr = dense_indptr(work, prefix)
        assert np.array_equal(np.diff(indptr), np.bincount(words, minlength=len(indptr) - 1))
        assert np.array_equal(np.load(work / f"{prefix}post_id.npy"), ids[order])
        for field, name in zip(("ang", "lsc", "pos"), f_names, strict=True):
            got = np.load(work / f"{prefix}post_{field}.npy")
            assert np.array_equal(got, np.load(work / f"{name}.npy")[order]), field
        assert len(np.unique(np.load(work / f"{prefix}post_pos.npy"))) > 100
        assert not list(work.glob("*spill*"))


@pytest.mark.parametrize("dtype", [np.uint32, np.uint8, np.int8])
def test_runs_read_from_a_file_equal_the_runs_of_the_array(tmp_path, dtype):
    """Postings lists are read with explicit reads from the index files (not through
    the mapping): the same values as indexing the array, empty runs and the last
    element included, and a view falls back to indexing."""
    rng = np.random.default_rng(3)
    arr = rng.integers(-100 if dtype == np.int8 else 0, 100, 10_000).astype(dtype)
    np.save(tmp_path / "a.npy", arr)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    starts = np.array([0, 17, 17, 9_990, 5_000, 9_999])
    lens = np.array([3, 0, 40, 10, 1, 1])
    want = np.concatenate([arr[s : s + n] for s, n in zip(starts, lens, strict=True)])
    assert np.array_equal(read_runs(mapped, starts, lens), want)
    assert np.array_equal(read_runs(arr, starts, lens), want)
    view = mapped[10:]
    want = arr[10:][[0, 1, 2, *range(17, 57)]]
    assert np.array_equal(read_runs(view, starts[:3], lens[:3]), want)
    assert len(read_runs(mapped, starts[:0], lens[:0])) == 0


def test_a_smooth_picture_stays_smooth_with_its_weak_keypoints(index_dir):
    """The sky fills its keypoint budget with weak keypoints (so its crops can be
    fitted), yet it is searched by tone hash: smoothness counts strong words only."""
    path, truth, sigs = index_dir
    index, params = Index(path), RetrievalParams()
    names = [truth[index.key(i)]["name"] for i in range(index.n)]
    all_words = np.diff(np.asarray(index.arrays["aoff"], np.int64))
    smooth = dict(zip(names, index.smooth(params).tolist(), strict=True))
    for name in ("sky", "sky_saturated"):
        assert smooth[name], name
        assert all_words[names.index(name)] > params.tone_max_words
    for name in ("astronaut", "chelsea", "brick", "gravel", "coffee"):
        assert not smooth[name], name


@pytest.mark.parametrize("stored", [False, True])
def test_reruns_follow_words_becoming_common(index_dir, tmp_path, monkeypatch, stored):
    """Words held by more than `common_df` rasters do not count; when rasters come
    and go, some words become common or stop being so. A rerun searches again the
    rasters holding a word that stopped being common, and judges again, pair by
    pair, what it had found between rasters holding one that became common (without
    searching them again): it equals a full search (chunk by chunk, from the chunk's
    own search or from the index job's stored delta), adding rasters and removing
    them."""
    from dataclasses import replace

    from archive_twins.index import build
    from archive_twins.verify.match import MatchParams, _unchanged, chunk_candidates

    monkeypatch.setattr(build, "DELTA_MAX_FRACTION", 1.0 if stored else 0.0)
    dropped = {"astronaut_crop", "astronaut_rot90", "chelsea_rot12", "rocket_small"}
    records, earlier, signatures = _history(index_dir, tmp_path, dropped)
    params = MatchParams()
    params = replace(params, retrieval=replace(params.retrieval, common_df=2))
    rp, gens = params.retrieval, tmp_path / "gens"
    build_index(earlier, signatures, tmp_path / "index", rp, gens)
    rechecked = 0
    for step, recs in enumerate([records, earlier]):
        old_index = Index(tmp_path / "index")
        old_gen = old_index.meta["gen"]
        rows_of = _chunk_rows(old_index, params, 3)
        build_index(recs, signatures, tmp_path / "index", rp, gens)
        index = Index(tmp_path / "index")
        gained, lost = index.common_change(old_gen)
        # adding rasters makes words common; removing them makes them ordinary again
        assert (gained.sum() > 0, lost.sum() > 0) == ((True, False) if step == 0 else (False, True))
        before = generation_common(gens, old_gen)
        assert not np.array_equal(before, np.flatnonzero(index.common()))
        old, got_gained = _unchanged(index, old_gen)
        assert np.array_equal(got_gained, gained)
        assert np.array_equal(old, index.unchanged_since(old_gen) & ~lost)
        assert (index.delta_since(old_gen) is not None) == stored
        if stored:
            assert np.array_equal(~index.delta_since(old_gen), old)
        for c in range(3):
            lo, hi = index.chunk_range(c, 3)
            full = chunk_candidates(index, lo, hi, params)
            again = chunk_candidates(index, lo, hi, params, old, rows_of[c], old_gen, gained)
            assert again[2]["stored_delta"] == stored
            assert again[:2] == full[:2]
            assert again[2]["dirs"] == full[2]["dirs"]
            # only new rasters and those holding a word no longer common are searched
            assert again[2]["queries_full"] == (0 if stored else int((~old[lo:hi]).sum()))
            rechecked += again[2]["rechecked"]
    assert rechecked > 0


def test_common_words_neither_vote_nor_count(index_dir):
    """Words held by more than `common_df` rasters are left out of both lists: the
    search equals the pairwise definition on the other words, and pairs of copies
    sharing mostly such words (the astronaut's, held by three rasters at
    common_df=2) are no longer candidates."""
    from dataclasses import replace

    from archive_twins.index.wordsearch import FIELDS, pair_query

    path, truth, sigs = index_dir
    index = Index(path)
    before = index.word_search(np.arange(index.n), RetrievalParams())
    tight = replace(RetrievalParams(), common_df=2)
    df = np.diff(dense_indptr(path))
    index._common = df > tight.common_df
    found = index.word_search(np.arange(index.n), tight)
    expected = {}
    for a, b in itertools.permutations(range(index.n), 2):
        x, y = sigs[truth[index.key(a)]["sha256"]], sigs[truth[index.key(b)]["sha256"]]
        t = {f: np.asarray(y[f])[df[y["words"]] <= 2] for f in FIELDS}
        for mirrored in (False, True):
            pre = "m" if mirrored else ""
            sel = (np.asarray(x[pre + "rank"]) < tight.query_features) & (df[x[pre + "words"]] <= 2)
            r = pair_query({f: np.asarray(x[pre + f])[sel] for f in FIELDS}, t, tight)
            if r and r[0] > expected.get((a, b), (0,))[0]:
                expected[(a, b)] = (r[0], mirrored)
    assert found == expected
    assert set(found) < set(before)


@pytest.mark.parametrize("stored", [False, True])
def test_the_cap_keeps_the_best_and_reruns_equal_a_fresh_search(
    index_dir, tmp_path, monkeypatch, stored
):
    """At most `max_candidates` rasters are word candidates of one querying raster
    (those with the most votes); the rasters it bites are named, and a rerun, which
    searches again a raster the cap may bite now, equals a fresh search."""
    from dataclasses import replace

    from archive_twins.index import build
    from archive_twins.verify.match import MatchParams, chunk_candidates

    monkeypatch.setattr(build, "DELTA_MAX_FRACTION", 1.0 if stored else 0.0)
    params = MatchParams()
    params = replace(params, retrieval=replace(params.retrieval, max_candidates=1))
    path, _, _ = index_dir
    index = Index(path)
    whole = index.word_search(np.arange(index.n), params.retrieval)
    uncapped = index.word_search(np.arange(index.n), RetrievalParams())
    per = {}
    for a, b in uncapped:
        per.setdefault(a, []).append((-uncapped[(a, b)][0], b))
    assert any(len(v) > 1 for v in per.values())
    assert set(whole) == {(a, min(v)[1]) for a, v in per.items()}
    dropped = {"astronaut_crop", "chelsea_mirror_crop", "rocket_small"}
    records, earlier, signatures = _history(index_dir, tmp_path, dropped)
    rp, gens = params.retrieval, tmp_path / "gens"
    build_index(earlier, signatures, tmp_path / "index", rp, gens)
    old_index = Index(tmp_path / "index")
    old_gen = old_index.meta["gen"]
    rows_of = _chunk_rows(old_index, params, 3)
    build_index(records, signatures, tmp_path / "index", rp, gens)
    index = Index(tmp_path / "index")
    gained, lost = index.common_change(old_gen)
    old = index.unchanged_since(old_gen) & ~(gained | lost)
    capped = []
    for c in range(3):
        lo, hi = index.chunk_range(c, 3)
        full = chunk_candidates(index, lo, hi, params)
        capped += full[2]["capped"]
        again = chunk_candidates(index, lo, hi, params, old, rows_of[c], old_gen)
        assert again[2]["stored_delta"] == stored
        assert again[:2] == full[:2]
        assert again[2]["capped"] == full[2]["capped"]
    assert capped


@pytest.mark.parametrize("stored", [False, True])
def test_the_hash_cap_keeps_the_nearest_and_reruns_equal_a_fresh_search(
    family_index, tmp_path, monkeypatch, stored
):
    """At most `max_hash_candidates` later rasters are hash candidates of one raster
    (the nearest by pHash); any chunking gives the same pairs, the rasters it bites
    are named, and a rerun after files come and go equals a fresh search."""
    from dataclasses import replace

    from archive_twins.index import build
    from archive_twins.verify.match import MatchParams, chunk_candidates

    monkeypatch.setattr(build, "DELTA_MAX_FRACTION", 1.0 if stored else 0.0)
    params = MatchParams()
    params = replace(params, retrieval=replace(params.retrieval, max_hash_candidates=1))
    path, _, _ = family_index
    index = Index(path)
    uncapped = index.hash_candidates(np.arange(index.n), RetrievalParams())
    per: dict[int, list] = {}
    for (i, j), ev in uncapped.items():
        per.setdefault(i, []).append((min(ev.values()), j))
    assert any(len(v) > 1 for v in per.values())
    want = {(i, min(v)[1]) for i, v in per.items()}
    for n_chunks in (1, 3, 5):
        got, bitten = set(), []
        for c in range(n_chunks):
            hash_c, _, counts = chunk_candidates(index, *index.chunk_range(c, n_chunks), params)
            assert all(len(ev) for ev in hash_c.values())
            got |= set(hash_c)
            bitten += counts["hash_capped"]
        assert got == want
        assert sorted(bitten) == sorted(index.key(i) for i, v in per.items() if len(v) > 1)
    # the nearest of a capped raster's later rasters come (added) and go (removed)
    dropped = {"astronaut_small", "astronaut_q30", "chelsea_mirror", "rocket_rot90"}
    records, earlier, signatures = _history(family_index, tmp_path, dropped)
    rp = params.retrieval
    for step, (first, then) in enumerate(((earlier, records), (records, earlier))):
        gens = tmp_path / f"gens-{step}"
        build_index(first, signatures, tmp_path / f"index-{step}", rp, gens)
        old_index = Index(tmp_path / f"index-{step}")
        old_gen = old_index.meta["gen"]
        rows_of = _chunk_rows(old_index, params, 3)
        assert any(r[0]["meta"]["hash_capped"] for r in rows_of.values())
        build_index(then, signatures, tmp_path / f"index-{step}", rp, gens)
        index = Index(tmp_path / f"index-{step}")
        gained, lost = index.common_change(old_gen)
        old = index.unchanged_since(old_gen) & ~(gained | lost)
        for c in range(3):
            lo, hi = index.chunk_range(c, 3)
            full = chunk_candidates(index, lo, hi, params)
            again = chunk_candidates(index, lo, hi, params, old, rows_of[c], old_gen)
            assert again[2]["stored_delta"] == (stored and step == 0)
            assert again[:2] == full[:2]
            assert again[2]["hash_capped"] == full[2]["hash_capped"]


def test_a_raster_needing_fewer_cells_is_searched_again(index_dir, tmp_path):
    """A word becoming common can empty cells of a raster's frame, which then needs
    fewer covered cells (k(a)), and a pair it did not find before can become a
    candidate (a photograph and its crop, seen from the photograph's side, once the
    photograph's words outside the crop are common). The rerun searches that raster
    again (`Index.need_dropped`) and equals a fresh search."""
    from archive_twins.verify.match import MatchParams, _unchanged, chunk_candidates

    path, _, _ = index_dir
    records = sorted(str(p) for p in path.parent.glob("shard-*.jsonl"))
    signatures = sorted(str(p) for p in path.parent.glob("shard-*.npz"))
    params, gens = MatchParams(), tmp_path / "gens"
    rp = params.retrieval
    build_index(records, signatures, tmp_path / "index", rp, gens)
    index = Index(tmp_path / "index")
    gen = index.meta["gen"]
    rows_of = _chunk_rows(index, params, 3)
    before = np.load(tmp_path / "index" / "common.npy")
    # a crop found from its own side only; the photograph's query words that the
    # crop does not hold become common
    for a, b in itertools.permutations(range(index.n), 2):
        if index.pair_word(a, b, rp) is not None or index.pair_word(b, a, rp) is None:
            continue
        held = index.lists_of(b, "a")["words"]
        outside = set()
        for fam in ("q", "mq"):
            words = index.lists_of(a, fam)["words"]
            outside |= set(words[~np.isin(words, held)].tolist())
        now = np.union1d(before, np.array(sorted(outside), np.uint32))
        np.save(tmp_path / "index" / "common.npy", now)
        index = Index(tmp_path / "index")
        if index.pair_word(a, b, rp) is not None:
            break
        np.save(tmp_path / "index" / "common.npy", before)
        index = Index(tmp_path / "index")
    else:
        pytest.fail("no pair of the fixture shows the case")
    assert generation_common(gens, gen) is not None
    old, gained = _unchanged(index, gen)
    assert gained[a] and old[a]
    dropped = 0
    for c in range(3):
        lo, hi = index.chunk_range(c, 3)
        full = chunk_candidates(index, lo, hi, params)
        again = chunk_candidates(index, lo, hi, params, old, rows_of[c], gen, gained)
        assert again[:2] == full[:2]
        assert again[2]["dirs"] == full[2]["dirs"]
        assert again[2]["queries_full"] == 0
        dropped += again[2]["need_dropped"]
    assert dropped >= 1
