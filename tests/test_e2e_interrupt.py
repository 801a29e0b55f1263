"""Interrupt a running workflow, rerun with the plain command: the results are
identical to an uninterrupted run (outputs are written atomically, `update` outputs
keep their last complete version, and the workflow profile `profiles/default`
turns on --rerun-incomplete).

Only processes this test started are signalled: jobs are found among the
descendants of the snakemake process it launched, never by name machine-wide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import read_tables, run_workflow

from archive_twins.deliver.schema import TABLES
from archive_twins.demo import build_demo_archive
from archive_twins.runner import snakemake_cmd

pytestmark = pytest.mark.e2e

# Job scripts are run as `python .../.snakemake/scripts/tmpXXXX.<rule>.py`. The
# matching rule's name may change; keep `decode_shard` and the matching rule here.
KILL_RULES = ["decode_shard", "match_chunk"]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after it
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def descendants(root: int) -> set[int]:
    """Every live process below `root` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (ppid := _ppid(int(name))) is not None:
            children.setdefault(ppid, []).append(int(name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def job_pids(rule: str, root: int) -> list[int]:
    """Job processes of `rule` started (directly or not) by the process `root`."""
    pids = []
    for pid in sorted(descendants(root)):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if f".{rule}.py" in cmd and "python" in cmd:
            pids.append(pid)
    return pids


def test_job_pids_only_sees_our_own_descendants(tmp_path):
    script = tmp_path / "tmp1234.decode_shard.py"
    script.write_text("import time\ntime.sleep(30)\n")
    stranger = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    ours = subprocess.Popen(
        ["/bin/sh", "-c", f'"{sys.executable}" "{script}"; true'], start_new_session=True
    )
    try:
        deadline = time.time() + 10
        while time.time() < deadline and not job_pids("decode_shard", ours.pid):
            time.sleep(0.05)
        found = job_pids("decode_shard", ours.pid)
        assert found and stranger.pid not in found
        assert job_pids("decode_shard", os.getpid()) != []  # both are below pytest
        assert stranger.pid not in job_pids("decode_shard", ours.pid)
    finally:
        for p in (stranger, ours):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _ctrl_c_reaches() -> None:
    """SIGINT as at a terminal: a shell starts background commands with SIGINT
    ignored, and an ignored signal stays ignored through exec (run from `cmd &`,
    the workflow never saw the Ctrl-C this test sends)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_and_interrupt(cmd: list[str], rule: str, how: str) -> tuple[bool, subprocess.Popen, str]:
    """Start the workflow in its own process group; when the first job of `rule`
    appears, SIGKILL that job (`how="kill-job"`) or send SIGINT/SIGTERM/SIGKILL to
    the workflow's process group (Ctrl-C, a scheduler, a crash)."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_ctrl_c_reaches,
    )
    done = False
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not done:
        pids = job_pids(rule, proc.pid)
        if pids:
            if how == "kill-job":
                os.kill(pids[0], signal.SIGKILL)
            else:
                os.killpg(proc.pid, getattr(signal, how))
            done = True
        time.sleep(0.01)
    out, _ = proc.communicate(timeout=300)
    return done, proc, out


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    archive = tmp_path_factory.mktemp("demo") / "archive"
    build_demo_archive(archive)
    clean = tmp_path_factory.mktemp("clean")
    run_workflow(archive, clean, shards=4)
    return archive, read_tables(clean / "results" / "archive.sqlite")


@pytest.mark.parametrize(
    "rule,how",
    [(rule, "kill-job") for rule in KILL_RULES]
    + [("decode_shard", sig) for sig in ("SIGINT", "SIGTERM", "SIGKILL")]
    + [("aggregate", "SIGINT")],
)
def test_interrupt_then_plain_rerun_equals_clean_run(tmp_path, demo, rule, how):
    archive, clean = demo
    work = tmp_path / "interrupted"
    for _attempt in range(3):  # the job may finish before it is seen: try again
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        done, proc, out = run_and_interrupt(
            snakemake_cmd(archive, work, 1, ["shards=4"]), rule, how
        )
        if done:
            break
    assert done, "no job to interrupt was seen"
    assert proc.returncode != 0, out[-2000:]
    assert not (work / "results" / "archive.sqlite").exists()
    # the README's plain command, no --rerun-incomplete
    run_workflow(archive, work, shards=4, cores=1)
    a = read_tables(work / "results" / "archive.sqlite")
    for name in a:
        if name != "run_info":
            assert a[name] == clean[name], name


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_interrupted_incremental_run_resumes(tmp_path, how):
    """Ctrl-C (or a crash) during a rerun, while existing outputs are being updated:
    the plain command resumes (no IncompleteFilesException, no stale lock)."""
    archive = tmp_path / "archive"
    build_demo_archive(archive)
    work = tmp_path / "work"
    run_workflow(archive, work, shards=4, cores=1)
    for i, src in enumerate(sorted(archive.rglob("*.jpg"))[:4]):
        shutil.copy(src, archive / f"added-{i}.jpg")
    done, proc, out = run_and_interrupt(
        snakemake_cmd(archive, work, 1, ["shards=4"]), "decode_shard", how
    )
    assert done and proc.returncode != 0, out[-2000:]
    run_workflow(archive, work, shards=4, cores=1)  # the plain command
    clean = tmp_path / "clean"
    run_workflow(archive, clean, shards=4)
    a = read_tables(work / "results" / "archive.sqlite")
    b = read_tables(clean / "results" / "archive.sqlite")
    # file_ids follow arrival order, so compare by filename and by table sizes
    for name in a:
        if name != "run_info":
            assert len(a[name]) == len(b[name]), name
    idx = {c: i for i, (c, _) in enumerate(TABLES["files"])}
    keep = [idx[c] for c in ("filename", "sha256", "status", "pixel_hash")]
    assert sorted([r[i] for i in keep] for r in a["files"]) == sorted(
        [r[i] for i in keep] for r in b["files"]
    )
