"""Issue #24, end to end: never publish a wrong answer. An empty index, an archive
(or a folder of it) that did not mount, a full disk, a results directory restored
from a backup, a crash between the steps of publishing, temporaries of killed jobs,
damaged internal files, and symlinks swapped or leaving the archive: each through
the real workflow, touching only what the test made (its own directories, mounts
and processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pytest
from conftest import canonical, read_json_tables, run_workflow
from test_e2e_interrupt import run_and_interrupt

from archive_twins.demo import photo, save
from archive_twins.dihedral import dihedral
from archive_twins.runner import snakemake_cmd

pytestmark = pytest.mark.e2e

# one shard, one chunk: fewest jobs (the splits are tested elsewhere)
CONFIG = ["match_chunks=1"]


def small(name: str, side: int = 256):
    """A real photograph, scaled so its longer side is `side` (fast to decode)."""
    arr = photo(name)
    h, w = arr.shape[:2]
    f = side / max(h, w)
    return cv2.resize(arr, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def thirteen(root: Path) -> Path:
    """13 image files in three top-level folders and the root: byte copies, a resize
    and a rotate90i pair among unrelated photographs."""
    astro = small("astronaut")
    save(astro, root / "a" / "astronaut.jpg", Q=90)
    save(cv2.resize(astro, (128, 128), interpolation=cv2.INTER_AREA), root / "a" / "half.jpg")
    shutil.copyfile(root / "a" / "astronaut.jpg", root / "a" / "copy.jpg")
    coffee = small("coffee")
    save(coffee, root / "b" / "coffee.png")
    save(dihedral(coffee, 1), root / "b" / "coffee_rot90.jpg", Q=90)
    save(small("rocket"), root / "b" / "rocket.jpg")
    save(small("chelsea"), root / "b" / "chelsea.jpg")
    for i, name in enumerate(("brick", "gravel", "moon")):
        save(small(name), root / "c" / f"{i}_{name}.png")
    save(small("camera"), root / "camera.jpg")
    save(small("hubble_deep_field"), root / "hubble.jpg")
    save(small("immunohistochemistry"), root / "ihc.jpg")
    return root


def four_more(root: Path, side: int = 256) -> None:
    """Four new files in a new folder (a resize copy of the coffee among them)."""
    save(small("coffee", side // 2), root / "d" / "coffee_small.jpg")
    for name in ("text", "clock", "horse"):
        save(small(name, side), root / "d" / f"{name}.jpg")


def files_of(res: Path) -> dict[str, int]:
    """filename -> file_id of the published files table."""
    return {f["filename"]: f["file_id"] for f in read_json_tables(res / "json")["files"]}


def deliverables(res: Path) -> dict:
    """archive.sqlite, json/ and html/ as bytes, by path; what a reader sees."""
    out = {}
    for name in ("archive.sqlite", "json", "html"):
        p = res / name
        if p.is_file():
            out[name] = p.read_bytes()
        elif p.is_dir():
            out.update(
                {str(f.relative_to(res)): f.read_bytes() for f in p.rglob("*") if f.is_file()}
            )
        else:
            out[name] = None
    return out


def out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def run(archive: Path, work: Path, *extra: str, check: bool = True):
    return run_workflow(archive, work, shards=1, extra=[*CONFIG, *extra], check=check)


def fresh_equal(work: Path, fresh: Path) -> None:
    """The published tables equal a fresh run's (`fresh`: its working directory) on
    the same files, by filename (the copies' own inodes and ctimes aside)."""

    def tables(where: Path) -> dict:
        t = canonical(read_json_tables(where / "results" / "json"))
        rows = [json.loads(r) for r in t["files"]]
        t["files"] = sorted(json.dumps({**r, "ctime_ns": 0, "inode": 0}) for r in rows)
        return t

    got, want = tables(work), tables(fresh)
    assert {k for k in got if got[k] != want[k]} == set()


@pytest.fixture(scope="module")
def fresh17(tmp_path_factory) -> Path:
    """A fresh run on `thirteen` + `four_more` (the final archive of several tests)."""
    archive = thirteen(tmp_path_factory.mktemp("fresh17") / "archive")
    four_more(archive)
    work = tmp_path_factory.mktemp("fresh17-work")
    run(archive, work)
    return work


# ---- 1. an empty index ---------------------------------------------------------------


def test_empty_index_then_images(tmp_path):
    """An empty archive, then only a blank page and an unreadable file (an index
    without rasters), then photographs: every run succeeds."""
    archive, work = tmp_path / "archive", tmp_path / "work"
    archive.mkdir()
    run(archive, work)
    assert files_of(work / "results") == {}
    blank = cv2.imread(os.fspath(save(small("camera"), tmp_path / "x.png")))
    blank[:] = 250
    save(blank, archive / "blank.png")
    (archive / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    run(archive, work)
    assert len(files_of(work / "results")) == 2
    thirteen(archive)
    run(archive, work)
    assert len(files_of(work / "results")) == 15
    t = read_json_tables(work / "results" / "json")
    assert {r["kind"] for r in t["copy_pairs"]} >= {"resize", "rotate90i"}


# ---- 2. an archive, or a folder of it, that did not mount ------------------------------


@contextlib.contextmanager
def unmounted(path: Path):
    """An empty filesystem over `path`, as a network share that did not mount: a
    tmpfs where this process may mount (root, as in CI), else an empty folder put in
    its place (the real one moved aside, and back afterwards)."""
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", os.fspath(path)],
        capture_output=True,
    )
    aside = path.with_name(path.name + ".away")
    if proc.returncode != 0:
        path.rename(aside)
        path.mkdir()
    try:
        yield
    finally:
        if proc.returncode == 0:
            subprocess.run(["umount", os.fspath(path)], check=True)
        else:
            path.rmdir()
            aside.rename(path)


def test_vanished_archive_or_folder_is_refused(tmp_path):
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    ids = files_of(res)
    assert len(ids) == 13
    before = deliverables(res)
    with unmounted(archive):
        proc = run(archive, work, check=False)
    assert proc.returncode != 0
    assert "0 image files where the last run saw 13" in out(proc)
    assert "allow_shrink=True" in out(proc)
    assert deliverables(res) == before
    # one top-level folder: refused too, unless told
    with unmounted(archive / "b"):
        proc = run(archive, work, check=False)
        assert proc.returncode != 0 and "folders now empty or missing: b" in out(proc)
        run(archive, work, "allow_shrink=True")
        assert set(files_of(res)) == {n for n in ids if not n.startswith("b/")}
    # the folder is back: its files get their old ids back
    run(archive, work)
    assert files_of(res) == ids


UNLISTABLE = """
import os, sys
_scandir = os.scandir
def scandir(path="."):
    if os.fspath(path).endswith({suffix!r}):
        raise PermissionError(13, "Permission denied", os.fspath(path))
    return _scandir(path)
os.scandir = scandir
"""


def test_unreadable_folder_is_an_error_not_a_removal(tmp_path, monkeypatch):
    """A folder that cannot be listed (chmod 000 for an ordinary user; simulated
    here, for root reads anything): its files stay, with status 'error' and the
    reason, and keep their ids; the run is not refused."""
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    ids = files_of(res)
    if os.geteuid() != 0:
        (archive / "b").chmod(0)
    else:
        hook(tmp_path, monkeypatch, UNLISTABLE.format(suffix=os.sep + "b"))
    try:
        run(archive, work)
    finally:
        (archive / "b").chmod(0o755)
        monkeypatch.delenv("PYTHONPATH", raising=False)
    t = read_json_tables(res / "json")
    assert {f["filename"]: f["file_id"] for f in t["files"]} == ids
    for f in t["files"]:
        if f["filename"].startswith("b/"):
            assert f["status"] == "error" and "cannot list directory" in f["error"], f
    run(archive, work)
    t = read_json_tables(res / "json")
    assert {f["filename"]: f["file_id"] for f in t["files"]} == ids
    assert all(f["status"] == "ok" for f in t["files"])


def hook(tmp_path: Path, monkeypatch, code: str) -> None:
    """Run `code` first in every Python process of the workflow (sitecustomize)."""
    d = tmp_path / "hook"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(code)
    monkeypatch.setenv("PYTHONPATH", os.fspath(d))


# ---- 3. a full disk ------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    path.mkdir(parents=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", os.fspath(path)],
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {proc.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", os.fspath(path)], check=False)


def fill(path: Path, leave: int) -> Path:
    """A file taking all free space of `path`'s filesystem but `leave` bytes."""
    filler = path / "filler"
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as fh:
        fh.truncate(0)
        block = b"\0" * (1 << 20)
        todo = free - leave
        while todo > 0:
            todo -= fh.write(block[: min(len(block), todo)])
    return filler


def test_full_disk_during_decoding_is_redone(tmp_path):
    """ENOSPC in decode_shard (and in the error handler's own write): the earlier
    tables stay published; once space is freed, the plain rerun publishes them all."""
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    with small_disk(res, "400m"):
        run(archive, work)
        assert len(files_of(res)) == 13
        before = deliverables(res)
        four_more(archive, side=512)
        filler = fill(res, leave=48 * 1024)
        proc = run(archive, work, check=False)
        assert proc.returncode != 0
        assert "No space left on device" in out(proc)
        assert deliverables(res) == before
        filler.unlink()
        run(archive, work)
        assert len(files_of(res)) == 17
        proc = run(archive, work)
        assert "Nothing to be done" in out(proc)


# ---- 4. a results directory restored from a backup -----------------------------------


def test_restored_backup_is_brought_up_to_date(tmp_path, fresh17):
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    subprocess.run(["cp", "-a", os.fspath(res), os.fspath(tmp_path / "backup")], check=True)
    four_more(archive)
    run(archive, work)
    assert len(files_of(res)) == 17
    shutil.rmtree(res)
    subprocess.run(["cp", "-a", os.fspath(tmp_path / "backup"), os.fspath(res)], check=True)
    proc = run(archive, work)
    assert "Nothing to be done" not in out(proc)
    assert len(files_of(res)) == 17
    assert "Nothing to be done" in out(run(archive, work))
    fresh_equal(work, fresh17)


# ---- 5. a crash between the steps of publishing --------------------------------------

PAUSED_RENAMES = """
import os, sys, time
if any(a.endswith(".publish.py") for a in sys.argv):
    _log = os.environ["PAUSE_LOG"]
    def _paused(fn):
        def step(src, dst, *a, **k):
            with open(_log, "a") as fh:
                fh.write(f"{os.fspath(src)} -> {os.fspath(dst)}\\n")
            time.sleep(float(os.environ["PAUSE_SECONDS"]))
            return fn(src, dst, *a, **k)
        return step
    os.rename, os.replace = _paused(os.rename), _paused(os.replace)
"""


@pytest.mark.parametrize("step", [2, 3])
def test_kill_between_publish_renames(tmp_path, monkeypatch, step):
    """SIGKILL to the whole run before the publish job's `step`-th rename (before
    and after its switch; the steps before, of the old and the new code alike,
    change nothing a reader sees): readers see the old set or the new one, complete,
    never a mixture or a missing part; the plain rerun publishes the new set."""
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    before = deliverables(res)
    four_more(archive)
    steps = tmp_path / "steps.log"
    hook(tmp_path, monkeypatch, PAUSED_RENAMES)
    monkeypatch.setenv("PAUSE_LOG", os.fspath(steps))
    monkeypatch.setenv("PAUSE_SECONDS", "1")
    cmd = snakemake_cmd(archive, work, 2, ["shards=1", *CONFIG])
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline, killed = time.time() + 300, False
    while proc.poll() is None and time.time() < deadline:
        if steps.exists() and len(steps.read_text().splitlines()) >= step:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    proc.communicate(timeout=60)
    monkeypatch.delenv("PYTHONPATH")
    seen = deliverables(res)
    run(archive, work)
    after = deliverables(res)
    assert len(files_of(res)) == 17
    assert seen in (before, after), "a mixture of two sets, or a part missing"
    if not killed:  # the publish job had fewer renames: it completed
        assert seen == after


# ---- 6. temporaries of killed jobs ---------------------------------------------------


def test_temporaries_of_killed_jobs_are_removed(tmp_path):
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    four_more(archive)
    # a run killed (SIGKILL to its process group) while it decodes
    cmd = snakemake_cmd(archive, work, 1, ["shards=1", *CONFIG])
    done, proc, _ = run_and_interrupt(cmd, "decode_shard", "SIGKILL")
    assert done and proc.returncode != 0
    # what killed jobs leave, named as the workflow's writers name them
    left = [
        tempfile.mkdtemp(prefix=".index.", dir=res),
        tempfile.mkdtemp(prefix=".base.", dir=res / "state" / "index-generations"),
        tempfile.mkdtemp(prefix=".aggregate-", dir=res / "staging"),
        tempfile.mkdtemp(prefix=".json.", dir=res / "staging"),
        tempfile.mkstemp(prefix=".file_ids.json.", suffix=".tmp", dir=res / "state")[1],
        tempfile.mkstemp(prefix=".shard-0000.jsonl.", suffix=".tmp", dir=res / "shards")[1],
        tempfile.mkstemp(prefix=".archive.", suffix=".sqlite.tmp", dir=res / "staging")[1],
        tempfile.mkstemp(prefix=".f00.jpg.", suffix=".tmp", dir=next((res / "thumbs").iterdir()))[
            1
        ],
    ]
    Path(left[0], "spill-0.key").write_bytes(b"\0" * 4096)
    # and a job of this results directory that is still running, with its temporary
    busy = res / "pairs" / ".chunk-0000.jsonl.abcd1234.tmp"
    busy.write_text("being written")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"fh = open({os.fspath(res / '.jobs.lock')!r}, 'a+b')\n"
            "fcntl.flock(fh, fcntl.LOCK_SH)\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    mine = [res / "notes.txt", res / ".keep", res / "thumbs" / "README"]
    for p in mine:
        p.write_text("the operator's")
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run(archive, work)
        assert "temporaries are left alone" in out(proc)
        assert busy.exists() and all(os.path.exists(p) for p in left)
    finally:
        holder.kill()
        holder.wait()
    proc = run(archive, work)
    assert not any(os.path.exists(p) for p in left), [p for p in left if os.path.exists(p)]
    assert not busy.exists()
    assert all(p.read_text() == "the operator's" for p in mine)
    assert len(files_of(res)) == 17


# ---- 7. damaged internal files -------------------------------------------------------


def _drop_line(path: Path, pick) -> None:
    lines = path.read_text().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if pick(line))
    path.write_text("".join(lines[:i] + lines[i + 1 :]))


def test_damage_that_gave_wrong_tables(tmp_path):
    """One verdict line lost from pairs/, one record lost from shards/, a truncated
    thumbnail, a deleted id registry: the plain run notices and mends each, and the
    next change gives the tables of a fresh run with every old id kept."""
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    ids = files_of(res)
    t = read_json_tables(res / "json")
    sha = {f["filename"]: f["sha256"] for f in t["files"]}
    # a copy's verdict, a file's record, the astronaut's thumbnail, the registry
    pairs = next(
        p for p in (res / "pairs").glob("*.jsonl") if '"kind": "rotate90i"' in p.read_text()
    )
    _drop_line(pairs, lambda line: '"kind": "rotate90i"' in line)
    shard = next(p for p in (res / "shards").glob("*.jsonl") if "rocket.jpg" in p.read_text())
    _drop_line(shard, lambda line: "rocket.jpg" in line)
    thumb = res / "thumbs" / sha["a/astronaut.jpg"][:2] / f"{sha['a/astronaut.jpg']}.jpg"
    thumb.write_bytes(thumb.read_bytes()[: thumb.stat().st_size // 3])
    (res / "state" / "file_ids.json").unlink()
    proc = run(archive, work)
    assert "file_id registry lost: rebuilt" in out(proc)
    # the shard whose record was lost is decoded again, and the estimate says so
    assert "1 shard jobs run again" in out(proc)
    assert (res / "state" / "file_ids.json").exists()
    assert files_of(res) == ids
    # a resize copy of the astronaut: found although its source's thumbnail was cut
    save(
        cv2.resize(small("astronaut"), (96, 96), interpolation=cv2.INTER_AREA),
        archive / "c" / "astro_small.jpg",
    )
    save(small("coffee"), archive / "d" / "coffee_again.png")
    run(archive, work)
    now = files_of(res)
    assert {k: now[k] for k in ids} == ids
    run(archive, tmp_path / "fresh")
    fresh_equal(work, tmp_path / "fresh")


def test_damage_that_failed_every_run(tmp_path, fresh17):
    """Zeroed postings in the index (and so in its base, the same files), a
    truncated signature bundle and a truncated per-content features file, a cut line
    in pairs/, a truncated id registry: the next run rebuilds each from its inputs,
    with a line in the log, no traceback, and the tables of a fresh run."""
    archive, work = thirteen(tmp_path / "archive"), tmp_path / "work"
    res = work / "results"
    run(archive, work)
    ids = files_of(res)
    post = res / "index" / "post_id.npy"
    with open(post, "r+b") as fh:
        fh.seek(128)
        fh.write(b"\0" * (post.stat().st_size - 128))
    bundle = max((res / "features").glob("shard-*.npz"), key=lambda p: p.stat().st_size)
    bundle.write_bytes(bundle.read_bytes()[:100])
    raster = next((res / "features" / "by-content").rglob("*.npz"))
    raster.write_bytes(raster.read_bytes()[:-200])
    pairs = max((res / "pairs").glob("*.jsonl"), key=lambda p: p.stat().st_size)
    text = pairs.read_text()
    pairs.write_text(text[: len(text) * 2 // 3])
    reg = res / "state" / "file_ids.json"
    reg.write_text(reg.read_text()[:40])
    four_more(archive)
    proc = run(archive, work)
    assert "Traceback" not in out(proc)
    now = files_of(res)
    assert {k: now[k] for k in ids} == ids
    fresh_equal(work, fresh17)


# ---- 8 and 9. symlinks swapped while a job runs, folder symlinks leaving -------------

SWAP_AT_START = """
import os, sys
if any(a.endswith(".decode_shard.py") for a in sys.argv):
    link, target = os.environ["SWAP_LINK"], os.environ["SWAP_TARGET"]
    if os.path.islink(link):
        tmp = link + ".swap"
        os.symlink(target, tmp)
        os.replace(tmp, link)
"""


@pytest.fixture(scope="module")
def symlinked(tmp_path_factory):
    base = tmp_path_factory.mktemp("links")
    archive, outside, work = base / "archive", base / "outside", base / "work"
    save(small("coffee"), archive / "inside.jpg")
    save(small("rocket"), archive / "other.jpg")
    os.symlink("inside.jpg", archive / "swap.jpg")
    save(small("chelsea"), outside / "secret.jpg")
    save(small("moon"), outside / "dir" / "moon.jpg")
    os.symlink(outside / "dir", archive / "elsewhere")
    hookdir = base / "hook"
    hookdir.mkdir()
    (hookdir / "sitecustomize.py").write_text(SWAP_AT_START)
    env = {
        "PYTHONPATH": os.fspath(hookdir),
        "SWAP_LINK": os.fspath(archive / "swap.jpg"),
        "SWAP_TARGET": os.fspath(outside / "secret.jpg"),
    }
    cmd = snakemake_cmd(archive, work, 2, ["shards=1", *CONFIG, "follow_symlinks=True"])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.readlink(archive / "swap.jpg") == os.fspath(outside / "secret.jpg")
    return work / "results", outside


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_symlink_swapped_at_job_start_is_not_read(symlinked):
    res, outside = symlinked
    t = read_json_tables(res / "json")
    files = {f["filename"]: f for f in t["files"]}
    secret = _sha(outside / "secret.jpg")
    assert files["swap.jpg"]["status"] == "error"
    assert files["swap.jpg"]["error"] == "symlink leaving the archive (not followed)"
    assert secret not in {f["sha256"] for f in t["files"]}
    assert not list((res / "thumbs").rglob(f"{secret}*"))


def test_folder_symlink_leaving_the_archive_is_not_followed(symlinked):
    res, outside = symlinked
    t = read_json_tables(res / "json")
    assert not any(f["filename"].startswith("elsewhere") for f in t["files"])
    skipped = {s["filename"]: s["reason"] for s in t["skipped_files"]}
    assert skipped["elsewhere"] == "symlink leaving the archive (not followed)"
    moon = _sha(outside / "dir" / "moon.jpg")
    assert not list((res / "thumbs").rglob(f"{moon}*"))


def test_results_stay_readable_through_their_fixed_paths(symlinked):
    """archive.sqlite, json/ and html/ are links into the published generation; the
    pages' thumbnails resolve from both paths."""
    res, _ = symlinked
    con = sqlite3.connect(res / "archive.sqlite")
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 3
    con.close()
    gen = (res / "current").resolve()
    thumb = json.loads((res / "json" / "files.json").read_text())[0]["thumb"]
    for html in (res / "html", gen / "html"):
        assert (html / ".." / thumb).resolve().is_file()
