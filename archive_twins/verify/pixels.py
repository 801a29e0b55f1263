"""Pixel verification of a candidate copy and the geometry of dihedral copies.

Hashes only propose candidates: different objects photographed on the same plain
studio background share a pHash. A candidate is accepted only when the two images,
aligned with the proposed transform and compared at a common size, agree block by
block, so a small object that differs is not averaged away by the shared background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..dihedral import dihedral


@dataclass(frozen=True)
class VerifyParams:
    """Thresholds, tuned on the photographs in tests/ (see docs/design.md, Matching)."""

    compare_size: int = 256
    grid: int = 16
    noise_floor: float = 4.0
    max_block_ratio: float = 0.6
    # Worst block when each block is fitted from the source's colours (a colour or
    # tone change the global grey gain cannot follow: hue, clipped contrast, gamma).
    # Measured: such copies of real photographs <= 0.33 (JPEG q15 0.46 before any
    # colour change); other photographs >= 0.55 (a 2% object on a shared studio
    # background), a stereo pair 0.86, the development viewpoint groups >= 0.80.
    max_colour_ratio: float = 0.4
    # A colour or tone change is reported (`colour_change`) when the two differ
    # beyond what re-encoding and resampling do. Measured on copies without such a
    # change (fit half of bench/quality_bench.py, JPEG q10-20 included): grey gain
    # 0.96-1.06, tone difference <= 1.7, saturation ratio 0.88-1.06, hue turn <= 3.3
    # degrees; the changes the product promises (contrast x0.6-0.8 / x1.25-1.5,
    # gamma 0.6-1.6, saturation x0.5-0.7 / x1.3-1.5, hue >= 10 degrees, greyscale)
    # lie beyond.
    tone_tol: float = 3.0
    max_gain_change: float = 0.12
    saturation_tol: float = 0.2
    hue_tol: float = 5.0
    # below this mean chroma (Lab a*b* units) an image has no colour to change
    min_chroma: float = 4.0
    # A pair that passes is another capture of one scene (a video frame a moment
    # later, a burst, a re-shoot) when, after its alignment, one part of the picture
    # moved by more than `max_capture_motion` pixels, or two parts by more than
    # `max_capture_motion_two`, beyond what an affine map of all parts' shifts
    # explains (at the coarser of the two resolutions, <= compare_size; capture.py).
    # Measured on the quality benchmark's fit half: copies of textured photographs
    # <= 0.41 and <= 0.29; video frames 1-5 apart mostly above (docs/captures.md).
    max_capture_motion: float = 0.6
    max_capture_motion_two: float = 0.35


def _prep(arr: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize to `size`; return lightly blurred grey (0..255), Lab and the resized
    RGB image (the colour fit's input)."""
    small = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 0.7)
    return grey, lab, small


