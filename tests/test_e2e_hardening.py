"""Issue #13, end to end: real archives and real operators never lose results and
never crash the workflow on a name."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import read_json_tables, run_workflow, shard_stats

from archive_twins.demo import photo, save
from archive_twins.runner import snakemake_cmd

pytestmark = pytest.mark.e2e


def save_raw(arr, raw_path: bytes, tmp: Path) -> None:
    """Save an image under a name libvips cannot spell (not UTF-8)."""
    p = save(arr, tmp / "x.jpg")
    os.makedirs(os.path.dirname(raw_path), exist_ok=True)
    os.rename(p, raw_path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard") / "archive"
    tmp = tmp_path_factory.mktemp("tmp")
    raw = os.fsencode(root)
    save_raw(photo("coffee"), raw + b"/caf\xe9/M\xfcller.jpg", tmp)
    save_raw(photo("rocket"), raw + b"/M\xfcller.jpg", tmp)
    # a byte copy, so the Latin-1 file is in a set the pages show
    (root / "copy.jpg").write_bytes(open(raw + b"/caf\xe9/M\xfcller.jpg", "rb").read())
    save(photo("chelsea"), root / "names" / "evil\u202egpj.exe.jpg")
    with open(raw + b"/caf\xe9/notes \xe9t\xe9.txt", "wb") as fh:
        fh.write(b"not an image")
    work = tmp_path_factory.mktemp("work")
    old = os.umask(0o022)
    try:
        proc = run_workflow(root, work, shards=2)
    finally:
        os.umask(old)
    return root, work, proc


def test_latin1_names_do_not_crash(run):
    root, work, proc = run
    t = read_json_tables(work / "results" / "json")
    files = {f["filename"]: f for f in t["files"]}
    assert files["caf\\xe9/M\\xfcller.jpg"]["status"] == "ok"
    assert files["M\\xfcller.jpg"]["status"] == "ok"
    assert bytes.fromhex(files["caf\\xe9/M\\xfcller.jpg"]["filename_bytes"]) == (
        b"caf\xe9/M\xfcller.jpg"
    )
    skipped = {r["filename"]: r["reason"] for r in t["skipped_files"]}
    assert skipped["caf\\xe9/notes \\xe9t\\xe9.txt"] == "not an image extension"
    pages = "".join(p.read_text() for p in (work / "results" / "html" / "data").glob("*.js"))
    index = (work / "results" / "html" / "index.html").read_text()
    assert "caf%E9/M%FCller.jpg" in pages or "caf%E9/M%FCller.jpg" in index


def test_outputs_follow_the_umask(run):
    _, work, _ = run
    res = work / "results"

    def mode(p: Path) -> int:
        return stat.S_IMODE(os.stat(p).st_mode)

    assert mode(res / "archive.sqlite") == 0o644
    assert mode(res / "json") == 0o755
    assert mode(res / "html") == 0o755
    assert mode(res / "json" / "files.json") == 0o644
    thumbs = list((res / "thumbs").rglob("*.jpg"))
    assert thumbs and all(mode(p) == 0o644 for p in thumbs)


def small_archive(root: Path) -> Path:
    save(photo("coffee")[::4, ::4], root / "a.jpg")
    save(photo("rocket")[::4, ::4], root / "b" / "b.png")
    return root


def deliverables(res: Path) -> dict:
    """archive.sqlite, json/ and html/ as bytes, by path."""
    out = {Path("archive.sqlite"): (res / "archive.sqlite").read_bytes()}
    for d in ("json", "html"):
        out.update(
            {p.relative_to(res): p.read_bytes() for p in (res / d).rglob("*") if p.is_file()}
        )
    return out


def failing(module: str, func: str) -> str:
    """sitecustomize.py text making `module.func` raise a full-disk error in every
    job process (the workflow's Python reads PYTHONPATH's sitecustomize first)."""
    return f"""
import builtins, sys
_import = builtins.__import__
def _hook(name, *args, **kw):
    mod = _import(name, *args, **kw)
    m = sys.modules.get("{module}")
    # patch once the module is complete (its body has defined the function)
    if m is not None and "{func}" in vars(m) and not vars(m).get("_failing"):
        def {func}(*a, **k):
            raise OSError(28, "No space left on device (injected)")
        m.{func}, m._failing = {func}, True
    return mod
