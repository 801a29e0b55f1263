"""End to end: what photographs share pairs nothing. Distinct photographs with the
same printed colour target and ruler (and a caption strip with the museum's logo)
are neither copies nor related, an object photographed on a plain background whose
keypoints lie mostly on the chart included; copies of a charted photograph (resized,
cropped with and without the chart, turned, recoloured) are still found; a verso and
its rescans are copies, two versos are not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from archives import studio_shot
from conftest import read_json_tables, run_workflow
from furniture import add_caption, paste_chart, procedural_photo, verso

from archive_twins.demo import photo, save
from archive_twins.dihedral import dihedral

pytestmark = pytest.mark.e2e

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "brick", "moon")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("furniture")
    rng = np.random.default_rng(11)
    family = {}

    def put(rel: str, img: np.ndarray, fam: str, q: int = 90) -> None:
        save(img, root / rel, Q=q)
        family[rel] = fam

    for name in PHOTOS:
        put(f"charted/{name}.jpg", paste_chart(photo(name), rng), name)
    for k in range(3):
        img = add_caption(paste_chart(procedural_photo(k), rng), k, rng)
        put(f"captioned/proc{k}.jpg", img, f"proc{k}")
    # a small object on a plain sweep: most of its keypoints lie on the chart
    put(
        "charted/vase.jpg",
        paste_chart(studio_shot(photo("coffee")[80:300, 180:420], 0.08, 3), rng),
        "vase",
    )
    src = cv2.imread(str(root / "charted/astronaut.jpg"))[..., ::-1]
    h, w = src.shape[:2]
    hsv = cv2.cvtColor(np.ascontiguousarray(src), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 25) % 180
    copies = {
        "copies/astronaut_half.jpg": cv2.resize(
            src, (w // 2, h // 2), interpolation=cv2.INTER_AREA
        ),
        "copies/astronaut_top.jpg": src[: h // 2, w // 4 :],
        "copies/astronaut_chart_corner.jpg": src[h // 3 :, : 2 * w // 3],
        "copies/astronaut_rot90.jpg": dihedral(src, 1),
        "copies/astronaut_hue.jpg": cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB),
    }
    for rel, img in copies.items():
        put(rel, np.ascontiguousarray(img), "astronaut", q=88)
    for k in range(4):
        v = verso(rng)
        put(f"versos/verso{k}.jpg", v, f"verso{k}")
        if k == 0:
            put("rescans/verso0_half.jpg", cv2.resize(v, (320, 240), cv2.INTER_AREA), "verso0", 80)
            put("rescans/verso0_rot90.jpg", dihedral(v, 1), "verso0", 80)
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=3, extra=["match_chunks=3"])
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}

    def pairs(table: str) -> set[frozenset]:
        return {frozenset((names[p["file_id1"]], names[p["file_id2"]])) for p in tables[table]}

    blank = {r["filename"] for r in tables["files"] if r["blank"]}
    return {
        "family": family,
        "copies": pairs("copy_pairs"),
        "related": pairs("related_pairs"),
        "planted": list(copies),
        "blank": blank,
    }


def test_photographs_sharing_a_chart_are_neither_copies_nor_related(result):
    fam = result["family"]
    wrong = [p for p in result["copies"] | result["related"] if len({fam[f] for f in p}) > 1]
    assert wrong == []


def test_copies_of_a_charted_photograph_are_found(result):
    missing = [
        rel
        for rel in result["planted"]
        if frozenset(("charted/astronaut.jpg", rel)) not in result["copies"]
    ]
    assert missing == []


def test_a_verso_and_its_rescans_are_copies_and_versos_are_not(result):
    assert "versos/verso0.jpg" not in result["blank"]
    for rescan in ("rescans/verso0_half.jpg", "rescans/verso0_rot90.jpg"):
        assert frozenset(("versos/verso0.jpg", rescan)) in result["copies"]
    versos = [p for p in result["copies"] if all(f.startswith(("versos/", "rescans/")) for f in p)]
    fam = result["family"]
    assert all(len({fam[f] for f in p}) == 1 for p in versos), versos
