"""End to end: look-alike photographs and blank images are never copies.

The archive: four groups of development photographs (four different photographs of
one subject each), the stereo pair of a motorcycle (one scene, two photographs),
copies of one photograph per group (so the copy stages are busy on the same
subjects), and blank images: white and black pages, a grey card, a noisy blank scan,
a 1x1 px image. Expected: the copies found, no pair within a group or with a blank
image reported as a copy, blanks flagged in `files.blank` and listed on the overview
page, the stereo pair in `related_pairs`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_json_tables, run_workflow

from archive_twins.demo import photo, save

pytestmark = pytest.mark.e2e

UKBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ukbench-dev"
GROUPS = (5, 14, 23, 32)


def build(root: Path) -> dict:
    if not UKBENCH.exists():
        pytest.skip("development photographs not present")
    copies = {}
    for g in GROUPS:
        for i in range(4):
            src = UKBENCH / f"ukbench{4 * g + i:05d}.jpg"
            (root / "groups").mkdir(parents=True, exist_ok=True)
            (root / "groups" / src.name).write_bytes(src.read_bytes())
        img = cv2.cvtColor(cv2.imread(str(UKBENCH / f"ukbench{4 * g:05d}.jpg")), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        name = f"ukbench{4 * g:05d}"
        save(
            cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
            root / f"copies/{name}_half.jpg",
            Q=85,
        )
        save(
            np.ascontiguousarray(img[h // 8 :, : w * 7 // 8]),
            root / f"copies/{name}_crop.jpg",
            Q=85,
        )
        grey = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        save(grey, root / f"copies/{name}_grey.jpg", Q=85)
        copies[name] = [f"copies/{name}_{k}.jpg" for k in ("half", "crop", "grey")]
    save(photo("motorcycle_left"), root / "stereo/left.png")
    save(photo("motorcycle_right"), root / "stereo/right.png")
    rng = np.random.default_rng(1)
    white = np.full((600, 450, 3), 252, np.uint8)
    save(white, root / "blank/white_page.png")
    save(
        np.clip(white + rng.normal(0, 1.2, white.shape), 0, 255).astype(np.uint8),
        root / "blank/scan.jpg",
        Q=90,
    )
    save(np.zeros((300, 400, 3), np.uint8), root / "blank/black.jpg", Q=90)
    save(np.full((480, 640, 3), 118, np.uint8), root / "blank/grey_card.png")
    save(np.full((1, 1, 3), 200, np.uint8), root / "blank/one_pixel.png")
    return copies


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lookalikes")
    copies = build(root)
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=3, extra=["match_chunks=2"])
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}
    return copies, tables, names, work


def _group(name: str) -> int | None:
    stem = Path(name).stem.split("_")[0]
    return int(stem[7:]) // 4 if stem.startswith("ukbench") else None


def test_copies_are_found(run):
    copies, tables, names, _ = run
    pairs = {frozenset((names[p["file_id1"]], names[p["file_id2"]])) for p in tables["copy_pairs"]}
    for name, derived in copies.items():
        for d in derived:
            assert frozenset((f"groups/{name}.jpg", d)) in pairs, d


def test_no_copy_within_a_group_of_lookalikes_nor_with_a_blank(run):
    _, tables, names, _ = run
    for p in tables["copy_pairs"]:
        a, b = names[p["file_id1"]], names[p["file_id2"]]
        assert not a.startswith("blank/") and not b.startswith("blank/"), (a, b)
        assert not (a.startswith("stereo/") and b.startswith("stereo/")), (a, b)
        if a.startswith("groups/") and b.startswith("groups/"):
            pytest.fail(f"two photographs of one group reported as a copy: {a} ~ {b}")
        # a copy of one group's photograph is no copy of another photograph of it
        if a.startswith("copies/") or b.startswith("copies/"):
            other = b if a.startswith("copies/") else a
            src = Path(a if a.startswith("copies/") else b).stem.split("_")[0]
            if other.startswith("groups/"):
                assert Path(other).stem == src, (a, b)


def test_blanks_flagged_and_listed(run):
    _, tables, _, work = run
    flagged = {f["filename"] for f in tables["files"] if f.get("blank")}
    assert flagged == {
        "blank/white_page.png",
        "blank/scan.jpg",
        "blank/black.jpg",
        "blank/grey_card.png",
        "blank/one_pixel.png",
    }
    overview = (work / "results" / "html" / "index.html").read_text()
    for name in flagged:
        assert name in overview


def test_the_stereo_pair_is_related(run):
    _, tables, names, _ = run
    related = {
        frozenset((names[r["file_id1"]], names[r["file_id2"]])) for r in tables["related_pairs"]
    }
    assert frozenset(("stereo/left.png", "stereo/right.png")) in related
    for pair in related:  # nothing unrelated: the same scene or the same group only
        a, b = sorted(pair)
        assert (a.startswith("stereo/") and b.startswith("stereo/")) or (
            _group(a) is not None and _group(a) == _group(b)
        ), pair
