"""The conda environment of the rules pins what pyproject.toml asks for."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def test_env_pins_satisfy_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        canonicalize_name(Requirement(r).name): Requirement(r) for r in project["dependencies"]
    }
    env = yaml.safe_load((REPO / "envs" / "archive-twins.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = {}
    for line in pip:
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one pin
        assert spec.operator == "==", line
        pinned[canonicalize_name(req.name)] = spec.version
    assert pinned.keys() == wanted.keys()
    for name, version in pinned.items():
        assert wanted[name].specifier.contains(version), (name, version, wanted[name])


def test_package_ships_the_workflow():
    """`pip install .` puts the workflow files into archive_twins/workflow (what
    `archive-twins run` runs without a checkout): every file the workflow reads is
    matched by the package data, so a new rule or script is not forgotten."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"]["archive_twins.workflow"] == "."
    patterns = tool["package-data"]["archive_twins.workflow"]
    shipped = {p for pat in patterns for p in REPO.glob(pat)}
    needed = [REPO / "Snakefile", REPO / "config.yaml"]
    for folder, pat in (("rules", "*"), ("scripts", "*"), ("schemas", "*"), ("envs", "*")):
        needed += [p for p in (REPO / folder).glob(pat) if p.is_file()]
    needed += list((REPO / "report").glob("*.rst")) + list(REPO.glob("profiles/*/config.yaml"))
    assert len(needed) > 20
    assert [p.relative_to(REPO) for p in needed if p not in shipped] == []


def test_package_lists_every_stage_package():
    """A wheel holds only the packages pyproject.toml lists (`pip install .`): every
    folder of archive_twins with an __init__.py is among them, and the data files
    (the vocabulary, the pages' script and style) stay package data."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "archive_twins").rglob("__init__.py")
    }
    assert found - set(tool["packages"]) == set()
    assert {"archive_twins.ingest", "archive_twins.deliver"} <= found
    data = tool["package-data"]["archive_twins"]
    assert {"data/*.npy", "web/*"} <= set(data)
    assert list((REPO / "archive_twins").glob("data/*.npy")) and list(
        (REPO / "archive_twins").glob("web/*")
    )
