"""Index generations, common words and the stored delta.

Takes an index's identities, word table and candidate settings; gives a
generation's name, its common words (written by `build`, read back checked with
`generation_common`), the bound above which a word is common (`common_bound`,
`common_words`) and the writer of the new rasters' candidates (`_save_delta`,
read by `query.Index.delta_candidates`).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np

from ..ingest.features import N_WORDS
from ..util import atomic_open, checked
from .params import RetrievalParams


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
