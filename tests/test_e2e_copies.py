"""End to end: copies under resize, rotation by 90/180/270 and mirror, on real photos.

Ground truth: every pair within a family of copies of one photograph; hard
negatives (different objects on one studio background, a stereo pair, similar
textures) must not be reported. Precision and recall must both be 1.0.
"""

from __future__ import annotations

import json

import pytest
from archives import build_copies_archive
from conftest import read_json_tables, run_workflow

from archive_twins.deliver.schema import columns

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    truth = build_copies_archive(root)
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=4, extra=["match_chunks=3"])
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}
    pairs = [
        {**p, "file1": names[p["file_id1"]], "file2": names[p["file_id2"]]}
        for p in tables["copy_pairs"]
    ]
    return truth, pairs, tables, names


def _inverse(p: dict) -> dict:
    """The same relation seen from the other file."""
    angle = p["angle"] if p["mirrored"] else (360 - p["angle"]) % 360
    return {**p, "file1": p["file2"], "file2": p["file1"], "scale": 1 / p["scale"], "angle": angle}


def test_precision_and_recall_are_one(found):
    truth, pairs, _, _ = found
    want = {frozenset((p["file1"], p["file2"])) for p in truth["pairs"]}
    got = {frozenset((p["file1"], p["file2"])) for p in pairs}
    false_pos = got - want
    missed = want - got
    precision = len(got & want) / max(1, len(got))
    recall = len(got & want) / len(want)
    assert not false_pos, f"false positives: {sorted(map(sorted, false_pos))}"
    assert not missed, f"missed: {sorted(map(sorted, missed))}"
    assert precision == 1.0 and recall == 1.0
    assert len(want) == 40


def test_parameters_match_the_truth(found):
    truth, pairs, _, _ = found
    by_files = {(p["file1"], p["file2"]): p for p in pairs}
    for t in truth["pairs"]:
        p = by_files.get((t["file1"], t["file2"]))
        if p is None:  # same pixel count: either file may be called the source
            p = _inverse(by_files[(t["file2"], t["file1"])])
        assert p["kind"] == t["kind"], (t, p)
        assert p["angle"] == t["angle"], (t, p)
        assert p["mirrored"] == t["mirrored"], (t, p)
        assert p["scale"] == pytest.approx(t["scale"], rel=0.01), (t, p)


def test_scales_angles_and_mirrors_all_covered(found):
    truth, _, _, _ = found
    scales = {round(p["scale"], 2) for p in truth["pairs"] if p["file1"].startswith("masters/")}
    assert {0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0} <= scales
    kinds = {(p["kind"], p["angle"], p["mirrored"]) for p in truth["pairs"]}
    for angle in (90, 180, 270):
        assert ("rotate90i", angle, 0) in kinds
    assert ("other", 0, 1) in kinds  # pure mirror
    assert any(k == "rotate90i" and m for k, _, m in kinds)


def test_transform_tables_follow_copy_pairs(found):
    _, pairs, tables, _ = found
    for kind, param in (("resize", "scale"), ("rotate90i", "angle")):
        want = sorted((p["file_id1"], p["file_id2"], p[param]) for p in pairs if p["kind"] == kind)
        got = sorted(
            (r["file_id1"], r["file_id2"], r["transform_parameter"])
            for r in tables[f"transform_{kind}"]
        )
        assert got == want
    other = sorted((p["file_id1"], p["file_id2"]) for p in pairs if p["kind"] == "other")
    assert sorted((r["file_id1"], r["file_id2"]) for r in tables["transform_other"]) == other
    assert all(r["transform_parameter"] == 1.0 for r in tables["transform_other"])
    stat = {r["transform"]: r["count"] for r in tables["transform_list_stat"]}
    assert stat == {k: sum(p["kind"] == k for p in pairs) for k in ("resize", "rotate90i", "other")}


def test_greyscale_copies_are_colour_changes(found):
    _, pairs, _, _ = found
    for p in pairs:
        grey = ("grey" in p["file1"]) != ("grey" in p["file2"])
        assert bool(p["colour_change"]) == grey, p
        if grey:
            assert p["kind"] == "other"


def test_homography_maps_corners(found):
    """The stored matrix maps file1's corners onto file2's corners."""
    import numpy as np

    _, pairs, tables, _ = found
    dims = {r["file_id"]: (r["width"], r["height"]) for r in tables["files"]}
    for p in pairs:
        h = np.array(json.loads(p["homography"]))
        w1, h1 = dims[p["file_id1"]]
        w2, h2 = dims[p["file_id2"]]
        pts = np.array([[0, 0, 1], [w1, 0, 1], [0, h1, 1], [w1, h1, 1]], float).T
        mapped = (h @ pts)[:2].T
        corners = {(0, 0), (w2, 0), (0, h2), (w2, h2)}
        for x, y in mapped:
            assert min(abs(x - cx) + abs(y - cy) for cx, cy in corners) < 1e-3, (p, mapped)
        assert (p["crop_x"], p["crop_y"], p["crop_w"], p["crop_h"]) == (0, 0, w1, h1)


def test_columns_are_the_contract(found):
    _, pairs, _, _ = found
    assert list(pairs[0])[: len(columns("copy_pairs"))] == columns("copy_pairs")
