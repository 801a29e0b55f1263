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


def test_no_import_cycle():
    """The package's runtime imports (TYPE_CHECKING ones aside) have a topological
    order: docs/architecture.md lists it layer by layer."""
    import ast
    import graphlib

    mods = {p.stem: p for p in (REPO / "archive_twins").glob("*.py")}
    deps = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        found = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level != 1 or id(node) in typing_only:
                continue
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        deps[name] = found & set(mods) - {name}
    order = list(graphlib.TopologicalSorter(deps).static_order())  # CycleError on a cycle
    assert set(order) == set(mods)
