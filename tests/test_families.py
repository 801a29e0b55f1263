"""Copy families (archive_twins/deliver/families.py) through the real aggregation: the
master rules, roles, relations direct and composed along a chain, the mixed flag,
curator decisions, redundant.csv, and the same families for any file ids and input
order."""

from __future__ import annotations

import csv
import hashlib
import json
import random

import numpy as np
import pytest

from archive_twins.deliver import aggregate
from archive_twins.deliver.decisions import Decision
from archive_twins.deliver.schema import columns
from archive_twins.dihedral import dihedral_homography
from archive_twins.records import CopyRecord, FileRecord
from archive_twins.util import write_jsonl
from archive_twins.verify.homography import homography_json


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rec(path, key, w, h, *, content=None, bits=8, fmt="jpeg", mtime=1, status="ok"):
    """A shard record: `key` is the raster (pixel hash), `content` the bytes' name
    (files with one content are byte-identical)."""
    r = FileRecord(path=path, filename=path, filename_bytes=path.encode().hex(), size_bytes=100)
    r.set_facts(
        {
            "status": status,
            "format": fmt,
            "width": w,
            "height": h,
            "n_pages": 1,
            "bits_per_sample": bits,
            "bands": 3,
            "pixel_hash": key if status == "ok" else None,
            "thumb_w": w,
            "thumb_h": h,
            "error": None if status == "ok" else "decode failed",
        }
    )
    r.sha256 = sha(content or path)
    r.mtime_ns = mtime
    return r.shard_dict()


def copy(k1, k2, size1, size2, hmat, kind, **kw):
    """A matching job's verdict: k2 is k1 transformed by hmat."""
    c = CopyRecord(
        key1=k1,
        key2=k2,
        kind=kind,
        scale=kw.pop("scale", size2[0] / size1[0]),
        angle=kw.pop("angle", 0.0),
        mirrored=kw.pop("mirrored", 0),
        crop_x=kw.pop("crop_x", 0.0),
        crop_y=kw.pop("crop_y", 0.0),
        crop_w=kw.pop("crop_w", float(size1[0])),
        crop_h=kw.pop("crop_h", float(size1[1])),
        homography=homography_json(np.asarray(hmat, float)),
        inliers=None,
        score=0.99,
        method="phash",
        area_fraction=kw.pop("area_fraction", 1.0),
        colour_change=kw.pop("colour_change", False),
        direction_by="resolution",
        **kw,
    )
    return {"pair": [k1, k2], "copy": c.to_dict()}


def resize(k1, k2, size1, s):
    size2 = (round(size1[0] * s), round(size1[1] * s))
    return copy(k1, k2, size1, size2, dihedral_homography(size1, size2, 0), "resize")


def rotate90(k1, k2, size1, s=1.0):
    size2 = (round(size1[1] * s), round(size1[0] * s))
    hmat = dihedral_homography(size1, size2, 1)
    return copy(k1, k2, size1, size2, hmat, "rotate90i", angle=90.0, scale=s)


def build(tmp_path, files, verdicts, decisions=(), master_paths=(), shuffle=None):
    """Tables of the real aggregation, and families keyed by filename."""
    if shuffle is not None:
        files, verdicts = files[:], verdicts[:]
        random.Random(shuffle).shuffle(files)
        random.Random(shuffle).shuffle(verdicts)
    write_jsonl(tmp_path / "shard.jsonl", files)
    write_jsonl(tmp_path / "chunk.jsonl", verdicts)
    (tmp_path / "skipped.jsonl").write_text("")
    (tmp_path / "ids.json").unlink(missing_ok=True)
    tables, _ = aggregate.build_tables(
        [str(tmp_path / "shard.jsonl")],
        tmp_path / "skipped.jsonl",
        tmp_path / "ids.json",
        {},
        [str(tmp_path / "chunk.jsonl")],
        decisions=list(decisions),
        master_paths=master_paths,
    )
    return tables, families_by_name(tables)


def families_by_name(tables):
    name = {r[0]: r[1] for r in tables["fileid_to_filename_map"]}
    out = {}
    for r in tables["families"]:
        row = dict(zip(columns("families"), r, strict=True))
        for k in ("file_id", "via_file_id", "duplicate_of"):
            row[k] = name.get(row[k])
        out[row["file_id"]] = row
    return out


MASTER = (1000, 800)


