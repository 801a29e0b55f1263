"""Per-file work: byte hash, libvips decode of page 0, pixel hash, facts, thumbnail.

Everything here is a pure function of the file's bytes (and the parameters), which
is what lets the shard stage cache results by sha256.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import asdict, dataclass

import blake3
import numpy as np
import pyvips

from .. import versions
from ..records import FileRecord
from ..util import atomic_open, fingerprint
from .hashing import content_hashes, dihedral_hashes, quarter_hashes

# libvips keeps recently used images in a cache; with 100 MB TIFFs that only costs memory.
pyvips.cache_set_max(0)

# Files are chosen by extension (tif, tiff, jpg, jpeg, png); the content decides
# how they are read. Content libvips decodes losslessly as a still image is
# accepted, whatever the extension says (a GIF named .jpg is analysed as "gif").
ALLOWED_FORMATS = {"jpeg", "png", "tiff", "webp", "gif", "jp2k"}
# libvips loader names -> format names
LOADER_NAMES = {"spng": "png", "nsgif": "gif"}
BITS = {
    "uchar": 8,
    "char": 8,
    "ushort": 16,
    "short": 16,
    "uint": 32,
    "int": 32,
    "float": 32,
    "complex": 64,
    "double": 64,
    "dpcomplex": 128,
}


class DecodeError(Exception):
    """A file that cannot be analysed; the message is recorded as the reason."""


@dataclass(frozen=True)
class DecodeParams:
    """Settings that change what the decode stage produces (part of every cache key)."""

    thumb_size: int = 800
    thumb_quality: int = 80
    max_pixels: int = 1_000_000_000

    def fingerprint(self) -> str:
        """Stored with cached results: changing a setting or the code's version
        (`versions.DECODE`) redoes them."""
        return fingerprint(versions.DECODE, asdict(self))


def _source(path: str, data: memoryview | None = None) -> pyvips.Source:
    """A libvips source of the file's bytes: `data` when they were read already
    (`read_hashed`), else the file, its name passed as bytes, so a name that is not
    valid UTF-8 (lone surrogates after os.fsdecode) still opens."""
    if data is not None:
        return pyvips.Source.new_from_memory(data)
    return pyvips.Source.new_from_file(os.fsencode(path))


def sha256_file(path: str, bufsize: int = 1 << 20) -> str:
    """sha256 of the file's bytes, streamed so a 120 MB TIFF needs 1 MB of memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


class _Scratch:
    """A buffer reused for every file, grown when needed and never handed back: a
    fresh 108 MB buffer per master is 26,000 page faults."""

    def __init__(self) -> None:
        self.buf = np.empty(0, np.uint8)

    def get(self, nbytes: int) -> memoryview:
        if len(self.buf) < nbytes:
            self.buf = np.empty(0, np.uint8)  # let the old one go first
            self.buf = np.empty(nbytes, np.uint8)
        return self.buf.data[:nbytes]


# A file up to this size is read once, into memory: its sha256 and its decode use
# those bytes; a larger one is read twice, streamed (bounded memory). The same bound
# holds a decoded page-0 raster in memory (`decode_raster`). A 104 MB master takes
# 366 MB at its peak (bench/memory_bench.py); this bound keeps a job below 1.2 GB.
IN_MEMORY = 256 << 20
_FILE_BYTES, _RASTER = _Scratch(), _Scratch()


def read_hashed(path: str) -> tuple[str, memoryview | None]:
    """sha256 of a file and, up to IN_MEMORY bytes, the bytes themselves (in a buffer
    reused by the next call), so that decoding them does not read the file again."""
    size = os.path.getsize(path)
    if size > IN_MEMORY:
        return sha256_file(path), None
    view = _FILE_BYTES.get(size)
    got = 0
    with open(path, "rb", buffering=0) as fh:
        while got < size and (n := fh.readinto(view[got:])):
            got += n
        if got == size and fh.read(1):  # grown since: stream it
            return sha256_file(path), None
    view = view[:got]
    return hashlib.sha256(view).hexdigest(), view


