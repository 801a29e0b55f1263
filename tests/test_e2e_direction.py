"""End to end: copies alike in size, depth and format (a rotation by 90 degrees, a
mirror image, a hue shift, each saved as a JPEG like their source) take the older
file as their source, with the parameters seen from it; a copy saved at a much
lower quality is a copy even when it is older; and when the dates change, the next
run follows them, as a fresh run would."""

from __future__ import annotations

import os

import numpy as np
import pytest
from archives import colour_change
from conftest import canonical, read_json_tables, run_workflow

from archive_twins.demo import photo, save

pytestmark = pytest.mark.e2e

T0 = 1_700_000_000


def _pairs(work) -> dict[tuple[str, str], dict]:
    tables = read_json_tables(work / "results" / "json")
    names = {r["file_id"]: r["filename"] for r in tables["fileid_to_filename_map"]}
    return {(names[p["file_id1"]], names[p["file_id2"]]): p for p in tables["copy_pairs"]}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("direction")
    # 300 x 222: neither side a multiple of 8, as most photographs
    src = photo("astronaut")[100:322, 100:400]
    files = {
        "z_master.jpg": (src, 85, T0),
        # derivatives named to sort first, and saved after their source
        "a_rot90.jpg": (np.ascontiguousarray(np.rot90(src, -1)), 85, T0 + 60),
        "a_mirror.jpg": (np.ascontiguousarray(src[:, ::-1]), 85, T0 + 60),
        "a_hue.jpg": (colour_change(src, 1.0, 40), 85, T0 + 60),
        # a q15 re-save found before its source was
        "a_q15.jpg": (src, 15, T0 - 60),
    }
    for name, (arr, q, t) in files.items():
        path = save(arr, root / name, Q=q)
        os.utime(path, ns=(t * 10**9, t * 10**9))
    work = tmp_path_factory.mktemp("work")
    run_workflow(root, work, shards=2)
    return root, work, _pairs(work)


@pytest.mark.parametrize(
    ("copy", "angle", "mirrored"),
    [("a_rot90.jpg", 90, 0), ("a_mirror.jpg", 0, 1), ("a_hue.jpg", 0, 0)],
)
def test_the_older_file_is_the_source(archive, copy, angle, mirrored):
    pair = archive[2].get(("z_master.jpg", copy))
    assert pair is not None, sorted(archive[2])
    assert pair["direction_by"] == "date"
    assert (pair["angle"], pair["mirrored"], pair["scale"]) == (angle, mirrored, 1.0)


def test_a_lower_quality_is_the_copy_whatever_its_date(archive):
    pair = archive[2].get(("z_master.jpg", "a_q15.jpg"))
    assert pair is not None, sorted(archive[2])
    assert pair["direction_by"] == "quality"


def test_a_rerun_follows_the_dates(archive, tmp_path):
    """The master re-saved last (a new date, same bytes): the copies alike in
    content now count as its sources, turned round, the same as a fresh run says."""
    root, work, _ = archive
    os.utime(root / "z_master.jpg", ns=((T0 + 120) * 10**9,) * 2)
    run_workflow(root, work, shards=2)
    pairs = _pairs(work)
    rot = pairs.get(("a_rot90.jpg", "z_master.jpg"))
    assert rot is not None and rot["direction_by"] == "date", sorted(pairs)
    assert (rot["angle"], rot["mirrored"]) == (270, 0)
    assert ("a_mirror.jpg", "z_master.jpg") in pairs
    assert pairs[("z_master.jpg", "a_q15.jpg")]["direction_by"] == "quality"
    fresh = tmp_path / "fresh"
    run_workflow(root, fresh, shards=3)
    assert canonical(read_json_tables(fresh / "results" / "json")) == canonical(
        read_json_tables(work / "results" / "json")
    )
