"""Errors that say what to do, in one line, without Snakemake's schema dump; an empty
archive is a warning with empty deliverables."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive_twins.configcheck import archive_problem, config_problem

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "archive-twins"
SCHEMA = REPO / "schemas" / "config.schema.yaml"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), "run", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _error_line(out: subprocess.CompletedProcess) -> str:
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Failed validating" not in text and "$schema" not in text  # no schema dump
    assert len(text.splitlines()) < 15, text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("WorkflowError in")]
    lines = text.splitlines()
    return lines[lines.index(line) + 1]


@pytest.mark.e2e
def test_unknown_config_key_names_the_closest(tmp_path):
    (tmp_path / "a").mkdir()
    out = _run(tmp_path, "a", "--results", "r", "--", "--config", "archiv=x")
    assert _error_line(out) == "unknown config key 'archiv': did you mean 'archive'?"
    out = _run(tmp_path, "a", "--results", "r", "--", "--config", "matching={max_haming: 3}")
    line = _error_line(out)
    assert line == "unknown config key 'matching.max_haming': did you mean 'matching.max_hamming'?"
    assert not (tmp_path / "r").exists()


@pytest.mark.e2e
def test_archive_missing_or_a_file(tmp_path):
    out = _run(tmp_path, "nowhere", "--results", "r")
    assert _error_line(out) == (
        f"archive not found: {tmp_path / 'nowhere'} does not exist; give the archive's "
        "folder: --config archive=DIR (or `archive-twins run DIR`)"
    )
    (tmp_path / "photo.jpg").write_bytes(b"x")
    out = _run(tmp_path, "photo.jpg", "--results", "r")
    assert _error_line(out) == (
        f"archive {tmp_path / 'photo.jpg'} is a file, not a folder: give the folder "
        "holding the images: --config archive=DIR (or `archive-twins run DIR`)"
    )
    assert not (tmp_path / "r").exists()


def test_archive_unreadable(tmp_path, monkeypatch):
    """Said as such (monkeypatched: the tests may run as root, who reads anything)."""

    def denied(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "scandir", denied)
    assert archive_problem(tmp_path) == (
        f"archive {tmp_path} cannot be read (Permission denied): give the user running "
        "the workflow read access to it"
    )


def test_config_problems_are_one_line():
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config_problem(config, SCHEMA) is None
    config["shards"] = 0
    assert config_problem(config, SCHEMA) == "config key 'shards': 0 is less than the minimum of 1"
    config["shards"] = 16
    config["zzzzzz"] = 1
    problem = config_problem(config, SCHEMA)
    assert problem.startswith("unknown config key 'zzzzzz': valid keys: allow_archive_change,")
    assert "\n" not in problem


@pytest.mark.e2e
def test_empty_archive_warns_and_gives_empty_deliverables(tmp_path):
    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "notes.txt").write_text("no images here")
    out = _run(tmp_path, "a", "--results", "r", "--cores", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    warning = (
        f"warning: the archive {archive} holds no image files (1 other entries skipped): "
        "the results will be empty"
    )
    assert warning in out.stdout + out.stderr
    assert json.loads((tmp_path / "r" / "json" / "files.json").read_text()) == []
    assert (tmp_path / "r" / "html" / "index.html").is_file()
