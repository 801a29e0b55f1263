"""The inverted file: postings by word, built and merged in bounded memory.

Takes an index directory's item-major word lists (and, to merge, the base index);
gives the word table and the postings (`_invert` from scratch, `_merge_inverted`
from the base with rasters dropped and added).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..ingest.features import N_WORDS
from .arrays import finish, gather_lists, release
from .format import (
    FAMILIES,
    LIST_DTYPES,
    LIST_FIELDS,
    POSTING_ARRAYS,
    _open_out,
    _save,
    _sorted_postings,
    dense_indptr,
)

if TYPE_CHECKING:
    from .query import Index


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
