"""Dihedral hashes, Hamming search, pixel verification and dihedral geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from archives import colour_change, smooth_picture, studio_shot

from archive_twins.demo import photo
from archive_twins.dihedral import (
    DIHEDRAL,
    aspect_matches,
    compose,
    dihedral,
    dihedral_homography,
    inverse,
)
from archive_twins.index.params import RetrievalParams
from archive_twins.ingest.hashing import (
    _hyperplanes,
    content_hashes,
    dihedral_hashes,
    hamming_search,
    hashes_to_array,
    quarter_hashes,
)
from archive_twins.verify.pixels import VerifyParams, verify_dihedral


def hd(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.mark.parametrize("o", range(8))
def test_hash_of_oriented_copy_matches_that_orientation(o):
    arr = photo("astronaut")
    base = dihedral_hashes(arr)[0]
    upright_copy = dihedral_hashes(dihedral(arr, o))[0][0]
    dists = [hd(upright_copy, h) for h in base]
    assert dists[o] <= 2
    assert sorted(dists)[1] > 12  # other orientations are far


def _pil_ops() -> dict:
    """PIL's transposes for each (quarter turns clockwise, mirror) of DIHEDRAL."""
    from PIL import Image

    return {
        (0, 0): None,
        (1, 0): Image.Transpose.ROTATE_270,  # PIL rotates counter-clockwise
        (2, 0): Image.Transpose.ROTATE_180,
        (3, 0): Image.Transpose.ROTATE_90,
        (0, 1): Image.Transpose.FLIP_LEFT_RIGHT,
        (1, 1): Image.Transpose.TRANSVERSE,
        (2, 1): Image.Transpose.FLIP_TOP_BOTTOM,
        (3, 1): Image.Transpose.TRANSPOSE,
    }


def _reference_hashes(grey) -> tuple[list[str], list[str]]:
    """pHash and tone hash of each orientation one at a time, through imagehash and
    PIL's transposes (how they were computed before the 8 were batched)."""
    import imagehash
    import scipy.fftpack
    from PIL import Image

    small = grey.resize((32, 32), Image.Resampling.LANCZOS)
    phashes, tones = [], []
    for o in range(8):
        op = _pil_ops()[DIHEDRAL[o]]
        view = small if op is None else small.transpose(op)
        phashes.append(str(imagehash.phash(view)))
        a = np.asarray(view, dtype=np.float64)
        dct = scipy.fftpack.dct(scipy.fftpack.dct(a, axis=0), axis=1)[:8, :8].reshape(64)[1:]
        bits = (dct @ _hyperplanes()) > 0
        tones.append(int.from_bytes(np.packbits(bits).tobytes(), "big").to_bytes(8, "big").hex())
    return phashes, tones