def loader_format(path: str, data: memoryview | None = None) -> str:
    """Format name of the file's content (not its extension), e.g. 'tiff' for a .jpg TIFF."""
    source = _source(path, data)
    pointer = pyvips.vips_lib.vips_foreign_find_load_source(source.pointer)
    if pointer == pyvips.ffi.NULL:
        pyvips.vips_lib.vips_error_clear()
        why = _sniff(path)
        raise DecodeError(why if why.startswith("not a") else f"decode failed: {why}")
    loader = pyvips.ffi.string(pointer).decode()
    name = loader.removeprefix("VipsForeignLoad").lower()
    for suffix in ("file", "source", "buffer"):
        name = name.removesuffix(suffix)
    name = LOADER_NAMES.get(name, name)
    if name.startswith("pdf"):
        name = "pdf"
    return name


IMAGE_MAGIC = {
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"II+\x00": "BigTIFF",
    b"MM\x00+": "BigTIFF",
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG": "PNG",
}
MAGIC = {
    b"%PDF": "PDF document",
    b"PK\x03\x04": "ZIP container (e.g. docx/xlsx)",
    b"\xd0\xcf\x11\xe0": "OLE document (e.g. doc/xls)",
    b"<!DOCTYPE": "HTML document",
    b"<html": "HTML document",
}


