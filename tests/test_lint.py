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


# The layers of the package, low to high, as the DAG runs (docs/architecture.md): a
# stage package is one layer; a top-level module is shared (below every stage) or
# part of the run (above them). A new top-level module must be placed here.
LAYERS = {
    "shared": (
        "archive_twins",  # __init__: the version
        "archive_twins.util",
        "archive_twins.versions",
        "archive_twins.progress",
        "archive_twins.jobenv",
        "archive_twins.configcheck",
        "archive_twins.records",
        "archive_twins.ledger",
        "archive_twins.dihedral",
        "archive_twins.demo",
    ),
    "ingest": ("archive_twins.ingest",),
    "index": ("archive_twins.index",),
    "verify": ("archive_twins.verify",),
    "deliver": ("archive_twins.deliver",),
    "run": (
        "archive_twins.settings",
        "archive_twins.prepare",
        "archive_twins.cli",
        "archive_twins.jobs",
        "archive_twins.runner",
        "archive_twins.console",
    ),
}


def _package_imports(typing_too: bool = False) -> dict[str, set[str]]:
    """Each module of the package (dotted name) and the package modules it imports
    (relative imports, at any depth; inside functions too). TYPE_CHECKING imports
    are left out unless `typing_too`."""
    import ast

    root = REPO / "archive_twins"
    mods = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        if "workflow" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = (path, rel.name == "__init__")
    deps = {}
    for name, (path, is_init) in mods.items():
        package = name if is_init else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        found = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or (id(node) in typing_only and not typing_too):
                continue
            if node.level == 0:
                if (node.module or "").split(".")[0] == "archive_twins":
                    base = node.module
                else:
                    continue
            else:
                up = package.split(".")
                base = ".".join(up[: len(up) - (node.level - 1)])
                if node.module:
                    base += "." + node.module
            targets = [base]
            if not node.module or node.level == 0:
                # `from . import x`: x is a module or a name of the package
                targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = targets or [base]
            found |= {t for t in targets if t in mods}
        deps[name] = found - {name}
    return deps


def _layer(module: str) -> int:
    names = list(LAYERS)
    for k, name in enumerate(names):
        for prefix in LAYERS[name]:
            top_level = name in ("shared", "run")
            if module == prefix or (not top_level and module.startswith(prefix + ".")):
                return k
    raise AssertionError(f"{module} is in no layer of tests/test_lint.py LAYERS")


def test_no_import_cycle():
    """The package's runtime imports (TYPE_CHECKING ones aside) have a topological
    order: docs/architecture.md lists it layer by layer."""
    import graphlib

    deps = _package_imports()
    order = list(graphlib.TopologicalSorter(deps).static_order())  # CycleError on a cycle
    assert set(order) == set(deps)
    assert len(deps) > 40


def test_layers_import_downwards():
    """shared <- ingest <- index <- verify <- deliver <- run: no module imports from a
    higher layer than its own (TYPE_CHECKING imports included), and every module
    is in a layer."""
    deps = _package_imports(typing_too=True)
    upward = [
        f"{mod} ({list(LAYERS)[_layer(mod)]}) imports {dep} ({list(LAYERS)[_layer(dep)]})"
        for mod, found in sorted(deps.items())
        for dep in sorted(found)
        if _layer(dep) > _layer(mod)
    ]
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    """The check itself: an import of the run's `settings` from ingest is upward."""
    assert _layer("archive_twins.settings") > _layer("archive_twins.ingest.decode")
    assert _layer("archive_twins.util") < _layer("archive_twins.ingest.decode")
    deps = _package_imports()
    assert "archive_twins.ingest.decode" in deps["archive_twins.ingest.shard"]
    assert "archive_twins.index.query" in deps["archive_twins.verify.match"]
    assert "archive_twins.index.specksearch" in deps["archive_twins.index.query"]
