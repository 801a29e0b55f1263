"""The shard bundles as the index build reads them.

Takes a shard's signature bundle (`ingest.features.save_signatures`, an
uncompressed .npz, read by `ingest.features.SignatureBundle` with its arrays
memory-mapped); gives only bundles of the current format (`_open_bundle`), the
feature settings they were made with, and where a family's entries of some rasters
lie in it (`_family_source`).
"""

from __future__ import annotations

import zipfile

import numpy as np

from ..ingest.features import BUNDLE_ARRAYS, SignatureBundle
from .arrays import ranges


def _open_bundle(path: str) -> SignatureBundle | None:
    """A readable bundle of the current format, else None (as `load_signatures`)."""
    try:
        b = SignatureBundle(path)
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


def _family_source(b: SignatureBundle, rows: np.ndarray, fam: str, q: int) -> np.ndarray:
    """Positions in a bundle's arrays of the entries of family `fam` of these rows,
    row after row (a raster's entries keep their bundle order)."""
    off = np.asarray(b["moffsets" if fam == "mq" else "offsets"], np.int64)
    take = ranges(off[rows], off[rows + 1])
    if fam == "a":
        return take
    rank = np.asarray(b["mrank" if fam == "mq" else "rank"][take])
    return take[rank < q]