def family_files():
    return [
        rec("Masters/m.tif", "M", *MASTER, fmt="tiff", bits=16, content="m"),
        rec("Backup/old share/m.png", "M", *MASTER, fmt="png", content="m-png"),
        rec("web/half.jpg", "A", 500, 400, content="half"),
        rec("web/copy of half.jpg", "A", 500, 400, content="half", mtime=2),
        rec("web/half turned.jpg", "B", 400, 500, content="turned"),
        rec("other/unrelated.jpg", "U", 640, 480, content="unrelated"),
    ]


def test_a_family_has_its_largest_file_as_master_and_every_member_related(tmp_path):
    files = family_files()
    verdicts = [resize("M", "A", MASTER, 0.5), resize("M", "B", MASTER, 0.5)]
    verdicts[1] = rotate90("M", "B", MASTER, 0.5)
    tables, fam = build(tmp_path, files, verdicts)
    assert set(fam) == {f["path"] for f in files} - {"other/unrelated.jpg"}
    assert {r["family_id"] for r in fam.values()} == {sha("m")[:16]}
    m = fam["Masters/m.tif"]
    assert (m["role"], m["kind"], m["hops"], m["family_size"], m["mixed"]) == (
        "master",
        None,
        0,
        5,
        0,
    )
    png = fam["Backup/old share/m.png"]
    assert (png["role"], png["kind"], png["duplicate_of"]) == (
        "duplicate",
        "same_pixels",
        "Masters/m.tif",
    )
    half = fam["web/half.jpg"]
    assert (half["role"], half["kind"], half["scale"], half["via_file_id"]) == (
        "derivative", "resize", 0.5, None)  # fmt: skip
    dup = fam["web/copy of half.jpg"]
    assert (dup["role"], dup["duplicate_of"], dup["kind"], dup["scale"]) == (
        "duplicate", "web/half.jpg", "resize", 0.5)  # fmt: skip
    turned = fam["web/half turned.jpg"]
    assert (turned["kind"], turned["angle"], turned["scale"]) == ("rotate90i", 90.0, 0.5)
    # the pair is reported between the masters of its rasters, by the same rules
    name = {r[0]: r[1] for r in tables["fileid_to_filename_map"]}
    rows = [dict(zip(columns("copy_pairs"), r, strict=True)) for r in tables["copy_pairs"]]
    pairs = {(name[r["file_id1"]], name[r["file_id2"]]) for r in rows}
    assert pairs == {("Masters/m.tif", "web/half.jpg"), ("Masters/m.tif", "web/half turned.jpg")}
    assert all(r["reviewed"] == 0 for r in rows)


def test_a_member_without_a_direct_pair_is_composed_along_the_chain(tmp_path):
    files = family_files()
    # M -> A (half), A -> B (A turned by 90 degrees): no pair M -> B
    verdicts = [resize("M", "A", MASTER, 0.5), rotate90("A", "B", (500, 400))]
    _, fam = build(tmp_path, files, verdicts)
    b = fam["web/half turned.jpg"]
    assert (b["role"], b["via_file_id"], b["hops"], b["explained"]) == (
        "derivative", "web/half.jpg", 2, 1)  # fmt: skip
    assert (b["kind"], b["angle"], b["scale"], b["mirrored"]) == ("rotate90i", 90.0, 0.5, 0)
    assert (b["crop_x"], b["crop_y"], b["crop_w"], b["crop_h"]) == (0.0, 0.0, 1000.0, 800.0)
    h = np.array(json.loads(b["homography"]))
    assert np.allclose(h, dihedral_homography(MASTER, (400, 500), 1), atol=1e-6)


def test_the_master_rules_in_order(tmp_path):
    def master(files, **kw):
        _, fam = build(tmp_path, files, [], **kw)
        return next(n for n, r in fam.items() if r["role"] == "master")

    same = dict(content="x")  # byte-identical: only names and dates differ
    older = [
        rec("b/x.tif", "X", 10, 10, mtime=1, **same),
        rec("a/x.tif", "X", 10, 10, mtime=2, **same),
    ]
    assert master(older) == "b/x.tif"  # the oldest, not the alphabetically first
    assert master(older, master_paths=["a/"]) == "a/x.tif"  # master_paths before age
    assert master(older, master_paths=["*/x.tif"]) == "b/x.tif"  # a glob, both match
    ties = [rec("b/x.tif", "X", 10, 10, **same), rec("a/x.tif", "X", 10, 10, **same)]
    assert master(ties) == "a/x.tif"  # then the name
    fmt = [rec("a.png", "X", 10, 10, fmt="png"), rec("b.tif", "X", 10, 10, fmt="tiff")]
    assert master(fmt, master_paths=["a"]) == "b.tif"  # lossless format before paths
    bits = [rec("a.tif", "X", 10, 10, fmt="tiff"), rec("b.png", "X", 10, 10, fmt="png", bits=16)]
    assert master(bits) == "b.png"  # more bits per sample before the format
    # more pixels first: a family of a large JPEG and a small 16-bit TIFF
    pix = [rec("big.jpg", "L", 200, 100), rec("small.tif", "S", 100, 50, fmt="tiff", bits=16)]
    _, fam = build(tmp_path, pix, [resize("L", "S", (200, 100), 0.5)])
    assert fam["big.jpg"]["role"] == "master"
    # a curator's decision overrides every rule
    pick = Decision(sha("small.tif"), "", "small.tif", "", "master", "", "2025-01-01T00:00:00Z")
    _, fam = build(tmp_path, pix, [resize("L", "S", (200, 100), 0.5)], decisions=[pick])
    assert fam["small.tif"]["role"] == "master" and fam["big.jpg"]["role"] == "derivative"
    big = fam["big.jpg"]  # reached against the pair's direction: the relation reversed
    assert (big["kind"], big["scale"], big["explained"], big["mixed"]) == ("resize", 2.0, 1, 0)


