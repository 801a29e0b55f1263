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