def compare(
    src: np.ndarray, dst: np.ndarray, params: VerifyParams, mask: np.ndarray | None = None
) -> dict:
    """Compare two images already aligned on the same frame (dst's).

    src's grey levels are fitted to dst's (gain and offset, so contrast and
    brightness changes do not count); then, block by block, the residual is measured
    against the block's own structure (mean absolute deviation plus a noise floor).
    A copy leaves a residual far below the structure everywhere; a different object,
    however small, leaves one as large as the structure in the blocks it covers.
    With `mask` (dst-sized, nonzero where src has content) only the overlap counts:
    blocks less than 90% inside it are skipped.
    """
    h, w = dst.shape[:2]
    long_side = min(params.compare_size, max(h, w), max(src.shape[:2]))
    f = long_side / max(h, w)
    size = (max(8, round(w * f)), max(8, round(h * f)))
    ga, la, small_a = _prep(src, size)
    gb, lb, small_b = _prep(dst, size)
    if mask is None:
        inside = np.ones(ga.shape, bool)
    else:
        inside = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.999
    if inside.sum() < 64:
        return {
            "max_block_ratio": np.inf,
            "colour_block_ratio": np.inf,
            "colour_forward": np.inf,
            "colour_backward": np.inf,
            "mean_residual": np.inf,
            "corr": 0.0,
            "gain": 0.0,
            "chroma_diff": 0.0,
            "tone_diff": 0.0,
            "saturation_ratio": 1.0,
            "hue_turn": 0.0,
            "chroma": 0.0,
            "blocks": 0,
        }
    a_in, b_in = ga[inside], gb[inside]
    am, bm = a_in.mean(), b_in.mean()
    gain = float(((a_in - am) * (b_in - bm)).mean() / (((a_in - am) ** 2).mean() + 1e-6))
    fitted = gain * (ga - am) + bm
    resid = np.abs(fitted - gb)
    n = min(params.grid, max(2, min(size) // 8))
    ratios, coverage = block_ratios(fitted, gb, resid, inside, n, params.noise_floor)
    usable = coverage >= 0.9
    used = int(usable.sum())
    worst = float(ratios[usable].max()) if used else 0.0
    # The colour fit both ways: a copy's colours follow from its source's (greyscale,
    # clipped contrast), not always the other way round, and which way works tells
    # the source (see `explains`).
    forward = colour_block_ratio(small_a, gb, inside, n, params.noise_floor)
    backward = colour_block_ratio(small_b, ga, inside, n, params.noise_floor)
    za = (a_in - am) / (a_in.std() + 1e-6)
    zb = (b_in - bm) / (b_in.std() + 1e-6)
    la_in, lb_in = la[inside], lb[inside]
    chroma = float(np.abs(la_in[:, 1:] - lb_in[:, 1:]).mean())
    tone = float(
        abs(la_in[:, 0].mean() - lb_in[:, 0].mean()) + abs(la_in[:, 0].std() - lb_in[:, 0].std())
    )
    # chroma as complex numbers a* + i b*: the mean magnitude (saturation) and the
    # chroma-weighted mean turn between the two (a hue shift)
    ca = (la_in[:, 1] - 128.0) + 1j * (la_in[:, 2] - 128.0)
    cb = (lb_in[:, 1] - 128.0) + 1j * (lb_in[:, 2] - 128.0)
    mag_a, mag_b = float(np.abs(ca).mean()), float(np.abs(cb).mean())
    turn = float(np.degrees(np.angle((np.conj(ca) * cb).sum()))) if min(mag_a, mag_b) > 0 else 0.0
    return {
        "max_block_ratio": worst if used else np.inf,
        "colour_block_ratio": min(forward, backward) if used else np.inf,
        "colour_forward": forward if used else np.inf,
        "colour_backward": backward if used else np.inf,
        "mean_residual": float(resid[inside].mean()),
        "corr": float((za * zb).mean()),
        "gain": gain,
        "chroma_diff": chroma * 100 / 255,
        "tone_diff": tone * 100 / 255,
        "saturation_ratio": (mag_b + 0.5) / (mag_a + 0.5),
        "hue_turn": turn,
        "chroma": max(mag_a, mag_b),
        "chroma_first": mag_a,
        "chroma_second": mag_b,
        "blocks": used,
    }


def colour_block_ratio(
    src: np.ndarray,
    target: np.ndarray,
    inside: np.ndarray,
    n: int,
    floor: float,
) -> float:
    """Worst block ratio when each block of the target's grey levels is fitted from
    the source's colour (1, R, G, B and squared luminance, least squares per block);
    `src` is RGB at the target's size.

    A global colour or tone change (hue rotation, saturation, greyscale, gamma,
    clipped contrast) is close to linear in the colours a block holds, so a copy is
    explained block by block; another photograph is not, because what differs is
    where things are, not their colour.
    """
    h, w = target.shape
    r0, c0, rsz, csz, full = block_grid(h, w, n)
    m = inside.astype(np.float64)
    y = target.astype(np.float64)
    resid = np.abs(colour_fit(src, target, inside, n) - y)
    counts = _block_sums(m, r0, c0)
    res = _block_sums(resid * m, r0, c0) / np.maximum(counts, 1)
    mean = _block_sums(y * m, r0, c0) / np.maximum(counts, 1)
    structure = _block_sums(np.abs(y - mean[rsz][:, csz]) * m, r0, c0) / np.maximum(counts, 1)
    usable = counts >= 0.9 * full
    if not usable.any():
        return 0.0
    return float((res / (structure + floor))[usable].max())


def colour_fit(src: np.ndarray, target: np.ndarray, inside: np.ndarray, n: int) -> np.ndarray:
    """The target's grey levels as fitted, in each block of an n x n grid, from the
    source's colours (1, R, G, B and squared luminance, least squares over the
    block's pixels inside the overlap); `src` is RGB at the target's size."""
    small = cv2.GaussianBlur(src.astype(np.float32) / 255.0, (0, 0), 0.7)
    lum = small @ np.array([0.299, 0.587, 0.114], np.float32)
    feats = [np.ones_like(lum), small[..., 0], small[..., 1], small[..., 2], lum * lum]
    k = len(feats)
    h, w = target.shape
    r0, c0, rsz, csz, _ = block_grid(h, w, n)
    m = inside.astype(np.float64)
    y = target.astype(np.float64)
    xtx = np.empty((n, n, k, k))
    xty = np.empty((n, n, k))
    for i in range(k):
        xty[..., i] = _block_sums(feats[i] * y * m, r0, c0)
        for j in range(i, k):
            xtx[..., i, j] = xtx[..., j, i] = _block_sums(feats[i] * feats[j] * m, r0, c0)
    ridge = 1e-3 * np.eye(k)
    beta = np.linalg.solve(xtx + ridge, xty[..., None])[..., 0]  # n x n x k
    per_pixel = beta[rsz][:, csz]  # h x w x k
    return sum(per_pixel[..., i] * feats[i] for i in range(k))


def block_grid(h: int, w: int, n: int) -> tuple[np.ndarray, ...]:
    """An n x n grid of blocks over an h x w image: the first row and column of each
    block (for `_block_sums`), each pixel row's and column's block, and the blocks'
    pixel counts."""
    rows = np.array_split(np.arange(h), n)
    cols = np.array_split(np.arange(w), n)
    r0 = np.array([r[0] for r in rows])
    c0 = np.array([c[0] for c in cols])
    rsz = np.repeat(np.arange(n), [len(r) for r in rows])
    csz = np.repeat(np.arange(n), [len(c) for c in cols])
    return r0, c0, rsz, csz, np.outer([len(r) for r in rows], [len(c) for c in cols])


def _block_sums(x: np.ndarray, r0: np.ndarray, c0: np.ndarray) -> np.ndarray:
    return np.add.reduceat(np.add.reduceat(x, r0, axis=0), c0, axis=1)


def block_ratios(
    fitted: np.ndarray,
    target: np.ndarray,
    resid: np.ndarray,
    inside: np.ndarray,
    n: int,
    floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per block of an n x n grid: mean residual / (mean structure + floor), and the
    fraction of the block inside the overlap. Vectorised with reduceat."""
    h, w = target.shape
    r0, c0, rsz, csz, full = block_grid(h, w, n)
    counts = full.astype(np.float64)

    def mad(x: np.ndarray) -> np.ndarray:
        mean = _block_sums(x.astype(np.float64), r0, c0) / counts
        return _block_sums(np.abs(x - mean[rsz][:, csz]), r0, c0) / counts

    structure = (mad(fitted) + mad(target)) / 2
    res = _block_sums(resid.astype(np.float64), r0, c0) / counts
    cover = _block_sums(inside.astype(np.float64), r0, c0) / counts
    return res / (structure + floor), cover


def accepted(m: dict, params: VerifyParams, max_block_ratio: float | None = None) -> bool:
    """Whether comparison metrics say 'same picture': the grey levels agree after a
    global gain, or every block agrees after a fit from the source's colours."""
    limit = params.max_block_ratio if max_block_ratio is None else max_block_ratio
    return m["max_block_ratio"] <= limit or m["colour_block_ratio"] <= params.max_colour_ratio


def photometric_change(m: dict, params: VerifyParams) -> bool:
    """Colour, greyscale or tone change beyond what re-encoding and resampling do:
    the grey levels needed a gain or moved (contrast, gamma, brightness), or, when
    either image has colour, its saturation or hue changed (see VerifyParams)."""
    lo = 1 - params.max_gain_change
    tone = m["tone_diff"] > params.tone_tol or not lo < m["gain"] < 1 / lo
    colour = m.get("chroma", 0.0) >= params.min_chroma and (
        abs(np.log(max(m.get("saturation_ratio", 1.0), 1e-6))) > np.log1p(params.saturation_tol)
        or abs(m.get("hue_turn", 0.0)) > params.hue_tol
    )
    return bool(tone or colour)


def explains(m: dict, params: VerifyParams) -> int:
    """Which image's colours explain the other's when only one way works: 1 the
    first (compared as `src`), -1 the second, 0 both or neither. A greyscale copy
    (chroma gone) or a clipped one (the grey levels of one follow from the other's
    colours only one way) follows from its source, not the other way round."""
    # colours are not invented: of a colour and a greyscale image, the colour one
    ca, cb = m.get("chroma_first", 0.0), m.get("chroma_second", 0.0)
    if max(ca, cb) >= params.min_chroma and min(ca, cb) < 0.25 * max(ca, cb):
        return 1 if ca > cb else -1
    limit = params.max_colour_ratio
    fwd, back = m.get("colour_forward", np.inf), m.get("colour_backward", np.inf)
    if fwd <= limit < back and back > 1.5 * fwd:
        return 1
    if back <= limit < fwd and fwd > 1.5 * back:
        return -1
    return 0


def verify_dihedral(
    src: np.ndarray, dst: np.ndarray, o: int, params: VerifyParams
) -> tuple[bool, dict]:
    """Align src's thumbnail into dst's orientation and compare pixels."""
    m = compare(dihedral(src, o), dst, params)
    return accepted(m, params), m