def test_two_photographs_joined_by_a_collage_are_a_mixed_family_listed_first(tmp_path):
    files = [
        rec("a.tif", "A", 1000, 800, fmt="tiff"),
        rec("b.tif", "B", 1000, 800, fmt="tiff"),
        rec("collage.jpg", "C", 1000, 400),
        rec("x/big.tif", "X", 2000, 2000, fmt="tiff"),
        rec("x/small.jpg", "Y", 200, 200),
        rec("x/small copy.jpg", "Y", 200, 200, content="x/small.jpg"),
    ]
    half = np.diag([0.5, 0.5, 1.0])
    right = np.array([[0.5, 0, 500], [0, 0.5, 0], [0, 0, 1.0]])
    verdicts = [
        copy("A", "C", (1000, 800), (1000, 400), half, "other", scale=0.5),
        copy("B", "C", (1000, 800), (1000, 400), right, "other", scale=0.5),
        resize("X", "Y", (2000, 2000), 0.1),
    ]
    tables, fam = build(tmp_path, files, verdicts)
    assert fam["a.tif"]["role"] == "master"  # the larger, then the name
    assert fam["collage.jpg"]["explained"] == 0 and fam["b.tif"]["explained"] == 0
    assert {fam[n]["mixed"] for n in ("a.tif", "b.tif", "collage.jpg")} == {1}
    assert fam["x/big.tif"]["mixed"] == 0
    # mixed families come first, though smaller
    assert [dict(zip(columns("families"), r, strict=True))["mixed"] for r in tables["families"]][
        :3
    ] == [1, 1, 1]


def test_families_do_not_depend_on_file_ids_or_input_order(tmp_path):
    files = family_files()
    verdicts = [resize("M", "A", MASTER, 0.5), rotate90("A", "B", (500, 400))]
    _, one = build(tmp_path, files, verdicts)
    for seed in (1, 2, 3):
        _, other = build(tmp_path, files, verdicts, shuffle=seed)
        assert other == one


def test_identical_files_that_fail_to_decode_are_a_family_too(tmp_path):
    files = [
        rec("bad/a.jpg", None, None, None, status="error", content="broken"),
        rec("bad/b.jpg", None, None, None, status="error", content="broken", mtime=0),
    ]
    _, fam = build(tmp_path, files, [])
    assert fam["bad/b.jpg"]["role"] == "master"  # the older
    assert (fam["bad/a.jpg"]["role"], fam["bad/a.jpg"]["kind"]) == ("duplicate", "identical")


def test_redundant_lists_what_each_set_and_family_keeps(tmp_path):
    files = family_files()
    verdicts = [resize("M", "A", MASTER, 0.5), rotate90("A", "B", (500, 400))]
    drop = Decision(
        sha("turned"),
        "",
        "web/half turned.jpg",
        "",
        "redundant",
        "web only",
        "2025-01-02T00:00:00Z",
    )
    tables, _ = build(tmp_path, files, verdicts, decisions=[drop])
    con = tables["redundant"].con
    out = tmp_path / "csv"
    from archive_twins.deliver.redundant import write_redundant_csv

    assert write_redundant_csv(tables["redundant"], out) == len(tables["redundant"])
    rows = list(csv.DictReader((out / "redundant.csv").open(encoding="utf-8")))
    by = {(r["group_kind"], r["filename"]): r for r in rows}
    assert by[("identical", "web/half.jpg")]["action"] == "keep"
    dup = by[("identical", "web/copy of half.jpg")]
    assert (dup["action"], dup["kept_filename"], dup["reason"]) == (
        "redundant", "web/half.jpg", "same bytes as web/half.jpg")  # fmt: skip
    assert dup["decision"] == "rule: older file"
    png = by[("same_pixels", "Backup/old share/m.png")]
    assert png["action"] == "redundant" and png["decision"] == "rule: more bits per sample"
    assert by[("family", "Masters/m.tif")]["action"] == "keep"
    assert by[("family", "web/half.jpg")]["action"] == "derivative"
    turned = by[("family", "web/half turned.jpg")]
    assert (turned["action"], turned["decision"], turned["decided_at"]) == (
        "redundant", "curator: redundant", "2025-01-02T00:00:00Z")  # fmt: skip
    assert bytes.fromhex(turned["filename_bytes"]).decode() == "web/half turned.jpg"
    assert con is not None


