"""Array helpers for memory-mapped word lists and inverted files.

Takes numpy arrays (often memory-mapped index files) and offsets; gives runs,
segments and bisections over them, and keeps a job's resident set to what it is
working on (`release`). Shared by the index build (`build`, `invert`) and the word
search (`wordsearch`).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], ends[i]), vectorised."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    rep = np.repeat(np.arange(len(lens)), lens)
    return starts[rep] + np.arange(total, dtype=np.int64) - (np.cumsum(lens) - lens)[rep]


def segment_sums(values: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Sums of consecutive segments of the given lengths."""
    cs = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    ends = np.cumsum(lens)
    return cs[ends] - cs[ends - lens]


def batches(qlen: np.ndarray, max_q: int, budget: int) -> Iterator[tuple[int, int]]:
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


def read_runs(arr: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The runs [starts, starts + lens) of an array, concatenated. A memory-mapped
    array is read with explicit reads, not through its mapping: faulting a mapped run
    in maps the 64 KB around it, and a batch's few thousand postings lists, scattered
    over the file, held hundreds of MB resident (the 1M index job's delta search)."""
    starts, lens = np.asarray(starts, np.int64), np.asarray(lens, np.int64)
    mm = getattr(arr, "_mmap", None)
    if mm is None or arr.base is not mm or getattr(arr, "filename", None) is None:
        return np.asarray(arr[ranges(starts, starts + lens)])
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


def list_parts(
    ids: np.ndarray, lo: np.ndarray, a: np.ndarray, b: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions [a, b) of each word's postings list, of the lists read one after
    another into `ids` (word i's from lo[i], from `starts[i]` in the inverted file):
    the word each posting belongs to, its raster, and its position in the inverted
    file (where its orientation and scale codes are)."""
    local = ranges(a, b)
    rep = np.repeat(np.arange(len(a), dtype=np.int64), b - a)
    return rep, ids[local].astype(np.int64), starts[rep] + (local - lo[rep])


def first_after(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, q: np.ndarray) -> np.ndarray:
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


def gather_lists(
    off: np.ndarray, items: np.ndarray, *arrays: np.ndarray, group: int = 1024
) -> list[np.ndarray]:
    """The word lists (`off`: offsets) of some rasters from memory-mapped arrays, a
    group of rasters at a time, released after each: rasters spread over the index
    touch a page each, and the kernel maps the neighbouring pages with it (at 1M,
    10,000 new rasters held ~2 GB of pages read at once)."""
    parts: list[list[np.ndarray]] = [[] for _ in arrays]
    for g in range(0, len(items), group):
        its = items[g : g + group]
        take = ranges(off[its], off[its + 1])
        for out, arr in zip(parts, arrays, strict=True):
            out.append(np.asarray(arr[take]))
        release(*arrays)
    return [
        np.concatenate(p) if p else np.zeros(0, arr.dtype)
        for p, arr in zip(parts, arrays, strict=True)
    ]


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


def finish(*arrays: np.ndarray) -> None:
    """Write memory-mapped outputs to disk (once, at the end) and release them."""
    for arr in arrays:
        arr.flush()
    release(*arrays)
