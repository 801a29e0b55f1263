"""libvips decoding: page 0 only, every pixel type to 8-bit sRGB, clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import pyvips

from archive_twins.demo import photo, save, save_museum_tiff, to16
from archive_twins.ingest.decode import DecodeParams, analyse, sha256_file

P = DecodeParams(thumb_size=256)


def run(path, tmp_path):
    return analyse(str(path), str(tmp_path / "thumb.jpg"), P)


def test_16bit_two_page_tiff_uses_page0(tmp_path):
    arr = photo("chelsea")
    path = save_museum_tiff(to16(arr), tmp_path / "m.tif", thumb_px=64)
    rec, px = run(path, tmp_path)
    assert rec["status"] == "ok", rec
    assert (rec["width"], rec["height"], rec["n_pages"], rec["bits_per_sample"]) == (
        451,
        300,
        2,
        16,
    )
    assert px.dtype == np.uint8 and px.shape == (170, 256, 3)
    # 16-bit -> 8-bit keeps the photograph: compare with a plain resize of the 8-bit source
    ref = pyvips.Image.new_from_array(arr).thumbnail_image(256).numpy()
    assert np.abs(px.astype(int) - ref.astype(int)).mean() < 3


def test_pixel_hash_ignores_compression_and_metadata(tmp_path):
    arr = to16(photo("coffee"))
    a, _ = run(save_museum_tiff(arr, tmp_path / "a.tif", xmp_date="2001-01-01T00:00:00"), tmp_path)
    b, _ = run(save_museum_tiff(arr, tmp_path / "b.tif", compression="zlib"), tmp_path)
    c, _ = run(save_museum_tiff(arr[::-1].copy(), tmp_path / "c.tif"), tmp_path)
    assert a["pixel_hash"] == b["pixel_hash"] != c["pixel_hash"]
    assert sha256_file(str(tmp_path / "a.tif")) != sha256_file(str(tmp_path / "b.tif"))


def test_png_from_decoded_jpeg_has_same_pixels(tmp_path):
    jpg = save(photo("rocket"), tmp_path / "r.jpg", Q=70)
    decoded = pyvips.Image.new_from_file(str(jpg)).numpy()
    png = save(decoded, tmp_path / "r.png")
    assert run(jpg, tmp_path)[0]["pixel_hash"] == run(png, tmp_path)[0]["pixel_hash"]


@pytest.mark.parametrize("kind", ["cmyk", "rgba", "palette", "grey16", "grey8", "bilevel", "lab"])
def test_pixel_types_become_srgb8(tmp_path, kind):
    src = pyvips.Image.new_from_array(photo("astronaut")).copy(interpretation="srgb")
    path = tmp_path / f"{kind}.tif"
    if kind == "cmyk":
        src.icc_transform("cmyk").tiffsave(str(path))
    elif kind == "rgba":
        path = tmp_path / "rgba.png"
        src.bandjoin(255).pngsave(str(path))
    elif kind == "palette":
        path = tmp_path / "pal.png"
        src.pngsave(str(path), palette=True)
    elif kind == "grey16":
        path = tmp_path / "g16.png"
        src.colourspace("grey16").pngsave(str(path))
    elif kind == "grey8":
        src.colourspace("b-w").tiffsave(str(path))
    elif kind == "bilevel":
        (src.colourspace("b-w") > 128).tiffsave(str(path), bitdepth=1)
    elif kind == "lab":
        src.colourspace("lab").tiffsave(str(path))
    rec, px = run(path, tmp_path)
    assert rec["status"] == "ok", rec
    assert px.dtype == np.uint8 and px.shape == (256, 256, 3)
    ref = src.thumbnail_image(256).numpy().astype(int)
    diff = np.abs(px.astype(int) - ref).mean()
    # bilevel and palette lose detail; everything else is close to the sRGB original
    assert diff < (60 if kind in {"bilevel"} else 25), (kind, diff)
    thumb = pyvips.Image.new_from_file(str(tmp_path / "thumb.jpg"))
    assert thumb.bands == 3 and thumb.interpretation == "srgb"


def test_transparent_png_is_flattened_on_white(tmp_path):
    arr = np.zeros((50, 80, 4), np.uint8)
    path = save(arr, tmp_path / "clear.png")
    _, px = run(path, tmp_path)
    assert px.min() == 255


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", "empty file (0 bytes)"),
        (b"%PDF-1.4\n%%EOF\n", "not a recognised image format (content looks like a PDF document)"),
        (b"PK\x03\x04" + b"\0" * 40, "not a recognised image format (content looks like a ZIP"),
        (b"hello, not an image", "not a recognised image format"),
    ],
)
def test_non_images_have_clear_errors(tmp_path, content, pattern):
    path = tmp_path / "x.tif"
    path.write_bytes(content)
    rec, px = run(path, tmp_path)
    assert rec["status"] == "error" and px is None
    assert rec["error"].startswith(pattern)


def test_truncated_jpeg_and_tiff_fail(tmp_path):
    jpg = save(photo("astronaut"), tmp_path / "a.jpg")
    tif = save(photo("astronaut"), tmp_path / "a.tif")
    for p in (jpg, tif):
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        rec, _ = run(p, tmp_path)
        assert rec["status"] == "error", p
        assert rec["error"].startswith("decode failed"), rec["error"]
        assert not (tmp_path / "thumb.jpg").exists()


def test_declared_size_bomb_is_refused_without_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    pyvips.Image.black(4000, 3000).pngsave(str(path))
    rec, _ = analyse(str(path), str(tmp_path / "t.jpg"), DecodeParams(max_pixels=10_000_000))
    assert rec["status"] == "error"
    assert rec["error"] == "image too large: 4000x3000 exceeds max_pixels=10000000"
    assert (rec["width"], rec["height"]) == (4000, 3000)


def test_brackets_in_filenames_are_not_load_options(tmp_path):
    path = save(photo("coins"), tmp_path / "box[2].png")
    rec, _ = run(path, tmp_path)
    assert rec["status"] == "ok" and rec["width"] == 384


def test_wrong_extension_reports_real_format(tmp_path):
    png = save(photo("moon"), tmp_path / "m.png")
    path = tmp_path / "really_png.jpg"
    path.write_bytes(png.read_bytes())
    rec, _ = run(path, tmp_path)
    assert rec["status"] == "ok" and rec["format"] == "png"


ADOBE_RGB = "/usr/share/color/icc/compatibleWithAdobeRGB1998.icc"  # Debian icc-profiles-free


@pytest.mark.skipif(
    not os.path.exists(ADOBE_RGB), reason="icc-profiles-free not installed (setup_system.sh)"
)
@pytest.mark.parametrize("fmt", ["jpg", "tif"])
def test_embedded_profile_is_honoured(tmp_path, fmt):
    """An AdobeRGB master is decoded through its profile: its thumbnail looks like the
    sRGB picture (not desaturated), so its sRGB derivatives match it."""
    import cv2
    import pyvips

    from archive_twins.demo import photo, to_vips
    from archive_twins.ingest.decode import DecodeParams, analyse

    srgb = photo("coffee")
    adobe = to_vips(srgb).icc_transform(ADOBE_RGB, input_profile="srgb")
    path = tmp_path / f"adobe.{fmt}"
    path.write_bytes(adobe.jpegsave_buffer(Q=95) if fmt == "jpg" else adobe.tiffsave_buffer())
    assert "icc-profile-data" in pyvips.Image.new_from_file(str(path)).get_fields()
    rec, px = analyse(str(path), str(tmp_path / "t.jpg"), DecodeParams())
    assert rec["status"] == "ok"

    def chroma(x):
        lab = cv2.cvtColor(x, cv2.COLOR_RGB2LAB).astype(float)
        return np.hypot(lab[..., 1] - 128, lab[..., 2] - 128).mean()

    raw = np.ndarray(
        buffer=adobe.write_to_memory(), dtype=np.uint8, shape=(adobe.height, adobe.width, 3)
    )
    assert chroma(raw) < 0.85 * chroma(srgb)  # the raw AdobeRGB numbers look dull
    assert chroma(px) == pytest.approx(chroma(srgb), rel=0.02)
    assert np.abs(px.astype(float) - srgb.astype(float)).mean() < 3


def _files_of_every_path(root):
    """One file for each way page 0 is decoded (the thumbnails are 256 px): TIFF and
    PNG (once, in memory), JPEGs below twice the thumbnail size (once: libvips would
    decode them in full anyway), one above (shrink-on-load thumbnail)."""
    import cv2

    from archive_twins.demo import to_vips

    big = cv2.resize(photo("astronaut"), (700, 560), interpolation=cv2.INTER_CUBIC)
    cmyk = root / "cmyk.jpg"
    to_vips(big[:300, :400]).icc_transform("cmyk").jpegsave(str(cmyk))
    return {
        "master.tif": ("tiff", save_museum_tiff(to16(big), root / "master.tif")),
        "rgba.png": ("png", save(np.dstack([big, big[..., :1]]), root / "rgba.png")),
        "small.jpg": ("jpeg", save(big[:400, :500], root / "small.jpg", Q=90)),
        "big.jpg": ("jpeg", save(big, root / "big.jpg", Q=90)),
        "cmyk.jpg": ("jpeg", cmyk),
        "dot.jpg": ("jpeg", save(big[:1, :1], root / "dot.jpg")),
    }


@pytest.mark.parametrize("name", ["master.tif", "rgba.png", "small.jpg", "big.jpg", "cmyk.jpg"])
def test_page0_is_decoded_once_with_the_streamed_answers(tmp_path, monkeypatch, name):
    """The pixel hash and the thumbnail come from one decode of page 0 (the JPEG
    whose thumbnail libvips shrinks on load aside) and equal what streaming the
    raster and thumbnailing the file give."""
    import archive_twins.ingest.decode as dec

    fmt, _ = _files_of_every_path(tmp_path)[name]
    path = str(tmp_path / name)
    streamed_hash = dec.pixel_hash(dec.open_page0(path, fmt))
    thumb = dec.make_thumbnail(path, fmt, P.thumb_size)
    streamed_thumb = dec.vips_to_numpy(thumb.copy_memory())
    loads = []
    real_open = dec.open_page0
    monkeypatch.setattr(dec, "open_page0", lambda *a, **k: loads.append(a) or real_open(*a, **k))
    real_thumb = pyvips.Image.thumbnail_source
    monkeypatch.setattr(
        pyvips.Image,
        "thumbnail_source",
        staticmethod(lambda *a, **k: loads.append(a) or real_thumb(*a, **k)),
    )
    rec, px = run(path, tmp_path)
    assert rec["status"] == "ok", rec
    assert rec["pixel_hash"] == streamed_hash
    assert np.array_equal(px, streamed_thumb)
    assert len(loads) == (2 if name == "big.jpg" else 1)


def test_a_raster_above_the_memory_limit_is_streamed(tmp_path, monkeypatch):
    """Above IN_MEMORY bytes page 0 is streamed twice (bounded memory): the same
    record and thumbnail as in memory."""
    import archive_twins.ingest.decode as dec

    for name, (_, path) in _files_of_every_path(tmp_path).items():
        in_memory = run(path, tmp_path)
        monkeypatch.setattr(dec, "IN_MEMORY", 0)
        streamed = run(path, tmp_path)
        monkeypatch.undo()
        assert in_memory[0] == streamed[0], name
        assert np.array_equal(in_memory[1], streamed[1]), name


def test_decode_job_holds_libraries_to_its_threads(tmp_path):
    """run_decode_shard holds libvips, OpenCV and BLAS to the rule's threads and keeps
    freed memory in the heap (process-wide: checked in a child process)."""
    import json
    import subprocess
    import sys

    save(photo("coins"), tmp_path / "a" / "c.png")
    st = (tmp_path / "a" / "c.png").stat()
    entry = {"path": "c.png", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    (tmp_path / "m.jsonl").write_text(json.dumps(entry) + "\n")
    code = f"""
