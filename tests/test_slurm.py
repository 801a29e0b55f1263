"""The workflow on a real single-node SLURM cluster, through profiles/slurm.

tests/slurm/start_slurm.sh installs (Debian slurm-wlm + munge) and starts munged,
slurmctld and slurmd on localhost. The results must equal a local run's.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO, read_tables, run_workflow

from archive_twins.demo import build_demo_archive

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "slurm" / "start_slurm.sh")], capture_output=True, text=True
    )
    if proc.returncode == 3:
        pytest.skip(f"no SLURM here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert shutil.which("sbatch")
    return proc.stdout


def test_slurm_run_equals_local_run(cluster, tmp_path):
    archive = tmp_path / "archive"
    build_demo_archive(archive)
    slurm = run_workflow(
        archive,
        tmp_path / "slurm",
        shards=4,
        extra=["match_chunks=2"],
        options=[
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--slurm-no-account",
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "1",
        ],
    )
    out = slurm.stdout + slurm.stderr
    assert "submitted with SLURM jobid" in out, out[-3000:]
    # the decode_shard jobs of the 4 shards ran as one grouped SLURM job
    assert "group_shards_decode_shard" in out
    run_workflow(archive, tmp_path / "local", shards=4, extra=["match_chunks=2"])
    a = read_tables(tmp_path / "slurm" / "results" / "archive.sqlite")
    b = read_tables(tmp_path / "local" / "results" / "archive.sqlite")
    for name in a:
        if name != "run_info":
            assert a[name] == b[name], name
    assert a["copy_pairs"] and a["identical_list"]
