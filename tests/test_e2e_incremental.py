"""Incremental reruns: new, changed and removed files cost work proportional to the
change, file_ids of unchanged paths never change, and the result equals a fresh run."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import pytest
from conftest import canonical, read_json_tables, run_workflow

from archive_twins.demo import build_demo_archive, photo, save
from archive_twins.dihedral import dihedral

pytestmark = pytest.mark.e2e
SHARDS = 6


def change_archive(root: Path) -> dict:
    """Add a resized copy of an old image, a byte-identical file and an unrelated
    image; modify one file; remove one."""
    master = photo("astronaut")
    save(
        cv2.resize(master, (128, 128), interpolation=cv2.INTER_AREA),
        root / "new" / "astronaut_quarter.jpg",
        Q=85,
    )
    shutil.copyfile(root / "web" / "coffee.png", root / "new" / "coffee_again.png")
    save(photo("hubble_deep_field"), root / "new" / "hubble.jpg", Q=85)
    target = root / "web" / "rocket_portrait.jpg"
    before = target.stat().st_mtime_ns
    save(dihedral(cv2.resize(photo("rocket"), (320, 213)), 3), target, Q=85)
    os.utime(target, ns=(before + 10**9, before + 10**9))
    (root / "press" / "chelsea_mirrored.jpg").unlink()
    return {"added": 3, "modified": 1, "removed": 1, "byte_copies": 1}


def stats_since(results: Path, rule: str, since: float, tag: str = "STATS") -> list[dict]:
    out = []
    for log in sorted((results / "logs" / rule).glob("*.log")):
        if log.stat().st_mtime < since:
            continue  # written by the first run: this job did not run again
        for line in log.read_text().splitlines():
            if f" {tag} " in line:
                out.append(json.loads(line.split(f" {tag} ", 1)[1]))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive") / "a"
    build_demo_archive(root)
    work = tmp_path_factory.mktemp("inc")
    run_workflow(root, work, shards=SHARDS)
    first = read_json_tables(work / "results" / "json")
    time.sleep(1.1)
    change = change_archive(root)
    since = time.time()
    proc = run_workflow(root, work, shards=SHARDS)
    second = read_json_tables(work / "results" / "json")
    fresh_work = tmp_path_factory.mktemp("fresh")
    run_workflow(root, fresh_work, shards=SHARDS)
    fresh = read_json_tables(fresh_work / "results" / "json")
    return {
        "first": first,
        "second": second,
        "fresh": fresh,
        "change": change,
        "since": since,
        "results": work / "results",
        "log": proc.stdout + proc.stderr,
    }


def test_rerun_equals_fresh_run(runs):
    inc, fresh = canonical(runs["second"]), canonical(runs["fresh"])
    for key in inc:
        assert inc[key] == fresh[key], key


def test_work_is_proportional_to_the_change(runs):
    c = runs["change"]
    decode = stats_since(runs["results"], "decode_shard", runs["since"])
    changed = c["added"] + c["modified"]
    assert sum(s["hashed"] for s in decode) == changed
    assert sum(s["decoded"] for s in decode) == changed - c["byte_copies"]
    assert sum(s["content_reused"] for s in decode) == c["byte_copies"]
    # only shards that hold a changed path ran, and they read nothing else
    assert 1 <= len(decode) <= changed + c["removed"] < SHARDS
    assert all(s["unchanged"] == s["files"] - s["hashed"] for s in decode)
    feats = stats_since(runs["results"], "decode_shard", runs["since"], "FEATURES")
    assert sum(s["extracted"] for s in feats) == changed - c["byte_copies"]


def test_file_ids_stable(runs):
    old = {r["filename"]: r["file_id"] for r in runs["first"]["fileid_to_filename_map"]}
    new = {r["filename"]: r["file_id"] for r in runs["second"]["fileid_to_filename_map"]}
    for name, fid in new.items():
        if name in old:
            assert old[name] == fid, name
        else:
            assert fid > max(old.values()), name
    assert "press/chelsea_mirrored.jpg" in old and "press/chelsea_mirrored.jpg" not in new
    assert len(new) == len(old) + 3 - 1


def test_change_is_visible_in_results(runs):
    t = runs["second"]
    name = {r["file_id"]: r["filename"] for r in t["fileid_to_filename_map"]}
    pairs = {(name[p["file_id1"]], name[p["file_id2"]]) for p in t["copy_pairs"]}
    assert ("masters/astronaut.tif", "new/astronaut_quarter.jpg") in pairs
    ident = {}
    for r in t["identical_list"]:
        ident.setdefault(r["identical_set_id"], set()).add(name[r["file_id"]])
    assert any("new/coffee_again.png" in s and "web/coffee.png" in s for s in ident.values())
    assert not any("chelsea_mirrored" in a or "chelsea_mirrored" in b for a, b in pairs)


def test_second_rerun_does_nothing(runs, tmp_path):
    work = runs["results"].parent
    proc = run_workflow(
        Path(runs["first"]["run_info"][0]["value"]), work, shards=SHARDS, extra=["-n"], check=False
    )
    assert "Nothing to be done" in proc.stdout + proc.stderr
