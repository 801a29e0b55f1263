"""Kill a job of a running workflow with SIGKILL, rerun: the results are identical
to an uninterrupted run (outputs are written atomically, `update` outputs keep
their last complete version)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from conftest import read_tables, run_workflow

from archive_twins.demo import build_demo_archive
from archive_twins.runner import snakemake_cmd

pytestmark = pytest.mark.e2e


def job_pids(rule: str) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if f".{rule}.py" in cmd and "python" in cmd:
            pids.append(int(pid))
    return pids


def run_and_kill(cmd: list[str], rule: str) -> tuple[bool, subprocess.Popen, str]:
    """Start the workflow and SIGKILL the first job of `rule` that appears."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = False
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not killed:
        pids = job_pids(rule)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed = True
        time.sleep(0.01)
    out, _ = proc.communicate(timeout=300)
    return killed, proc, out


@pytest.mark.parametrize("rule", ["decode_shard", "match_chunk"])
def test_sigkill_then_rerun_equals_clean_run(tmp_path, rule):
    archive = tmp_path / "archive"
    build_demo_archive(archive)
    work = tmp_path / "killed"
    for _attempt in range(3):  # the job may finish before it is seen: try again
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        killed, proc, out = run_and_kill(snakemake_cmd(archive, work, 1, ["shards=4"]), rule)
        if killed:
            break
    assert killed, "no job to kill was seen"
    assert proc.returncode != 0, out[-2000:]
    assert not (work / "results" / "archive.sqlite").exists()
    run_workflow(archive, work, shards=4, cores=1, options=["--rerun-incomplete"])
    clean = tmp_path / "clean"
    run_workflow(archive, clean, shards=4)
    a = read_tables(work / "results" / "archive.sqlite")
    b = read_tables(clean / "results" / "archive.sqlite")
    for name in a:
        if name != "run_info":
            assert a[name] == b[name], name