import json, cv2, pyvips
from threadpoolctl import threadpool_info
from archive_twins.cli import run_decode_shard
from archive_twins.jobenv import keep_heap
run_decode_shard(log={str(tmp_path / "log")!r}, manifest={str(tmp_path / "m.jsonl")!r},
    records={str(tmp_path / "r.jsonl")!r}, features={str(tmp_path / "f" / "s.npz")!r},
    archive={str(tmp_path / "a")!r}, store={str(tmp_path / "thumbs")!r}, thumb_size=256,
    thumb_quality=80, max_pixels=10**9, geometric=True, feature_max_side=256,
    n_features=100, full=False, threads=1)
print(json.dumps([cv2.getNumThreads(), pyvips.vips_lib.vips_concurrency_get(),
    sorted({{p["num_threads"] for p in threadpool_info()}}), keep_heap()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cv_threads, vips_threads, blas_threads, heap = json.loads(out.stdout.splitlines()[-1])
    assert cv_threads == 1 and vips_threads == 1 and blas_threads == [1]
    assert heap == (sys.platform == "linux")


def test_a_file_is_read_once_for_its_sha256_and_its_decode(tmp_path, monkeypatch):
    """read_hashed gives the sha256 and the bytes; decoding those bytes opens no file
    in libvips and gives the record and thumbnail decoding the file gives."""
    from archive_twins.ingest.decode import read_hashed

    for name, (_, path) in _files_of_every_path(tmp_path).items():
        sha, data = read_hashed(str(path))
        assert sha == sha256_file(str(path)) and bytes(data) == path.read_bytes()
        from_file = run(path, tmp_path)
        with monkeypatch.context() as m:
            m.setattr(pyvips.Source, "new_from_file", None)  # any file source would fail
            from_bytes = analyse(str(path), str(tmp_path / "thumb.jpg"), P, data=data)
        assert from_bytes[0] == from_file[0], name
        assert np.array_equal(from_bytes[1], from_file[1]), name


def test_a_failure_from_bytes_has_the_reason_the_file_gives(tmp_path):
    """libvips names a memory source 'source' where it names a file: a truncated
    TIFF's reason names the file either way."""
    from archive_twins.ingest.decode import read_hashed

    tif = save_museum_tiff(to16(photo("astronaut")), tmp_path / "a.tif")  # IFD first
    whole = tif.read_bytes()
    tif.write_bytes(whole[: len(whole) // 2])
    _, data = read_hashed(str(tif))
    rec, _ = analyse(str(tif), str(tmp_path / "t.jpg"), P, name="box/a.tif", data=data)
    assert rec == run(tif, tmp_path)[0] | {"error": rec["error"]}
    assert rec["error"].startswith("decode failed: box/a.tif: "), rec["error"]


def test_a_full_results_disk_fails_the_job_not_the_file(tmp_path, monkeypatch):
    """ENOSPC writing the thumbnail is the results' disk, not the file: raised (the
    job fails and is redone), never a file error cached by content."""
    import errno

    import archive_twins.ingest.decode as decode

    p = save(photo("astronaut")[::8, ::8], tmp_path / "a.png")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(decode, "atomic_open", full)
    with pytest.raises(OSError) as info:
        analyse(str(p), str(tmp_path / "t.jpg"), DecodeParams())
    assert info.value.errno == errno.ENOSPC