@pytest.mark.parametrize("decision", ["not_copy", "related", "copy"])
def test_pair_decisions_change_the_tables(tmp_path, decision):
    files = family_files()
    verdicts = [resize("M", "A", MASTER, 0.5), rotate90("M", "B", MASTER, 0.5)]
    d = Decision(
        sha("m"),
        sha("half"),
        "Masters/m.tif",
        "web/half.jpg",
        decision,
        "n",
        "2025-01-03T10:00:00Z",
    )
    gone = Decision(sha("gone"), "", "gone.tif", "", "master", "", "")
    tables, fam = build(tmp_path, files, verdicts, decisions=[d, gone])
    name = {r[0]: r[1] for r in tables["fileid_to_filename_map"]}
    rows = [dict(zip(columns("copy_pairs"), r, strict=True)) for r in tables["copy_pairs"]]
    pairs = {(name[r["file_id1"]], name[r["file_id2"]]): r for r in rows}
    key = ("Masters/m.tif", "web/half.jpg")
    rejected = [(name[r[0]], name[r[1]]) for r in tables["rejected_pairs"]]
    related = [(name[r[0]], name[r[1]]) for r in tables["related_pairs"]]
    status = {r[4]: r[7] for r in tables["decisions"]}
    assert status == {decision: "applied", "master": "gone"}
    info = dict(tables["run_info"])
    assert (info["decisions"], info["decisions_gone"], info["decisions_applied"]) == ("2", "1", "1")
    if decision == "copy":
        assert pairs[key]["reviewed"] == 1 and fam["web/half.jpg"]["role"] == "derivative"
        assert not rejected and not related
        return
    # the pair left the master's family; the half keeps its own (a byte copy)
    assert (
        key not in pairs and fam["web/half.jpg"]["family_id"] != fam["Masters/m.tif"]["family_id"]
    )
    assert len(tables["transform_resize"]) == 0
    if decision == "not_copy":
        assert rejected == [key] and not related
        row = dict(zip(columns("rejected_pairs"), tables["rejected_pairs"][0], strict=True))
        assert (row["kind"], row["scale"], row["note"], row["decided_at"]) == (
            "resize", 0.5, "n", "2025-01-03T10:00:00Z")  # fmt: skip
    else:
        assert related == [key] and not rejected


def test_a_file_decision_follows_its_content_when_renamed_or_moved(tmp_path):
    pix = [rec("big.jpg", "L", 200, 100), rec("small.tif", "S", 100, 50, fmt="tiff", bits=16)]
    verdicts = [resize("L", "S", (200, 100), 0.5)]
    # decided when the file was Old/small.tif: the content is the key, the name a hint
    moved = Decision(
        sha("small.tif"), "", "Old/small.tif", "", "master", "", "2025-01-01T00:00:00Z"
    )
    tables, fam = build(tmp_path, pix, verdicts, decisions=[moved])
    assert fam["small.tif"]["role"] == "master"
    assert [r[7] for r in tables["decisions"]] == ["applied"]
    # byte-identical files: the name picks one while it still names one of them
    same = dict(content="x")
    twins = [
        rec("b/x.tif", "X", 10, 10, mtime=1, **same),
        rec("a/x.tif", "X", 10, 10, mtime=2, **same),
    ]
    pick = Decision(sha("x"), "", "a/x.tif", "", "master", "", "2025-01-01T00:00:00Z")
    _, fam = build(tmp_path, twins, [], decisions=[pick])
    assert fam["a/x.tif"]["role"] == "master"  # not the older b/x.tif
    # a name no longer there: every file of the content, and the rules pick among them
    gone = Decision(sha("x"), "", "c/x.tif", "", "master", "", "2025-01-01T00:00:00Z")
    _, fam = build(tmp_path, twins, [], decisions=[gone])
    assert fam["b/x.tif"]["role"] == "master"
