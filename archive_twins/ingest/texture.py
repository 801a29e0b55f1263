"""Plain scans told apart by their fine texture: versos, empty sheets, paper tones.

Takes a thumbnail (RGB uint8); gives whether it is *plain* (nothing but a tone,
its vignetting and its grain: the back of a print, an empty page), where its
specks lie (`speck_cells`: cells of a fine grid of the frame, searched by
`specksearch`), and, for two aligned thumbnails, how well their fine texture
agrees (`texture_corr`).

Two plain scans look alike to every whole-frame hash: their tones are one paper's
and their low frequencies one vignetting (measured: half of 40 different versos lie
within 4 bits by tone hash). What tells a rescan of a verso (resized, re-encoded,
turned) from another verso is its fine texture: the same specks, fibres and grain
in the same places. So plain rasters are candidates only by their speck hashes, and
a copy only when their grain correlates (docs/furniture.md).
"""

from __future__ import annotations

import cv2
import numpy as np

# plain: the 0.5-99.5 percentile range of every channel at 64 px is below this
# (versos 12-32 levels; a sky 61, defocused photographs 105-250); blank images
# (below 12, decode.BLANK_RANGE) are never matched at all
PLAIN_RANGE = 40
# where specks are looked for: the longer side in pixels, the scale they stand
# out from, and how far (in robust standard deviations of the grain)
SPECK_SIDE = 256
SPECK_SIGMA = 3.0
SPECK_SIGMAS = 6.0
# speck positions are kept as cells of this grid of the frame (a pixel at
# SPECK_SIDE: a rescan's specks stay within one cell of their place, two versos'
# specks meet by chance once in millions of pairs; docs/furniture.md), the
# strongest SPECK_MAX of them, padded with NO_SPECK
SPECK_GRID = 256
SPECK_MAX = 32
NO_SPECK = 0xFFFFFFFF
# a raster with fewer specks says too little to search by
MIN_SPECKS = 3


def _grey(pixels: np.ndarray, side: int) -> np.ndarray:
    g = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    g = g.astype(np.float32)
    h, w = g.shape
    f = side / max(h, w)
    if f < 1:
        g = cv2.resize(
            g, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
        )
    return g


def is_plain(pixels: np.ndarray) -> bool:
    """Whether a thumbnail holds nothing but a tone (see PLAIN_RANGE)."""
    h, w = pixels.shape[:2]
    f = min(1.0, 64 / max(h, w))
    small = pixels
    if f < 1:
        small = cv2.resize(pixels, (max(1, round(w * f)), max(1, round(h * f))), cv2.INTER_AREA)
    flat = small.reshape(-1, small.shape[2] if small.ndim == 3 else 1).astype(np.float32)
    lo, hi = np.percentile(flat, [0.5, 99.5], axis=0)
    return bool((hi - lo).max() < PLAIN_RANGE)


def speck_cells(pixels: np.ndarray) -> np.ndarray:
    """Where the specks lie: the cells of a SPECK_GRID x SPECK_GRID grid of the frame
    (row * SPECK_GRID + column) holding the strongest SPECK_MAX local extremes of the
    detail (the image less its blur) that stand out from the grain, strongest first,
    each cell once, padded with NO_SPECK."""
    g = _grey(pixels, SPECK_SIDE)
    detail = g - cv2.GaussianBlur(g, (0, 0), SPECK_SIGMA)
    dev = np.abs(detail)
    grain = float(np.median(np.abs(detail - np.median(detail)))) * 1.4826 + 1e-3
    peaks = (dev >= cv2.dilate(dev, np.ones((5, 5), np.uint8))) & (dev > SPECK_SIGMAS * grain)
    ys, xs = np.nonzero(peaks)
    h, w = dev.shape
    order = np.argsort(-dev[ys, xs], kind="stable")
    cells = (ys * SPECK_GRID // h) * SPECK_GRID + xs * SPECK_GRID // w
    cells = cells[order]
    _, first = np.unique(cells, return_index=True)
    cells = cells[np.sort(first)][:SPECK_MAX]
    out = np.full(SPECK_MAX, NO_SPECK, np.uint32)
    out[: len(cells)] = cells
    return out


def texture_corr(a: np.ndarray, b: np.ndarray, sigma: float = 2.0) -> float:
    """Correlation of the fine texture (the image less its blur) of two aligned
    thumbnails of one size: a rescan keeps its verso's grain and specks (measured
    0.50-0.92 after halving and JPEG q80), another verso's is independent (<= 0.02)."""
    ga, gb = _grey(a, 1 << 30), _grey(b, 1 << 30)
    da = ga - cv2.GaussianBlur(ga, (0, 0), sigma)
    db = gb - cv2.GaussianBlur(gb, (0, 0), sigma)
    den = float(np.sqrt((da * da).sum() * (db * db).sum()))
    return float((da * db).sum() / den) if den > 0 else 0.0
