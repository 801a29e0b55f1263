"""The one reader of the shard bundles for the index build.

Takes a shard's signature bundle (`ingest.features.save_signatures`, an
uncompressed .npz); gives its arrays memory-mapped (`_Bundle`), only bundles of the
current format (`_open_bundle`), the feature settings they were made with, and
where a family's entries of some rasters lie in it (`_family_source`).
"""

from __future__ import annotations

import os
import struct
import zipfile

import numpy as np

from ..ingest.features import BUNDLE_ARRAYS
from .arrays import ranges


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


def _family_source(b: _Bundle, rows: np.ndarray, fam: str, q: int) -> np.ndarray:
    """Positions in a bundle's arrays of the entries of family `fam` of these rows,
    row after row (a raster's entries keep their bundle order)."""
    off = np.asarray(b["moffsets" if fam == "mq" else "offsets"], np.int64)
    take = ranges(off[rows], off[rows + 1])
    if fam == "a":
        return take
    rank = np.asarray(b["mrank" if fam == "mq" else "rank"][take])
    return take[rank < q]
