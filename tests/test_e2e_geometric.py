"""End to end: copies under crops, small rotations, perspective, colour and contrast
changes, borders with a caption and strong JPEG, fitted geometrically, on real photos.

Recall >= 0.95 over (original, copy) pairs; precision 1.0 (every reported pair is
an original with its copy, or two copies of one original that share content); the
fitted crop box within 2% of the truth.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from archives import build_geometric_archive
from conftest import read_json_tables, run_workflow

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    truth = build_geometric_archive(root)
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=4, extra=["match_chunks=2"])
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}
    pairs = {(names[p["file_id1"]], names[p["file_id2"]]): p for p in tables["copy_pairs"]}
    return truth, pairs, tables, work


def family(name: str) -> str | None:
    if name.startswith("masters/"):
        return name.split("/")[1].rsplit(".", 1)[0]
    if name.startswith("derivatives/"):
        return (
            name.split("/")[1]
            .rsplit("_", 1)[0]
            .replace("_crop50", "")
            .replace("_rot20", "")
            .replace("_crop35", "")
            .replace("_crop40", "")
            .replace("_jpeg", "")
        )
    return None


def test_recall(found):
    truth, pairs, _, _ = found
    missed = [t["file2"] for t in truth["pairs"] if (t["file1"], t["file2"]) not in pairs]
    recall = 1 - len(missed) / len(truth["pairs"])
    print(f"recall {recall:.3f}, missed {missed}")
    assert recall >= 0.95, missed


def test_precision(found):
    """Every reported pair relates two files of one family; negatives never appear."""
    _, pairs, _, _ = found
    wrong = [p for p in pairs if family(p[0]) is None or family(p[0]) != family(p[1])]
    assert not wrong, wrong


def test_kinds_and_crop_boxes(found):
    truth, pairs, _, _ = found
    for t in truth["pairs"]:
        p = pairs.get((t["file1"], t["file2"]))
        if p is None:
            continue
        assert p["kind"] == t["kind"], (t["file2"], p["kind"])
        w, h = t["size1"]
        got = (p["crop_x"], p["crop_y"], p["crop_w"], p["crop_h"])
        tol = np.array([w, h, w, h]) * 0.02
        assert (np.abs(np.array(got) - np.array(t["box"])) <= tol).all(), (
            t["file2"],
            got,
            t["box"],
        )
        if p["kind"] == "other":
            if p["method"] == "phash":  # a whole-frame colour change: the hash stage's
                assert p["colour_change"] == 1 and t["area"] == pytest.approx(1.0, abs=0.01)
            else:
                assert p["inliers"] >= 12 and p["method"].startswith("sift")
            assert p["area_fraction"] == pytest.approx(t["area"], abs=0.03)


def test_fitted_homography_close_to_truth(found):
    truth, pairs, _, _ = found
    for t in truth["pairs"]:
        p = pairs.get((t["file1"], t["file2"]))
        if p is None or p["kind"] != "other":
            continue
        fitted, true = np.array(json.loads(p["homography"])), np.array(t["hmat"])
        w, h = t["size1"]
        x0, y0, bw, bh = t["box"]
        pts = np.array([[x0, y0, 1], [x0 + bw, y0, 1], [x0, y0 + bh, 1], [x0 + bw, y0 + bh, 1]]).T
        a, b = fitted @ pts, true @ pts
        err = np.abs(a[:2] / a[2] - b[:2] / b[2]).max()
        assert err <= 0.02 * max(w, h), (t["file2"], err)


def test_transform_other_parameter_is_area_fraction(found):
    _, _, tables, _ = found
    pairs = {(p["file_id1"], p["file_id2"]): p for p in tables["copy_pairs"]}
    for r in tables["transform_other"]:
        assert r["transform_parameter"] == pytest.approx(
            pairs[(r["file_id1"], r["file_id2"])]["area_fraction"]
        )


def test_features_cached_per_shard(found):
    _, _, _, work = found
    feats = sorted((work / "results" / "features").glob("shard-*.npz"))
    assert len(feats) == 4
    proc = run_workflow(work.parent / "unused", work, shards=4, check=False, extra=["-n"])
    assert proc.returncode != 0  # another archive: not found, nothing recomputed


def test_related_pairs_are_other_photographs_never_copies(found):
    """The stereo pair (two photographs of one motorcycle) fits a homography but its
    pixels differ: a related pair, not a copy."""
    _, pairs, tables, _ = found
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}
    related = {
        frozenset((names[r["file_id1"]], names[r["file_id2"]])) for r in tables["related_pairs"]
    }
    assert any(all("motorcycle" in n for n in pair) for pair in related), related
    assert not related & {frozenset(p) for p in pairs}
    for r in tables["related_pairs"]:
        assert r["inliers"] >= 20 and "pixels differ" in r["reason"]