@pytest.mark.parametrize(
    "name", ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field"]
)
def test_batched_hashes_are_imagehash_and_tone_hashes_of_each_orientation(name):
    from PIL import Image

    from archive_twins.ingest.frame import content_picture

    arr = photo(name)
    sky = smooth_picture("astronaut", (0, 60, 300, 420))  # smooth: medians and signs near 0
    for pic in (arr, arr[: arr.shape[0] // 3], cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), sky):
        pic = pic if pic.ndim == 3 else np.dstack([pic] * 3)
        assert dihedral_hashes(pic) == _reference_hashes(Image.fromarray(pic).convert("L"))
        inner = Image.fromarray(content_picture(pic)).convert("L")
        assert content_hashes(pic) == _reference_hashes(inner)[1]


def test_quarter_hashes_are_imagehash_phashes_of_the_quarters_of_each_orientation():
    import imagehash
    from PIL import Image

    arr = photo("chelsea")
    got = quarter_hashes(arr)
    grey = Image.fromarray(arr).convert("L").resize((64, 64), Image.Resampling.LANCZOS)
    for o in range(8):
        op = _pil_ops()[DIHEDRAL[o]]
        view = grey if op is None else grey.transpose(op)
        for q, (y, x) in enumerate(((0, 0), (0, 32), (32, 0), (32, 32))):
            assert got[4 * o + q] == str(imagehash.phash(view.crop((x, y, x + 32, y + 32))))


def _captioned(name: str) -> np.ndarray:
    """A low-contrast photograph above a dark caption strip with the museum's name: the
    strip dominates the whole frame's lowest frequencies."""
    img = cv2.resize(photo(name), (640, 480), interpolation=cv2.INTER_AREA).astype(np.float32)
    img = np.clip(128 + (img - img.mean()) * 0.15, 0, 255).astype(np.uint8)
    img[360:] = 15
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "MUSEUM OF FINE ARTS  INV. 1234", (20, 430), font, 1.2, (240,) * 3, 3)
    return img


def _alike_quarters(a: list[str], b: list[str], o: int = 0) -> int:
    """Quarters of `a` upright alike (max_quarter_hamming) to `b` seen in orientation o."""
    limit = RetrievalParams().max_quarter_hamming
    return sum(hd(a[q], b[4 * o + q]) <= limit for q in range(4))


def test_a_shared_caption_brings_whole_frames_together_not_their_quarters():
    params = RetrievalParams()
    names = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "brick", "moon")
    hashes = {n: (dihedral_hashes(img := _captioned(n))[0], quarter_hashes(img)) for n in names}
    close = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if hd(hashes[a][0][0], hashes[b][0][0]) <= params.max_hamming
    ]
    assert len(close) >= 3  # the strip alone makes them pHash candidates
    for a, b in close:
        assert _alike_quarters(hashes[a][1], hashes[b][1]) < params.min_quarters, (a, b)
    # copies of a captioned photograph stay alike all over (x = o(source))
    src = _captioned("rocket")
    h, w = src.shape[:2]
    _, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, 30])
    copies = [
        (0, cv2.resize(src, (w // 3, h // 3), interpolation=cv2.INTER_AREA)),
        (0, cv2.imdecode(buf, cv2.IMREAD_COLOR)),
        (1, dihedral(src, 1)),
        (4, dihedral(src, 4)),
    ]
    base = quarter_hashes(src)
    for o, copy in copies:
        assert _alike_quarters(quarter_hashes(copy), base, o) == 4, o


@pytest.mark.parametrize("sat,hue", [(0.55, 0), (1.45, 0), (1.0, 20), (1.0, 50)])
def test_tone_hash_follows_a_smooth_picture_through_colour_changes(sat, hue):
    """The sky's pHash bits flip under a colour change; the tone hash stays close
    and the pixel check accepts the pair."""
    sky = smooth_picture("rocket", (0, 240, 200, 310))
    p0, t0 = dihedral_hashes(sky)
    changed = colour_change(sky, sat, hue)
    p1, t1 = dihedral_hashes(changed)
    assert hd(t0[0], t1[0]) <= 4
    assert verify_dihedral(sky, changed, 0, VerifyParams())[0]


def test_tone_hash_candidates_of_other_smooth_pictures_fail_the_pixel_check():
    """A smooth picture has little to tell it apart: the sky on the other side of
    the rocket, mirrored, has the same tone hash (a candidate), and the pixel
    check rejects it; other smooth pictures are far apart."""
    sky = smooth_picture("rocket", (0, 240, 200, 310))
    tones = dihedral_hashes(sky)[1]
    other_sky = smooth_picture("rocket", (0, 240, 0, 110))
    d = [hd(tones[0], t) for t in dihedral_hashes(other_sky)[1]]
    o = int(np.argmin(d))
    assert d[o] <= 4 and DIHEDRAL[o] == (0, 1)  # the mirror image
    assert not verify_dihedral(sky, other_sky, o, VerifyParams())[0]
    for other in (
        smooth_picture("coffee", (0, 150, 400, 600)),
        cv2.GaussianBlur(photo("camera"), (0, 0), 6),
    ):
        assert min(hd(tones[0], t) for t in dihedral_hashes(other)[1]) > 8


@pytest.mark.parametrize("o", range(8))
def test_tone_hash_of_oriented_copy_matches_that_orientation(o):
    arr = smooth_picture("rocket", (0, 240, 200, 310))
    _, base = dihedral_hashes(arr)
    upright = dihedral_hashes(dihedral(arr, o))[1][0]
    assert hd(upright, base[o]) <= 2


def test_group_laws():
    for a in range(8):
        assert compose(a, inverse(a)) == 0
        for b in range(8):
            arr = np.arange(12).reshape(3, 4)
            assert (dihedral(dihedral(arr, a), b) == dihedral(arr, compose(a, b))).all()


def test_hamming_search_equals_naive():
    rng = np.random.default_rng(1)
    index = rng.integers(0, 2**63, size=(300, 8), dtype=np.uint64)
    queries = index[rng.choice(300, 50), rng.integers(0, 8, 50)] ^ np.uint64(0b1011)
    queries = np.concatenate([queries, rng.integers(0, 2**63, size=20, dtype=np.uint64)])
    qi, ii, oi, di = hamming_search(queries, index, 6, q_tile=7, i_tile=13)
    got = set(zip(qi.tolist(), ii.tolist(), oi.tolist(), di.tolist(), strict=True))
    naive = set()
    for q in range(len(queries)):
        for i in range(300):
            for o in range(8):
                d = bin(int(queries[q]) ^ int(index[i, o])).count("1")
                if d <= 6:
                    naive.add((q, i, o, d))
    assert got == naive and len(got) >= 50


def test_hashes_to_array_roundtrip():
    arr = hashes_to_array([["ffffffffffffffff"] + ["0000000000000001"] * 7])
    assert arr.dtype == np.uint64 and arr[0, 0] == 2**64 - 1 and arr[0, 1] == 1


def test_studio_background_fools_the_hash_but_not_verification():
    """Different objects on one plain background: pHash says 'same', pixels say no."""
    a = studio_shot(photo("clock")[40:260, 80:300], 0.02, seed=2)
    b = studio_shot(photo("moon")[60:300, 60:300], 0.02, seed=4)
    assert hd(dihedral_hashes(a)[0][0], dihedral_hashes(b)[0][0]) <= 12
    ok, m = verify_dihedral(a, b, 0, VerifyParams())
    assert not ok, m
    same, m2 = verify_dihedral(
        a, studio_shot(photo("clock")[40:260, 80:300], 0.02, seed=7), 0, VerifyParams()
    )
    assert same, m2


def test_stereo_pair_is_rejected():
    left, right = photo("motorcycle_left"), photo("motorcycle_right")
    assert hd(dihedral_hashes(left)[0][0], dihedral_hashes(right)[0][0]) <= 12
    ok, m = verify_dihedral(left, right, 0, VerifyParams())
    assert not ok, m


@pytest.mark.parametrize("o", range(8))
def test_dihedral_homography_maps_pixels(o):
    rng = np.random.default_rng(o)
    src = rng.integers(0, 255, size=(6, 10), dtype=np.uint8)
    dst = dihedral(src, o)
    mat = dihedral_homography((10, 6), (dst.shape[1], dst.shape[0]), o)
    for y in range(6):
        for x in range(10):
            # pixel centre (x+0.5, y+0.5) maps to the centre of the same pixel in dst
            u, v, w = mat @ np.array([x + 0.5, y + 0.5, 1.0])
            assert dst[int(v / w), int(u / w)] == src[y, x]


def test_dihedral_homography_scales():
    mat = dihedral_homography((400, 200), (50, 100), 1)  # rotate 90 cw, then 1/4
    assert np.allclose(mat @ [0, 0, 1], [50, 0, 1])
    assert np.allclose(mat @ [400, 200, 1], [0, 100, 1])


def test_aspect_ratio_check():
    assert aspect_matches((512, 512), (51, 51), 0)
    assert aspect_matches((640, 427), (128, 192), 1)  # rotated 90 and scaled 0.3
    assert not aspect_matches((640, 427), (640, 300), 0)  # a crop is not a resize
    assert DIHEDRAL[5] == (1, 1)