builtins.__import__ = _hook
"""


def inject(tmp_path: Path, monkeypatch, module: str, func: str) -> None:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(failing(module, func))
    monkeypatch.setenv("PYTHONPATH", str(hook))


@pytest.mark.parametrize("stage", ["aggregate", "html"])
def test_failed_rerun_keeps_previous_results(tmp_path, monkeypatch, stage):
    """Whatever fails after the archive changed, the previous archive.sqlite, json/
    and html/ stay as they were: a failing aggregate, or a failing html job after
    aggregate succeeded (a full disk). (A corrupt id registry no longer fails: it is
    rebuilt, tests/test_e2e_robustness.py.)"""
    archive = small_archive(tmp_path / "archive")
    work = tmp_path / "work"
    run_workflow(archive, work, shards=2)
    res = work / "results"
    before = deliverables(res)
    module, func = {
        "aggregate": ("archive_twins.deliver.aggregate", "build_tables"),
        "html": ("archive_twins.deliver.html", "build_html"),
    }[stage]
    inject(tmp_path, monkeypatch, module, func)
    save(photo("chelsea")[::4, ::4], archive / "c.jpg")
    proc = run_workflow(archive, work, shards=2, check=False)
    assert proc.returncode != 0
    assert "injected" in proc.stderr + proc.stdout
    assert deliverables(res) == before
    # and the next good run publishes the complete new set
    monkeypatch.delenv("PYTHONPATH", raising=False)
    run_workflow(archive, work, shards=2)
    t = read_json_tables(res / "json")
    assert len(t["files"]) == 3
    assert "c.jpg" in (res / "html" / "data" / "identical.js").read_text() or len(t["files"]) == 3


def test_failed_shard_job_is_redone(tmp_path, monkeypatch):
    """A decode_shard job that fails (a full disk) gets its old records back from
    Snakemake with a fresh mtime; the next run must still process the change."""
    archive = small_archive(tmp_path / "archive")
    work = tmp_path / "work"
    run_workflow(archive, work, shards=1)
    save(photo("chelsea")[::4, ::4], archive / "c.jpg")
    inject(tmp_path, monkeypatch, "archive_twins.ingest.shard", "process_shard")
    proc = run_workflow(archive, work, shards=1, check=False)
    assert proc.returncode != 0 and "injected" in proc.stderr + proc.stdout
    monkeypatch.delenv("PYTHONPATH")
    run_workflow(archive, work, shards=1)
    names = {f["filename"] for f in read_json_tables(work / "results" / "json")["files"]}
    assert names == {"a.jpg", "b/b.png", "c.jpg"}


def dry_run(archive: Path, work: Path, *config: str) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(archive, work, 1, ["shards=2", *config], ["-n"])
    return subprocess.run(cmd, capture_output=True, text=True)


def test_busy_results_directory_is_left_alone(tmp_path):
    archive = small_archive(tmp_path / "archive")
    work = tmp_path / "work"
    res = work / "results"
    res.mkdir(parents=True)
    with open(res / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = dry_run(archive, work)
    assert proc.returncode != 0
    assert "in use by another run" in proc.stderr + proc.stdout
    assert not (res / "manifest").exists()


def test_results_remember_their_archive(tmp_path):
    a = small_archive(tmp_path / "a")
    b = small_archive(tmp_path / "b")
    work = tmp_path / "work"
    assert dry_run(a, work).returncode == 0
    state = json.loads((work / "results" / "state" / "archive.json").read_text())
    assert state["archive"] == str(a.resolve())
    manifests = {p.name: p.read_text() for p in (work / "results" / "manifest").iterdir()}
    proc = dry_run(b, work)
    assert proc.returncode != 0
    msg = proc.stderr + proc.stdout
    assert str(a.resolve()) in msg and str(b.resolve()) in msg
    assert "allow_archive_change" in msg
    after = {p.name: p.read_text() for p in (work / "results" / "manifest").iterdir()}
    assert after == manifests
    assert dry_run(b, work, "allow_archive_change=True").returncode == 0


def test_results_inside_the_archive_are_refused(tmp_path):
    archive = small_archive(tmp_path / "archive")
    work = tmp_path / "work"
    inside = archive / "twins"
    proc = dry_run(archive, work, f"results={inside}")
    assert proc.returncode != 0
    assert "inside the archive" in proc.stderr + proc.stdout
    assert not inside.exists()
    # allowed: the results directory is never scanned
    (inside / "thumbs").mkdir(parents=True)
    save(photo("chelsea")[::4, ::4], inside / "thumbs" / "t.jpg")
    proc = dry_run(archive, work, f"results={inside}", "allow_results_in_archive=True")
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [
        json.loads(line)["path"]
        for p in (inside / "manifest").glob("shard-*.jsonl")
        for line in p.read_text().splitlines()
    ]
    assert sorted(names) == ["a.jpg", "b/b.png"]


def test_braces_in_paths(tmp_path):
    archive = small_archive(tmp_path / "arch{ive}")
    work = tmp_path / "wo{rk}"
    proc = run_workflow(archive, work, shards=2, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = sqlite3.connect(work / "results" / "archive.sqlite")
    assert con.execute("SELECT count(*) FROM files WHERE status = 'ok'").fetchone() == (2,)


def test_restored_mtime_then_file_check_full(tmp_path):
    """A file overwritten in place with another image of the same size and
    `touch -r`-ed back is re-read; `file_check=full` re-hashes every file."""
    archive = small_archive(tmp_path / "archive")
    tif = archive / "t.tif"
    save(photo("coffee")[:200, :300], tif)
    work = tmp_path / "work"
    run_workflow(archive, work, shards=2)
    res = work / "results"
    before = {f["filename"]: f for f in read_json_tables(res / "json")["files"]}
    st = tif.stat()
    other = save(photo("rocket")[:200, :300], tmp_path / "other.tif").read_bytes()
    assert len(other) == st.st_size
    with open(tif, "r+b") as fh:  # in place: same inode, same size
        fh.write(other)
    os.utime(tif, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_workflow(archive, work, shards=2)
    after = {f["filename"]: f for f in read_json_tables(res / "json")["files"]}
    assert after["t.tif"]["sha256"] != before["t.tif"]["sha256"]
    assert after["a.jpg"] == before["a.jpg"]
    run_workflow(archive, work, shards=2, extra=["file_check=full"])
    stats = shard_stats(res)
    assert sum(s["hashed"] for s in stats) == sum(s["files"] for s in stats) == 3
    # back to the default: a full verification leaves nothing to redo
    proc = run_workflow(archive, work, shards=2)
    assert "Nothing to be done" in proc.stderr + proc.stdout, proc.stderr[-3000:]
