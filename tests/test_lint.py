"""Project conventions: ruff, snakefmt and `snakemake --lint` are clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kw)


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    proc = run([str(BIN / "ruff"), *args])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt():
    proc = run([str(BIN / "snakefmt"), "--check", "Snakefile", "rules"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint(tmp_path):
    (tmp_path / "archive").mkdir()
    proc = run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--lint",
            "--config",
            f"archive={tmp_path / 'archive'}",
            f"results={tmp_path / 'results'}",
        ]
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition" in out, out


def test_config_schema_rejects_bad_values(tmp_path):
    (tmp_path / "archive").mkdir()
    proc = run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--config",
            f"archive={tmp_path / 'archive'}",
            "shards=0",
        ]
    )
    assert proc.returncode != 0
    assert "shards" in proc.stdout + proc.stderr
