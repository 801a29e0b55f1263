"""The `index` job: write the index directory.

Takes the shard records and signature bundles, the candidate settings and the
generations directory (the base of a merge); gives the index directory (items, word
lists, inverted file, common words, meta), the generation files and the stored
delta, and the stats the job logs (`build_index`).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
from pathlib import Path

import numpy as np

from ..ingest.features import SIG_SCALARS, SignatureBundle
from ..util import atomic_dir, atomic_open, with_check
from .arrays import finish, ranges, release, segment_sums
from .bundles import _bundle_params, _family_source, _open_bundle
from .format import FAMILIES, INDEX_FORMAT, INVERTED, LIST_DTYPES, LIST_FIELDS, _open_out, _save
from .generations import _gen_name, _save_delta, common_words
from .invert import _invert, _merge_inverted
from .items import KEPT_ITEMS, collect_items, identity_of
from .params import RetrievalParams
from .query import Index

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
            b = SignatureBundle(path)
            take = _family_source(b, rows_a, fam, q)
            dst = ranges(off[its_a], off[its_a + 1])
            for name, field in zip(names, LIST_FIELDS, strict=True):
                out[name][dst] = np.asarray(b[prefix + field])[take] if len(take) else 0
            release(*out.values())
        finish(*out.values())
        del out
    return totals


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
