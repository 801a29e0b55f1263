"""The index directory's arrays: their families, names, dtypes and format number.

Takes nothing; gives the names the writer (`build`, `invert`) and the reader
(`query`) share: the item-major word lists (`FAMILIES`), the inverted file
(`INVERTED`, `INVERTED_ARRAYS`), `INDEX_FORMAT`, and the small readers and writers
of those arrays (`_save`, `_open_out`, `dense_indptr`, `_sorted_postings`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..ingest.features import N_WORDS
from .arrays import gather_lists
from .wordsearch import FIELDS


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


def _open_out(tmp: Path, name: str, dtype: type, size: int) -> np.ndarray:
    return np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", dtype, (size,))


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
