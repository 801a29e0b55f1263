"""Build small archives from real photographs (scikit-image's bundled data).

Used for the embedded demo (`snakemake --cores N` on a fresh clone) and by the tests,
which need archives with known answers. Nothing here is downloaded: every photograph
ships inside the scikit-image wheel; the tests and benchmarks that need other captures
of one scene (video frames, a chessboard in several poses) read the sample data of
Debian's `opencv-doc` package (`opencv_sample`, `video_frames`).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pyvips

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "coins",
    "moon",
    "brick",
    "gravel",
)


def photo(name: str) -> np.ndarray:
    """A bundled photograph as an HxWx3 uint8 array (greyscale ones are replicated)."""
    from skimage import data

    if name == "motorcycle_left":
        arr = data.stereo_motorcycle()[0]
    elif name == "motorcycle_right":
        arr = data.stereo_motorcycle()[1]
    else:
        arr = getattr(data, name)()
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


# where Debian's opencv-doc installs OpenCV's sample data (some files may be gzipped)
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def opencv_sample(name: str) -> Path | None:
    """Path of one of OpenCV's sample files (`vtest.avi`, `left06.jpg`), unpacked
    into the temporary directory when Debian ships it gzipped; None without
    opencv-doc."""
    path = OPENCV_DATA / name
    if path.is_file():
        return path
    packed = path.with_name(name + ".gz")
    if not packed.is_file():
        return None
    out = Path(tempfile.gettempdir()) / "archive-twins-opencv-data" / name
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f".{name}.{os.getpid()}")
        with gzip.open(packed) as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(part, out)
    return out


def opencv_photo(name: str) -> np.ndarray:
    """One of OpenCV's sample photographs as HxWx3 RGB (a greyscale one replicated)."""
    path = opencv_sample(name)
    arr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR) if path else None
    if arr is None:
        raise FileNotFoundError(f"{name}: install Debian's opencv-doc")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def video_frames(name: str, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Frames (0-based, in decoding order) of one of OpenCV's sample videos, RGB."""
    path = opencv_sample(name)
    cap = cv2.VideoCapture(os.fspath(path)) if path else None
    if cap is None or not cap.isOpened():
        raise FileNotFoundError(f"{name}: install Debian's opencv-doc")
    out: dict[int, np.ndarray] = {}
    try:
        for i in range(max(indices) + 1):
            ok, frame = cap.read()
            if not ok:
                raise ValueError(f"{name} has {i} frames, not {max(indices) + 1}")
            if i in indices:
                out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return out


def to_vips(arr: np.ndarray) -> pyvips.Image:
    """numpy HxWxC (uint8 or uint16) -> libvips image with a sensible interpretation."""
    img = pyvips.Image.new_from_array(np.ascontiguousarray(arr))
    if arr.dtype == np.uint16:
        return img.copy(interpretation="rgb16" if img.bands >= 3 else "grey16")
    return img.copy(interpretation="srgb" if img.bands >= 3 else "b-w")


def save(arr: np.ndarray, path: str | os.PathLike, **opts: object) -> Path:
    """Save with libvips; the saver follows the extension (.jpg, .png, .tif)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    img = to_vips(arr)
    # Save through a buffer: libvips parses "[...]" in file names as options.
    suffix = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png", ".tif": ".tif", ".tiff": ".tif"}
    opt = ",".join(f"{k}={v}" for k, v in opts.items())
    data = img.write_to_buffer(suffix[ext] + (f"[{opt}]" if opt else ""))
    path.write_bytes(data)
    return path


def to16(arr: np.ndarray) -> np.ndarray:
    """8-bit photo -> 16-bit with full range, like a museum master scan."""
    return arr.astype(np.uint16) * 257


def save_museum_tiff(
    arr16: np.ndarray,
    path: str | os.PathLike,
    thumb_px: int = 128,
    xmp_date: str = "2019-03-01T10:00:00",
    compression: str | None = None,
) -> Path:
    """Two-page 16-bit RGB TIFF: full image in page 0, a small thumbnail in page 1.

    The XMP packet carries a date, so two saves that differ only in that date have
    the same pixels but different bytes.
    """
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = arr16.shape[:2]
    f = thumb_px / max(h, w)
    thumb_arr = cv2.resize(arr16, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmp:ModifyDate="{xmp_date}"/></rdf:RDF></x:xmpmeta>'
    ).encode()
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            arr16,
            photometric="rgb",
            compression=compression,
            metadata=None,
            extratags=[(700, "B", len(xmp), xmp, True)],
        )
        tw.write(thumb_arr, photometric="rgb", metadata=None)
    return path


def copy_bytes(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Byte-identical copy (the archive's most common kind of duplicate)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def build_demo_archive(root: str | os.PathLike) -> dict:
    """Create the embedded demo archive and return (and store beside it) its truth.

    A miniature of a museum archive: master TIFFs with thumbnails in page 1, JPEG
    derivatives in several folders, re-saved variants and the usual stray files.
    """
    root = Path(root)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    truth: dict = {"identical": [], "same_pixels": [], "errors": [], "skipped": []}

    masters = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        arr = photo(name)
        masters[name] = arr
        save_museum_tiff(to16(arr), tmp / "masters" / f"{name}.tif")

    # Derivatives, byte-copied into several project folders.
    a = save(masters["astronaut"], tmp / "web" / "astronaut.jpg", Q=85)
    copy_bytes(a, tmp / "exhibitions" / "2021" / "astronaut.jpg")
    truth["identical"].append(["exhibitions/2021/astronaut.jpg", "web/astronaut.jpg"])
    c = save(masters["coffee"], tmp / "web" / "coffee.png")
    names = ["web/coffee.png"]
    for folder in ("press", "exhibitions/2021"):
        names.append(copy_bytes(c, tmp / folder / "coffee.png").relative_to(tmp).as_posix())
    truth["identical"].append(sorted(names))

    # The same master re-saved with a new XMP date or deflate compression: same pixels, other bytes.
    save_museum_tiff(
        to16(masters["chelsea"]),
        tmp / "masters" / "chelsea_resaved.TIF",
        xmp_date="2023-11-05T09:30:00",
    )
    save_museum_tiff(
        to16(masters["chelsea"]), tmp / "masters" / "chelsea_deflate.tif.tif", compression="zlib"
    )
    truth["same_pixels"].append(
        ["masters/chelsea.tif", "masters/chelsea_deflate.tif.tif", "masters/chelsea_resaved.TIF"]
    )

    # Derivatives: resized, rotated, mirrored, greyscale copies of the masters.
    from .dihedral import dihedral

    def derive(name: str, rel: str, scale: float, o: int = 0, grey: bool = False) -> None:
        arr = masters[name]
        h, w = arr.shape[:2]
        arr = cv2.resize(arr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if grey:
            arr = np.repeat(cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        save(dihedral(arr, o), tmp / rel, **({"Q": 80} if rel.endswith(".jpg") else {}))
        truth["copies"].append([f"masters/{name}.tif", rel])

    truth["copies"] = []
    derive("astronaut", "web/astronaut_small.jpg", 0.5)
    derive("rocket", "web/rocket_portrait.jpg", 0.6, o=1)
    derive("rocket", "press/rocket_upside_down.png", 0.3, o=2)
    derive("chelsea", "press/chelsea_mirrored.jpg", 0.8, o=4)
    derive("immunohistochemistry", "web/ihc_grey.jpg", 0.7, grey=True)

    # Stray and broken files.
    full = (tmp / "web" / "astronaut.jpg").read_bytes()
    (tmp / "incoming").mkdir(parents=True, exist_ok=True)
    (tmp / "incoming" / "upload_truncated.jpg").write_bytes(full[: len(full) // 3])
    (tmp / "incoming" / "empty.tif").write_bytes(b"")
    truth["errors"] += ["incoming/empty.tif", "incoming/upload_truncated.jpg"]
    (tmp / "docs").mkdir(parents=True, exist_ok=True)
    (tmp / "docs" / "inventory.csv").write_text("id,title\n1,astronaut\n", encoding="utf-8")
    (tmp / "docs" / "README.txt").write_text("scans 2019\n", encoding="utf-8")
    truth["skipped"] += ["docs/README.txt", "docs/inventory.csv"]

    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    (root.parent / f"{root.name}.truth.json").write_text(json.dumps(truth, indent=1))
    return truth
