"""Other captures of one scene are not copies: consecutive video frames.

Real frames of `vtest.avi` (a fixed camera on a plaza, people walking; Debian's
opencv-doc sample data): frames 1 and 5 apart pass the pixel check at 256 px, but
after alignment the walkers moved (`capture.residual_motion`); a frame's resized,
cropped, colour-changed and re-encoded copies moved nowhere. End to end, on a small
archive of three frames and derivatives of one of them: the derivatives are copies
of their frame only, the frames are related pairs, never copies.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_json_tables, run_workflow

from archive_twins.demo import opencv_sample, save, video_frames
from archive_twins.ingest.frame import reduced
from archive_twins.verify.capture import moved, residual_motion
from archive_twins.verify.pixels import VerifyParams

FRAMES = (100, 101, 105)
V = VerifyParams()


@pytest.fixture(scope="module")
def frames() -> dict[int, np.ndarray]:
    if opencv_sample("vtest.avi") is None:
        pytest.skip("Debian's opencv-doc (sample videos) not installed")
    return video_frames("vtest.avi", FRAMES)


def derivatives(img: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (derivative, homography from the frame's pixels to its pixels)."""
    h, w = img.shape[:2]
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 15) % 180
    top = h // 8
    return {
        "half": (
            cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
            np.diag([0.5, 0.5, 1.0]),
        ),
        "crop": (
            np.ascontiguousarray(img[top:, : w * 7 // 8]),
            np.array([[1.0, 0, 0], [0, 1, -top], [0, 0, 1]]),
        ),
        "hue": (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), np.eye(3)),
        "contrast": (
            np.clip((img.astype(np.float32) - 128) * 1.3 + 128, 0, 255).astype(np.uint8),
            np.eye(3),
        ),
    }


def _jpeg(img: np.ndarray, q: int = 80) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _moved(a: np.ndarray, b: np.ndarray, hmat: np.ndarray) -> bool:
    """Whether b, aligned on a with `hmat`, is another capture, on the thumbnails the
    matching job compares (<= 256 px)."""
    motion = residual_motion(reduced(a, 256), reduced(b, 256), hmat, a.shape[1::-1], b.shape[1::-1])
    return moved(motion, V.max_capture_motion, V.max_capture_motion_two)


def test_consecutive_frames_moved(frames):
    first = frames[FRAMES[0]]
    for n in FRAMES[1:]:
        assert _moved(first, frames[n], np.eye(3)), n


def test_a_frames_copies_did_not_move(frames):
    first = frames[FRAMES[0]]
    for name, (img, hmat) in derivatives(first).items():
        assert not _moved(first, _jpeg(img), hmat), name
        # ... and against the next frame, the walkers moved in the copy too
        assert _moved(frames[FRAMES[1]], _jpeg(img), hmat), name


@pytest.fixture(scope="module")
def run(frames, tmp_path_factory):
    root = tmp_path_factory.mktemp("captures")
    for n, img in frames.items():
        save(img, root / f"frames/vtest_{n}.png")
    for name, (img, _) in derivatives(frames[FRAMES[0]]).items():
        save(img, root / f"copies/vtest_{FRAMES[0]}_{name}.jpg", Q=85)
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=2, extra=["match_chunks=2"])
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}

    def pairs(table: str) -> set[frozenset]:
        return {frozenset((names[p["file_id1"]], names[p["file_id2"]])) for p in tables[table]}

    return pairs("copy_pairs"), pairs("related_pairs")


def _frame(name: str) -> int:
    """The frame a file shows (its own number, or its source's for a copy)."""
    return int(Path(name).stem.split("_")[1])


@pytest.mark.e2e
def test_frames_are_related_and_their_copies_copies(run):
    copies, related = run
    first = f"frames/vtest_{FRAMES[0]}.png"
    for name in ("half", "crop", "hue", "contrast"):
        assert frozenset((first, f"copies/vtest_{FRAMES[0]}_{name}.jpg")) in copies, name
    for pair in copies:
        a, b = sorted(pair)
        assert _frame(a) == _frame(b), f"another frame reported as a copy: {a} ~ {b}"
    assert frozenset((first, f"frames/vtest_{FRAMES[1]}.png")) in related
    for pair in related:
        a, b = sorted(pair)
        assert _frame(a) != _frame(b), f"a copy reported as related: {a} ~ {b}"