def _sniff(path: str) -> str:
    """Name well-known non-image content so the recorded reason is actionable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return ""
    for magic, what in IMAGE_MAGIC.items():
        if head.startswith(magic):
            return f"{what} signature but no readable image (truncated or corrupt)"
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            return f"not a recognised image format (content looks like a {what})"
    return "not a recognised image format"


def _vips_message(exc: Exception) -> str:
    """One readable line from a libvips error (which carries a multi-line log)."""
    detail = getattr(exc, "detail", None) or ""
    lines = [ln.strip() for ln in str(detail).splitlines() if ln.strip()]
    msg = lines[0] if lines else str(exc).splitlines()[0]
    return msg[:300]


def open_page0(
    path: str, fmt: str, access: str = "sequential", data: memoryview | None = None
) -> pyvips.Image:
    """Open page 0 only, failing on truncated or corrupt data instead of filling grey.

    Files are opened as sources: `new_from_file` would parse `[...]` in a filename as
    load options, and archive names such as `box[2].tif` are common.
    """
    kwargs = {"access": access, "fail_on": "error"}
    if fmt in {"tiff", "webp", "gif"}:
        kwargs["page"] = 0
    return pyvips.Image.new_from_source(_source(path, data), "", **kwargs)


def orientation_of(img: pyvips.Image) -> int | None:
    """The EXIF/TIFF Orientation tag (1-8), None when the file has none.

    Matching uses the raw pixels; the tag is recorded so the pages can show the
    image as a viewer would. (libvips reports 1 for a TIFF without the tag.)
    """
    if "orientation" not in set(img.get_fields()):
        return None
    value = int(img.get("orientation"))
    return value if 1 <= value <= 8 else None


def exif_orientation(path: str) -> int | None:
    """Orientation tag of a file from its header alone (nothing is decoded)."""
    try:
        fmt = loader_format(path)
        return orientation_of(open_page0(path, fmt)) if fmt in ALLOWED_FORMATS else None
    except (DecodeError, pyvips.Error, OSError):
        return None


# The JPEG standard's example luminance table (Annex K), in zig-zag order as stored
# in a DQT segment; libjpeg's quality q scales it by 5000/q (q < 50) or 200 - 2q %.
_STD_LUMA = np.array(
    [16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22,
     24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68,
     87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112,
     100, 120, 92, 101, 103, 99],
    float,
)  # fmt: skip


def _quality_of_table(vals: np.ndarray) -> int:
    """libjpeg's quality for a luminance table. Entries clamped at the table's
    limit (255 for 8-bit tables, low qualities) or at 1 (the highest) are left out
    when others remain: they no longer follow the scale."""
    ratio = vals / _STD_LUMA
    free = (vals > 1) & (vals < (255 if vals.max() <= 255 else 32767))
    scale = float(np.mean(ratio[free] if free.sum() >= 8 else ratio)) * 100
    q = 5000 / scale if scale > 100 else (200 - scale) / 2
    return int(min(100, max(1, round(q))))


def jpeg_quality(path: str, max_segments: int = 4096) -> int | None:
    """Estimated quality (1-100, libjpeg's scale) of a JPEG's luminance table (the
    table numbered 0), or None when the header has none. Why: of two JPEGs of one
    picture and one size, the one saved at a clearly lower quality is not the source
    (see direction.tie_break). Only segment headers are read until the table:
    metadata (EXIF, ICC, XMP) is skipped over."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return None
        for _ in range(max_segments):
            byte = fh.read(1)
            if not byte:
                return None
            if byte != b"\xff":  # stray bytes between segments
                continue
            marker = fh.read(1)
            while marker == b"\xff":  # fill bytes before a marker
                marker = fh.read(1)
            if not marker:
                return None
            code = marker[0]
            if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
                continue
            if code in (0xDA, 0xD9):  # start of scan, end of image: no table
                return None
            length = int.from_bytes(fh.read(2), "big")
            if length < 2:
                return None
            if code != 0xDB:
                fh.seek(length - 2, os.SEEK_CUR)
                continue
            seg = fh.read(length - 2)
            i = 0
            while i < len(seg):
                precision, table_id = seg[i] >> 4, seg[i] & 15
                n = 128 if precision else 64
                raw = seg[i + 1 : i + 1 + n]
                if len(raw) < n:
                    return None
                if table_id == 0:
                    return _quality_of_table(
                        np.frombuffer(raw, ">u2" if precision else "u1").astype(float)
                    )
                i += 1 + n
    return None


def _png_zero_size(path: str) -> str | None:
    """A PNG whose header declares a zero width or height, as readable text."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) == 24 and head[12:16] == b"IHDR":
        w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if w == 0 or h == 0:
            return f"invalid image header: PNG declares a width or height of 0 ({w}x{h})"
    return None


def pixel_hash(img: pyvips.Image, raw: memoryview | None = None) -> str:
    """BLAKE3 (160 bits) of the decoded page-0 raster plus its shape and sample
    format: two files share it exactly when their pixels are identical. BLAKE3 on one
    thread hashes a 108 MB master in ~25 ms of CPU, blake2b in ~130 (docs/decode.md).

    Hashes `raw`, the raster already in memory (`decode_raster`), when given; else the
    raster is streamed through a custom target, so memory stays bounded for any image
    size.
    """
    h = blake3.blake3()
    h.update(f"{img.width}x{img.height}x{img.bands}:{img.format}:{img.interpretation}|".encode())
    if raw is not None:
        h.update(raw)
        return h.hexdigest(length=20)
    target = pyvips.TargetCustom()

    def on_write(chunk: bytes) -> int:
        h.update(chunk)
        return len(chunk)

    target.on_write(on_write)
    img.rawsave_target(target)
    return h.hexdigest(length=20)


def decode_raster(img: pyvips.Image) -> tuple[pyvips.Image, memoryview] | None:
    """Page 0 decoded once into a reused buffer: the in-memory image (with the file's
    metadata) and its raw bytes; None for a raster above IN_MEMORY bytes or a coded
    one (LABQ), which are streamed instead."""
    nbytes = img.width * img.height * img.bands * (BITS[img.format] // 8)
    if img.coding != "none" or nbytes > IN_MEMORY:
        return None
    raw = _RASTER.get(nbytes)
    mem = pyvips.Image.new_from_memory(raw, img.width, img.height, img.bands, img.format)
    img.write(mem)  # pixels into `raw`, header and metadata from img
    return mem, raw


def to_srgb8(img: pyvips.Image) -> pyvips.Image:
    """Any libvips image (16-bit, CMYK, alpha, grey, LAB, palette) as 3-band 8-bit sRGB.

    Alpha is flattened onto white, which is how archive viewers show transparent images.
    """
    if img.coding != "none":
        img = img.decode()
    interp = img.interpretation
    if "icc-profile-data" in img.get_fields() and interp != "cmyk":
        # colour-manage through the embedded profile (AdobeRGB, ProPhoto, a scanner's
        # profile), so a master and its sRGB derivative look alike; a broken profile
        # is ignored rather than failing the file
        try:
            img = img.icc_transform("srgb", embedded=True, intent="relative")
            interp = img.interpretation
        except pyvips.Error:
            pyvips.vips_lib.vips_error_clear()
    if interp == "cmyk" or (img.bands >= 4 and interp == "multiband" and not img.hasalpha()):
        try:
            img = img.icc_transform("srgb", input_profile="cmyk", embedded=True)
        except pyvips.Error:
            img = img.colourspace("srgb")
    elif interp in {"multiband", "fourier", "histogram", "matrix"}:
        img = img.cast("uchar") if img.format != "uchar" else img
        img = img.extract_band(0, n=min(img.bands, 3))
        img = img.copy(interpretation="srgb" if img.bands == 3 else "b-w")
    img = img.colourspace("srgb")
    if img.hasalpha():
        img = img.flatten(background=[255, 255, 255])
    if img.bands > 3:
        img = img.extract_band(0, n=3)
    elif img.bands == 1:
        img = img.bandjoin([img, img])
    if img.format != "uchar":
        img = img.cast("uchar")
    return img


def make_thumbnail(
    path: str,
    fmt: str,
    size: int,
    raster: pyvips.Image | None = None,
    data: memoryview | None = None,
) -> pyvips.Image:
    """Page-0 thumbnail, longest side ≤ `size`, as 8-bit sRGB.

    From `raster` (page 0 already decoded, `decode_raster`) when given, except for a
    JPEG of 2 x `size` or more, which libvips thumbnails with shrink-on-load (a
    smaller JPEG it decodes in full and resizes, as it does `raster`: the same
    pixels). TIFF goes through an explicit page-0 load so a thumbnail stored in page
    1 is never mistaken for a pyramid level.
    """
    opts = {"height": size, "size": "down", "no_rotate": True}
    if raster is not None and (fmt != "jpeg" or max(raster.width, raster.height) < 2 * size):
        return to_srgb8(raster.thumbnail_image(size, **opts))
    if fmt == "jpeg":
        return to_srgb8(pyvips.Image.thumbnail_source(_source(path, data), size, **opts))
    return to_srgb8(open_page0(path, fmt, data=data).thumbnail_image(size, **opts))


def vips_to_numpy(img: pyvips.Image) -> np.ndarray:
    """uchar libvips image -> HxWxC numpy array."""
    mem = img.write_to_memory()
    return np.ndarray(buffer=mem, dtype=np.uint8, shape=(img.height, img.width, img.bands))


# A plain or near-plain picture (blank page, grey card, black frame, a 1x1 px image):
# at 64 px, the 0.5-99.5 percentile range of every channel is below this many levels.
# Such images hold nothing to match and would all be "copies" of each other.
BLANK_RANGE = 12


def is_blank(pixels: np.ndarray) -> bool:
    """Whether a thumbnail is plain or near-plain (see BLANK_RANGE)."""
    import cv2

    h, w = pixels.shape[:2]
    f = min(1.0, 64 / max(h, w))
    small = pixels
    if f < 1:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    flat = small.reshape(-1, small.shape[2] if small.ndim == 3 else 1).astype(np.float32)
    lo, hi = np.percentile(flat, [0.5, 99.5], axis=0)
    return bool((hi - lo).max() < BLANK_RANGE)


# errors of writing the thumbnail that say nothing about the file
_RESULTS_FULL = (errno.ENOSPC, errno.EDQUOT)


def analyse(
    path: str,
    thumb_path: str,
    params: DecodeParams,
    name: str | None = None,
    data: memoryview | None = None,
) -> tuple[dict, np.ndarray | None]:
    """Decode one file (from `data`, its bytes, when they were read already); write
    its thumbnail; return its decode facts (the records.DECODE_KEYS of a FileRecord)
    and the thumbnail pixels.

    Raises nothing for bad images: problems come back as status 'error' with a reason,
    keeping whatever facts were learnt before the failure. Reasons name the file as
    `name` (default: its basename), never by the machine's absolute path.
    """
    facts, pixels = _analyse(path, thumb_path, params, name, data)
    if data is not None and facts["status"] == "error":
        # libvips names a file in its messages ("m.tif: bad seek") and bytes in memory
        # "source": a failure is decoded again from the file for the same reason
        again = _analyse(path, thumb_path, params, name, None)
        if again[0]["status"] == "error":
            return again
    return facts, pixels


def _analyse(
    path: str, thumb_path: str, params: DecodeParams, name: str | None, data: memoryview | None
) -> tuple[dict, np.ndarray | None]:
    rec = FileRecord(status="ok")
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file (0 bytes)")
        fmt = loader_format(path, data)
        rec.format = fmt
        if fmt not in ALLOWED_FORMATS:
            raise DecodeError(f"content is {fmt}, not a supported image format")
        if fmt == "png" and (why := _png_zero_size(path)):
            raise DecodeError(why)
        img = open_page0(path, fmt, data=data)
        fields = set(img.get_fields())
        rec.width, rec.height, rec.bands = img.width, img.height, img.bands
        rec.interpretation = img.interpretation
        rec.n_pages = int(img.get("n-pages")) if "n-pages" in fields else 1
        rec.bits_per_sample = (
            int(img.get("bits-per-sample"))
            if "bits-per-sample" in fields
            else BITS.get(img.format, 8)
        )
        rec.exif_orientation = orientation_of(img)
        if fmt == "jpeg":
            rec.jpeg_quality = jpeg_quality(path)
        if img.width * img.height > params.max_pixels:
            raise DecodeError(
                f"image too large: {img.width}x{img.height} exceeds max_pixels={params.max_pixels}"
            )
        # one decode of page 0 serves the pixel hash and the thumbnail
        raster = decode_raster(img)
        rec.pixel_hash = pixel_hash(img) if raster is None else pixel_hash(*raster)
        # Materialise the small thumbnail once: it is both saved and returned.
        page0 = None if raster is None else raster[0]
        thumb = make_thumbnail(path, fmt, params.thumb_size, page0, data).copy_memory()
        jpeg = thumb.jpegsave_buffer(Q=params.thumb_quality, keep="none")
        with atomic_open(thumb_path, "wb") as fh:
            fh.write(jpeg)
        rec.thumb_w, rec.thumb_h = thumb.width, thumb.height
        pixels = vips_to_numpy(thumb)
        rec.phash, rec.tone_hash = dihedral_hashes(pixels)
        rec.content_hash = content_hashes(pixels)
        rec.quarter_phash = quarter_hashes(pixels)
        rec.blank = is_blank(pixels)
        return rec.facts(), pixels
    except DecodeError as exc:
        rec.status, rec.error = "error", str(exc)
    except pyvips.Error as exc:
        rec.status, rec.error = "error", f"decode failed: {_vips_message(exc)}"
    except (OSError, MemoryError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno in _RESULTS_FULL:
            # the results' disk, not the file: the job fails and is redone (a file
            # error would be cached by content and published)
            raise
        rec.status, rec.error = "error", f"{type(exc).__name__}: {exc}"
    rec.pixel_hash = None
    shown = os.path.basename(path) if name is None else name
    for form in {path, repr(path)[1:-1], os.fsencode(path).decode("utf-8", "replace")}:
        rec.error = rec.error.replace(form, shown)
    return rec.facts(), None
