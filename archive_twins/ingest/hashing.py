"""Perceptual hashes in all 8 dihedral orientations, and Hamming search over them.

A copy rotated by 90/180/270 degrees or mirrored has (nearly) the pHash of the
original seen in that orientation, so each image stores the pHash of its 8
orientations and is queried with its upright one.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from ..dihedral import dihedral

if TYPE_CHECKING:
    from PIL import Image

# imagehash, scipy and PIL are imported where hashes are made (the decode stage):
# a matching job only searches hashes, and a rerun's chunk jobs are mostly start-up.


@cache
def _hyperplanes() -> np.ndarray:
    """63 x 64 signs (+1/-1) of the tone hash's projections, drawn from sha256 so
    that every machine, version and rerun uses the same ones."""
    bits = b"".join(hashlib.sha256(b"archive-twins tone hash %d" % i).digest() for i in range(16))
    signs = np.unpackbits(np.frombuffer(bits, np.uint8))[: 63 * 64].reshape(63, 64)
    return np.where(signs == 1, 1.0, -1.0)


def _low_dct(views: np.ndarray) -> np.ndarray:
    """The 8x8 lowest DCT-II coefficients of each 32x32 picture of a (n, 32, 32)
    stack, as imagehash's pHash computes them (scipy.fftpack, rows then columns),
    flattened to (n, 64)."""
    import scipy.fftpack

    dct = scipy.fftpack.dct(scipy.fftpack.dct(views, axis=1), axis=2)
    return dct[:, :8, :8].reshape(len(views), 64)


def _phash_hex(low: np.ndarray) -> list[str]:
    """imagehash's pHash strings of (n, 64) low frequencies: a bit per coefficient
    above their median, row-major, as 16 hex digits."""
    bits = low > np.median(low, axis=1, keepdims=True)
    return [row.tobytes().hex() for row in np.packbits(bits, axis=1)]


def tone_hashes(low: np.ndarray) -> list[str]:
    """Tone hashes of (n, 64) low frequencies (`_low_dct`): each a 64-bit SimHash
    (signs of 64 fixed random projections) of the 63 low-frequency DCT coefficients
    pHash uses (DC left out), as a 16-digit hex string.

    pHash keeps one bit per coefficient (above or below their median): on a smooth
    picture (a sky, sand, a defocused photograph) most coefficients lie near the
    median and a saturation or hue change flips a third of the bits. Each projection
    here weighs every coefficient by its size, so the hash follows the direction of
    the coefficient vector, which a tone or colour change barely turns (measured:
    pHash 16-24 bits apart, this hash 2-3).
    """
    bits = (low[:, 1:] @ _hyperplanes()) > 0
    return [row.tobytes().hex() for row in np.packbits(bits, axis=1)]


def _orientations(grey: Image.Image) -> np.ndarray:
    """A grey image reduced to pHash's 32x32 working size once (imagehash's LANCZOS
    resize), in the 8 dihedral orientations, as a (8, 32, 32) float64 stack:
    rotating and mirroring commute with that square resize, so hashes of the 8 are
    consistent with each other."""
    from PIL import Image

    small = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    return np.stack([dihedral(small, o) for o in range(8)])


def dihedral_hashes(pixels: np.ndarray) -> tuple[list[str], list[str]]:
    """64-bit pHash (imagehash's) and tone hash (`tone_hashes`) of the 8 orientations, as
    16-digit hex strings.

    The image is reduced once (`_orientations`) and the 8 DCTs taken together: the
    strings are those of imagehash.phash and `tone_hashes` on each orientation
    (tests/test_hashing_verify.py), at a fifth of their cost.
    """
    from PIL import Image

    low = _low_dct(_orientations(Image.fromarray(pixels).convert("L")))
    return _phash_hex(low), tone_hashes(low)


def content_hashes(pixels: np.ndarray) -> list[str]:
    """Tone hashes (`tone_hashes`) of the 8 orientations of the picture inside a
    frame's plain margins and fill (frame.content_picture): a bordered, slightly
    turned or warped copy of a smooth picture keeps its source's (the sky: 0 bits
    for its border and perspective copies, 19-25 for the whole frame)."""
    from PIL import Image

    from .frame import content_picture

    small = Image.fromarray(content_picture(pixels)).convert("L")
    return tone_hashes(_low_dct(_orientations(small)))


def quarter_hashes(pixels: np.ndarray) -> list[str]:
    """pHash of each quarter of the frame (top left, top right, bottom left, bottom
    right) in each of the 8 orientations, 32 hex strings (orientation-major).

    The whole frame's pHash lets two different photographs sharing a caption strip or
    a colour chart come within `max_hamming` of each other (more of them the larger
    the archive); a copy looks like its source in at least three quarters, what a
    strip or a corner holds in one or two. The image is reduced once to 64x64 (as in
    `_orientations`, rotating and mirroring commute with that resize); each quarter
    is a 32x32 pHash (DCT, 8x8 lowest frequencies, above their median), as imagehash
    computes it.
    """
    from PIL import Image

    grey = Image.fromarray(pixels).convert("L").resize((64, 64), Image.Resampling.LANCZOS)
    a = np.asarray(grey, np.float64)
    views = np.stack([dihedral(a, o) for o in range(8)])  # (8, 64, 64)
    quarters = views.reshape(8, 2, 32, 2, 32).transpose(0, 1, 3, 2, 4).reshape(32, 32, 32)
    return _phash_hex(_low_dct(quarters))  # orientation-major, 4 quarters each


_NIBBLE = np.zeros(256, np.uint64)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint64)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint64)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint64)


def hex64(hexes: np.ndarray) -> np.ndarray:
    """Values of 16-digit hexadecimal byte strings (any shape), as uint64, at once."""
    a = np.ascontiguousarray(hexes, dtype="S16")
    if a.size and not (np.char.str_len(a) == 16).all():  # fewer digits: one by one
        return np.array([int(x, 16) for x in a.ravel().tolist()], np.uint64).reshape(a.shape)
    digits = _NIBBLE[a.view(np.uint8).reshape(*a.shape, 16)]
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    return np.bitwise_or.reduce(digits << shifts, axis=-1).astype(np.uint64)


def hashes_to_array(hexes: list[list[str]]) -> np.ndarray:
    """n x 8 list of hex hashes -> (n, 8) uint64 array."""
    if not hexes:
        return np.zeros((0, 8), np.uint64)
    return hex64(np.array(hexes, "S16"))


def hamming_search(
    queries: np.ndarray, index: np.ndarray, max_dist: int, q_tile: int = 32, i_tile: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (query, item, orientation) with Hamming(query, index[item, o]) <= max_dist.

    Brute force with XOR + popcount over tiles of q_tile queries x i_tile items, in
    preallocated buffers that stay in cache (about 4x faster than whole-row numpy
    broadcasting); this is the inner loop of the hash search. Tiles of 32 x 512 x 8
    orientations (1 MB of XOR results) ran at 1.3 billion comparisons a second on
    this machine, twice the rate of 128 x 1024 (8 MB, past the L2 cache).
    """
    index = np.ascontiguousarray(index, dtype=np.uint64)
    queries = np.ascontiguousarray(queries, dtype=np.uint64)
    n_o = index.shape[1] if index.ndim == 2 else 1
    flat = index.reshape(-1)
    xor = np.empty((q_tile, i_tile * n_o), np.uint64)
    cnt = np.empty((q_tile, i_tile * n_o), np.uint8)
    hit = np.empty((q_tile, i_tile * n_o), bool)
    qs, cols, ds = [], [], []
    for i0 in range(0, len(index), i_tile):
        blk = flat[i0 * n_o : (i0 + i_tile) * n_o]
        for q0 in range(0, len(queries), q_tile):
            qq = queries[q0 : q0 + q_tile]
            x = xor[: len(qq), : len(blk)]
            c = cnt[: len(qq), : len(blk)]
            np.bitwise_xor(qq[:, None], blk[None, :], out=x)
            np.bitwise_count(x, out=c)
            h = hit[: len(qq), : len(blk)]
            np.less_equal(c, max_dist, out=h)
            if h.any():
                qi, ci = np.nonzero(h)
                qs.append(qi + q0)
                cols.append(ci + i0 * n_o)
                ds.append(c[qi, ci])
    if not qs:
        e = np.zeros(0, np.int64)
        return e, e, e, np.zeros(0, np.uint8)
    col = np.concatenate(cols)
    return np.concatenate(qs), col // n_o, col % n_o, np.concatenate(ds)
