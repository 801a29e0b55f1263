"""Issue #24, unit level: the records that make up-to-date decisions independent of
.snakemake/, the id registry, publishing generations, temporaries, the shrink
guard, unlistable folders, pinned opens and the checks of every cache."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_retrieval import index_dir  # noqa: F401 (fixture)
from test_shard import Shard, picture

from archive_twins import ledger
from archive_twins.deliver import publish
from archive_twins.index.build import build_index
from archive_twins.index.params import RetrievalParams
from archive_twins.index.query import Index
from archive_twins.ingest import registry
from archive_twins.ingest.features import FeatureParams, describe, load_raster, load_signatures
from archive_twins.ingest.guard import GuardError, check_shrink
from archive_twins.ingest.leftovers import hold_job_lock, mark_run, remove_leftovers
from archive_twins.ingest.scan import ScanResult, carry_unlistable, scan_archive, shape
from archive_twins.ingest.shard import Refused, open_pinned
from archive_twins.ingest.store import load_thumbnail
from archive_twins.util import write_jsonl
from archive_twins.verify.match import FeatureCache

# ---- the ledger: stamps and records ---------------------------------------------------


def _job(results: Path, want: str = "w1") -> tuple[Path, list[str]]:
    """A job with a stamp saying `want`, whose outputs are written and recorded."""
    ledger.check(results, {"job": (want, ["out.txt", "dir"])})
    (results / "out.txt").write_text("output\n")
    (results / "dir").mkdir(exist_ok=True)
    (results / "dir" / "a.bin").write_bytes(b"\1" * 100)
    stamp = results / ledger.STAMPS / "job.json"
    ledger.record(stamp, [results / "out.txt", results / "dir"])  # as a job gives them
    return stamp, ["out.txt", "dir"]


def test_a_recorded_job_is_left_alone_and_its_stamp_untouched(tmp_path):
    stamp, outputs = _job(tmp_path)
    before = stamp.stat().st_mtime_ns, stamp.read_text()
    time.sleep(0.01)
    assert ledger.check(tmp_path, {"job": ("w1", outputs)}) == {}
    assert (stamp.stat().st_mtime_ns, stamp.read_text()) == before


def test_other_inputs_damage_or_no_record_force_the_job(tmp_path):
    stamp, outputs = _job(tmp_path)
    forced = ledger.check(tmp_path, {"job": ("w2", outputs)})
    assert "other inputs" in forced["job"]
    token = json.loads(stamp.read_text())
    assert token["want"] == "w2" and token["force"]
    # a job forced twice gets a new token each time (Snakemake compares contents)
    again = ledger.check(tmp_path, {"job": ("w2", outputs)})
    assert again and json.loads(stamp.read_text())["force"] != token["force"]

    stamp, outputs = _job(tmp_path, "w3")
    with open(tmp_path / "dir" / "a.bin", "r+b") as fh:  # same size, same inode
        fh.write(b"\0")
    assert "dir/a.bin differs" in ledger.check(tmp_path, {"job": ("w3", outputs)})["job"]

    stamp, outputs = _job(tmp_path, "w4")
    (tmp_path / ledger.BUILT / "job.json").unlink()
    assert "no record" in ledger.check(tmp_path, {"job": ("w4", outputs)})["job"]


def test_a_copy_with_other_stat_but_the_same_bytes_is_not_damage(tmp_path):
    stamp, outputs = _job(tmp_path)
    # cp without -a: new inode, new mtime, same bytes
    data = (tmp_path / "out.txt").read_bytes()
    (tmp_path / "out.txt").unlink()
    (tmp_path / "out.txt").write_bytes(data)
    assert ledger.check(tmp_path, {"job": ("w1", outputs)}) == {}
    rec = ledger.built(tmp_path, "job")["outputs"]["out.txt"]
    assert rec[3] == (tmp_path / "out.txt").stat().st_ino  # refreshed


def test_drop_damaged_removes_only_what_differs(tmp_path):
    stamp, _ = _job(tmp_path)
    (tmp_path / "out.txt").write_text("changed\n")
    assert ledger.drop_damaged(stamp, [tmp_path / "out.txt", tmp_path / "dir"]) == ["out.txt"]
    assert not (tmp_path / "out.txt").exists() and (tmp_path / "dir" / "a.bin").exists()
    # results of an older version (no record at all) are kept as they are
    (tmp_path / ledger.BUILT / "job.json").unlink()
    (tmp_path / "dir" / "a.bin").write_bytes(b"x")
    assert ledger.drop_damaged(stamp, [tmp_path / "dir"]) == []


# ---- the id registry ------------------------------------------------------------------


def test_registry_keeps_removed_paths_and_detects_damage(tmp_path):
    reg = tmp_path / "state" / "file_ids.json"
    registry.save(reg, {"a": 1, "b": 2}, 3)
    assert registry.load(reg) == ({"a": 1, "b": 2}, 3)
    reg.write_text(reg.read_text().replace('"b": 2', '"b": 7'))  # valid JSON, wrong id
    with pytest.raises(registry.Damaged):
        registry.load(reg)
    reg.write_text(reg.read_text()[:20])
    with pytest.raises(registry.Damaged):
        registry.load(reg)
    # a registry of an older version (one JSON object) is read as it is
    reg.write_text(json.dumps({"ids": {"a": 1}, "next_id": 4}))
    assert registry.load(reg) == ({"a": 1}, 4)


def _published(path: Path, ids: dict[str, int], next_id: int | None) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE fileid_to_filename_map (file_id, filename, filename_bytes)")
    con.executemany(
        "INSERT INTO fileid_to_filename_map VALUES (?, ?, '')", [(i, n) for n, i in ids.items()]
    )
    con.execute("CREATE TABLE run_info (key, value)")
    if next_id is not None:
        con.execute("INSERT INTO run_info VALUES ('next_file_id', ?)", [str(next_id)])
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("damage", ["lost", "damaged"])
def test_registry_rebuilt_from_the_published_tables(tmp_path, damage):
    reg = tmp_path / "state" / "file_ids.json"
    registry.save(reg, {"a": 1, "b": 5}, 9)
    published = _published(tmp_path / "archive.sqlite", {"a": 1, "b": 5}, 9)
    if damage == "lost":
        reg.unlink()
    else:
        reg.write_text(reg.read_text()[:30])
    note = registry.ensure(reg, published)
    assert note.startswith(f"file_id registry {damage}")
    assert registry.load(reg) == ({"a": 1, "b": 5}, 9)
    assert registry.ensure(reg, published) is None
    # without next_file_id: one above the highest id
    reg.unlink()
    _published(tmp_path / "old.sqlite", {"a": 1, "b": 5}, None)
    assert registry.load_or_rebuild(reg, tmp_path / "old.sqlite") == ({"a": 1, "b": 5}, 6)


# ---- publishing generations -----------------------------------------------------------


def _stage(staging: Path, tag: str) -> None:
    (staging / "json").mkdir(parents=True, exist_ok=True)
    (staging / "html").mkdir(exist_ok=True)
    (staging / "archive.sqlite").write_text(tag)
    (staging / "json" / "files.json").write_text(tag)
    (staging / "html" / "index.html").write_text(tag)


NAMES = ("archive.sqlite", "json", "html")


def _seen(res: Path) -> set[str]:
    return {
        (res / "archive.sqlite").read_text(),
        (res / "json" / "files.json").read_text(),
        (res / "html" / "index.html").read_text(),
    }


def test_generations_switch_at_once_and_keep_the_one_before(tmp_path):
    res, staging = tmp_path / "results", tmp_path / "results" / "staging"
    (res / "thumbs").mkdir(parents=True)
    for k in range(1, 4):
        # staged files are replaced by renames, as the jobs do (never rewritten in place)
        for f in staging.rglob("*"):
            if f.is_file():
                f.unlink()
        _stage(staging, f"set {k}")
        gen = publish.publish(staging, res, NAMES, {"aggregate": f"w{k}"})
        assert _seen(res) == {f"set {k}"}
        assert publish.current_record(res)["aggregate"] == f"w{k}"
        assert os.readlink(res / "json") == os.path.join("current", "json")
        assert (gen / "thumbs").resolve() == (res / "thumbs").resolve()
    assert sorted(p.name for p in (res / "generations").iterdir()) == ["g-2", "g-3"]


def test_results_of_an_older_version_are_adopted_without_a_gap(tmp_path):
    res, staging = tmp_path / "results", tmp_path / "results" / "staging"
    _stage(res, "old")  # real files where the links go
    _stage(staging, "new")
    publish.publish(staging, res, NAMES, {})
    assert all((res / n).is_symlink() for n in NAMES)
    assert _seen(res) == {"new"}
    assert not [p for p in res.iterdir() if p.name.startswith(".")]


# ---- temporaries of killed jobs -------------------------------------------------------


def test_leftovers_removed_unless_a_job_is_running(tmp_path):
    res = tmp_path / "results"
    for d in ("shards", "staging", "thumbs/ab", "state/index-generations"):
        (res / d).mkdir(parents=True)
    temps = [
        res / ".index.abcd1234",
        res / "state" / "index-generations" / ".base.x_z12345",
        res / "staging" / ".aggregate-0a1b2c3d",
        res / "shards" / ".shard-0001.jsonl.k2j3h4g5.tmp",
        res / "thumbs" / "ab" / ".ab12.jpg.abcdefgh.tmp",
    ]
    for t in temps:
        t.mkdir() if not t.name.endswith(".tmp") else t.write_text("x")
    keep = [res / ".lock", res / ".profile", res / "notes.txt", res / "shards" / "shard-0001.jsonl"]
    for k in keep:
        k.write_text("keep")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1])\n"
            "from archive_twins.ingest.leftovers import hold_job_lock\n"
            "hold_job_lock(sys.argv[2]); print('held', flush=True); sys.stdin.read()",
            str(Path(__file__).resolve().parents[1]),
            str(res),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert remove_leftovers(res) is None
        assert all(t.exists() for t in temps)
    finally:
        holder.communicate("")
    mark_run(res, "finished")  # the content store is swept all the same: left for later
    removed = remove_leftovers(res)
    assert sorted(removed) == sorted(os.path.relpath(t, res) for t in temps)
    assert all(k.exists() for k in keep)
    # a normal run after a finished one lists no content store
    (res / "thumbs" / "ab" / ".cd34.jpg.abcdefgh.tmp").write_text("x")
    assert remove_leftovers(res) == []


def test_a_job_holds_the_jobs_lock(tmp_path):
    hold_job_lock(tmp_path)
    with open(tmp_path / ".jobs.lock", "a+b") as fh:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)  # other jobs may run alongside


# ---- the shrink guard and unlistable folders ------------------------------------------


def _shape(*paths: str) -> dict:
    return shape(ScanResult(images=[{"path": p} for p in paths]))


def test_shrink_guard():
    before = _shape(*[f"a/{i}.jpg" for i in range(8)], "b/x.jpg", "c/y.jpg", "r.jpg")
    check_shrink(None, _shape(), 0.2, False)  # a first run
    check_shrink(
        before, _shape(*[f"a/{i}.jpg" for i in range(7)], "b/x.jpg", "c/y.jpg"), 0.2, False
    )
    with pytest.raises(GuardError, match=r"0 image files where the last run saw 11"):
        check_shrink(before, _shape(), 0.2, False)
    with pytest.raises(GuardError, match="top-level folders now empty or missing: c;"):
        check_shrink(
            before, _shape(*[f"a/{i}.jpg" for i in range(8)], "b/x.jpg", "r.jpg"), 0.2, False
        )
    with pytest.raises(GuardError, match="allow_shrink=True"):
        check_shrink(
            before, _shape(*[f"a/{i}.jpg" for i in range(5)], "b/x.jpg", "c/y.jpg"), 0.2, False
        )
    check_shrink(before, _shape(), 0.2, True)
    # the whole message fits in two lines
    try:
        check_shrink(before, _shape(), 0.2, False)
    except GuardError as exc:
        assert len(str(exc)) < 240


def test_files_of_an_unlistable_folder_are_kept_as_errors(tmp_path, monkeypatch):
    root = tmp_path / "archive"
    for p in ("a/1.jpg", "b/2.jpg", "b/sub/3.jpg", "c.jpg"):
        picture(root / p, 1)
    previous = scan_archive(root).images
    real = os.scandir
    monkeypatch.setattr(
        os, "scandir", lambda p=".": _deny(p) if os.fspath(p).endswith("/b") else real(p)
    )
    scan = scan_archive(root)
    assert [r["path"] for r in scan.images] == ["a/1.jpg", "c.jpg"]
    assert carry_unlistable(scan, previous) == 2
    carried = {r["path"]: r for r in scan.images}
    assert carried["b/sub/3.jpg"]["scan_error"].startswith("cannot list directory: ")
    assert shape(scan) == {"files": 4, "folders": {"a": 1, "b": 2}}


def _deny(path):
    raise PermissionError(13, "Permission denied", os.fspath(path))


# ---- reading the archive through the file opened --------------------------------------


def test_open_pinned_refuses_what_lies_outside(tmp_path):
    root = tmp_path / "archive"
    picture(root / "in.png", 1)
    picture(tmp_path / "out.png", 2)
    os.symlink("in.png", root / "alias.png")
    os.symlink(tmp_path / "out.png", root / "escape.png")
    os.mkfifo(root / "pipe.png")
    real = os.path.realpath(root)
    fd, pinned = open_pinned(os.fspath(root / "alias.png"), real)
    try:
        os.symlink(tmp_path / "out.png", root / "alias2.png")
        os.replace(root / "alias2.png", root / "alias.png")  # re-pointed after opening
        assert Path(pinned).read_bytes() == (root / "in.png").read_bytes()
    finally:
        os.close(fd)
    with pytest.raises(Refused, match="symlink leaving the archive"):
        open_pinned(os.fspath(root / "escape.png"), real)
    with pytest.raises(Refused, match="not a regular file"):
        open_pinned(os.fspath(root / "pipe.png"), real)


def test_folder_symlinks_leaving_the_archive_are_not_followed(tmp_path):
    root = tmp_path / "archive"
    picture(root / "a.png", 1)
    picture(tmp_path / "outside" / "b.png", 2)
    os.symlink(tmp_path / "outside", root / "out")
    os.symlink(".", root / "loop")
    res = scan_archive(root, follow_symlinks=True)
    assert [r["path"] for r in res.images] == ["a.png"]
    assert {
        "filename": "out",
        "size_bytes": None,
        "reason": "symlink leaving the archive (not followed)",
    } in res.skipped


# ---- caches checked when read ---------------------------------------------------------


def test_damaged_thumbnail_is_rebuilt_from_its_file(tmp_path):
    shard = Shard(tmp_path)
    picture(shard.root / "x.png", 3, (120, 90))
    _, recs = shard.run()
    sha = recs["x.png"]["sha256"]
    thumb = next(shard.store.rglob(f"{sha}.jpg"))
    good = thumb.read_bytes()
    thumb.write_bytes(good[: len(good) // 2])
    with pytest.raises(FileNotFoundError):
        load_thumbnail(shard.store, sha)
    from archive_twins.ingest.shard import repair_content

    calls = []

    def repair(s):
        calls.append(s)
        return repair_content(shard.results, shard.root, s, __import__("test_shard").P)

    rgb = load_thumbnail(shard.store, sha, repair)
    assert calls == [sha] and rgb.shape[:2] == (48, 64)
    assert thumb.read_bytes() == good
    # the shard stage, too, decodes a content again whose thumbnail is damaged
    thumb.write_bytes(good[:100])
    picture(shard.root / "copy" / "x.png", 3, (120, 90))
    stats, _ = shard.run()
    assert stats.decoded == 1 and thumb.read_bytes() == good


def test_damaged_features_read_as_missing_and_are_rebuilt(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    from archive_twins.ingest.features import extract_raster, raster_path, save_signatures

    fp = FeatureParams()
    sha = "ab" * 32
    extract_raster(tmp_path, sha, rgb, (160, 120), fp)
    path = raster_path(tmp_path, sha)
    path.write_bytes(path.read_bytes()[:-300])
    assert load_raster(tmp_path, sha, fp.fingerprint()) is None
    rebuilt = []
    cache = FeatureCache(tmp_path, fp.fingerprint(), rebuild=lambda s: rebuilt.append(s) or {})
    assert cache.get(sha) == {} and rebuilt == [sha]
    bundle = tmp_path / "shard-0000.npz"
    save_signatures(bundle, {sha: describe(rgb, (160, 120), fp)}, fp.fingerprint())
    assert len(load_signatures(bundle)) == 1
    bundle.write_bytes(bundle.read_bytes()[:500])
    assert load_signatures(bundle) == {}


def _inputs(index_dir) -> tuple[list[str], list[str]]:  # noqa: F811
    root = index_dir[0].parent
    return sorted(map(str, root.glob("shard-*.jsonl"))), sorted(map(str, root.glob("shard-*.npz")))


def test_an_empty_index_is_a_base_like_any_other(index_dir, tmp_path):  # noqa: F811
    records, signatures = _inputs(index_dir)
    empty = tmp_path / "empty.jsonl"
    write_jsonl(empty, [])
    params, gens = RetrievalParams(), tmp_path / "gens"
    build_index([empty], [], tmp_path / "index", params, gens)
    assert Index(tmp_path / "index").n == 0
    full = build_index(records, signatures, tmp_path / "index", params, gens)
    assert full["items"] == Index(tmp_path / "index").n > 0
    build_index([empty], [], tmp_path / "index", params, gens)
    again = build_index(records, signatures, tmp_path / "index", params, gens)
    assert again["items"] == full["items"]


def test_a_damaged_index_generation_is_not_trusted(index_dir, tmp_path):  # noqa: F811
    records, signatures = _inputs(index_dir)
    params, gens = RetrievalParams(), tmp_path / "gens"
    stats = build_index(records, signatures, tmp_path / "index", params, gens)
    index = Index(tmp_path / "index")
    assert index.unchanged_since(stats["gen"]).all()
    gen = gens / f"{stats['gen']}.npy"
    arr = np.load(gen)
    arr[0] ^= 1
    np.save(gen, arr)
    assert index.unchanged_since(stats["gen"]) is None


def test_damaged_common_words_of_a_generation_are_not_trusted(index_dir, tmp_path):  # noqa: F811
    """`{gen}.common` (which words were common in a generation: a rerun searches again
    the rasters holding a word whose commonness changed) with one word's bytes
    flipped: not trusted (every raster searched again), never a wrong answer."""
    records, signatures = _inputs(index_dir)
    params, gens = RetrievalParams(common_df=1, common_ratio=0.0), tmp_path / "gens"
    stats = build_index(records, signatures, tmp_path / "index", params, gens)
    index = Index(tmp_path / "index")
    assert stats["common"] > 0
    assert not any(m.any() for m in index.common_change(stats["gen"]))
    common = gens / f"{stats['gen']}.common"
    raw = bytearray(common.read_bytes())
    raw[-3] ^= 0x40  # the last common word, whatever the file's layout
    common.write_bytes(bytes(raw))
    # the next run opens the index again (an Index reads a generation's words once)
    assert Index(tmp_path / "index").common_change(stats["gen"]) is None


def test_a_new_version_of_the_per_file_code_reruns_the_shard_jobs(tmp_path, monkeypatch):
    """The ledger's digest of a decode_shard job holds the decode and feature code's
    versions: a version bump (new hashes in the records) reruns every shard job once
    with no setting changed, and the matching after it; the same code reruns nothing."""
    import yaml

    from archive_twins import prepare, versions

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    (tmp_path / "manifest").mkdir()
    for s in ("0000", "0001"):
        (tmp_path / "manifest" / f"shard-{s}.jsonl").write_text("{}\n")
    (tmp_path / "manifest" / "skipped.jsonl").write_text("")

    def jobs() -> dict:
        plan = prepare.plan(tmp_path, str(tmp_path), config, ["0000", "0001"], ["0000"])
        return {name: want for name, (want, _) in plan.items()}

    decode = versions.DECODE
    before = jobs()
    assert jobs() == before
    monkeypatch.setattr(versions, "DECODE", decode + "-next")
    after = jobs()
    assert all(after[j] != before[j] for j in before), "every job downstream reruns"
    monkeypatch.setattr(versions, "DECODE", decode)
    monkeypatch.setattr(versions, "FEATURES", versions.FEATURES + "-next")
    assert jobs()["decode_shard-0000"] != before["decode_shard-0000"]
